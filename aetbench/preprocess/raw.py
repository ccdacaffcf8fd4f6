"""The measured projections as a fit to the counts needs them (position refinement, :mod:`aetbench.trace.refine`).

Denoising smooths atoms and would bias fitted widths and positions, so a fit to the projections uses the
*measured* series with only its background subtracted, put on the geometry and intensity scale of the
pre-processed series the volume was built from: the beam-current factors a normalisation found (when it declared
them beam-current corrections) and the alignment shifts.
"""
from __future__ import annotations

import numpy as np

from ..types import TiltSeries
from .align import shift_images
from .background import subtract_background

__all__ = ["measured_projections", "beam_current_scaled"]


def beam_current_scaled(raw: TiltSeries, ts: TiltSeries) -> TiltSeries:
    """``raw`` times the per-projection beam-current factors of ``ts`` (metadata ``normalise_scale``, applied only
    when ``normalise_beam_current`` declares them beam-current corrections); ``raw`` itself otherwise."""
    scale = ts.metadata.get("normalise_scale")
    if scale is None or not ts.metadata.get("normalise_beam_current", False):
        return raw
    return raw.with_images(np.asarray(raw.images, dtype=float) * np.asarray(scale, dtype=float)[:, None, None])


def measured_projections(raw: TiltSeries, ts: TiltSeries, *, beam_current: bool = True) -> TiltSeries:
    """The measured series ``raw``, background-subtracted, on the scale and alignment of the pre-processed ``ts``.

    Parameters
    ----------
    raw : TiltSeries
        The measured projections before pre-processing [counts/pixel].
    ts : TiltSeries
        The pre-processed series the volume was reconstructed from (its metadata carries the alignment shifts
        ``align_shifts_px`` [pixels] and the normalisation's ``normalise_scale``).
    beam_current : bool
        Apply :func:`beam_current_scaled` first (False when ``raw`` is already scaled).

    Returns
    -------
    TiltSeries
        ``subtract_background`` of the (scaled) measured series, shifted by ``ts``'s alignment shifts.
    """
    if beam_current:
        raw = beam_current_scaled(raw, ts)
    out = subtract_background(raw)
    shifts = ts.metadata.get("align_shifts_px")
    if shifts is not None:
        out = out.with_images(shift_images(out.images, np.asarray(shifts, float)))
    return out
