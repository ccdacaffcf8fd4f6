"""Intensity normalisation across the tilt series.

In an ideal ADF-STEM tilt series the background-free total intensity of every
projection is the same (the projected mass does not depend on the view);
probe-current drift and scan distortions break that.  Each projection is scaled
so that its total equals the mean total of the series.
"""
from __future__ import annotations

import numpy as np

from ..io.files import AetbenchError
from ..types import TiltSeries

__all__ = ["normalise_intensity"]


def normalise_intensity(ts: TiltSeries, *, target: str | float = "mean") -> TiltSeries:
    """Scale each projection so that all totals are equal.

    Parameters
    ----------
    ts : TiltSeries
        Background-subtracted projections [counts/pixel].
    target : "mean", "median" or float
        Common total [counts per projection]: the mean (default) or median of
        the current totals, or an explicit positive number.

    Returns
    -------
    TiltSeries
        Scaled images; metadata ``normalise_scale`` (factor per projection,
        dimensionless) and ``normalise_total`` (the common total [counts]).
    """
    img = np.asarray(ts.images, dtype=float)
    totals = img.sum(axis=(1, 2))
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
    return ts.with_images(img * scale[:, None, None], normalise_scale=[float(s) for s in scale],
                          normalise_total=goal)
