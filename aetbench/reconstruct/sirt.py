"""SIRT: Simultaneous Iterative Reconstruction Technique (Gilbert, 1972).

With the projector pair ``A``, ``Aᵀ`` of :mod:`aetbench.reconstruct.projector`::

    x ← x + λ · C Aᵀ R (b − A x),   R = 1 / (A 1) (row sums),  C = 1 / (Aᵀ 1) (column sums)

Pixels no voxel reaches and voxels no pixel sees get weight 0.
"""
from __future__ import annotations

import time

import numpy as np

from ..errors import AetbenchError
from ..types import TiltSeries, Volume
from .resire import (check_positive_int, check_tilt_series, default_volume_shape, iteration_range,
                      make_projector, residual_r_factor)

__all__ = ["sirt"]


def _safe_inverse(a: np.ndarray) -> np.ndarray:
    out = np.zeros_like(a, dtype=np.float32)
    nz = a > 1e-6
    out[nz] = 1.0 / a[nz]
    return out


def sirt(ts: TiltSeries, *, iterations: int = 150, relaxation: float = 1.0, positivity: bool = True,
         volume_shape=None, progress: bool = False) -> Volume:
    """Reconstruct a volume from a tilt series with SIRT.

    Parameters
    ----------
    ts : TiltSeries
        Images (n, nx, ny) in linear units, Euler angles [deg], pixel size [Å].
    iterations : int
        Number of SIRT sweeps (≥ 1).
    relaxation : float
        Relaxation λ in (0, 2); 1.0 is the classic choice.
    positivity : bool
        Clip negative voxels to zero after every sweep.
    volume_shape : tuple of 3 int, optional
        ``(nx, ny, nz)``; default ``(nx, ny, nx)``.
    progress : bool
        Show a tqdm progress bar.

    Returns
    -------
    Volume
        float32 ``[ix, iy, iz]``, ``voxel_size = ts.pixel_size`` [Å];
        ``metadata["r_factor"]`` = ``Σ|A x − b| / Σ|b|`` after each sweep.
    """
    b = check_tilt_series(ts)
    iterations = check_positive_int(iterations, "iterations")
    if not (np.isfinite(relaxation) and 0 < relaxation < 2):
        raise AetbenchError(f"relaxation: expected a SIRT relaxation factor in (0, 2), got {relaxation!r}")
    vs = default_volume_shape(ts, volume_shape)
    proj = make_projector(ts, vs)
    t0 = time.perf_counter()
    row = _safe_inverse(proj.forward_native(proj.to_native(np.ones(vs, dtype=np.float32))))
    col = _safe_inverse(proj.back_native(np.ones(proj.projections_shape, dtype=np.float32)))
    col *= np.float32(relaxation)
    b_abs_sum = float(np.abs(b).sum(dtype=np.float64))
    x = np.zeros_like(col)  # native layout of the projector
    resid = b.copy()  # b − A x
    history: list[float] = []
    for _ in iteration_range(iterations, progress, "SIRT"):
        resid *= row
        upd = proj.back_native(resid)
        upd *= col
        x += upd
        if positivity:
            np.maximum(x, 0.0, out=x)
        resid = b - proj.forward_native(x)
        history.append(residual_r_factor(resid, b_abs_sum))
    x = proj.from_native(x)
    meta = {"method": "sirt", "iterations": iterations, "relaxation": float(relaxation),
            "positivity": bool(positivity), "r_factor": history, "single_axis_projector": proj.single_axis,
            "seconds": time.perf_counter() - t0}
    return Volume(x, ts.pixel_size, meta)
