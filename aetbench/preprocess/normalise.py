"""Intensity normalisation across the tilt series (beam-current changes).

For incoherent (ADF) imaging the background-free total intensity of a
projection is the sum of the atoms' cross-sections: the same for every view,
whatever the projected thickness at that tilt (a thicker projection is
brighter per pixel over a smaller width).  Probe-current drift multiplies a
whole projection by a factor, so each projection is scaled to the common mean
total — the physics rule.

To make the totals robust they can be summed over a *common window*
(``window="support"``) instead of the whole image: the union over all projections of each particle's support
(smoothed intensity above ``n_sigma`` × the background noise, dilated by
``margin_px``).  Pixels outside it hold only background noise (and any
background-level error), which would add scatter to the totals without
signal; the window is the same for every projection, so a particle that
reaches further at high tilt is still summed completely.
"""
from __future__ import annotations

import warnings

import numpy as np
from scipy import ndimage

from ..errors import AetbenchError
from ..types import TiltSeries

__all__ = ["normalise_intensity", "common_window"]


def common_window(images, *, smooth_sigma_px: float = 2.0, n_sigma: float = 3.0, margin_px: int = 4) -> np.ndarray:
    """Union of every projection's particle support, dilated by ``margin_px`` [pixels] (bool (nx, ny)).

    The support of one projection: its Gaussian-smoothed (``smooth_sigma_px``)
    intensity above ``n_sigma`` × the robust (median absolute deviation)
    noise of the smoothed image's lower half (background pixels).
    Returns all-True when no support is found.
    """
    img = np.asarray(images, dtype=float)
    sm = ndimage.gaussian_filter(img, (0, smooth_sigma_px, smooth_sigma_px))
    win = np.zeros(img.shape[1:], bool)
    for k in range(img.shape[0]):
        v = sm[k]
        low = v[v <= np.median(v)]
        noise = 1.4826 * np.median(np.abs(low - np.median(low))) if low.size else 0.0
        win |= v > np.median(low) + n_sigma * max(noise, 1e-12 * np.abs(v).max())
    if not win.any():
        return np.ones(img.shape[1:], bool)
    return ndimage.binary_dilation(win, iterations=int(margin_px)) if margin_px > 0 else win


def normalise_intensity(ts: TiltSeries, *, target: str | float = "mean", window: str = "image",
                        margin_px: int = 4, warn_rel: float = 0.3, beam_current: bool = False) -> TiltSeries:
    """Scale each projection so that all totals are equal.

    Parameters
    ----------
    ts : TiltSeries
        Background-subtracted projections [counts/pixel].
    target : "mean", "median" or float
        Common total [counts per projection]: the mean (default) or median of
        the current totals, or an explicit positive number.
    window : {"support", "image"}
        Sum over the common particle window (:func:`common_window`) or over the
        whole image (default, the earlier behaviour that the paper-data results
        were measured with).
    margin_px : int
        Dilation of the window [pixels].
    warn_rel : float
        Warn when a projection needs a correction larger than this relative
        amount (a projection cut by the field of view, or a failed background
        subtraction, also changes the total).
    beam_current : bool
        Declare the factors beam-current corrections of the measurement
        (metadata ``normalise_beam_current``): :func:`aetbench.methods.run_method`
        then applies them to the raw projections that position refinement fits
        too.  Off by default: with a stable current the factors only carry the
        shot noise of the totals.

    Returns
    -------
    TiltSeries
        Scaled images; metadata ``normalise_scale`` (factor per projection,
        dimensionless), ``normalise_total`` (the common total [counts]) and
        ``normalise_window_px`` (pixels in the window).
    """
    if window not in ("support", "image"):
        raise AetbenchError(f"normalise_intensity: window must be 'support' or 'image', got {window!r}")
    img = np.asarray(ts.images, dtype=float)
    mask = common_window(img, margin_px=margin_px) if window == "support" else np.ones(img.shape[1:], bool)
    totals = img[:, mask].sum(axis=1)
    if not np.all(np.isfinite(totals)) or np.any(totals <= 0):
        k = int(np.argmin(np.where(np.isfinite(totals), totals, -np.inf)))
        raise AetbenchError(f"normalise_intensity: projection {k} has total intensity {totals[k]:.4g} counts; "
                            "all totals must be finite and > 0 (subtract the background first?)")
    if isinstance(target, str):
        if target not in ("mean", "median"):
            raise AetbenchError(f"normalise_intensity: target must be 'mean', 'median' or a positive total [counts], got {target!r}")
        goal = float(np.mean(totals) if target == "mean" else np.median(totals))
    else:
        goal = float(target)
        if not (np.isfinite(goal) and goal > 0):
            raise AetbenchError(f"normalise_intensity: target total must be > 0 counts, got {target!r}")
    scale = goal / totals
    if np.isfinite(warn_rel) and np.any(np.abs(scale - 1) > warn_rel):
        k = int(np.argmax(np.abs(scale - 1)))
        warnings.warn(f"normalise_intensity: projection {k} scaled by {scale[k]:.3f} (> ±{warn_rel:.0%}); "
                      "check its background or field of view", stacklevel=2)
    return ts.with_images(img * scale[:, None, None], normalise_scale=[float(s) for s in scale],
                          normalise_total=goal, normalise_window_px=int(mask.sum()),
                          normalise_beam_current=bool(beam_current))
