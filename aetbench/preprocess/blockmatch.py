"""Block-matching 3-D collaborative filter for Gaussian noise of unit variance (numba), after K. Dabov, A. Foi,
V. Katkovnik and K. Egiazarian, IEEE Trans. Image Process. 16(8), 2080–2095 (2007): grouping of similar 2-D
patches, hard thresholding in a separable 3-D transform (2-D DCT × Haar along the group), weighted aggregation,
then an empirical Wiener stage guided by the first.  The ``"bm3d-like"`` denoiser of :mod:`.denoise`.
"""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from numba import njit

from ..errors import AetbenchError

__all__ = ["bm3d_like"]


# ----------------------------------------------------------------------------------------------
# block-matching 3-D collaborative filter (numba)
# ----------------------------------------------------------------------------------------------
def _dct_matrix(n: int) -> np.ndarray:
    """Orthonormal DCT-II matrix (n, n): ``X = C @ x``."""
    k = np.arange(n)[:, None]
    i = np.arange(n)[None, :]
    C = np.cos(np.pi * (2 * i + 1) * k / (2 * n)) * np.sqrt(2.0 / n)
    C[0] /= np.sqrt(2.0)
    return C


@njit(cache=True)
def _patch_dct_all(img, D, P):  # pragma: no cover - numba
    """2-D DCT of every P×P patch: out[i, j] = D @ img[i:i+P, j:j+P] @ D.T."""
    nx, ny = img.shape
    mx, my = nx - P + 1, ny - P + 1
    out = np.empty((mx, my, P, P))
    tmp = np.empty((P, P))
    for i in range(mx):
        for j in range(my):
            for u in range(P):
                for b in range(P):
                    s = 0.0
                    for a in range(P):
                        s += D[u, a] * img[i + a, j + b]
                    tmp[u, b] = s
            for u in range(P):
                for v in range(P):
                    s = 0.0
                    for b in range(P):
                        s += tmp[u, b] * D[v, b]
                    out[i, j, u, v] = s
    return out


@njit(cache=True)
def _ref_grid(m, step):  # pragma: no cover - numba
    n = (m - 1) // step + 1
    last = (n - 1) * step
    extra = 1 if last != m - 1 else 0
    g = np.empty(n + extra, dtype=np.int64)
    for t in range(n):
        g[t] = t * step
    if extra:
        g[n] = m - 1
    return g


@njit(cache=True)
def _block_match(img, P, step, ns, nmax, tau):  # pragma: no cover - numba
    """Group similar patches of ``img``.

    Returns per reference (ri, rj), the matched patch corners (gi, gj) (sorted
    by distance, the reference first) and the group size (a power of two).
    Distances ``||p_ref − p||² / P²`` come from one integral image per offset.
    """
    nx, ny = img.shape
    mx, my = nx - P + 1, ny - P + 1
    gx = _ref_grid(mx, step)
    gy = _ref_grid(my, step)
    nref = gx.size * gy.size
    ri = np.empty(nref, dtype=np.int64)
    rj = np.empty(nref, dtype=np.int64)
    r = 0
    for a in range(gx.size):
        for b in range(gy.size):
            ri[r] = gx[a]
            rj[r] = gy[b]
            r += 1
    w = 2 * ns + 1
    noff = w * w
    dist = np.full((nref, noff), np.inf)
    S = np.zeros((nx + 1, ny + 1))
    inv = 1.0 / (P * P)
    for oa in range(-ns, ns + 1):
        for ob in range(-ns, ns + 1):
            o = (oa + ns) * w + (ob + ns)
            x0 = max(0, -oa)
            x1 = min(nx, nx - oa)
            y0 = max(0, -ob)
            y1 = min(ny, ny - ob)
            for x in range(nx):
                row = 0.0
                for y in range(ny):
                    v = 0.0
                    if x >= x0 and x < x1 and y >= y0 and y < y1:
                        d = img[x, y] - img[x + oa, y + ob]
                        v = d * d
                    row += v
                    S[x + 1, y + 1] = S[x, y + 1] + row
            for q in range(nref):
                i = ri[q]
                j = rj[q]
                ci = i + oa
                cj = j + ob
                if ci < 0 or ci > mx - 1 or cj < 0 or cj > my - 1:
                    continue
                s = S[i + P, j + P] - S[i, j + P] - S[i + P, j] + S[i, j]
                dist[q, o] = s * inv
    gi = np.empty((nref, nmax), dtype=np.int64)
    gj = np.empty((nref, nmax), dtype=np.int64)
    gk = np.empty(nref, dtype=np.int64)
    centre = ns * w + ns
    bestd = np.empty(nmax)
    besto = np.empty(nmax, dtype=np.int64)
    for q in range(nref):
        # the reference first, then the nmax - 1 closest candidates within tau (insertion into a sorted list)
        bestd[0] = -1.0
        besto[0] = centre
        cnt = 1
        for o in range(noff):
            d = dist[q, o]
            if o == centre or d > tau:
                continue
            if cnt == nmax and d >= bestd[cnt - 1]:
                continue
            pos = cnt if cnt < nmax else nmax - 1
            while pos > 1 and bestd[pos - 1] > d:
                if pos < nmax:
                    bestd[pos] = bestd[pos - 1]
                    besto[pos] = besto[pos - 1]
                pos -= 1
            bestd[pos] = d
            besto[pos] = o
            if cnt < nmax:
                cnt += 1
        k = 1
        while k * 2 <= cnt:
            k *= 2
        gk[q] = k
        for t in range(k):
            o = besto[t]
            gi[q, t] = ri[q] + o // w - ns
            gj[q, t] = rj[q] + o % w - ns
    return ri, rj, gi, gj, gk


@njit(cache=True)
def _haar_fwd(x, k, tmp):  # pragma: no cover - numba
    """In-place orthonormal full dyadic Haar transform of x[:k] (k a power of two)."""
    n = k
    r = 1.0 / np.sqrt(2.0)
    while n > 1:
        h = n // 2
        for i in range(h):
            a = x[2 * i]
            b = x[2 * i + 1]
            tmp[i] = (a + b) * r
            tmp[h + i] = (a - b) * r
        for i in range(n):
            x[i] = tmp[i]
        n = h


@njit(cache=True)
def _haar_inv(x, k, tmp):  # pragma: no cover - numba
    """Inverse of :func:`_haar_fwd`."""
    n = 2
    r = 1.0 / np.sqrt(2.0)
    while n <= k:
        h = n // 2
        for i in range(h):
            a = x[i]
            b = x[h + i]
            tmp[2 * i] = (a + b) * r
            tmp[2 * i + 1] = (a - b) * r
        for i in range(n):
            x[i] = tmp[i]
        n *= 2


@njit(cache=True)
def _collab(coef_noisy, coef_pilot, gi, gj, gk, sigma, lam, wiener):  # pragma: no cover - numba
    """Collaborative filtering of all groups (2-D DCT × Haar along the group).

    Returns the accumulated weighted patch-DCT coefficients per patch position
    and their weights (the inverse 2-D DCT is linear, so it is applied once per
    position in :func:`_aggregate`)."""
    mx, my, P, _ = coef_noisy.shape
    acc = np.zeros((mx, my, P, P))
    wacc = np.zeros((mx, my))
    nref, nmax = gi.shape
    C = np.empty((P, P, nmax))
    vn = np.empty(nmax)
    vp = np.empty(nmax)
    tmp = np.empty(nmax)
    s2 = sigma * sigma
    thr = lam * sigma
    for q in range(nref):
        k = gk[q]
        wsum = 0.0
        nnz = 0
        for u in range(P):
            for v in range(P):
                for t in range(k):
                    vn[t] = coef_noisy[gi[q, t], gj[q, t], u, v]
                _haar_fwd(vn, k, tmp)
                if wiener:
                    for t in range(k):
                        vp[t] = coef_pilot[gi[q, t], gj[q, t], u, v]
                    _haar_fwd(vp, k, tmp)
                    for m in range(k):
                        cp2 = vp[m] * vp[m]
                        wc = cp2 / (cp2 + s2)
                        vn[m] *= wc
                        wsum += wc * wc
                else:
                    for m in range(k):
                        if abs(vn[m]) < thr:
                            vn[m] = 0.0
                        else:
                            nnz += 1
                _haar_inv(vn, k, tmp)
                for t in range(k):
                    C[u, v, t] = vn[t]
        if wiener:
            weight = 1.0 / (s2 * max(wsum, 1e-12))
        else:
            weight = 1.0 / (s2 * max(nnz, 1))
        for t in range(k):
            i = gi[q, t]
            j = gj[q, t]
            for u in range(P):
                for v in range(P):
                    acc[i, j, u, v] += weight * C[u, v, t]
            wacc[i, j] += weight
    return acc, wacc


@njit(cache=True)
def _aggregate(acc, wacc, D, win, nx, ny, fallback):  # pragma: no cover - numba
    """Inverse 2-D DCT of accumulated coefficients, windowed, normalised."""
    mx, my, P, _ = acc.shape
    num = np.zeros((nx, ny))
    den = np.zeros((nx, ny))
    tmp = np.empty((P, P))
    for i in range(mx):
        for j in range(my):
            wgt = wacc[i, j]
            if wgt <= 0.0:
                continue
            for a in range(P):
                for v in range(P):
                    s = 0.0
                    for u in range(P):
                        s += D[u, a] * acc[i, j, u, v]
                    tmp[a, v] = s
            for a in range(P):
                for b in range(P):
                    s = 0.0
                    for v in range(P):
                        s += tmp[a, v] * D[v, b]
                    num[i + a, j + b] += win[a, b] * s
                    den[i + a, j + b] += win[a, b] * wgt
    out = np.empty((nx, ny))
    for x in range(nx):
        for y in range(ny):
            out[x, y] = num[x, y] / den[x, y] if den[x, y] > 0 else fallback[x, y]
    return out


@njit(cache=True, nogil=True)
def _bm3d_one(img, D, win, P, step, ns, nmax, sigma, lam, tau1, tau2, two_stage):  # pragma: no cover
    nx, ny = img.shape
    coef = _patch_dct_all(img, D, P)
    ri, rj, gi, gj, gk = _block_match(img, P, step, ns, nmax, tau1 * sigma * sigma)
    acc, wacc = _collab(coef, coef, gi, gj, gk, sigma, lam, False)
    basic = _aggregate(acc, wacc, D, win, nx, ny, img)
    if not two_stage:
        return basic
    coef_p = _patch_dct_all(basic, D, P)
    ri, rj, gi, gj, gk = _block_match(basic, P, step, ns, nmax, tau2 * sigma * sigma)
    acc, wacc = _collab(coef, coef_p, gi, gj, gk, sigma, lam, True)
    return _aggregate(acc, wacc, D, win, nx, ny, basic)


def bm3d_like(images, *, sigma: float = 1.0, patch: int = 8, step: int = 3, search: int = 12,
              group: int = 16, lam: float = 2.7, tau_match: float = 4.0, tau_wiener: float = 1.0,
              two_stage: bool = True, kaiser_beta: float = 2.0, threads: int | None = None) -> np.ndarray:
    """Block-matching 3-D collaborative filter for additive white Gaussian noise.

    Parameters
    ----------
    images : ndarray, shape (n, nx, ny) or (nx, ny)
        Noisy images with noise std ``sigma`` (after the GAT: σ = 1).
    sigma : float
        Noise standard deviation (same units as images).
    patch : int
        Patch edge [pixels].
    step : int
        Stride between reference patches [pixels].
    search : int
        Half-width of the search window [pixels] (window ``2·search + 1``).
    group : int
        Maximum number of patches per group (power of two).
    lam : float
        Hard threshold of the first stage, in units of ``sigma``.
    tau_match, tau_wiener : float
        Maximum mean squared patch distance accepted in a group, in units of
        ``sigma²`` (first stage on the noisy image, second stage on the basic estimate).
    two_stage : bool
        Run the empirical Wiener second stage.
    kaiser_beta : float
        Kaiser window parameter of the aggregation.
    threads : int, optional
        Worker threads (one image each; the numba kernel releases the GIL);
        default: all CPU cores.

    Returns
    -------
    ndarray
        Denoised images, same shape as the input.
    """
    arr = np.asarray(images, dtype=float)
    squeeze = arr.ndim == 2
    if squeeze:
        arr = arr[None]
    if arr.ndim != 3:
        raise AetbenchError(f"bm3d_like: images must be (n, nx, ny), got shape {np.shape(images)}")
    if not (2 <= patch <= min(arr.shape[1:])):
        raise AetbenchError(f"bm3d_like: patch must be 2..{min(arr.shape[1:])} pixels, got {patch}")
    if step < 1 or search < 0 or lam <= 0 or sigma <= 0 or tau_match <= 0 or tau_wiener <= 0:
        raise AetbenchError("bm3d_like: step >= 1 px, search >= 0 px, lam > 0, sigma > 0, tau_match > 0, tau_wiener > 0 required")
    if group < 1 or group & (group - 1):
        raise AetbenchError(f"bm3d_like: group must be a power of two (1, 2, 4, …, 64), got {group}")
    group = min(int(group), (2 * search + 1) ** 2)
    while group & (group - 1):
        group -= 1
    D = _dct_matrix(int(patch))
    kw = np.kaiser(int(patch), kaiser_beta)
    win = np.outer(kw, kw)
    args = (D, win, int(patch), int(step), int(search), int(group), float(sigma), float(lam),
            float(tau_match), float(tau_wiener), bool(two_stage))
    arr = np.ascontiguousarray(arr)
    workers = max(1, min(arr.shape[0], int(threads) if threads else (os.cpu_count() or 1)))
    if workers == 1:
        out = np.stack([_bm3d_one(im, *args) for im in arr])
    else:  # the kernel releases the GIL: one thread per image
        with ThreadPoolExecutor(max_workers=workers) as pool:
            out = np.stack(list(pool.map(lambda im: _bm3d_one(im, *args), arr)))
    return out[0] if squeeze else out
