"""The one container for a 4D-STEM dataset of one tilt, shared by the simulator and the reconstructor, and the
reconstruction's result (:class:`PtychoResult`).

Conventions (all of them; the simulator writes data this way, the reconstructor reads it this way):

- ``intensities[i, j, u, v]``: diffraction pattern for the probe at ``scan_positions_A[i, j]``.  Axes ``u, v``
  are the reciprocal axes of the real-space axes ``x, y`` (same order, no transpose).  The zero spatial
  frequency sits at index ``(nk // 2, nk // 2)`` (``numpy.fft.fftshift`` layout).  Without dose the values are
  the fraction of the incident probe intensity per detector pixel (a pattern sums to ≈ 1 inside the simulated
  angles); with dose they are electron counts.
- Angular sampling ``angular_sampling_mrad`` per detector pixel, the same on both axes.  A pattern of ``nk``
  pixels therefore corresponds to a real-space window of ``nk * window_sampling_A`` Å with
  ``window_sampling_A = wavelength / (nk * angular_sampling)``.
- Positions are in Å in the *field frame*: the simulation cell's x, y with the origin at the cell corner.
  ``centre_A`` is where the tomographic rotation centre projects in that frame; the tomography image pixel
  ``(nx // 2, ny // 2)`` lies there (see ``aetbench.geometry``).
- Probe: abTEM's conventions (``abtem.Probe``): ``defocus_A`` is abTEM's ``defocus`` (= −C10, positive = probe
  focused below the entrance surface, i.e. underfocus), ``Cs_A`` its C30, aperture ``semiangle_mrad``;
  ``focal_plane`` is the entrance surface of the cell.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .. import optics
from ..errors import AetbenchError


@dataclass
class FourDSTEM:
    """One tilt's 4D-STEM dataset.

    Attributes
    ----------
    intensities : ndarray, shape (sx, sy, nk, nk), float32
        Diffraction patterns, fftshift layout (see module docstring); fraction of the probe or counts.
    scan_positions_A : ndarray, shape (sx, sy, 2)
        Probe positions [Å], field frame.
    angular_sampling_mrad : float
        Detector pixel size [mrad].
    energy_kV : float
        Beam energy [kV].
    semiangle_mrad : float
        Probe convergence semi-angle [mrad].
    defocus_A : float
        abTEM defocus [Å] (−C10) referenced to the cell's entrance surface.
    Cs_A : float
        Spherical aberration C30 [Å].
    field_extent_A : (float, float)
        Extent of the field frame [Å] (the simulation cell's x, y).
    depth_A : float
        Cell thickness along the beam [Å] (multislice ptychography slices this).
    centre_A : (float, float)
        Projection of the rotation centre in the field frame [Å].
    dose_per_A2 : float or None
        Electrons per Å² per projection (None: noise-free fractions).
    angle_deg : (float, float, float)
        Euler angles (phi, theta, psi) [deg] of this tilt (as given to the pipeline).
    metadata : dict
        Anything else (engine, seeds, sampling, truth).
    """

    intensities: np.ndarray
    scan_positions_A: np.ndarray
    angular_sampling_mrad: float
    energy_kV: float
    semiangle_mrad: float
    defocus_A: float
    Cs_A: float
    field_extent_A: tuple[float, float]
    depth_A: float
    centre_A: tuple[float, float]
    dose_per_A2: float | None = None
    angle_deg: tuple[float, float, float] = (0.0, 0.0, 0.0)
    metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self):
        I = np.asarray(self.intensities)
        if I.ndim != 4 or I.shape[2] != I.shape[3]:
            raise AetbenchError(f"FourDSTEM.intensities: expected shape (sx, sy, nk, nk), got {I.shape}")
        P = np.asarray(self.scan_positions_A, dtype=float)
        if P.shape != I.shape[:2] + (2,):
            raise AetbenchError(f"FourDSTEM.scan_positions_A: expected shape {I.shape[:2] + (2,)} [Å], got {P.shape}")
        if not self.angular_sampling_mrad > 0:
            raise AetbenchError(f"FourDSTEM.angular_sampling_mrad: expected > 0 mrad, got {self.angular_sampling_mrad}")
        if not self.energy_kV > 0:
            raise AetbenchError(f"FourDSTEM.energy_kV: expected > 0 kV, got {self.energy_kV}")
        self.scan_positions_A = P

    @property
    def nk(self) -> int:
        """Detector pixels per side."""
        return int(self.intensities.shape[-1])

    @property
    def wavelength_A(self) -> float:
        """Relativistic electron wavelength [Å]."""
        return optics.wavelength_A(self.energy_kV)

    @property
    def window_sampling_A(self) -> float:
        """Real-space pixel size [Å] of the probe window that the patterns resolve."""
        return self.wavelength_A / (self.nk * self.angular_sampling_mrad * 1e-3)


@dataclass
class PtychoResult:
    """Output of a ptychographic reconstruction.

    Attributes
    ----------
    object : complex ndarray, shape (n_slices, Nx, Ny)
        Transmission function of each slice (first = entrance side).
    sampling_A : float
        Object pixel size [Å] (= the data's window sampling).
    origin_A : (float, float)
        Field-frame position [Å] (x, y) of object pixel [0, 0].
    probe : complex ndarray, shape (nk, nk)
        Probe at the first slice's plane (refined if asked), ``Σ|P|²`` = 1 in the normalised intensity scale.
    errors : list of float
        Normalised amplitude error ``Σ(|Ψ| − √I)² / ΣI`` per iteration (before that iteration's updates).
    engine : str
        ``"single-slice"`` or ``"multislice"``.
    n_slices : int
    slice_thickness_A : float
        Slice thickness [Å] (single slice: the data's depth).
    seconds : float
        Wall time of the reconstruction [s].
    probe_plane_A : float
        Depth [Å] below the entrance surface of the plane where ``probe`` is given.
    illumination : ndarray, shape (Nx, Ny)
        Summed probe intensity Σ|P|² over all positions (marks the scanned region).
    """

    object: np.ndarray
    sampling_A: float
    origin_A: tuple[float, float]
    probe: np.ndarray
    errors: list[float]
    engine: str
    n_slices: int
    slice_thickness_A: float
    seconds: float
    probe_plane_A: float = 0.0
    illumination: np.ndarray | None = None
    metadata: dict = field(default_factory=dict)
