"""Projected phase of a ptychographic reconstruction (:class:`~aetbench.ptycho.data.PtychoResult`) on the
tomography grid: sum of the slices' phases, vacuum level removed, resampled to the tomography pixels."""
from __future__ import annotations

import numpy as np

from ..errors import AetbenchError
from .data import PtychoResult

__all__ = ["scanned_mask", "projected_phase", "phase_image"]


def scanned_mask(result: PtychoResult, fraction: float = 0.1) -> np.ndarray:
    """Object pixels whose summed probe intensity exceeds ``fraction`` of its maximum (the constrained region)."""
    il = result.illumination
    if il is None:
        return np.ones(result.object.shape[1:], dtype=bool)
    return il > fraction * il.max()


def projected_phase(result: PtychoResult, unwrap: bool = False) -> np.ndarray:
    """Sum over slices of each slice's phase [rad], shape (Nx, Ny).

    Each slice's phase lies in (−π, π] unless ``unwrap`` (2-D phase unwrapping of every slice with
    ``skimage.restoration.unwrap_phase``; needed where one slice carries more than ±π, e.g. single-slice
    reconstructions of thick or heavy particles).
    """
    ph = np.angle(result.object)
    if unwrap:
        from skimage.restoration import unwrap_phase

        ph = np.stack([unwrap_phase(p.astype(np.float64)) for p in ph])
    return np.sum(ph, axis=0)


def _vacuum_level(values: np.ndarray, bins: int = 256) -> float:
    """Vacuum phase: the most populated value of the lower half of the phase distribution (atoms add phase)."""
    v = np.sort(values.ravel())
    lo = v[: max(len(v) // 2, 1)]
    if lo[-1] - lo[0] <= 0:
        return float(lo[0])
    hist, edges = np.histogram(lo, bins=min(bins, max(8, len(lo) // 20)))
    kernel = np.array([1, 2, 3, 2, 1], float)
    hs = np.convolve(hist, kernel / kernel.sum(), mode="same")
    i = int(np.argmax(hs))
    return float(0.5 * (edges[i] + edges[i + 1]))


def phase_image(result: PtychoResult, centre_A, shape, pixel_size_A: float, *, background="mode",
                mask_fraction: float = 0.1, unwrap: bool = False) -> np.ndarray:
    """Projected phase [rad] on the tomography grid, vacuum at 0, positive on atoms.

    Parameters
    ----------
    result : PtychoResult
    centre_A : (float, float)
        Field-frame position [Å] of tomography pixel ``(nx // 2, ny // 2)``.
    shape : (int, int)
        Tomography image shape (nx, ny).
    pixel_size_A : float
        Tomography pixel size [Å].
    background : "mode", "border" or float
        Vacuum phase removed: the mode of the lower half of the scanned region's phase ("mode"), the median of
        the outer band (one probe window / 4 wide) of the scanned region ("border"), or a given value [rad].
    mask_fraction : float
        Pixels with summed probe intensity below this fraction of the maximum are outside the scan: set to 0.
    unwrap : bool
        Unwrap each slice's phase first (see :func:`projected_phase`).

    Returns
    -------
    ndarray (nx, ny), float64
        Bilinear resampling of the (Gaussian-prefiltered when ``pixel_size_A`` exceeds the object sampling)
        background-free projected phase.
    """
    from scipy import ndimage

    if len(tuple(shape)) != 2 or min(shape) < 1:
        raise AetbenchError(f"shape: expected (nx, ny) ≥ 1 pixels, got {shape}")
    if not pixel_size_A > 0:
        raise AetbenchError(f"pixel_size_A: expected > 0 Å, got {pixel_size_A}")
    phase = projected_phase(result, unwrap=unwrap)
    mask = scanned_mask(result, mask_fraction)
    if not mask.any():
        raise AetbenchError("result.illumination: no scanned pixels")
    if isinstance(background, str):
        if background == "mode":
            bg = _vacuum_level(phase[mask])
        elif background == "border":
            w = max(int(result.probe.shape[-1]) // 4, 1)
            inner = ndimage.binary_erosion(mask, iterations=w)
            band = mask & ~inner
            bg = float(np.median(phase[band if band.any() else mask]))
        else:
            raise AetbenchError(f"background: expected 'mode', 'border' or a phase [rad], got {background!r}")
    else:
        bg = float(background)
    img = np.where(mask, phase - bg, 0.0)
    ratio = pixel_size_A / result.sampling_A
    if ratio > 1.5:
        img = ndimage.gaussian_filter(img, 0.42 * ratio, mode="nearest")
    nx, ny = int(shape[0]), int(shape[1])
    x = centre_A[0] + (np.arange(nx) - nx // 2) * pixel_size_A
    y = centre_A[1] + (np.arange(ny) - ny // 2) * pixel_size_A
    fx = (x - result.origin_A[0]) / result.sampling_A
    fy = (y - result.origin_A[1]) / result.sampling_A
    gx, gy = np.meshgrid(fx, fy, indexing="ij")
    return ndimage.map_coordinates(img, [gx, gy], order=1, mode="constant", cval=0.0)
