"""Outside reconstruction functions, in both forms aetbench accepts.

``sharpened_fbp`` keeps a plain signature (``ts, **params -> Volume``): aetbench adapts it by its declared
parameters (``progress``, ``volume_shape`` from the extended-object wrapper).  ``sharpened_fbp_stage`` is written
for the stage contract ``(data, ctx, **params) -> data`` and reads what it needs from ``ctx``.

Each call appends one line to the file named by ``AETBENCH_OUTSIDE_CALLS`` (if set), so tests can count runs.
"""
from __future__ import annotations

import os
from dataclasses import replace

import numpy as np
from scipy.ndimage import gaussian_filter

from aetbench.reconstruct.fbp import fbp


def _log(what: str) -> None:
    path = os.environ.get("AETBENCH_OUTSIDE_CALLS")
    if path:
        with open(path, "a") as f:
            f.write(what + "\n")


def sharpened_fbp(ts, *, filter: str = "hann", sharpen: float = 0.0, blur_A: float = 0.6, volume_shape=None,
                  progress: bool = False):
    """Filtered back-projection, then unsharp masking: ``v - sharpen * G(blur_A) * v`` (``sharpen`` = 0: plain FBP).

    Parameters
    ----------
    ts : TiltSeries
    filter : str
        FBP apodisation (:func:`aetbench.reconstruct.fbp.fbp_filter`).
    sharpen : float
        Weight of the subtracted blurred volume (0 … 1).
    blur_A : float
        Standard deviation [Å] of the Gaussian blur.
    """
    _log("sharpened_fbp")
    vol = fbp(ts, filter=filter, volume_shape=volume_shape, progress=progress)
    if sharpen == 0.0:
        return vol
    blurred = gaussian_filter(vol.data, blur_A / vol.voxel_size)
    return replace(vol, data=np.asarray(vol.data - sharpen * blurred, dtype=np.float32))


def sharpened_fbp_stage(ts, ctx, *, sharpen: float = 0.0, blur_A: float = 0.6):
    """The same, on the stage contract: ``ctx.progress`` and ``ctx.records`` come from the runner."""
    ctx.records["outside_sharpen"] = sharpen
    return sharpened_fbp(ts, filter="hann", sharpen=sharpen, blur_A=blur_A, progress=ctx.progress)
