"""Support masks: where the sample is, given (a file) or computed from the volume.

A *mask* is accepted in two forms everywhere (tracing, scoring regions):

* a boolean array of the volume's own shape ``[ix, iy, iz]``;
* a :class:`~aetbench.types.Volume` of any shape in the global frame (its ``origin`` and ``voxel_size``
  place it), e.g. the support of a whole film when the volume is one sub-area of it.

:func:`mask_at` samples either at positions [Å] (nearest voxel; outside the mask's box = outside).

:func:`compute_support` is the rule used when no support is given: the volume smoothed by a Gaussian of
``smooth_A`` (default 1.0 Å, about half an interatomic distance, so that atoms merge into the sample's mean
density), Otsu's threshold of the smoothed values (the split of the histogram into sample and vacuum with the
largest between-class variance), the largest connected component, then erosion by a ball of ``erosion_A``.
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage

from ..errors import AetbenchError
from ..types import Volume

__all__ = ["otsu_threshold", "ball", "erode", "compute_support", "as_mask_volume", "mask_at"]


def otsu_threshold(values, bins: int = 256) -> float:
    """Otsu's threshold of ``values`` (maximum between-class variance over a ``bins`` histogram).

    Examples
    --------
    >>> v = np.r_[np.zeros(100), np.ones(50)]
    >>> 0.0 < otsu_threshold(v) < 1.0
    True
    """
    v = np.asarray(values, dtype=np.float64).ravel()
    v = v[np.isfinite(v)]
    if v.size == 0 or v.min() == v.max():
        raise AetbenchError("support: the volume is constant; no sample/vacuum threshold exists")
    h, edges = np.histogram(v, bins=bins)
    c = 0.5 * (edges[1:] + edges[:-1])
    w0 = np.cumsum(h)
    w1 = w0[-1] - w0
    m0 = np.cumsum(h * c) / np.maximum(w0, 1)
    m1 = (np.sum(h * c) - np.cumsum(h * c)) / np.maximum(w1, 1)
    between = w0 * w1 * (m0 - m1) ** 2
    return float(edges[1:][int(np.argmax(between[:-1]))])


def ball(radius_vox: float) -> np.ndarray:
    """Boolean ball of ``radius_vox`` voxels (centre voxel plus every voxel within the radius)."""
    r = int(np.floor(max(float(radius_vox), 0.0)))
    g = np.arange(-r, r + 1)
    x, y, z = np.meshgrid(g, g, g, indexing="ij")
    return (x**2 + y**2 + z**2) <= float(radius_vox) ** 2 + 1e-9


def erode(mask: np.ndarray, radius_vox: float) -> np.ndarray:
    """``mask`` eroded by a ball of ``radius_vox`` voxels (voxels outside the array count as inside)."""
    m = np.asarray(mask, dtype=bool)
    if radius_vox <= 0:
        return m.copy()
    return ndimage.binary_erosion(m, structure=ball(radius_vox), border_value=1)


def compute_support(volume: Volume, *, smooth_A: float = 1.0, erosion_A: float = 0.0) -> np.ndarray:
    """The sample's support in ``volume`` (boolean, the volume's shape): smooth → Otsu → largest component → erode.

    Parameters
    ----------
    volume : Volume
    smooth_A : float
        Gaussian σ [Å] of the smoothing.
    erosion_A : float
        Radius [Å] of the erosion ball (0 = none).
    """
    if not smooth_A > 0 or not erosion_A >= 0:
        raise AetbenchError(f"support: expected smooth_A > 0 and erosion_A ≥ 0 Å, got {smooth_A}, {erosion_A}")
    s = ndimage.gaussian_filter(np.asarray(volume.data, dtype=np.float64), smooth_A / volume.voxel_size)
    m = s > otsu_threshold(s)
    lab, n = ndimage.label(m)
    if n > 1:
        sizes = np.bincount(lab.ravel())
        sizes[0] = 0
        m = lab == int(np.argmax(sizes))
    return erode(m, erosion_A / volume.voxel_size)


def as_mask_volume(mask, volume: Volume, what: str = "mask") -> Volume:
    """``mask`` (array of ``volume``'s shape, or a Volume in the global frame) as a boolean Volume."""
    if isinstance(mask, Volume):
        return Volume(np.asarray(mask.data) > 0, mask.voxel_size, dict(mask.metadata), mask.origin)
    m = np.asarray(mask)
    if m.shape != volume.shape:
        raise AetbenchError(f"{what}: expected a mask of the volume's shape {volume.shape} [ix, iy, iz] "
                            f"(or a Volume in the global frame), got shape {m.shape}")
    return Volume(m > 0, volume.voxel_size, {}, volume.origin)


def mask_at(mask: Volume, positions) -> np.ndarray:
    """Whether each position [Å] (N, 3, global frame) lies in a boolean mask Volume (nearest voxel)."""
    pos = np.asarray(positions, dtype=float).reshape(-1, 3)
    idx = np.rint(mask.position_to_index(pos)).astype(np.int64)
    shape = np.asarray(mask.shape)
    inside = np.all((idx >= 0) & (idx < shape), axis=1)
    out = np.zeros(pos.shape[0], dtype=bool)
    i = idx[inside]
    out[inside] = np.asarray(mask.data, dtype=bool)[i[:, 0], i[:, 1], i[:, 2]]
    return out
