"""Denoising of Poisson–Gaussian projections (issue 3): the stage function :func:`denoise`, a dispatcher.

The noise model and its transform are :mod:`.gat`, the numba block-matching filter :mod:`.blockmatch`
(their public names are importable from here too).

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

import numpy as np
from scipy import ndimage

from ..errors import AetbenchError
from ..types import TiltSeries
# the noise model and the block-matching filter live in their own modules; their names stay importable here
from .blockmatch import bm3d_like
from .gat import _check_params, estimate_noise_params, gat_forward, gat_inverse

__all__ = [
    "estimate_noise_params", "gat_forward", "gat_inverse", "bm3d_like", "denoise", "METHODS",
]

METHODS = ("bm3d-like", "nlm", "gaussian", "bm3d", "none")


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
