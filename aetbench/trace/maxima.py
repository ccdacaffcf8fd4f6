"""Peak primitives shared by both tracing methods (:mod:`.peaks` ``"com"`` and :mod:`.poly` ``"poly"``):
local maxima of a volume, the per-axis 3-point sub-voxel fit, and greedy minimum-distance pruning."""
from __future__ import annotations

import numpy as np
from scipy import ndimage
from scipy.spatial import cKDTree

from ..errors import AetbenchError

__all__ = ["local_maxima", "three_point_fit", "three_point_offsets", "prune_min_distance"]


def local_maxima(data: np.ndarray, threshold: float, size: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """Voxels that are the maximum of their ``size``³ cube and exceed ``threshold``.

    Voxels on the volume's faces are excluded (no sub-voxel fit possible).

    Returns
    -------
    index : ndarray (N, 3) int
        Voxel indices ``[ix, iy, iz]``, sorted by descending value.
    value : ndarray (N,)
        Volume values there.
    """
    d = np.asarray(data)
    mx = ndimage.maximum_filter(d, size=int(size), mode="constant", cval=-np.inf)
    hit = (d == mx) & (d > threshold)
    hit[[0, -1], :, :] = hit[:, [0, -1], :] = hit[:, :, [0, -1]] = False
    idx = np.argwhere(hit)
    val = d[tuple(idx.T)].astype(np.float64)
    order = np.argsort(-val, kind="stable")
    return idx[order], val[order]


def three_point_fit(vm: np.ndarray, v0: np.ndarray, vp: np.ndarray, kind: str = "gauss") -> tuple[np.ndarray, np.ndarray]:
    """Sub-sample peak offset and peak-height gain from three equally spaced samples.

    ``kind="gauss"`` fits a parabola to the logarithms (exact for a Gaussian;
    falls back to the plain parabola where a value is ≤ 0); ``"parabola"`` fits
    the values.  Offsets (grid units) are clipped to ±0.5 (a local maximum's
    true peak lies within half a sample).

    Returns
    -------
    offset : ndarray
        Peak position relative to the middle sample (grid units).
    gain : ndarray
        Fitted peak value minus ``v0`` (``"parabola"``), or log of the ratio
        peak / ``v0`` (``"gauss"``, where all three values are > 0; else 0).
    """
    vm, v0, vp = (np.asarray(a, dtype=np.float64) for a in (vm, v0, vp))

    def vertex(a, b, c):
        den = a - 2.0 * b + c
        with np.errstate(divide="ignore", invalid="ignore"):
            off = np.clip(np.where(den < 0, 0.5 * (a - c) / den, 0.0), -0.5, 0.5)
        # parabola through the samples: b + off (c - a)/2 + off² den/2
        return off, off * (c - a) / 2.0 + off**2 * den / 2.0

    off, gain = vertex(vm, v0, vp)
    if kind == "gauss":
        pos = (vm > 0) & (v0 > 0) & (vp > 0)
        lg, lgain = vertex(np.log(np.where(pos, vm, 1.0)), np.log(np.where(pos, v0, 1.0)),
                           np.log(np.where(pos, vp, 1.0)))
        off = np.where(pos, lg, off)
        gain = np.where(pos, lgain, 0.0)
    elif kind != "parabola":
        raise AetbenchError(f"trace: refine must be 'gauss', 'parabola' or 'com', got {kind!r}")
    return off, gain


def three_point_offsets(vm, v0, vp, kind: str = "gauss") -> np.ndarray:
    """Offset part of :func:`three_point_fit` (grid units)."""
    return three_point_fit(vm, v0, vp, kind)[0]


def prune_min_distance(positions: np.ndarray, heights: np.ndarray, min_distance: float) -> np.ndarray:
    """Greedy pruning: keep peaks in descending height, drop any closer than ``min_distance``
    to an already kept one.

    Parameters
    ----------
    positions : ndarray (N, 3)
        Positions [Å] (or any unit matching ``min_distance``).
    heights : ndarray (N,)
        Peak heights; ties are broken by input order.
    min_distance : float
        Minimum allowed distance between kept peaks (same unit as ``positions``).

    Returns
    -------
    ndarray (M,) int
        Indices of kept peaks, in descending height.
    """
    pos = np.asarray(positions, dtype=np.float64).reshape(-1, 3)
    n = pos.shape[0]
    order = np.argsort(-np.asarray(heights, dtype=np.float64), kind="stable")
    if n == 0 or not min_distance > 0:
        return order
    rank = np.empty(n, dtype=np.int64)
    rank[order] = np.arange(n)
    pairs = cKDTree(pos).query_pairs(float(min_distance), output_type="ndarray")
    if pairs.size == 0:
        return order
    # orient every pair (brighter, dimmer) and visit brighter peaks in order
    a, b = pairs[:, 0], pairs[:, 1]
    swap = rank[a] > rank[b]
    hi, lo = np.where(swap, b, a), np.where(swap, a, b)
    srt = np.argsort(rank[hi], kind="stable")
    hi, lo = hi[srt], lo[srt]
    keep = np.ones(n, dtype=bool)
    starts = np.searchsorted(rank[hi], np.arange(n))
    ends = np.searchsorted(rank[hi], np.arange(n), side="right")
    for r in np.unique(rank[hi]):
        i = order[r]
        if keep[i]:
            keep[lo[starts[r]:ends[r]]] = False
    return order[keep[order]]
