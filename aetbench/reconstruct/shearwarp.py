"""Shear-warp projector kernels for arbitrary Euler angles (forward projection and its exact adjoint).

The general kernels of :mod:`aetbench.reconstruct.projector` splat every voxel bilinearly at its own
footprint: scalar work, about 15× the single-axis path.  The shear-warp factorisation (Lacroute & Levoy
1994) makes arbitrary rotations as cheap as single-axis tilts:

1. **Principal axis.** For projection ``k`` take the object axis ``p`` most parallel to the beam, the largest
   ``|R[2, p]|`` (≥ 1/√3).  The other two axes ``(a, b)`` span the slices ``S = const`` along ``p``.
2. **Shear.** A voxel at in-slice coordinates ``(A, B)`` of slice ``S`` lands at ``(A, B) + S t`` on an
   intermediate image in the plane ``S = 0``, with ``t = −(R[2, a], R[2, b]) / R[2, p]`` (|t| ≤ 1).  One slice
   shares one sub-pixel shift, so every volume row is added to two intermediate rows with two fixed bilinear
   weights: vectorised like the single-axis kernel.
3. **Warp.** Intermediate pixel ``(A', B')`` lies on the image at ``(u, v) = M (A', B')`` with
   ``M = R[:2, (a, b)]``, plus the image centre and the projection's shift [pixels]; it is splatted there
   bilinearly, with the general kernels' edge rule.

Both steps conserve mass and centroids, so a single voxel's footprint has the same total and the same
centroid as with the general kernel; its footprint is wider by the second interpolation (about ⅓ pixel²
more variance per axis).  The back-projection applies the transposes in reverse order (warp gather, then
shear gather) and is the exact adjoint (tested).

**Near-axis projections** (the object's y axis within ≈ 3° of the image's: :data:`ROW_SPLAT_TOL`, as in
any measured or refined series) skip the factorisation: every y row of voxels is splatted with the general
kernel's own bilinear weights, in runs over which the footprint's image row and column offset stay constant and
the weights change linearly, so the inner loops vectorise.  They get the ``general`` operator itself (to
float32 round-off, tested): no second interpolation where the data live.

Volumes are in the single-axis native layout ``[ix, iz, iy]`` (y contiguous).  Slices along ``x`` or ``z``
run along y rows of that layout; slices along ``y`` (beam closest to y) run along x rows of a transposed copy
``[iy, iz, ix]``.
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from ._kernels import _EDGE, _footprint, _z_range, gather4, nonzero_rows, splat4

__all__ = ["ShearWarpPlan", "shear_warp_plan", "shear_warp_forward", "shear_warp_back"]

#: projections whose object y axis lands within this of the image y axis (|R01| and |R11 − 1|, ≈ 3°) use the
#: exact voxel splat along y rows instead of the shear-warp
ROW_SPLAT_TOL = 0.05
_FAST = dict(parallel=True, cache=True, fastmath=True, error_model="numpy", boundscheck=False)


class ShearWarpPlan:
    """Per-projection shear-warp geometry (plain arrays for the numba kernels).

    Attributes
    ----------
    layout : int8 (n,)
        0: shear rows of the ``[ix, iz, iy]`` volume (principal axis x or z); 1: rows of ``[iy, iz, ix]``
        (axis y); 2: no shear-warp, the exact splat along y rows (``coef`` = the first two rows of R,
        ``warp[4:]`` the image centre plus shift).
    coef : float64 (n, 6)
        ``a1, a2, b1, b2, offA, offB``: intermediate row ``gA = a1 (i1 − c1) + a2 (i2 − c2) + offA`` and first
        column ``gB = b1 (i1 − c1) + b2 (i2 − c2) + offB − cj`` of volume row ``(i1, i2)``.
    warp : float64 (n, 6)
        ``m00, m01, m10, m11, ou, ov``: intermediate pixel ``(ia, jb)`` lands at image index
        ``fx = m00 (ia − offA) + m01 (jb − offB) + ou`` (and ``fy`` likewise) [pixels].
    size : int64 (n, 2)
        Intermediate image shape per projection; ``hmax`` the largest of each.
    """

    def __init__(self, layout, coef, warp, size):
        self.layout = layout
        self.coef = coef
        self.warp = warp
        self.size = size
        self.hmax = (int(size[:, 0].max()), int(size[:, 1].max()))
        self.uses_x_rows = bool(np.any(layout == 1))
        self.uses_row_splat = bool(np.any(layout == 2))
        self.uses_shear = bool(np.any(layout < 2))


def shear_warp_plan(R: np.ndarray, shifts: np.ndarray, volume_shape, image_shape) -> ShearWarpPlan:
    """The :class:`ShearWarpPlan` of rotations ``R`` (n, 3, 3), shifts (n, 2) [pixels], volume ``(nx, ny, nz)``
    and images ``(mx, my)``."""
    nx, ny, nz = (int(s) for s in volume_shape)
    mx, my = (int(s) for s in image_shape)
    n_ax = (nx, ny, nz)
    c_ax = (nx // 2, ny // 2, nz // 2)
    n = R.shape[0]
    layout = np.zeros(n, np.int8)
    coef = np.zeros((n, 6))
    warp = np.zeros((n, 6))
    size = np.zeros((n, 2), np.int64)
    for k in range(n):
        if abs(R[k, 0, 1]) <= ROW_SPLAT_TOL and abs(R[k, 1, 1] - 1.0) <= ROW_SPLAT_TOL:
            # object y within ~3° of image y: the exact splat, vectorised along y rows (general's operator)
            layout[k] = 2
            coef[k] = (R[k, 0, 0], R[k, 0, 1], R[k, 0, 2], R[k, 1, 0], R[k, 1, 1], R[k, 1, 2])
            warp[k, 4:] = (mx // 2 + shifts[k, 0], my // 2 + shifts[k, 1])
            size[k] = (1, 1)
            continue
        p = int(np.argmax(np.abs(R[k, 2])))
        # in-slice axes: A = the row axis of the layout's (i1, i2) pair that is not p, B = the contiguous axis
        if p == 1:
            layout[k], a, b = 1, 2, 0       # rows of [iy, iz, ix]: i1 = y (= S), i2 = z (= A), j = x (= B)
        elif p == 0:
            a, b = 2, 1                      # rows of [ix, iz, iy]: i1 = x (= S), i2 = z (= A), j = y (= B)
        else:
            a, b = 0, 1                      # rows of [ix, iz, iy]: i1 = x (= A), i2 = z (= S), j = y (= B)
        ta = -R[k, 2, a] / R[k, 2, p]
        tb = -R[k, 2, b] / R[k, 2, p]
        reach = max(c_ax[p], n_ax[p] - 1 - c_ax[p])
        ext_a = int(math.ceil(abs(ta) * reach)) + 1
        ext_b = int(math.ceil(abs(tb) * reach)) + 1
        off_a = c_ax[a] + ext_a
        off_b = c_ax[b] + ext_b
        if p == 2:
            coef[k] = (1.0, ta, 0.0, tb, off_a, off_b)
        else:
            coef[k] = (ta, 1.0, tb, 0.0, off_a, off_b)
        size[k] = (n_ax[a] + 2 * ext_a + 2, n_ax[b] + 2 * ext_b + 3)
        warp[k] = (R[k, 0, a], R[k, 0, b], R[k, 1, a], R[k, 1, b], mx // 2 + shifts[k, 0], my // 2 + shifts[k, 1])
    return ShearWarpPlan(layout, coef, warp, size)


# ------------------------------------------------------------------------------------------ kernels
@njit(cache=True, inline="always")
def _row_geometry(coef, i1, i2, c1, c2, cj):  # pragma: no cover - numba
    """Intermediate row ``ia``, its weight ``wa``, first column ``jb`` and weight ``wb`` of volume row (i1, i2)."""
    d1 = i1 - c1
    d2 = i2 - c2
    ga = coef[0] * d1 + coef[1] * d2 + coef[4]
    gb = coef[2] * d1 + coef[3] * d2 + coef[5] - cj
    fa = math.floor(ga)
    fb = math.floor(gb)
    return int(fa), np.float32(ga - fa), int(fb), np.float32(gb - fb)


@njit(cache=True, inline="always")
def _warp_point(warp, ia, jb, off_a, off_b):  # pragma: no cover - numba
    A = ia - off_a
    B = jb - off_b
    return warp[0] * A + warp[1] * B + warp[4], warp[2] * A + warp[3] * B + warp[5]


@njit(cache=True, inline="always")
def _inside(fx, fy, mx, my):  # pragma: no cover - numba
    return fx >= -1.0 + _EDGE and fx <= mx - _EDGE and fy >= -1.0 + _EDGE and fy <= my - _EDGE


@njit(**_FAST)
def _transpose_xz(src, dst):  # pragma: no cover - numba
    """dst[j, i2, i1] = src[i1, i2, j]: [ix, iz, iy] ↔ [iy, iz, ix]."""
    n1, n2, nj = src.shape
    for j in prange(nj):
        for i2 in range(n2):
            for i1 in range(n1):
                dst[j, i2, i1] = src[i1, i2, j]


@njit(**_FAST)
def _add_transposed(src, dst):  # pragma: no cover - numba
    """dst[i1, i2, j] += src[j, i2, i1]."""
    n1, n2, nj = dst.shape
    for i1 in prange(n1):
        for i2 in range(n2):
            row = dst[i1, i2]
            for j in range(nj):
                row[j] += src[j, i2, i1]


@njit(cache=True, inline="always")
def _segment(gu0, su, h0, sh, j, jhi):  # pragma: no cover - numba
    """From j: image row ``i0 = floor(gu0 + su j)``, column offset ``c = floor(h0 + sh j)`` (column = c + j), the
    end of the run of j over which both stay constant (≤ jhi) and the weights at j (float32)."""
    gu = gu0 + su * j
    i0 = math.floor(gu)
    h = h0 + sh * j
    c = math.floor(h)
    end = jhi
    if su > 1e-12:
        end = min(end, int(math.ceil((i0 + 1.0 - gu0) / su)))
    elif su < -1e-12:
        end = min(end, int(math.floor((i0 - gu0) / su)) + 1)
    if sh > 1e-12:
        end = min(end, int(math.ceil((c + 1.0 - h0) / sh)))
    elif sh < -1e-12:
        end = min(end, int(math.floor((c - h0) / sh)) + 1)
    return int(i0), int(c), max(end, j + 1), np.float32(gu - i0), np.float32(h - c)


@njit(cache=True, inline="always")
def _row_start(ck, wk, x, z, cj, mx, my, nj):  # pragma: no cover - numba
    """Row splat of the y row (x, z): padded image coordinates of voxel j = 0, their slopes along j (the column
    offset ``h = gv − j`` has slope R11 − 1) and the range ``[j, jhi)`` whose footprints lie inside the image."""
    gu0 = ck[0] * x + ck[2] * z - ck[1] * cj + wk[4] + 1.0
    gv0 = ck[3] * x + ck[5] * z - ck[4] * cj + wk[5] + 1.0
    a0, a1 = _z_range(gu0 - 1.0, ck[1], mx, nj, 0)   # footprints inside the image, as the general kernel
    b0, b1 = _z_range(gv0 - 1.0, ck[4], my, nj, 0)
    return gu0, ck[1], gv0, ck[4] - 1.0, max(a0, b0), min(a1, b1)


@njit(cache=True, inline="always")
def _row_splat(pk, src, ck, wk, x, z, cj, mx, my):  # pragma: no cover - numba
    """The general kernel's bilinear splat of one y row of voxels, run by run of constant footprint rows.

    Within a run the weights are linear in j; loops run over slices from 0 (non-negative indices vectorise)."""
    gu0, su, gv0, sh, j, jhi = _row_start(ck, wk, x, z, cj, mx, my, src.shape[0])
    dwu = np.float32(su)
    dwv = np.float32(sh)
    one = np.float32(1.0)
    while j < jhi:
        i0, c, end, wu0, wv0 = _segment(gu0, su, gv0, sh, j, jhi)
        L = end - j
        s = src[j:end]
        d00 = pk[i0, c + j:c + end]
        d10 = pk[i0 + 1, c + j:c + end]
        for t in range(L):             # (1 − wv) parts: columns c + j
            val = s[t]
            a1v = val * (wu0 + dwu * t)
            q = one - (wv0 + dwv * t)
            d00[t] += (val - a1v) * q
            d10[t] += a1v * q
        d01 = pk[i0, c + j + 1:c + end + 1]
        d11 = pk[i0 + 1, c + j + 1:c + end + 1]
        for t in range(L):             # wv parts: columns c + j + 1
            val = s[t]
            a1v = val * (wu0 + dwu * t)
            q = wv0 + dwv * t
            d01[t] += (val - a1v) * q
            d11[t] += a1v * q
        j = end


@njit(cache=True, inline="always")
def _row_gather(o, pk, ck, wk, x, z, cj, mx, my):  # pragma: no cover - numba
    """Transpose of :func:`_row_splat`: o[j] += the bilinear footprint of voxel j, read from ``pk``."""
    gu0, su, gv0, sh, j, jhi = _row_start(ck, wk, x, z, cj, mx, my, o.shape[0])
    dwu = np.float32(su)
    dwv = np.float32(sh)
    while j < jhi:
        i0, c, end, wu0, wv0 = _segment(gu0, su, gv0, sh, j, jhi)
        L = end - j
        oo = o[j:end]
        p00 = pk[i0, c + j:c + end]
        p01 = pk[i0, c + j + 1:c + end + 1]
        p10 = pk[i0 + 1, c + j:c + end]
        p11 = pk[i0 + 1, c + j + 1:c + end + 1]
        for t in range(L):
            wv = wv0 + dwv * t
            s0 = p00[t] + wv * (p01[t] - p00[t])
            s1 = p10[t] + wv * (p11[t] - p10[t])
            oo[t] += s0 + (wu0 + dwu * t) * (s1 - s0)
        j = end


@njit(**_FAST)
def _row_back(pad, layout, coef, warp, outT):  # pragma: no cover - numba
    """outT[ix, iz, :] += transpose of the row splat of every projection with ``layout == 2``."""
    n = layout.shape[0]
    n1, n2, nj = outT.shape
    mx, my = pad.shape[1] - 2, pad.shape[2] - 2
    c1, c2, cj = n1 // 2, n2 // 2, nj // 2
    for i1 in prange(n1):
        for k in range(n):
            if layout[k] != 2:
                continue
            for i2 in range(n2):
                _row_gather(outT[i1, i2], pad[k], coef[k], warp[k], i1 - c1, i2 - c2, cj, mx, my)


@njit(**_FAST)
def _forward(volT, volX, nzT, nzX, layout, coef, warp, size, pad):  # pragma: no cover - numba
    n = layout.shape[0]
    mx, my = pad.shape[1] - 2, pad.shape[2] - 2
    for k in prange(n):
        if layout[k] == 2:
            n1, n2, nj = volT.shape
            for i1 in range(n1):
                for i2 in range(n2):
                    if nzT[i1, i2]:
                        _row_splat(pad[k], volT[i1, i2], coef[k], warp[k], i1 - n1 // 2, i2 - n2 // 2, nj // 2,
                                   mx, my)
            continue
        vol = volX if layout[k] == 1 else volT
        nz = nzX if layout[k] == 1 else nzT
        n1, n2, nj = vol.shape
        c1, c2, cj = n1 // 2, n2 // 2, nj // 2
        ck = coef[k]
        inter = np.zeros((size[k, 0], size[k, 1]), np.float32)
        for i1 in range(n1):
            for i2 in range(n2):
                if not nz[i1, i2]:
                    continue
                ia, wa, jb, wb = _row_geometry(ck, i1, i2, c1, c2, cj)
                src = vol[i1, i2]
                # the row, shifted by wb, onto intermediate rows ia (weight 1 − wa) and ia + 1 (wa)
                c00 = (np.float32(1.0) - wa) * (np.float32(1.0) - wb)
                c01 = (np.float32(1.0) - wa) * wb
                c10 = wa * (np.float32(1.0) - wb)
                c11 = wa * wb
                r0 = inter[ia, jb:jb + nj + 1]
                r1 = inter[ia + 1, jb:jb + nj + 1]
                for j in range(nj):
                    v = src[j]
                    r0[j] += c00 * v
                    r1[j] += c10 * v
                r0 = inter[ia, jb + 1:jb + nj + 1]
                r1 = inter[ia + 1, jb + 1:jb + nj + 1]
                for j in range(nj):
                    v = src[j]
                    r0[j] += c01 * v
                    r1[j] += c11 * v
        wk = warp[k]
        off_a, off_b = ck[4], ck[5]
        pk = pad[k]
        for ia in range(size[k, 0]):
            row = inter[ia]
            for jb in range(size[k, 1]):
                val = row[jb]
                if val == 0.0:
                    continue
                fx, fy = _warp_point(wk, ia, jb, off_a, off_b)
                if not _inside(fx, fy, mx, my):
                    continue
                i0, j0, wu, wv = _footprint(fx, fy)
                splat4(pk, i0, j0, i0 + np.uint64(1), j0 + np.uint64(1), wu, wv, val)


@njit(**_FAST)
def _warp_gather(pad, layout, coef, warp, size, inter):  # pragma: no cover - numba
    """inter[k] = transpose of the warp: each intermediate pixel gathers its bilinear footprint."""
    n = coef.shape[0]
    mx, my = pad.shape[1] - 2, pad.shape[2] - 2
    for k in prange(n):
        if layout[k] == 2:   # row-splat projection: no intermediate image
            continue
        ck = coef[k]
        wk = warp[k]
        pk = pad[k]
        ik = inter[k]
        for ia in range(size[k, 0]):
            for jb in range(size[k, 1]):
                fx, fy = _warp_point(wk, ia, jb, ck[4], ck[5])
                if not _inside(fx, fy, mx, my):
                    ik[ia, jb] = 0.0
                    continue
                i0, j0, wu, wv = _footprint(fx, fy)
                ik[ia, jb] = gather4(pk, i0, j0, i0 + np.uint64(1), j0 + np.uint64(1), wu, wv)


@njit(**_FAST)
def _shear_gather(inter, which, layout, coef, out):  # pragma: no cover - numba
    """out[i1, i2, :] += transpose of the shear of every projection with ``layout == which``."""
    n = layout.shape[0]
    n1, n2, nj = out.shape
    c1, c2, cj = n1 // 2, n2 // 2, nj // 2
    for i1 in prange(n1):
        for k in range(n):
            if layout[k] != which:
                continue
            ck = coef[k]
            ik = inter[k]
            for i2 in range(n2):
                ia, wa, jb, wb = _row_geometry(ck, i1, i2, c1, c2, cj)
                va = np.float32(1.0) - wa
                vb = np.float32(1.0) - wb
                r0 = ik[ia, jb:jb + nj + 1]
                r1 = ik[ia + 1, jb:jb + nj + 1]
                o = out[i1, i2]
                for j in range(nj):
                    s0 = vb * r0[j] + wb * r0[j + 1]
                    s1 = vb * r1[j] + wb * r1[j + 1]
                    o[j] += va * s0 + wa * s1


# ------------------------------------------------------------------------------------------ drivers
def shear_warp_forward(volT: np.ndarray, plan: ShearWarpPlan, pad: np.ndarray, buffer) -> None:
    """Add the projections of ``volT`` ([ix, iz, iy], float32) to ``pad`` (n, mx + 2, my + 2), zeroed by the
    caller; ``buffer(name, shape, dtype)`` hands out work arrays kept between calls
    (:meth:`~aetbench.reconstruct.projector.Projector._buffer`)."""
    nzT = buffer("nzT", volT.shape[:2], np.bool_)
    nonzero_rows(volT, nzT)
    if plan.uses_x_rows:
        nx, nz, ny = volT.shape
        volX = buffer("volX", (ny, nz, nx), np.float32)
        _transpose_xz(volT, volX)
        nzX = buffer("nzX", (ny, nz), np.bool_)
        nonzero_rows(volX, nzX)
    else:
        volX = volT
        nzX = nzT
    _forward(volT, volX, nzT, nzX, plan.layout, plan.coef, plan.warp, plan.size, pad)


def shear_warp_back(pad: np.ndarray, plan: ShearWarpPlan, outT: np.ndarray, buffer) -> None:
    """Add the back-projection of ``pad`` (images with a zero one-pixel border) to ``outT`` ([ix, iz, iy]);
    ``buffer`` as in :func:`shear_warp_forward`."""
    n = pad.shape[0]
    if plan.uses_row_splat:
        _row_back(pad, plan.layout, plan.coef, plan.warp, outT)
    if not plan.uses_shear:
        return
    inter = buffer("inter", (n, *plan.hmax), np.float32)
    _warp_gather(pad, plan.layout, plan.coef, plan.warp, plan.size, inter)
    _shear_gather(inter, 0, plan.layout, plan.coef, outT)
    if plan.uses_x_rows:
        nx, nz, ny = outT.shape
        outX = buffer("outX", (ny, nz, nx), np.float32)
        outX.fill(0.0)
        _shear_gather(inter, 1, plan.layout, plan.coef, outX)
        _add_transposed(outX, outT)

