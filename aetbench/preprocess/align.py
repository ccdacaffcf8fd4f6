"""Centre-of-mass alignment of a tilt series.

For a compact particle the projected intensity centre of mass is the
projection of the particle's (intensity-weighted) centre, so shifting every
projection's centre of mass onto the image centre (index ``n // 2`` per axis,
:mod:`aetbench.geometry`) puts the rotation centre at the origin.  For a single
tilt about y only the x shift is strictly fixed by this argument
(``axes="x"``); for a compact particle both axes are safe (default).

The centre of mass is made robust: the background level is removed
(:func:`aetbench.preprocess.background.estimate_background`), the particle is
located on a smoothed copy, and the centre of mass of the unsmoothed,
background-free intensity is taken inside a disk that is re-centred on the
estimate until it stops moving (a disk centred on the particle is symmetric,
so zero-mean background noise does not bias it).
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage

from ..io.files import AetbenchError
from ..types import TiltSeries
from .background import background_mask

__all__ = ["centre_of_mass", "shift_images", "align_centre_of_mass"]


def centre_of_mass(image, *, smooth_sigma_px: float = 2.0, n_sigma: float = 4.0, margin_px: float = 4.0,
                   iterations: int = 20, tol_px: float = 1e-4) -> np.ndarray:
    """Robust intensity centre of mass of one projection [pixel indices].

    Parameters
    ----------
    image : ndarray, shape (nx, ny)
        Projection [counts]; a constant background is removed here.
    smooth_sigma_px : float
        Smoothing [pixels] used to find the particle support.
    n_sigma : float
        Support threshold in units of the smoothed background noise.
    margin_px : float
        Extra radius [pixels] of the disk beyond the farthest support pixel.
    iterations, tol_px : int, float
        Maximum re-centring iterations and convergence tolerance [pixels].

    Returns
    -------
    ndarray, shape (2,)
        (cx, cy) in fractional pixel indices.
    """
    img = np.asarray(image, dtype=float)
    bg = background_mask(img, smooth_sigma_px=smooth_sigma_px)
    w = img - img[bg].mean()
    sm = ndimage.gaussian_filter(w, smooth_sigma_px, mode="nearest")
    noise = sm[bg].std()
    support = sm > max(n_sigma * noise, 1e-12 * np.abs(sm).max())
    if not support.any():
        raise AetbenchError("align_centre_of_mass: no particle found above the background (empty projection?)")
    lab, nlab = ndimage.label(support)
    if nlab > 1:  # keep the component holding most intensity
        sums = ndimage.sum(np.clip(sm, 0, None), lab, index=np.arange(1, nlab + 1))
        support = lab == 1 + int(np.argmax(sums))
    X, Y = np.meshgrid(np.arange(img.shape[0], dtype=float), np.arange(img.shape[1], dtype=float), indexing="ij")
    sw = np.clip(sm, 0, None) * support
    c = np.array([(X * sw).sum(), (Y * sw).sum()]) / sw.sum()
    radius = np.sqrt(((X[support] - c[0]) ** 2 + (Y[support] - c[1]) ** 2).max()) + margin_px
    for _ in range(int(iterations)):
        disk = (X - c[0]) ** 2 + (Y - c[1]) ** 2 <= radius**2
        tot = w[disk].sum()
        if tot <= 0:
            raise AetbenchError("align_centre_of_mass: non-positive intensity inside the particle window")
        new = np.array([(X[disk] * w[disk]).sum(), (Y[disk] * w[disk]).sum()]) / tot
        done = np.max(np.abs(new - c)) < tol_px
        c = new
        if done:
            break
    return c


def shift_images(images, shifts_px) -> np.ndarray:
    """Sub-pixel Fourier shift of each image by ``shifts_px`` (n, 2) [pixels] (periodic)."""
    img = np.asarray(images, dtype=float)
    sh = np.asarray(shifts_px, dtype=float).reshape(img.shape[0], 2)
    out = np.empty_like(img)
    for k in range(img.shape[0]):
        out[k] = np.fft.ifft2(ndimage.fourier_shift(np.fft.fft2(img[k]), sh[k])).real
    return out


def align_centre_of_mass(ts: TiltSeries, *, axes: str = "xy", smooth_sigma_px: float = 2.0,
                         n_sigma: float = 4.0, margin_px: float = 4.0) -> TiltSeries:
    """Shift each projection so its robust centre of mass lies on index ``n // 2``.

    Parameters
    ----------
    ts : TiltSeries
        Projections (background-subtracted or not).
    axes : {"xy", "x"}
        Shift both image axes, or only x (perpendicular to the y tilt axis).
    smooth_sigma_px, n_sigma, margin_px
        See :func:`centre_of_mass`.

    Returns
    -------
    TiltSeries
        Shifted images; metadata ``align_shifts_px`` (n, 2) applied shifts
        [pixels, (x, y)] and ``align_method``.
    """
    if axes not in ("xy", "x"):
        raise AetbenchError(f"align_centre_of_mass: axes must be 'xy' or 'x', got {axes!r}")
    if smooth_sigma_px <= 0 or n_sigma <= 0 or margin_px < 0:
        raise AetbenchError("align_centre_of_mass: smooth_sigma_px > 0 px, n_sigma > 0, margin_px >= 0 px required")
    img = np.asarray(ts.images, dtype=float)
    centre = np.array([img.shape[1] // 2, img.shape[2] // 2], dtype=float)
    shifts = np.zeros((img.shape[0], 2))
    for k in range(img.shape[0]):
        shifts[k] = centre - centre_of_mass(img[k], smooth_sigma_px=smooth_sigma_px, n_sigma=n_sigma,
                                            margin_px=margin_px)
    if axes == "x":
        shifts[:, 1] = 0.0
    out = shift_images(img, shifts)
    return ts.with_images(out, align_shifts_px=shifts.tolist(), align_method=f"centre-of-mass ({axes})")
