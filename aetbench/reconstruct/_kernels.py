"""numba helpers shared by the projector pairs (:mod:`.projector`, :mod:`.shearwarp`): the border rule and the
range of a line of points inside the image, the bilinear footprint of one point on a padded image and its
transpose, and the all-zero-row scan of a volume."""
from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

_EDGE = 1e-3  # px: footprints closer than this to the padded border are dropped (by both operators)
_FAST = dict(parallel=True, cache=True, fastmath=True, error_model="numpy", boundscheck=False)


@njit(cache=True, inline="always")
def _z_range(b, r, m, nz, cz):  # pragma: no cover - numba
    """``[lo, hi)`` of iz with ``-1 + e <= b + r * (iz - cz) <= m - e`` (e = _EDGE), clipped to ``[0, nz)``."""
    lo_v = -1.0 + _EDGE
    hi_v = m - _EDGE
    if abs(r) < 1e-12:
        if b >= lo_v and b <= hi_v:
            return 0, nz
        return 0, 0
    z0 = (lo_v - b) / r
    z1 = (hi_v - b) / r
    if r < 0:
        z0, z1 = z1, z0
    lo = max(int(math.ceil(z0)) + cz, 0)
    hi = min(int(math.floor(z1)) + cz + 1, nz)
    return lo, max(hi, lo)


@njit(cache=True, inline="always")
def _footprint(fu, fv):  # pragma: no cover - numba
    """Padded pixel index of floor(fu), floor(fv) and the bilinear weights (fu, fv >= -1 by the range test)."""
    gu = fu + 1.0  # >= 0, so truncation is floor
    gv = fv + 1.0
    i0 = np.uint64(np.int64(gu))  # unsigned indices skip numba's wraparound code
    j0 = np.uint64(np.int64(gv))
    return i0, j0, np.float32(gu - np.float64(np.int64(i0))), np.float32(gv - np.float64(np.int64(j0)))


@njit(cache=True, inline="always")
def splat4(pk, i0, j0, i1, j1, wu, wv, val):  # pragma: no cover - numba
    """pk[(i0, i1), (j0, j1)] += ``val`` spread with bilinear weights ``wu`` (rows) and ``wv`` (columns); i1 = i0 + 1
    and j1 = j0 + 1, passed in the caller's index type (unsigned in the general kernels: no wraparound code)."""
    a1 = val * wu
    a0 = val - a1
    b0 = a0 * wv
    b1 = a1 * wv
    pk[i0, j0] += a0 - b0
    pk[i0, j1] += b0
    pk[i1, j0] += a1 - b1
    pk[i1, j1] += b1


@njit(cache=True, inline="always")
def gather4(pk, i0, j0, i1, j1, wu, wv):  # pragma: no cover - numba
    """The transpose of :func:`splat4`: the bilinear interpolation of ``pk`` at (i0 + wu, j0 + wv)."""
    s0 = pk[i0, j0] + wv * (pk[i0, j1] - pk[i0, j0])
    s1 = pk[i1, j0] + wv * (pk[i1, j1] - pk[i1, j0])
    return s0 + wu * (s1 - s0)


@njit(**_FAST)
def nonzero_rows(vol, out):  # pragma: no cover - numba
    """out[i1, i2] = whether the contiguous row vol[i1, i2, :] holds a non-zero value."""
    n1, n2, nj = vol.shape
    for i1 in prange(n1):
        for i2 in range(n2):
            row = vol[i1, i2]
            flag = False
            for j in range(nj):
                if row[j] != 0.0:
                    flag = True
                    break
            out[i1, i2] = flag
