"""Forward model of ptychography on the object grid: scan geometry, probe windows, shifted probes, and a
4D-STEM simulator with the same conventions (:mod:`aetbench.ptycho.conventions`).

A scan position ``r`` maps to the fractional object pixel ``c = (r − origin_A) / s`` (``s``: the data's window
sampling); the window starts at ``round(c) − nk // 2`` and the probe is Fourier-shifted by the sub-pixel
remainder ``c − round(c)``.  The helpers are array-module agnostic (numpy or CuPy, argument ``xp``); the
engines of :mod:`aetbench.ptycho.reconstruct` build on them.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import AetbenchError
from . import conventions as cv
from .data import FourDSTEM

__all__ = ["ScanGeometry", "scan_geometry", "simulate_fourdstem"]


@dataclass
class ScanGeometry:
    """Where each probe window lies on the object grid.

    Attributes
    ----------
    corner : int ndarray (M, 2)
        Object index of each window's pixel [0, 0].
    frac : float ndarray (M, 2)
        Sub-pixel shift [pixels] of the probe inside its window.
    shape : (int, int)
        Object grid shape (Nx, Ny).
    origin_A : (float, float)
        Field-frame position [Å] of object pixel [0, 0].
    sampling_A : float
    nk : int
    """

    corner: np.ndarray
    frac: np.ndarray
    shape: tuple[int, int]
    origin_A: tuple[float, float]
    sampling_A: float
    nk: int


def scan_geometry(positions_A, nk: int, sampling_A: float, *, origin_A=None, shape=None,
                  pad_px: int = 2) -> ScanGeometry:
    """Object grid and probe windows for scan positions ``positions_A`` (M, 2) [Å].

    Without ``origin_A`` / ``shape`` the grid covers every window plus ``pad_px`` pixels on each side.
    """
    P = np.asarray(positions_A, dtype=float).reshape(-1, 2)
    nk = int(nk)
    if origin_A is None:
        origin = P.min(axis=0) - (nk // 2 + pad_px) * sampling_A
    else:
        origin = np.asarray(origin_A, dtype=float)
    c = (P - origin) / sampling_A
    r = np.rint(c)
    corner = r.astype(np.int64) - nk // 2
    frac = c - r
    if shape is None:
        shape = tuple(int(v) for v in corner.max(axis=0) + nk + pad_px)
    if corner.min() < 0 or np.any(corner.max(axis=0) + nk > np.asarray(shape)):
        raise AetbenchError(f"scan_geometry: probe windows leave the object grid of shape {shape}; "
                            "give a larger shape or a smaller origin_A [Å]")
    return ScanGeometry(corner, frac, (int(shape[0]), int(shape[1])), (float(origin[0]), float(origin[1])),
                        float(sampling_A), nk)


# ----------------------------------------------------------------------------------------------------------
# helpers (array-module agnostic)

def _xp_of(xp):
    if xp is None:
        return np
    return xp


def _to_np(a):
    return a.get() if hasattr(a, "get") else np.asarray(a)


def _window_index(geom: ScanGeometry, idx, xp):
    """Flat object indices (B, nk, nk) of the windows of positions ``idx``."""
    nk = geom.nk
    ar = xp.arange(nk)
    cx = xp.asarray(geom.corner[idx, 0])[:, None] + ar[None, :]
    cy = xp.asarray(geom.corner[idx, 1])[:, None] + ar[None, :]
    return cx[:, :, None] * geom.shape[1] + cy[:, None, :]


def _scatter_add(flat_idx, values, size, xp):
    """Sum ``values`` into a flat array of ``size`` at ``flat_idx`` (duplicates accumulate)."""
    fi = flat_idx.ravel()
    if xp is np:
        v = values.ravel()
        if np.iscomplexobj(v):
            return (np.bincount(fi, weights=v.real, minlength=size)
                    + 1j * np.bincount(fi, weights=v.imag, minlength=size))
        return np.bincount(fi, weights=v, minlength=size)
    import cupyx  # pragma: no cover - GPU only

    v = values.ravel()
    if xp.iscomplexobj(v):
        re = xp.zeros(size, dtype=v.real.dtype)
        im = xp.zeros(size, dtype=v.real.dtype)
        cupyx.scatter_add(re, fi, v.real)
        cupyx.scatter_add(im, fi, v.imag)
        return re + 1j * im
    out = xp.zeros(size, dtype=v.dtype)
    cupyx.scatter_add(out, fi, v)
    return out


def _fft2(a, xp):
    return cv.fft_module(xp).fft2(a, axes=(-2, -1))


def _ifft2(a, xp):
    return cv.fft_module(xp).ifft2(a, axes=(-2, -1))


class _Probes:
    """Probe shifted to each position's sub-pixel offset, cached when small enough."""

    def __init__(self, probe, geom: ScanGeometry, xp, cache_bytes=2e8):
        self.xp = xp
        self.geom = geom
        self.set(probe)
        m = len(geom.frac)
        self.cache = None
        if m * geom.nk ** 2 * 16 <= cache_bytes:
            self.cache = self._shift(np.arange(m))

    def set(self, probe):
        self.probe = probe
        self.probe_k = _fft2(probe, self.xp)
        self.cache = None

    def ramps(self, idx):
        r = cv.fourier_shift_kernel(self.xp.asarray(self.geom.frac[idx]), self.geom.nk, self.xp)
        return r.astype(self.probe.dtype)

    def _shift(self, idx):
        return _ifft2(self.probe_k[None] * self.ramps(idx), self.xp)

    def __call__(self, idx):
        if self.cache is not None:
            return self.cache[self.xp.asarray(idx)]
        return self._shift(idx)

    def unshift_sum(self, grads, idx):
        """Σ over the batch of ``grads`` moved back to the unshifted probe frame."""
        xp = self.xp
        return _ifft2(xp.sum(_fft2(grads, xp) * xp.conj(self.ramps(idx)), axis=0), xp)


# ----------------------------------------------------------------------------------------------------------
# forward simulation with the same conventions (tests, quick studies)

def simulate_fourdstem(object_slices, origin_A, sampling_A: float, positions_A, *, nk: int, energy_kV: float,
                       semiangle_mrad: float, defocus_A: float = 0.0, Cs_A: float = 0.0,
                       slice_thickness_A: float = 0.0, plane_A: float = 0.0, dose_per_A2: float | None = None,
                       scan_step_area_A2: float | None = None, seed: int = 0, centre_A=None,
                       field_extent_A=None) -> FourDSTEM:
    """4D-STEM data of a known object with this module's forward model (numpy).

    Parameters
    ----------
    object_slices : complex ndarray (n_slices, Nx, Ny) or (Nx, Ny)
        Transmission functions on a grid of ``sampling_A`` [Å], pixel [0, 0] at ``origin_A`` (field frame).
    positions_A : ndarray (sx, sy, 2)
        Scan positions [Å], field frame.
    nk : int
        Detector / window pixels; the angular sampling is ``λ / (nk · sampling_A)``.
    defocus_A : float
        abTEM defocus [Å] at the entrance surface; the probe at the first slice is referred to ``plane_A`` [Å].
    slice_thickness_A : float
        Spacing [Å] between slices (multislice).
    dose_per_A2 : float, optional
        Electrons per Å²; each pattern then holds Poisson counts with mean ``dose · scan_step_area_A2 · pattern``
        (``scan_step_area_A2`` defaults to the area per scan position of a regular grid).

    Returns
    -------
    FourDSTEM
        ``depth_A = n_slices · slice_thickness_A`` (or ``2 · plane_A`` for one slice).
    """
    O = np.asarray(object_slices)
    if O.ndim == 2:
        O = O[None]
    pos = np.asarray(positions_A, dtype=float)
    geom = scan_geometry(pos.reshape(-1, 2), nk, sampling_A, origin_A=origin_A, shape=O.shape[1:])
    probe = cv.make_probe(nk, sampling_A, energy_kV, semiangle_mrad, defocus_A - plane_A, Cs_A)
    H = cv.fresnel_propagator(nk, sampling_A, energy_kV, slice_thickness_A)
    flat = O.reshape(O.shape[0], -1)
    probes = _Probes(probe, geom, np, cache_bytes=0)
    m = len(geom.corner)
    out = np.empty((m, nk, nk), dtype=np.float64)
    for i0 in range(0, m, 64):
        idx = np.arange(i0, min(i0 + 64, m))
        fidx = _window_index(geom, idx, np)
        out[idx] = cv.forward_multislice(probes(idx), flat[:, fidx], H)
    I = out.reshape(pos.shape[:2] + (nk, nk))
    if dose_per_A2 is not None:
        if scan_step_area_A2 is None:
            dx = np.linalg.norm(pos[1, 0] - pos[0, 0]) if pos.shape[0] > 1 else 1.0
            dy = np.linalg.norm(pos[0, 1] - pos[0, 0]) if pos.shape[1] > 1 else 1.0
            scan_step_area_A2 = dx * dy
        I = np.random.default_rng(seed).poisson(np.clip(I, 0, None) * dose_per_A2 * scan_step_area_A2)
    lam = cv.wavelength_A(energy_kV)
    n_s = O.shape[0]
    depth = n_s * slice_thickness_A if n_s > 1 else 2.0 * plane_A
    ext = field_extent_A or (float(geom.origin_A[0] + O.shape[1] * sampling_A),
                             float(geom.origin_A[1] + O.shape[2] * sampling_A))
    cen = centre_A or (0.5 * ext[0], 0.5 * ext[1])
    return FourDSTEM(intensities=I.astype(np.float32), scan_positions_A=pos,
                     angular_sampling_mrad=lam / (nk * sampling_A) * 1e3, energy_kV=energy_kV,
                     semiangle_mrad=semiangle_mrad, defocus_A=defocus_A, Cs_A=Cs_A, field_extent_A=tuple(ext),
                     depth_A=float(depth), centre_A=tuple(cen), dose_per_A2=dose_per_A2)
