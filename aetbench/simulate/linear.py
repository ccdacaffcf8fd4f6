"""Fast linear forward model ("linear" tier): incoherent ADF approximation.

Each atom contributes a 2-D Gaussian of integrated ADF cross-section
``amplitude`` [Å²] and width ``sqrt(sigma_A² + blur_sigma_A²)`` [Å] at its
beam-frame (x, y) position; images are the detected fraction of the probe per
scan position (dimensionless), so ``counts = image × dose × pixel_area``
(see :mod:`aetbench.simulate.dose`).

Default cross-sections are tied to the paper's own data: the aSi208 noisy
projections hold ≈ 1.78e-3 Å² of ADF signal per Si atom (total background-free
counts per projection / (dose × 208): 1.787e-3, 1.776e-3, 1.776e-3 at 8.0e3,
1.6e4, 1.6e5 e/Å²);
other elements scale as (Z / 14)^1.7 (the usual Z-contrast exponent).
:mod:`aetbench.simulate.calibrate` fits these parameters to abTEM images.

Examples
--------
>>> from aetbench.types import AtomicModel
>>> m = AtomicModel([[0.0, 0.0, 0.0]], ["Si"])
>>> ts = simulate_linear(m, [[0, 0, 0]], pixel_size=0.2, shape=(32, 32))
>>> round(float(ts.images.sum() * 0.2**2), 5)   # integrated signal = cross-section [Å²]
0.00178
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numba import njit, prange

from .. import geometry
from ..types import AtomicModel, TiltSeries

__all__ = ["LinearParams", "simulate_linear", "default_amplitude"]

_SI_CROSS_SECTION_A2 = 1.78e-3
_Z_EXPONENT = 1.7


def default_amplitude(element: str) -> float:
    """Default integrated ADF cross-section [Å²] of one atom of ``element``."""
    from ase.data import atomic_numbers

    try:
        z = atomic_numbers[element]
    except KeyError:
        raise ValueError(f"unknown element symbol {element!r}") from None
    return _SI_CROSS_SECTION_A2 * (z / 14.0) ** _Z_EXPONENT


@dataclass(frozen=True)
class LinearParams:
    """Parameters of the linear forward model.

    Attributes
    ----------
    amplitude : dict[str, float]
        Integrated ADF cross-section per atom [Å²] by element; missing elements
        use :func:`default_amplitude`.
    sigma_A : dict[str, float]
        Intrinsic Gaussian width of each element's projected profile [Å]
        (thermal vibration + potential); missing elements use ``default_sigma_A``.
    default_sigma_A : float
        Width [Å] for elements not in ``sigma_A``.
    blur_sigma_A : float
        Probe/source-size blur [Å] convolved with every atom.
    """

    amplitude: dict[str, float] = field(default_factory=dict)
    sigma_A: dict[str, float] = field(default_factory=dict)
    default_sigma_A: float = 0.25
    blur_sigma_A: float = 0.30

    def amplitude_of(self, element: str) -> float:
        return float(self.amplitude.get(element, default_amplitude(element)))

    def width_of(self, element: str) -> float:
        s = float(self.sigma_A.get(element, self.default_sigma_A))
        return float(np.hypot(s, self.blur_sigma_A))


@njit(cache=True)
def gaussian_window(u, v, w, pixel, reach_w, nx, ny):  # pragma: no cover - numba
    """Where one atom's Gaussian lands on an ``nx × ny`` image: its centre ``(fx, fy)`` [px] for image
    coordinates ``(u, v)`` [Å] (0 at pixel ``n // 2``) and the pixel window ``[i0, i1] × [j0, j1]`` reaching
    ``reach_w`` widths ``w`` [Å] either way, clipped to the image (empty when ``i0 > i1`` or ``j0 > j1``).
    Shared by the linear simulator, the bound (score/bound) and the likelihood refinement (trace/refine_ml)."""
    reach = reach_w * w / pixel
    fx = u / pixel + nx // 2
    fy = v / pixel + ny // 2
    i0 = max(int(np.floor(fx - reach)), 0)
    i1 = min(int(np.ceil(fx + reach)), nx - 1)
    j0 = max(int(np.floor(fy - reach)), 0)
    j1 = min(int(np.ceil(fy + reach)), ny - 1)
    return fx, fy, i0, i1, j0, j1


@njit(parallel=True, cache=True)
def _render(u, v, amp, width, nx, ny, pixel, out):  # pragma: no cover - numba
    """Add Gaussians to out[k] for each projection k (parallel over projections)."""
    n_proj, n_atoms = u.shape
    for k in prange(n_proj):
        for a in range(n_atoms):
            w = width[a]
            fx, fy, i0, i1, j0, j1 = gaussian_window(u[k, a], v[k, a], w, pixel, 4.5, nx, ny)
            if i0 > i1 or j0 > j1:
                continue
            norm = amp[a] / (2.0 * np.pi * w * w)
            inv = 0.5 / (w * w)
            gy = np.empty(j1 - j0 + 1)
            for j in range(j0, j1 + 1):
                dy = (j - fy) * pixel
                gy[j - j0] = np.exp(-dy * dy * inv)
            for i in range(i0, i1 + 1):
                dx = (i - fx) * pixel
                gx = norm * np.exp(-dx * dx * inv)
                for j in range(j0, j1 + 1):
                    out[k, i, j] += gx * gy[j - j0]


def simulate_linear(model: AtomicModel, angles_deg, *, pixel_size: float, shape: tuple[int, int],
                    params: LinearParams | None = None, centre=None,
                    metadata: dict | None = None) -> TiltSeries:
    """Noise-free linear ADF tilt series of ``model``.

    Parameters
    ----------
    model : AtomicModel
        Atoms [Å], object frame.
    angles_deg : array_like, shape (n, 3) or (n,)
        Euler angles (phi, theta, psi) [deg], or tilt angles theta [deg].
    pixel_size : float
        Pixel size [Å].
    shape : (int, int)
        Image size (nx, ny) in pixels.
    params : LinearParams, optional
        Cross-sections and widths; defaults tied to the paper's data.
    centre : array_like, shape (3,), optional
        Fixed rotation centre [Å] in the object frame; it projects onto pixel
        (nx // 2, ny // 2) at every tilt.  Default: the model's centroid
        (:func:`aetbench.geometry.rotation_centre`, the rule of every tier).

    Returns
    -------
    TiltSeries
        Detected fraction per pixel, ``dose=None``; ``metadata["centre_A"]`` is
        the rotation centre [Å].
    """
    params = params or LinearParams()
    angles = np.asarray(angles_deg, dtype=float)
    if angles.ndim == 1:
        angles = geometry.single_axis_angles(angles)
    R = geometry.rotation_matrices(angles)
    centre = geometry.rotation_centre(model.positions, centre)
    rel = model.positions - centre
    beam = np.einsum("kij,aj->kai", R, rel)  # (n, N, 3)
    u = np.ascontiguousarray(beam[..., 0])
    v = np.ascontiguousarray(beam[..., 1])
    els = model.elements
    amp_by = {e: params.amplitude_of(e) for e in model.species}
    wid_by = {e: params.width_of(e) for e in model.species}
    amp = np.array([amp_by[e] for e in els], dtype=float)
    width = np.array([wid_by[e] for e in els], dtype=float)
    nx, ny = int(shape[0]), int(shape[1])
    out = np.zeros((angles.shape[0], nx, ny))
    _render(u, v, amp, width, nx, ny, float(pixel_size), out)
    meta = {"simulator": "linear", "amplitude_A2": amp_by, "width_A": wid_by,
            "blur_sigma_A": params.blur_sigma_A, "centre_A": centre.tolist(), **(metadata or {})}
    return TiltSeries(out, angles, pixel_size=pixel_size, dose=None, metadata=meta)
