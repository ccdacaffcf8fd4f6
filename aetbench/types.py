"""Shared data types of aetbench, with units.

Every stage of the pipeline is a plain function over these types:

* :class:`AtomicModel` — atom positions [Å] in the object frame and element
  symbols; converts to and from :class:`ase.Atoms`.
* :class:`TiltSeries` — projection images ``(n, nx, ny)``, Euler angles
  ``(n, 3)`` [deg], pixel size [Å], dose per projection [e/Å²], metadata.
* :class:`Volume` — a 3-D array ``[ix, iy, iz]`` with voxel size [Å].
* :class:`TracedModel` — an :class:`AtomicModel` plus per-atom features.
* Score tables are :class:`pandas.DataFrame` with :data:`SCORE_COLUMNS`.

Frames and axis orders are defined once in :mod:`aetbench.geometry`.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Callable

import numpy as np

from . import geometry

__all__ = ["AtomicModel", "TiltSeries", "Volume", "TracedModel", "SCORE_COLUMNS", "NON_ATOM"]

#: File readers and writers of the types, by (type name, "read" | "write").  The types do no I/O and import
#: nothing of :mod:`aetbench.io` (which sits above them): :mod:`aetbench.io.hdf5` and :mod:`aetbench.io.xyz`
#: register their functions here when imported, and ``import aetbench`` imports both.
_FILE_IO: dict[tuple[str, str], Callable] = {}


def register_file_io(kind: str, read: Callable, write: Callable) -> None:
    """Make ``kind.read(path)`` call ``read(path)`` and ``obj.write(path)`` call ``write(obj, path)``.

    For ``"AtomicModel"`` the functions read and write :class:`ase.Atoms` (the model converts itself).
    """
    _FILE_IO[(kind, "read")] = read
    _FILE_IO[(kind, "write")] = write


def _file_io(kind: str, op: str) -> Callable:
    try:
        return _FILE_IO[(kind, op)]
    except KeyError:
        raise RuntimeError(f"no file {op}er registered for {kind}: import aetbench.io first") from None


#: label used for traced peaks classified as "not an atom"
NON_ATOM = "x"

#: columns of a score table (one row per structure, dose, method, element, protocol)
SCORE_COLUMNS = [
    "structure", "dose", "method", "element", "protocol", "cutoff", "n_truth", "n_traced",
    "identified", "rate_pct", "precision_pm", "false_positives", "wrong_element", "recall_pct", "f1_pct", "seconds",
]


@dataclass(frozen=True, eq=False)
class AtomicModel:
    """Atoms of a nanoparticle.

    Attributes
    ----------
    positions : ndarray, shape (N, 3)
        Positions in Å, object frame (x, y, z).
    elements : ndarray of str, shape (N,)
        Chemical symbols.
    name : str
        Free-form label (recipe name, file name).

    Examples
    --------
    >>> m = AtomicModel([[0, 0, 0], [2.35, 0, 0]], ["Si", "Si"])
    >>> len(m), m.species
    (2, ['Si'])
    """

    positions: np.ndarray
    elements: np.ndarray
    name: str = ""

    def __post_init__(self):
        pos = np.asarray(self.positions, dtype=float).reshape(-1, 3)
        el = np.asarray(self.elements, dtype=str).reshape(-1)
        if el.size == 1 and pos.shape[0] != 1:
            el = np.repeat(el, pos.shape[0])
        if el.shape[0] != pos.shape[0]:
            raise ValueError(f"AtomicModel: {pos.shape[0]} positions but {el.shape[0]} elements")
        object.__setattr__(self, "positions", pos)
        object.__setattr__(self, "elements", el)

    def __len__(self) -> int:
        return self.positions.shape[0]

    @property
    def species(self) -> list[str]:
        """Sorted distinct element symbols."""
        return sorted(set(self.elements.tolist()))

    def counts(self) -> dict[str, int]:
        """Number of atoms per element."""
        u, c = np.unique(self.elements, return_counts=True)
        return {str(a): int(b) for a, b in zip(u, c)}

    def select(self, mask) -> "AtomicModel":
        """Subset of atoms by boolean mask or index array."""
        return replace(self, positions=self.positions[mask], elements=self.elements[mask])

    def centred(self) -> "AtomicModel":
        """Copy translated so that the centroid is at the origin."""
        return replace(self, positions=self.positions - self.positions.mean(axis=0))

    def translated(self, shift) -> "AtomicModel":
        """Copy translated by ``shift`` [Å]."""
        return replace(self, positions=self.positions + np.asarray(shift, dtype=float))

    def to_ase(self):
        """Return an :class:`ase.Atoms` (no cell, no periodicity)."""
        from ase import Atoms

        return Atoms(symbols=list(self.elements), positions=self.positions, pbc=False)

    @classmethod
    def from_ase(cls, atoms, name: str = "") -> "AtomicModel":
        """Build from an :class:`ase.Atoms`."""
        return cls(np.asarray(atoms.get_positions()), np.asarray(atoms.get_chemical_symbols()), name)

    def write(self, path) -> None:
        """Write as extended XYZ (ASE-readable), atomically (:func:`aetbench.io.xyz.write_atoms_xyz`)."""
        _file_io("AtomicModel", "write")(self.to_ase(), path)

    @classmethod
    def read(cls, path) -> "AtomicModel":
        """Read an extended XYZ (or any ASE-readable) file (:func:`aetbench.io.xyz.read_atoms`)."""
        return cls.from_ase(_file_io("AtomicModel", "read")(path), name=str(path))


@dataclass(frozen=True, eq=False)
class TiltSeries:
    """A tilt series of projection images.

    Attributes
    ----------
    images : ndarray, shape (n, nx, ny)
        Projections, indexed ``[k, ix, iy]`` in the beam frame
        (see :mod:`aetbench.geometry`); counts or arbitrary linear units.
    angles : ndarray, shape (n, 3)
        Euler angles (phi, theta, psi) in degrees, the *nominal* angles an
        experiment would know.
    pixel_size : float
        Pixel size in Å.
    dose : float or None
        Electron dose per projection in e/Å² (``None`` = noise-free).
    metadata : dict
        Provenance (recipe, seed, simulation config) and, when artefacts were
        applied, the true angles/shifts under ``"truth"`` — never read by the
        reconstruction pipeline.
    """

    images: np.ndarray
    angles: np.ndarray
    pixel_size: float
    dose: float | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self):
        img = np.asarray(self.images)
        if img.ndim != 3:
            raise ValueError(f"TiltSeries.images must be (n, nx, ny), got shape {img.shape}")
        ang = np.asarray(self.angles, dtype=float)
        if ang.ndim == 1:
            ang = geometry.single_axis_angles(ang)
        if ang.shape != (img.shape[0], 3):
            raise ValueError(f"TiltSeries.angles must be ({img.shape[0]}, 3) in degrees, got {ang.shape}")
        if not self.pixel_size > 0:
            raise ValueError(f"TiltSeries.pixel_size must be > 0 Å, got {self.pixel_size}")
        object.__setattr__(self, "images", img)
        object.__setattr__(self, "angles", ang)
        object.__setattr__(self, "pixel_size", float(self.pixel_size))

    def __len__(self) -> int:
        return self.images.shape[0]

    @property
    def shape(self) -> tuple[int, int]:
        """(nx, ny) of one image."""
        return self.images.shape[1], self.images.shape[2]

    def with_images(self, images, **meta) -> "TiltSeries":
        """Copy with new images (same geometry), metadata updated by ``meta``."""
        return replace(self, images=np.asarray(images), metadata={**self.metadata, **meta})

    def write(self, path) -> None:
        """Write to HDF5 atomically (see :mod:`aetbench.io.hdf5`)."""
        _file_io("TiltSeries", "write")(self, path)

    @classmethod
    def read(cls, path) -> "TiltSeries":
        """Read an HDF5 file written by :meth:`write` (see :mod:`aetbench.io.hdf5`)."""
        return _file_io("TiltSeries", "read")(path)


@dataclass(frozen=True, eq=False)
class Volume:
    """A reconstructed 3-D volume.

    Attributes
    ----------
    data : ndarray, shape (nx, ny, nz)
        Values indexed ``[ix, iy, iz]`` in the object frame; position [Å] of
        voxel ``i`` is ``(i - n // 2) * voxel_size + origin`` per axis.
    voxel_size : float
        Edge of a cubic voxel in Å.
    metadata : dict
        Method, parameters, convergence history (e.g. ``"r_factor"`` list).
    origin : ndarray, shape (3,)
        Position [Å] in the global (object) frame of voxel index ``n // 2`` on
        each axis (the centre voxel, :mod:`aetbench.geometry`'s origin rule);
        zeros (the default) for a volume centred on the frame's origin.  A
        sub-volume cut from a larger volume keeps the larger one's frame
        (:meth:`crop`), so atoms traced in it land in the global frame.
    """

    data: np.ndarray
    voxel_size: float
    metadata: dict[str, Any] = field(default_factory=dict)
    origin: np.ndarray = field(default_factory=lambda: np.zeros(3))

    def __post_init__(self):
        d = np.asarray(self.data)
        if d.ndim != 3:
            raise ValueError(f"Volume.data must be 3-D, got shape {d.shape}")
        if not self.voxel_size > 0:
            raise ValueError(f"Volume.voxel_size must be > 0 Å, got {self.voxel_size}")
        origin = np.asarray(self.origin, dtype=float).reshape(-1)
        if origin.shape != (3,) or not np.all(np.isfinite(origin)):
            raise ValueError(f"Volume.origin must be 3 finite coordinates [Å], got {self.origin!r}")
        object.__setattr__(self, "data", d)
        object.__setattr__(self, "voxel_size", float(self.voxel_size))
        object.__setattr__(self, "origin", origin)

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.data.shape)

    def index_to_position(self, index) -> np.ndarray:
        """Fractional voxel indices (..., 3) → positions [Å] (global frame, ``origin`` included)."""
        return geometry.index_to_position(index, self.data.shape, self.voxel_size) + self.origin

    def position_to_index(self, position) -> np.ndarray:
        """Positions [Å] (..., 3, global frame) → fractional voxel indices."""
        return geometry.position_to_index(np.asarray(position, dtype=float) - self.origin, self.data.shape,
                                          self.voxel_size)

    def crop(self, start, shape) -> "Volume":
        """The sub-volume ``data[start : start + shape]`` (voxel indices), in the same global frame.

        Its ``origin`` is the position [Å] of its own centre voxel (index ``shape // 2``), so
        :meth:`index_to_position` of the sub-volume and of this volume agree voxel for voxel.
        """
        start = np.asarray(start, dtype=int).reshape(3)
        shape = np.asarray(shape, dtype=int).reshape(3)
        if np.any(start < 0) or np.any(shape < 1) or np.any(start + shape > np.asarray(self.shape)):
            raise ValueError(f"Volume.crop: box {start.tolist()} + {shape.tolist()} leaves the volume {self.shape}")
        sl = tuple(slice(a, a + n) for a, n in zip(start, shape))
        return replace(self, data=self.data[sl], origin=self.index_to_position(start + shape // 2))

    def write(self, path) -> None:
        """Write to HDF5 atomically (see :mod:`aetbench.io.hdf5`)."""
        _file_io("Volume", "write")(self, path)

    @classmethod
    def read(cls, path) -> "Volume":
        """Read an HDF5 file written by :meth:`write` (see :mod:`aetbench.io.hdf5`)."""
        return _file_io("Volume", "read")(path)


@dataclass(frozen=True, eq=False)
class TracedModel:
    """Atoms traced from a volume.

    Attributes
    ----------
    model : AtomicModel
        Positions [Å] (object frame) and element labels; peaks classified as
        non-atoms carry the label :data:`NON_ATOM` (``"x"``).
    intensity : ndarray, shape (N,)
        Integrated intensity around each peak (volume units × voxels).
    features : dict of str → ndarray
        Further per-atom features (peak height, fit residual …), each (N,).
    metadata : dict
        What the stage that made it found beyond the atoms (e.g. a refinement's
        ``refined_angles`` [deg] and ``refined_shifts_px``); JSON-ready values.
    """

    model: AtomicModel
    intensity: np.ndarray
    features: dict[str, np.ndarray] = field(default_factory=dict)
    metadata: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.model)

    def atoms(self) -> AtomicModel:
        """The atoms only (non-atom peaks dropped)."""
        return self.model.select(self.model.elements != NON_ATOM)
