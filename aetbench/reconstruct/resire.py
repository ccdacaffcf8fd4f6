"""RESIRE: REal Space Iterative REconstruction (Pham et al., 2023; Liao et al., 2026).

Gradient descent on ``ε(x) = ½ Σ_k ‖A_k x − b_k‖²`` with the real-space
projector pair of :mod:`aetbench.reconstruct.projector`::

    x ← max(0, x − t · Σ_k A_kᵀ (A_k x − b_k)),     t = step / (n_proj · n_x)

The normalisation ``1 / (n_proj · n_x)`` (number of projections × the
projection length n_x, the images' first axis) is the one of the authors'
RESIRE code (``dt = step_size / Num_pj / dimx`` with ``dimx`` the projections'
first dimension, also for a widened, non-cubic extended-object volume); since
``‖AᵀA‖ ≲ √2 · n_proj · n_z`` for the bilinear projector, ``step = 1`` (the
paper's default) is stable.  No support constraint is applied.
"""
from __future__ import annotations

import time

import numpy as np

from ..io.files import AetbenchError
from ..types import TiltSeries, Volume
from .projector import Projector

__all__ = ["resire", "check_tilt_series", "default_volume_shape", "make_projector", "r_factor",
           "residual_r_factor", "iteration_range"]


# ---------------------------------------------------------------- helpers shared with sirt.py and fbp.py
def check_tilt_series(ts) -> np.ndarray:
    """Validate ``ts`` and return its images as contiguous float32 (n, nx, ny)."""
    if not isinstance(ts, TiltSeries):
        raise AetbenchError(f"tilt series: expected an aetbench TiltSeries, got {type(ts).__name__}")
    img = np.asarray(ts.images)
    if not np.issubdtype(img.dtype, np.number) or not np.all(np.isfinite(img)):
        raise AetbenchError("tilt series images: expected finite numbers (n, nx, ny) in linear intensity units")
    return np.ascontiguousarray(img, dtype=np.float32)


def default_volume_shape(ts: TiltSeries, volume_shape=None) -> tuple[int, int, int]:
    """``volume_shape`` validated, or ``(nx, ny, nx)`` for images (n, nx, ny)."""
    nx, ny = ts.shape
    if volume_shape is None:
        return (nx, ny, nx)
    try:
        vs = tuple(int(s) for s in volume_shape)
    except (TypeError, ValueError):
        vs = ()
    if len(vs) != 3 or min(vs) < 1:
        raise AetbenchError(f"volume_shape: expected 3 positive voxel counts (nx, ny, nz), got {volume_shape!r}")
    return vs


def make_projector(ts: TiltSeries, volume_shape) -> Projector:
    """Projector of ``ts``'s nominal geometry (single-axis fast path when possible)."""
    return Projector(volume_shape, ts.angles, image_shape=ts.shape)


def r_factor(calc: np.ndarray, meas: np.ndarray) -> float:
    """R-factor ``Σ|calc − meas| / Σ|meas|`` (dimensionless), summed in float64."""
    den = float(np.abs(meas).sum(dtype=np.float64))
    num = float(np.abs(calc - meas).sum(dtype=np.float64))
    return num / den if den > 0 else float("nan")


def residual_r_factor(resid: np.ndarray, meas_abs_sum: float) -> float:
    """R-factor from the residual ``calc − meas`` and the precomputed ``Σ|meas|``."""
    return float(np.abs(resid).sum(dtype=np.float64)) / meas_abs_sum if meas_abs_sum > 0 else float("nan")


def check_positive_int(value, name: str) -> int:
    """``value`` as an int ≥ 1 or an AetbenchError naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise AetbenchError(f"{name}: expected a positive integer number of iterations, got {value!r}")
    return int(value)


def iteration_range(n: int, progress: bool, desc: str):
    """``range(n)``, wrapped in a tqdm bar when ``progress``."""
    if progress:
        from tqdm.auto import tqdm

        return tqdm(range(n), desc=desc, unit="it")
    return range(n)


# --------------------------------------------------------------------------------------------- RESIRE


def resire(ts: TiltSeries, *, iterations: int = 200, step: float = 1.0, positivity: bool = True,
           volume_shape=None, initial=None, progress: bool = False) -> Volume:
    """Reconstruct a volume from a tilt series with RESIRE.

    Parameters
    ----------
    ts : TiltSeries
        Images (n, nx, ny) in linear units, Euler angles [deg], pixel size [Å].
    iterations : int
        Number of gradient steps (≥ 1).
    step : float
        Step size in units of ``1 / (n_proj · n_z)``; 1.0 is the paper's
        default, values up to ~1.4 are stable.
    positivity : bool
        Clip negative voxels to zero after every step.
    volume_shape : tuple of 3 int, optional
        ``(nx, ny, nz)``; default ``(nx, ny, nx)`` from the image size.
    initial : ndarray or Volume, optional
        Starting volume of shape ``volume_shape`` (default zeros).
    progress : bool
        Show a tqdm progress bar over iterations.

    Returns
    -------
    Volume
        float32 data ``[ix, iy, iz]`` (image units per voxel: a projection is
        the sum of voxels along the beam), ``voxel_size = ts.pixel_size`` [Å];
        ``metadata["r_factor"]`` holds ``Σ|A x − b| / Σ|b|`` after each
        iteration (list of floats).
    """
    b = check_tilt_series(ts)
    iterations = check_positive_int(iterations, "iterations")
    if not (np.isfinite(step) and step > 0):
        raise AetbenchError(f"step: expected a positive step size (units of 1/(n_proj·n_z)), got {step!r}")
    vs = default_volume_shape(ts, volume_shape)
    proj = make_projector(ts, vs)
    if initial is None:
        x = np.zeros(vs, dtype=np.float32)
    else:
        x0 = initial.data if isinstance(initial, Volume) else np.asarray(initial)
        if x0.shape != vs or not np.all(np.isfinite(x0)):
            raise AetbenchError(f"initial: expected a finite volume of shape {vs} [ix, iy, iz], got shape {x0.shape}")
        x = x0
    b_abs_sum = float(np.abs(b).sum(dtype=np.float64))
    x = proj.to_native(x)  # a float32 copy in the projector's layout
    dt = np.float32(step / (len(proj) * b.shape[1]))  # projection length, not the volume's z size
    t0 = time.perf_counter()
    resid = proj.forward_native(x) - b
    history: list[float] = []
    for _ in iteration_range(iterations, progress, "RESIRE"):
        grad = proj.back_native(resid)
        grad *= dt
        x -= grad
        if positivity:
            np.maximum(x, 0.0, out=x)
        resid = proj.forward_native(x)
        resid -= b
        history.append(residual_r_factor(resid, b_abs_sum))
    x = proj.from_native(x)
    meta = {"method": "resire", "iterations": iterations, "step": float(step), "positivity": bool(positivity),
            "r_factor": history, "single_axis_projector": proj.single_axis,
            "seconds": time.perf_counter() - t0}
    return Volume(x, ts.pixel_size, meta)
