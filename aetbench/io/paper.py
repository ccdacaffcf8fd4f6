"""Importer for the paper's tilt series (Liao et al. 2026 supplementary data).

This module is the only place that knows the paper's array order.  The
authors store projections as ``(x, y, projection)`` arrays in MATLAB files and
tilt angles as an ``(n, 3)`` array of ``(phi, theta, psi)`` in degrees with the
same Euler convention as :mod:`aetbench.geometry`.  aetbench's images are
``(projection, x, y)``, so the import is a transpose: image pixel
``[k, ix, iy]`` is the authors' ``[ix, iy, k]``.  With that, a volume
reconstructed by aetbench is indexed like the authors' volumes and traced
models come out in the frame of their model files (verified by scoring a
reconstruction of ``aSi208`` against its ground truth, see
``tests/test_paper_workflow.py``).

Examples
--------
>>> from pathlib import Path
>>> d = Path("../shared/paper-data/aSi208")
>>> if d.exists():                                          # doctest: +SKIP
...     ts = read_paper_tilt_series(d / "aSi_2nmFosCetr_Dose1p6e4_cov35pm_ForBM3D.mat",
...                                 d / "Si_Angle.mat", pixel_size=0.195, dose=1.6e4)
...     ts.images.shape
(60, 128, 128)
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import AetbenchError
from ..types import TiltSeries

__all__ = ["read_mat_arrays", "read_paper_tilt_series", "read_paper_angles", "paper_model_positions",
           "paper_model_labels", "PAPER_MODEL_VARIABLE", "PAPER_TYPES_VARIABLE"]

#: the paper's traced models: ``temp_model`` (3×N voxel coordinates) and ``temp_atomtype`` (N labels)
PAPER_MODEL_VARIABLE = "temp_model"
PAPER_TYPES_VARIABLE = "temp_atomtype"


def read_mat_arrays(path) -> dict[str, np.ndarray]:
    """All numeric arrays of a MATLAB file (v5 via scipy, v7.3 via h5py with axes reversed back); the numeric
    properties of MATLAB class objects (:mod:`aetbench.io.matlab`) as ``"variable.property"``.

    Raises
    ------
    AetbenchError
        When the file is missing or is not a readable ``.mat`` file.
    """
    path = Path(path)
    if not path.is_file():
        raise AetbenchError(f"{path}: file not found")
    try:
        import scipy.io

        raw = scipy.io.loadmat(path)
        out = {k: np.asarray(v) for k, v in raw.items() if not k.startswith("__") and isinstance(v, np.ndarray)
               and v.dtype.kind in "uifb"}
        if any(type(v).__name__ == "MatlabOpaque" for v in raw.values()):  # MATLAB class objects (old RESIRE results)
            from .matlab import mcos_numeric_arrays

            out.update(mcos_numeric_arrays(path))  # as "variable.property"
        return out
    except NotImplementedError:  # MATLAB v7.3 = HDF5
        import h5py

        out = {}
        with h5py.File(path, "r") as f:
            for k, v in f.items():
                if isinstance(v, h5py.Dataset) and v.dtype.kind in "uifb":
                    out[k] = np.asarray(v).T  # h5py reads MATLAB arrays with axes reversed
        return out
    except Exception as exc:  # noqa: BLE001 - any parse failure is a user-facing file problem
        raise AetbenchError(f"{path}: not a readable MATLAB .mat file ({exc.__class__.__name__}: {exc})") from None


def _pick(arrays: dict[str, np.ndarray], path: Path, ndim: int, what: str, variable: str | None) -> np.ndarray:
    if variable is not None:
        if variable not in arrays:
            raise AetbenchError(f"{path}: no variable {variable!r} (found: {', '.join(sorted(arrays)) or 'none'})")
        return arrays[variable]
    cands = [v for v in arrays.values() if v.ndim == ndim]
    if len(cands) != 1:
        raise AetbenchError(f"{path}: expected exactly one {ndim}-D array holding the {what}, found {len(cands)} "
                            f"(variables: {', '.join(sorted(arrays)) or 'none'})")
    return cands[0]


def read_paper_angles(path, n_projections: int | None = None, variable: str | None = None) -> np.ndarray:
    """Tilt angles ``(n, 3)`` = (phi, theta, psi) in degrees from a ``.mat`` file.

    A single vector of length ``n`` is read as theta (single-axis tilt).
    """
    path = Path(path)
    arrays = read_mat_arrays(path)
    if variable is None:
        cands = [v for v in arrays.values() if v.ndim <= 2 and v.size >= 1]
        if len(cands) != 1:
            raise AetbenchError(f"{path}: expected exactly one angle array, found {len(cands)}")
        a = cands[0]
    else:
        a = _pick(arrays, path, 2, "tilt angles", variable)
    a = np.asarray(a, dtype=float)
    if a.ndim == 2 and a.shape[1] == 3:
        ang = a
    elif a.ndim == 2 and a.shape[0] == 3 and a.shape[1] != 3:
        ang = a.T
    elif a.ndim <= 2 and 1 in a.shape or a.ndim == 1:
        theta = a.reshape(-1)
        ang = np.zeros((theta.size, 3))
        ang[:, 1] = theta
    else:
        raise AetbenchError(f"{path}: angle array has shape {a.shape}; expected (n, 3) degrees or a vector of n tilts")
    if not np.all(np.isfinite(ang)) or np.any(np.abs(ang) > 360):
        raise AetbenchError(f"{path}: tilt angles must be finite degrees within ±360")
    if n_projections is not None and ang.shape[0] != n_projections:
        raise AetbenchError(f"{path}: {ang.shape[0]} tilt angles but the projection file holds {n_projections} "
                            "projections")
    return ang


def read_paper_tilt_series(projections, angles, *, pixel_size: float, dose: float | None = None,
                           variable: str | None = None, angle_variable: str | None = None,
                           name: str = "") -> TiltSeries:
    """Read the paper's ``(x, y, projection)`` projections and angles as a :class:`TiltSeries`.

    Parameters
    ----------
    projections : path
        ``.mat`` file with one 3-D array ``(x, y, n)`` of counts (uint8, float or
        integer-valued doubles; any size).
    angles : path
        ``.mat`` file with ``(n, 3)`` Euler angles (phi, theta, psi) in degrees.
    pixel_size : float
        Pixel edge [Å] (not stored in the files).
    dose : float, optional
        Electron dose per projection [e/Å²], recorded for the report.

    Returns
    -------
    TiltSeries
        Images ``(n, nx, ny)`` as float32 counts, angles in degrees.
    """
    projections = Path(projections)
    if not (np.isfinite(pixel_size) and pixel_size > 0):
        raise AetbenchError(f"pixel_size: expected a positive number of Å, got {pixel_size!r}")
    if dose is not None and not (dose > 0):
        raise AetbenchError(f"dose: expected a positive dose in e/Å² per projection, got {dose!r}")
    stack = _pick(read_mat_arrays(projections), projections, 3, "projections (x, y, n)", variable)
    stack = np.asarray(stack, dtype=np.float32)
    if not np.all(np.isfinite(stack)):
        raise AetbenchError(f"{projections}: projections contain NaN or infinite values")
    images = np.ascontiguousarray(np.transpose(stack, (2, 0, 1)))
    ang = read_paper_angles(angles, n_projections=images.shape[0], variable=angle_variable)
    meta = {"source": str(projections), "angles_file": str(angles), "importer": "aetbench.io.paper"}
    return TiltSeries(images=images, angles=ang, pixel_size=float(pixel_size), dose=dose,
                      metadata=meta)



def paper_model_positions(path, arrays: dict[str, np.ndarray], pixel_size: float | None) -> np.ndarray | None:
    """Positions [Å] (N, 3) of the paper's traced model held in ``arrays`` (a ``.mat`` file's variables), or
    ``None`` when they hold no ``temp_model``.

    ``temp_model`` (3×N) is in 1-based voxel units of the 3× oversampled, 10-voxel zero-padded tracing volume:
    Å = (m / 3 − 2) × ``pixel_size`` [Å], which is required.
    """
    if PAPER_MODEL_VARIABLE not in arrays:
        return None
    m = np.asarray(arrays[PAPER_MODEL_VARIABLE], dtype=float)
    if m.ndim != 2 or m.shape[0] != 3:
        raise AetbenchError(f"{path}: temp_model has shape {m.shape}; expected 3×N voxel coordinates")
    if pixel_size is None:
        raise AetbenchError(f"{path}: traced model in voxel units (temp_model); give the pixel size in Å "
                            "(--pixel-size / pixel_size=)")
    if not (np.isfinite(pixel_size) and pixel_size > 0):
        raise AetbenchError(f"pixel_size: expected a positive number of Å, got {pixel_size!r}")
    return (m.T / 3.0 - 2.0) * float(pixel_size)


def paper_model_labels(path, arrays: dict[str, np.ndarray], n: int) -> np.ndarray | None:
    """The label vector ``temp_atomtype`` of the paper's traced model of ``n`` atoms, or ``None`` without one."""
    if PAPER_TYPES_VARIABLE not in arrays:
        return None
    lab = np.asarray(arrays[PAPER_TYPES_VARIABLE]).reshape(-1)
    if lab.size != n:
        raise AetbenchError(f"{path}: temp_atomtype holds {lab.size} labels for {n} atoms")
    return lab
