"""Denoising of Poisson–Gaussian projections (issue 3).

Noise model (Mäkitalo & Foi 2013): ``z = α·p + n`` with ``p ~ Poisson(y/α)``
and ``n ~ N(μ, σ²)``, so ``Var[z] = α·(E[z] − μ) + σ²``; α is the gain
[counts per detected electron], σ the Gaussian read-out noise [counts], μ the
offset [counts].  The pipeline is

1. estimate (α, σ) from a local mean–variance regression
   (:func:`estimate_noise_params`);
2. generalised Anscombe transform (GAT, :func:`gat_forward`): the noise becomes
   approximately Gaussian with unit variance;
3. denoise with a Gaussian-noise denoiser (σ = 1): ``"bm3d-like"`` (block
   matching and collaborative filtering written here, numba), ``"nlm"``
   (scikit-image non-local means) or ``"bm3d"`` (the optional ``bm3d`` package);
4. exact unbiased inverse of the GAT (:func:`gat_inverse`): tabulated
   numerically, with the closed-form approximation of M. Mäkitalo and A. Foi,
   "Optimal inversion of the generalized Anscombe transformation for
   Poisson–Gaussian noise", IEEE Trans. Image Process. 22(1), 91–103 (2013),
   doi 10.1109/TIP.2012.2202675, beyond the table.

Measured (tests/bench/test_bench_denoise.py): 60 images of 128×128 take about
7 s of CPU on one core (≈ 3–4 s wall on 2 free cores).

``"gaussian"`` (a plain Gaussian pre-filter, as used by the competing SIRT
workflow) and ``"none"`` work on the counts directly.

The block-matching filter follows K. Dabov, A. Foi, V. Katkovnik and
K. Egiazarian, "Image denoising by sparse 3-D transform-domain collaborative
filtering", IEEE Trans. Image Process. 16(8), 2080–2095 (2007): grouping of
similar 2-D patches, hard thresholding in a separable 3-D transform (2-D DCT of
the patches × Haar along the group), weighted
aggregation, then a second (empirical Wiener) stage guided by the first.
"""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from numba import njit
from scipy import ndimage

from ..errors import AetbenchError
from ..types import TiltSeries

__all__ = [
    "estimate_noise_params", "gat_forward", "gat_inverse", "bm3d_like", "denoise", "METHODS",
]

METHODS = ("bm3d-like", "nlm", "gaussian", "bm3d", "none")

_SQ32 = np.sqrt(1.5)


# ----------------------------------------------------------------------------------------------
# noise parameters
# ----------------------------------------------------------------------------------------------
def estimate_noise_params(images, *, offset: float = 0.0, n_bins: int = 24, smooth_blocks: int = 3) -> dict:
    """Estimate the Poisson–Gaussian noise parameters (α, σ) of a stack of images.

    A local mean–variance regression: the diagonal Haar detail of every
    non-overlapping 2×2 block, ``d = (z00 − z01 − z10 + z11)/2``, has
    ``E[d²] = Var[z]`` on locally flat signal (for Poisson counts exactly
    ``E[d² | block sum] = block mean``, so binning by a local mean is not
    biased).  Blocks are binned by the mean over ``smooth_blocks²``
    neighbouring blocks, and ``Var = a·mean + b`` is fitted by weighted least
    squares; ``α = a`` and ``σ² = b + α·μ``.

    Parameters
    ----------
    images : ndarray, shape (n, nx, ny) or (nx, ny)
        Raw projections [counts].
    offset : float
        Known offset μ [counts] of the Gaussian component (0 for photon/electron counting).
    n_bins : int
        Number of equal-population bins of the local mean.
    smooth_blocks : int
        Width (in 2×2 blocks) of the local-mean window.

    Returns
    -------
    dict
        ``alpha`` (gain, counts per event), ``sigma`` (Gaussian std, counts),
        ``offset`` (μ, counts), ``a``, ``b`` (fitted ``Var = a·E + b``) and
        ``n_blocks``.
    """
    z = np.asarray(images, dtype=float)
    if z.ndim == 2:
        z = z[None]
    if z.ndim != 3 or min(z.shape[1:]) < 4:
        raise AetbenchError(f"estimate_noise_params: images must be (n, nx, ny) with nx, ny >= 4, got {np.shape(images)}")
    if n_bins < 2:
        raise AetbenchError(f"estimate_noise_params: n_bins must be >= 2, got {n_bins}")
    nx2, ny2 = (z.shape[1] // 2) * 2, (z.shape[2] // 2) * 2
    z = z[:, :nx2, :ny2]
    z00, z01, z10, z11 = z[:, 0::2, 0::2], z[:, 0::2, 1::2], z[:, 1::2, 0::2], z[:, 1::2, 1::2]
    d2 = (0.5 * (z00 - z01 - z10 + z11)) ** 2
    bmean = 0.25 * (z00 + z01 + z10 + z11)
    loc = ndimage.uniform_filter(bmean, size=(1, int(smooth_blocks), int(smooth_blocks)), mode="nearest")
    e = loc.ravel()
    v = d2.ravel()
    order = np.argsort(e, kind="stable")
    bins = np.array_split(order, n_bins)
    em = np.array([e[b].mean() for b in bins])
    vm = np.array([v[b].mean() for b in bins])
    # standard error of each bin's variance estimate ~ var * sqrt(2/n)
    se = np.array([max(v[b].std(), 1e-12) / np.sqrt(len(b)) for b in bins])
    w = 1.0 / se**2
    A = np.stack([em, np.ones_like(em)], axis=1)
    Aw = A * np.sqrt(w)[:, None]
    vw = vm * np.sqrt(w)
    if np.ptp(em) <= 1e-12 * max(1.0, abs(em.mean())):  # flat signal: pure Gaussian fit
        a, b = 0.0, float(vm.mean())
    else:
        (a, b), *_ = np.linalg.lstsq(Aw, vw, rcond=None)
    a = float(max(a, 1e-12))
    s2 = float(b + a * offset)
    return {"alpha": a, "sigma": float(np.sqrt(max(s2, 0.0))), "offset": float(offset),
            "a": a, "b": float(b), "n_blocks": int(e.size)}


# ----------------------------------------------------------------------------------------------
# generalised Anscombe transform
# ----------------------------------------------------------------------------------------------
def _check_params(alpha, sigma):
    if not (np.isfinite(alpha) and alpha > 0):
        raise AetbenchError(f"noise gain alpha must be > 0 counts per event, got {alpha}")
    if not (np.isfinite(sigma) and sigma >= 0):
        raise AetbenchError(f"noise sigma must be >= 0 counts, got {sigma}")


def gat_forward(z, *, alpha: float = 1.0, sigma: float = 0.0, offset: float = 0.0) -> np.ndarray:
    """Generalised Anscombe transform ``f(z) = 2·sqrt(max((z − μ)/α + 3/8 + (σ/α)², 0))``.

    Parameters
    ----------
    z : array_like
        Raw values [counts].
    alpha, sigma, offset : float
        Gain α, Gaussian std σ [counts], offset μ [counts].

    Returns
    -------
    ndarray
        Stabilised values, noise std ≈ 1 (dimensionless).
    """
    _check_params(alpha, sigma)
    s = sigma / alpha
    zt = (np.asarray(z, dtype=float) - offset) / alpha
    return 2.0 * np.sqrt(np.maximum(zt + 0.375 + s * s, 0.0))


def _closed_form_inverse(D, s):
    """Mäkitalo & Foi (2013) closed form, scaled units (α = 1, μ = 0), σ̃ = ``s``."""
    D = np.maximum(np.asarray(D, dtype=float), 2.0 * np.sqrt(0.375))
    return 0.25 * D**2 + 0.25 * _SQ32 / D - 1.375 / D**2 + 0.625 * _SQ32 / D**3 - 0.125 - s * s


def _expected_gat(y, s, n_quad: int = 48):
    """E[f(z̃)] for z̃ = p + n, p ~ Poisson(y), n ~ N(0, s²) (scaled units), y (m,) ≥ 0."""
    from scipy.stats import poisson

    y = np.asarray(y, dtype=float)
    kmax = int(np.max(y) + 12 * np.sqrt(np.max(y) + 1) + 20)
    k = np.arange(kmax + 1, dtype=float)
    pk = poisson.pmf(k[None, :], y[:, None])  # (m, K)
    if s > 0:
        x, w = np.polynomial.hermite_e.hermegauss(n_quad)  # weight exp(-x²/2)
        w = w / w.sum()
        g = (2.0 * np.sqrt(np.maximum(k[:, None] + s * x[None, :] + 0.375 + s * s, 0.0)) * w).sum(axis=1)
    else:
        g = 2.0 * np.sqrt(k + 0.375)
    return pk @ g


def gat_inverse(D, *, alpha: float = 1.0, sigma: float = 0.0, offset: float = 0.0,
                exact: bool = True) -> np.ndarray:
    """Exact unbiased inverse of the GAT (Mäkitalo & Foi 2013).

    The exact unbiased inverse maps ``E[f(z) | y]`` back to ``y``.  With
    ``exact=True`` (default) it is tabulated numerically for ``(y − μ)/α`` in
    [0, 200] (Poisson sum × Gauss–Hermite quadrature of the Gaussian part) and
    inverted by monotone interpolation; beyond the table, and with
    ``exact=False`` everywhere, the closed-form approximation of the same
    paper is used:
    ``y = α·max(D²/4 + √(3/2)/(4D) − 11/(8D²) + 5√(3/2)/(8D³) − 1/8 − (σ/α)², 0) + μ``.
    Values below ``E[f | y = 0]`` map to ``y = μ``.

    Parameters
    ----------
    D : array_like
        Denoised stabilised values (estimates of ``E[f(z)]``).
    alpha, sigma, offset : float
        Same parameters as passed to :func:`gat_forward`.
    exact : bool
        Tabulated exact inverse (True) or the closed form only (False).

    Returns
    -------
    ndarray
        Estimates of ``E[z]`` [counts].
    """
    _check_params(alpha, sigma)
    s = sigma / alpha
    D = np.asarray(D, dtype=float)
    y = np.maximum(_closed_form_inverse(D, s), 0.0)
    if exact:
        grid = np.concatenate([np.linspace(0.0, 2.0, 81)[:-1], np.geomspace(2.0, 200.0, 240)])
        ef = _expected_gat(grid, s)
        ef = np.maximum.accumulate(ef)  # guard monotonicity against round-off
        inside = D <= ef[-1]
        y = np.where(inside, np.interp(D, ef, grid), y)
    return y * alpha + offset


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


# ----------------------------------------------------------------------------------------------
# the stage function
# ----------------------------------------------------------------------------------------------
_OPTIONS = {
    "bm3d-like": {"patch", "step", "search", "group", "lam", "tau_match", "tau_wiener", "two_stage", "kaiser_beta",
                  "threads"},
    "nlm": {"patch_size", "patch_distance", "h"},
    "gaussian": {"sigma_px"},
    "bm3d": {"profile"},
    "none": set(),
}


def _nlm(stab: np.ndarray, *, patch_size: int = 5, patch_distance: int = 6, h: float = 0.8) -> np.ndarray:
    from skimage.restoration import denoise_nl_means

    if patch_size < 1 or patch_distance < 1 or h <= 0:
        raise AetbenchError("denoise nlm: patch_size >= 1 px, patch_distance >= 1 px and h > 0 (units of sigma) required")
    return np.stack([denoise_nl_means(im, patch_size=int(patch_size), patch_distance=int(patch_distance),
                                      h=float(h), sigma=1.0, fast_mode=True, preserve_range=True)
                     for im in stab])


def _bm3d_package(stab: np.ndarray, *, profile: str = "np") -> np.ndarray:
    try:
        import bm3d as _bm3d  # optional, non-commercial licence
    except ImportError:
        raise AetbenchError("denoise method 'bm3d' needs the optional 'bm3d' package "
                            "(pip install 'aetbench[bm3d]'; non-commercial licence) — or use 'bm3d-like'") from None
    return np.stack([np.asarray(_bm3d.bm3d(im, sigma_psd=1.0, profile=profile), dtype=float) for im in stab])


def denoise(ts: TiltSeries, *, method: str = "bm3d-like", alpha: float | None = None,
            sigma: float | None = None, offset: float = 0.0, **options) -> TiltSeries:
    """Denoise every projection of a tilt series.

    Parameters
    ----------
    ts : TiltSeries
        Raw projections [counts] (Poisson–Gaussian).
    method : {"bm3d-like", "nlm", "gaussian", "bm3d", "none"}
        Denoiser.  The first, second and fourth run in the GAT domain and
        return the exact-unbiased inverse; ``"gaussian"`` filters counts
        directly (option ``sigma_px`` [pixels], default 1.0).
    alpha, sigma : float, optional
        Noise gain α and Gaussian std σ [counts]; estimated from the data
        (:func:`estimate_noise_params`) when not given.
    offset : float
        Gaussian offset μ [counts].
    **options
        Method options: bm3d-like → :func:`bm3d_like` keywords; nlm →
        ``patch_size``, ``patch_distance`` [pixels], ``h`` [units of σ];
        gaussian → ``sigma_px``; bm3d → ``profile``.

    Returns
    -------
    TiltSeries
        Denoised images [counts]; metadata ``denoise_method``,
        ``denoise_options``, ``noise_alpha``, ``noise_sigma``, ``noise_offset``.
    """
    if method not in _OPTIONS:
        raise AetbenchError(f"denoise: unknown method {method!r} (known: {', '.join(METHODS)})")
    bad = set(options) - _OPTIONS[method]
    if bad:
        allowed = ", ".join(sorted(_OPTIONS[method])) or "none"
        raise AetbenchError(f"denoise: unknown option(s) {', '.join(sorted(bad))} for method {method!r} (allowed: {allowed})")
    z = np.asarray(ts.images, dtype=float)
    est = estimate_noise_params(z, offset=offset)
    a = float(est["alpha"] if alpha is None else alpha)
    s = float(est["sigma"] if sigma is None else sigma)
    _check_params(a, s)
    meta = {"denoise_method": method, "denoise_options": dict(options), "noise_alpha": a, "noise_sigma": s,
            "noise_offset": float(offset), "noise_estimated": {"alpha": est["alpha"], "sigma": est["sigma"]}}
    if method == "none":
        return ts.with_images(z, **meta)
    if method == "gaussian":
        sp = float(options.get("sigma_px", 1.0))
        if not sp >= 0:
            raise AetbenchError(f"denoise gaussian: sigma_px must be >= 0 pixels, got {sp}")
        out = ndimage.gaussian_filter(z, sigma=(0, sp, sp), mode="nearest")
        return ts.with_images(out, **meta)
    stab = gat_forward(z, alpha=a, sigma=s, offset=offset)
    if method == "bm3d-like":
        den = bm3d_like(stab, sigma=1.0, **options)
    elif method == "nlm":
        den = _nlm(stab, **options)
    else:
        den = _bm3d_package(stab, **options)
    out = gat_inverse(den, alpha=a, sigma=s, offset=offset)
    return ts.with_images(out, **meta)
