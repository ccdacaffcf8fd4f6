"""Cell-list neighbour lists for free (non-periodic) clusters.

Positions in Å.  The list is *full* (each pair appears from both sides) and
stored in CSR form: the neighbours of atom ``i`` are
``index[offset[i]:offset[i + 1]]``.
"""
from __future__ import annotations

import numpy as np

from .jit import kernel

__all__ = ["neighbor_list", "pair_distances", "fit_first_peak"]


@kernel
def _cell_list(pos, h):
    """Cells of edge ``h`` [Å]: atom order sorted by cell (stable), cell start offsets, cell of each atom."""
    n = pos.shape[0]
    lo = np.empty(3)
    ncell = np.empty(3, dtype=np.int64)
    for d in range(3):
        lo[d] = pos[:, d].min() - 1e-6
        ncell[d] = max(1, int((pos[:, d].max() - lo[d]) / h) + 1)
    cid = np.empty(n, dtype=np.int64)
    cxyz = np.empty((n, 3), dtype=np.int64)
    for i in range(n):
        for d in range(3):
            c = int((pos[i, d] - lo[d]) / h)
            if c >= ncell[d]:
                c = ncell[d] - 1
            cxyz[i, d] = c
        cid[i] = (cxyz[i, 0] * ncell[1] + cxyz[i, 1]) * ncell[2] + cxyz[i, 2]
    order = np.argsort(cid, kind="mergesort")
    total = ncell[0] * ncell[1] * ncell[2]
    start = np.zeros(total + 1, dtype=np.int64)
    for i in range(n):
        start[cid[i] + 1] += 1
    for c in range(total):
        start[c + 1] += start[c]
    return order, start, cxyz, ncell


#: cells per cutoff: cells of edge cutoff/2 and a 5×5×5 stencil visit 42 % fewer candidate pairs than
#: cutoff-sized cells with a 3×3×3 stencil
_SPLIT = 2


@kernel
def _neighbors(pos, cutoff):
    n = pos.shape[0]
    order, start, cxyz, ncell = _cell_list(pos, cutoff / _SPLIT)
    ps = np.empty((n, 3))  # positions in cell order: the inner loop reads memory contiguously
    for s in range(n):
        for d in range(3):
            ps[s, d] = pos[order[s], d]
    c2 = cutoff * cutoff
    offset = np.zeros(n + 1, dtype=np.int64)
    cap = 64 * n + 16
    idx = np.empty(cap, dtype=np.int64)
    m = 0
    for i in range(n):  # rows in atom order, so the list is CSR as written
        xi, yi, zi = pos[i, 0], pos[i, 1], pos[i, 2]
        for cx in range(max(cxyz[i, 0] - _SPLIT, 0), min(cxyz[i, 0] + _SPLIT + 1, ncell[0])):
            for cy in range(max(cxyz[i, 1] - _SPLIT, 0), min(cxyz[i, 1] + _SPLIT + 1, ncell[1])):
                c0 = (cx * ncell[1] + cy) * ncell[2]
                s0 = start[c0 + max(cxyz[i, 2] - _SPLIT, 0)]
                s1 = start[c0 + min(cxyz[i, 2] + _SPLIT + 1, ncell[2])]
                for s in range(s0, s1):  # the z-run of cells is contiguous in cell order
                    dx = ps[s, 0] - xi
                    dy = ps[s, 1] - yi
                    dz = ps[s, 2] - zi
                    if dx * dx + dy * dy + dz * dz < c2:
                        j = order[s]
                        if j == i:
                            continue
                        if m >= cap:
                            idx2 = np.empty(2 * cap, dtype=np.int64)
                            idx2[:m] = idx[:m]
                            idx, cap = idx2, 2 * cap
                        idx[m] = j
                        m += 1
        offset[i + 1] = m
    return offset, idx[:m].copy()


def neighbor_list(positions, cutoff: float):
    """Full neighbour list of a free cluster.

    Parameters
    ----------
    positions : array (N, 3)
        Positions in Å.
    cutoff : float
        Neighbour distance in Å (pairs with r < cutoff).

    Returns
    -------
    offset : int64 array (N + 1,)
    index : int64 array
        Neighbours of atom ``i`` are ``index[offset[i]:offset[i+1]]``, in cell
        order (deterministic for given positions; not sorted).
    """
    pos = np.ascontiguousarray(positions, dtype=np.float64)
    if pos.shape[0] == 0:
        return np.zeros(1, dtype=np.int64), np.zeros(0, dtype=np.int64)
    return _neighbors(pos, float(cutoff))


def pair_distances(positions, elements, a: str, b: str, cutoff: float, shell: float = 3.0) -> np.ndarray:
    """Distances [Å] of the a–b pairs closer than ``cutoff`` [Å] with at least one atom deeper than
    ``shell`` [Å] below the surface (surface radius √(5/3) R_g, as in :mod:`.analysis`); each pair once."""
    pos = np.asarray(positions, float)
    el = np.asarray(elements)
    r = np.linalg.norm(pos - pos.mean(0), axis=1)
    interior = r < np.sqrt(5 / 3) * np.sqrt(np.mean(r**2)) - shell
    off, idx = neighbor_list(pos, cutoff)
    own = np.repeat(np.arange(len(pos)), np.diff(off))
    s = (own < idx) & (interior[own] | interior[idx])
    s &= ((el[own] == a) & (el[idx] == b)) | ((el[own] == b) & (el[idx] == a))
    return np.linalg.norm(pos[idx[s]] - pos[own[s]], axis=1)


def fit_first_peak(d, half_width: float = 0.15, bin_width: float = 0.01) -> float:
    """First-peak position [Å] of a set of bonded distances ``d`` [Å] by a Gaussian fit.

    The start is the maximum of a Gaussian kernel density (bandwidth 0.05 Å,
    mean-shift from the median); a Gaussian is then least-squares fitted to the
    histogram (``bin_width`` Å bins) within ± ``half_width`` Å of it.  Unlike
    the maximum of a histogram, the fit uses every distance near the peak, so a
    minority pair with a few dozen bonds still gives its peak to about 0.02 Å.
    """
    from scipy.optimize import curve_fit

    d = np.asarray(d, float)
    if d.size < 3:
        return float("nan")
    m = float(np.median(d))
    for _ in range(100):
        w = np.exp(-0.5 * ((d - m) / 0.05) ** 2)
        m_new = float(np.sum(w * d) / np.sum(w))
        if abs(m_new - m) < 1e-6:
            break
        m = m_new
    edges = np.arange(m - half_width, m + half_width + bin_width / 2, bin_width)
    h, _ = np.histogram(d, edges)
    c = 0.5 * (edges[1:] + edges[:-1])

    def gauss(x, amp, mu, sd):
        return amp * np.exp(-0.5 * ((x - mu) / sd) ** 2)

    try:
        p, _ = curve_fit(gauss, c, h, p0=(max(h.max(), 1), m, 0.06), maxfev=2000)
    except RuntimeError:
        return m
    return float(p[1]) if abs(p[1] - m) < half_width else m
