"""The Poisson–Gaussian noise model of the projections and its variance-stabilising transform.

``z = α·p + n`` with ``p ~ Poisson(y/α)`` and ``n ~ N(μ, σ²)`` (Mäkitalo & Foi 2013): α the gain [counts per
detected electron], σ the Gaussian read-out noise [counts], μ the offset [counts].  (α, σ) from a local
mean–variance regression (:func:`estimate_noise_params`); the generalised Anscombe transform
(:func:`gat_forward`) and its exact unbiased inverse (:func:`gat_inverse`).  Used by :mod:`.denoise`.
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage

from ..errors import AetbenchError

__all__ = ["estimate_noise_params", "gat_forward", "gat_inverse"]


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
