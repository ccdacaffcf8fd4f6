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

The paper's 1000 steps are an early stop of the projected gradient flow (more steps fit the noise).
``accelerate="cyclic"`` follows the same flow with two alternating step sizes
(:mod:`aetbench.reconstruct.schedule`), the same reconstruction in about 3/10 of the iterations;
``"nesterov"`` and ``"subsets"`` reach the same R-factor sooner along other paths.
"""
from __future__ import annotations

import time

import numpy as np

from ..errors import AetbenchError
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


def make_projector(ts: TiltSeries, volume_shape, method: str = "auto") -> Projector:
    """Projector of ``ts``'s nominal geometry (single-axis fast path when possible, else shear-warp; see
    :class:`~aetbench.reconstruct.projector.Projector` for ``method``)."""
    return Projector(volume_shape, ts.angles, image_shape=ts.shape, method=method)


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


_ACCELERATE = ("none", "nesterov", "subsets", "cyclic")


def resire(ts: TiltSeries, *, iterations: int = 200, step: float = 1.0, positivity: bool = True,
           volume_shape=None, initial=None, progress: bool = False, accelerate: str = "none",
           subsets: int = 4, subset_iterations: int | None = None, device: str | None = None,
           projector: str = "auto", speedup: float = 10.0 / 3.0) -> Volume:
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
    accelerate : {"none", "nesterov", "subsets", "cyclic"}
        ``"none"``: the paper's plain (projected) gradient descent.
        ``"cyclic"``: the same iteration with two step sizes alternating, a long and a short one whose mean is
        ``speedup × step`` (:mod:`aetbench.reconstruct.schedule`: the Chebyshev pair for the largest eigenvalue
        of the normal operator, measured on the geometry; the last iteration is a short step).  The slow
        components, the noise an early stop holds back, advance as under ``speedup`` times as many plain
        steps, so ``n`` iterations follow the paper's path to where ``speedup · n`` plain steps end, at the
        same cost per iteration.  On the paper's aSi208 projections 300 iterations at the default speedup
        (10/3) reach the R-factor of the paper's 1000 plain steps at iteration 299 at all three doses, with a
        volume 0.13 % from theirs (990 or 1010 plain steps: 0.22 %; Nesterov 90: 7.3 %); through liao2026,
        1.6e4: 9.750 against 9.749 pm, 1.6e5: 3.4431 against 3.4435 pm, asi20k 8.0e3: 99.985 % / 12.667 pm
        against 12.673 pm; at 8.0e3 both move by several false positives under a 0.1 % change of their step
        (README, "Accelerated RESIRE", with ten noise realisations: no difference beyond the paper method's
        own at 990 iterations).
        ``"nesterov"``: FISTA momentum (Beck & Teboulle 2009) on the same
        step, ``y = x_k + (t_{k-1} − 1)/t_k · (x_k − x_{k−1})``, gradient taken
        at ``y``, with the function-value restart of O'Donoghue & Candès
        (2015): momentum is reset whenever ``‖A x − b‖²`` rises, which keeps
        it monotone at ``step`` up to the plain method's stability limit.
        The projection of ``y`` is the linear combination of those of the
        iterates, so one forward and one back projection per iteration, as
        plain RESIRE.  It reaches the R-factor of the paper's 1000 plain
        iterations in 83-89 (aSi208 at three doses, the 20k-atom a-Si
        analogue at 8.0e3); through liao2026 the rates and precisions then
        equal those after 1000 plain steps (aSi208 8.0e3: 100 % / 17.42 pm
        against 100 % / 17.46 pm; asi20k 99.985 % / 12.672 pm against
        12.673 pm), but it fits the noise sooner: more false positives at the
        lowest dose (33 against 19, 3 against 0).
        ``"subsets"``: ordered subsets (Hudson & Larkin 1994): an iteration
        sweeps ``subsets`` interleaved groups of projections (``k ≡ s mod
        subsets``), each a full RESIRE step on its group with the step
        normalised by the group's size, so one iteration moves about as far
        as ``subsets`` plain ones at the cost of one.  With a constant step
        OS ends on a limit cycle next to the least-squares path (Ahn &
        Fessler 2003), so the second half of the iterations are plain steps
        over all projections, which settle it.  The ``r_factor`` entry of a
        subset iteration sums the groups' residuals, each taken just before
        that group's update.  Measured against 200 plain iterations
        (liao2026's settings): on the paper's aSi208 data 4 subsets × 50
        iterations (25 + 25) scored as well or better at a quarter of the
        cost (8.0e3: 98.56 % / 24.21 pm against 98.08 % / 25.88 pm), its
        R-factor 0.2–0.6 % higher; on the 20k-atom a-Si analogue its R-factor
        stayed 9–32 % higher and the rate 0.05–0.22 points lower, at better
        precision.  Sweeping longer (50 + 10 iterations) reaches the plain
        R-factor but fits the noise (aSi208 8.0e3: 85.10 %).
    speedup : float
        Mean step of the ``"cyclic"`` pair in units of ``step`` (default 10/3: 300 iterations for the paper's
        1000); at most about 3.9 for a tilt series over 180° (a one-line error names the limit).
    subsets : int
        Number of ordered subsets (``accelerate="subsets"``), 1 ≤ subsets ≤ n_proj.
    subset_iterations : int, optional
        How many of the ``iterations`` sweep the subsets (``accelerate="subsets"``); the rest are plain steps.
        Default: the first half, ``iterations − iterations // 2``.
    device : {"cpu", "gpu"}, optional
        ``"gpu"`` runs the iterations on a CUDA device
        (:mod:`aetbench.reconstruct.gpu`, general projector, float32 —
        equal to the CPU result to float32 round-off); default: the device
        the pipeline set with ``--device`` (:func:`~.gpu.default_device`).
    projector : {"auto", "general", "shear_warp", "single_axis"}
        The CPU projector pair (:class:`~aetbench.reconstruct.projector.Projector`): ``"auto"`` takes the
        single-axis kernels for tilts about y and the shear-warp kernels for any other Euler angles;
        ``"general"`` splats every voxel at its own footprint (the GPU's operator, several times slower on
        the CPU).  The GPU always uses the general operator.

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
    if accelerate not in _ACCELERATE:
        raise AetbenchError(f"accelerate: expected one of {', '.join(_ACCELERATE)}, got {accelerate!r}")
    vs = default_volume_shape(ts, volume_shape)
    proj = make_projector(ts, vs, projector)
    if initial is None:
        x = np.zeros(vs, dtype=np.float32)
    else:
        x0 = initial.data if isinstance(initial, Volume) else np.asarray(initial)
        if x0.shape != vs or not np.all(np.isfinite(x0)):
            raise AetbenchError(f"initial: expected a finite volume of shape {vs} [ix, iy, iz], got shape {x0.shape}")
        x = x0
    b_abs_sum = float(np.abs(b).sum(dtype=np.float64))
    dt0 = 1.0 / (len(proj) * b.shape[1])  # projection length, not the volume's z size
    dt = np.float32(step * dt0)
    if device is None:
        from .gpu import default_device

        device = default_device()
    if device not in ("cpu", "gpu"):
        raise AetbenchError(f"device: expected 'cpu' or 'gpu', got {device!r}")
    dts, cycle = None, {}  # per-iteration steps of the cyclic schedule (None: the constant dt)
    if accelerate == "cyclic":  # the largest eigenvalue of the operator that will run (the GPU's is the general one)
        op = make_projector(ts, vs, "general") if device == "gpu" and proj.method != "general" else proj
        steps, cycle = _cyclic_schedule(ts, vs, b.shape[1], iterations, step, speedup, op)
        dts = (steps * dt0).astype(np.float32)
    if device == "gpu":
        from .gpu import resire_gpu

        if accelerate == "subsets":
            raise AetbenchError("accelerate: 'subsets' runs on the CPU only; use 'nesterov' or 'none' with device gpu")
        if projector not in ("auto", "general"):
            raise AetbenchError(f"projector: the GPU runs the general projector only, got {projector!r}")
        t0 = time.perf_counter()
        xg, history, restarts = resire_gpu(b, ts.angles, vs, np.asarray(x, dtype=np.float32), iterations=iterations,
                                           dt=float(dt), positivity=positivity, accelerate=accelerate,
                                           b_abs_sum=b_abs_sum, iters=iteration_range(iterations, progress, "RESIRE"),
                                           dts=dts)
        meta = {"method": "resire", "iterations": iterations, "step": float(step), "positivity": bool(positivity),
                "r_factor": history, "single_axis_projector": False, "projector": "general", "accelerate": accelerate,
                "device": "gpu", **cycle,
                "seconds": time.perf_counter() - t0}
        if accelerate == "nesterov":
            meta["restarts"] = restarts
        return Volume(xg, ts.pixel_size, meta)
    x = proj.to_native(x)  # a float32 copy in the projector's layout
    t0 = time.perf_counter()
    # every array is allocated once; the iterations work in place
    resid = proj.forward_native(x)  # A x, then A x − b
    resid -= b
    grad = np.empty_like(x)
    absbuf = np.empty_like(resid)
    history: list[float] = []
    its = iteration_range(iterations, progress, "RESIRE")
    if accelerate in ("none", "cyclic"):
        for i in its:
            num = _plain_step(proj, b, x, resid, grad, absbuf, dt if dts is None else dts[i], positivity)
            history.append(num / b_abs_sum if b_abs_sum > 0 else float("nan"))
    elif accelerate == "subsets":
        n_os = iterations - iterations // 2 if subset_iterations is None else int(subset_iterations)
        if not 0 <= n_os <= iterations:
            raise AetbenchError(f"subset_iterations: expected 0 ≤ subset_iterations ≤ iterations ({iterations}), "
                                f"got {subset_iterations!r}")
        history = _resire_subsets(ts, vs, b, x, positivity, step, subsets, its, b_abs_sum, proj, resid, grad,
                                  absbuf, dt, n_os)
        restarts = 0
    else:
        history, restarts = _resire_nesterov(proj, b, x, resid, grad, absbuf, dt, positivity, its, b_abs_sum)
    x = proj.from_native(x)
    meta = {"method": "resire", "iterations": iterations, "step": float(step), "positivity": bool(positivity),
            "r_factor": history, "single_axis_projector": proj.single_axis, "projector": proj.method,
            "accelerate": accelerate, **cycle, "seconds": time.perf_counter() - t0}
    if accelerate == "nesterov":
        meta["restarts"] = restarts
    if accelerate == "subsets":
        meta["subsets"] = int(subsets)
    return Volume(x, ts.pixel_size, meta)


def _cyclic_schedule(ts, vs, n_length, iterations, step, speedup, proj):
    """Per-iteration steps [dt₀] of ``accelerate="cyclic"`` and the metadata that records them."""
    from .schedule import cycle_multipliers, normal_eigenvalue_max, two_step_cycle

    if isinstance(speedup, bool) or not isinstance(speedup, (int, float, np.integer, np.floating)) \
            or not (np.isfinite(speedup) and speedup >= 1.0):
        raise AetbenchError(f"speedup: expected a mean step of at least 1 × step (e.g. 10/3), got {speedup!r}")
    t0 = time.perf_counter()
    mu = normal_eigenvalue_max(ts.angles, vs, ts.shape, n_length, projector=proj)
    long, short, rho = two_step_cycle(float(speedup) * step, mu)
    steps = cycle_multipliers(iterations, long, short)
    return steps, {"speedup": float(speedup), "cycle_steps": [long, short], "cycle_rho": rho,
                   "normal_eigenvalue_max": mu, "flow_steps": float(steps.sum()),
                   "schedule_seconds": time.perf_counter() - t0}


def _plain_step(proj, b, x, resid, grad, absbuf, dt, positivity) -> float:
    """One RESIRE step in place: x ← max(x − dt Aᵀ(A x − b), 0), then ``resid`` = A x − b; returns Σ|A x − b|."""
    proj.back_native(resid, out=grad)
    grad *= dt
    x -= grad
    if positivity:
        np.maximum(x, 0.0, out=x)
    proj.forward_native(x, out=resid)
    resid -= b
    np.abs(resid, out=absbuf)
    return float(absbuf.sum(dtype=np.float64))


def _resire_subsets(ts, vs, b, x, positivity, step, subsets, its, b_abs_sum, proj, resid, grad, absbuf, dt,
                    n_os):
    """Ordered-subset RESIRE in place on ``x`` (native layout): ``n_os`` subset sweeps, then plain iterations;
    returns the R-factor history."""
    n = b.shape[0]
    S = check_positive_int(subsets, "subsets")
    if S > n:
        raise AetbenchError(f"subsets: expected at most the number of projections ({n}), got {S}")
    groups = [np.arange(s, n, S) for s in range(S)]
    projs = [Projector(vs, ts.angles[g], image_shape=ts.shape, method=proj.method) for g in groups]  # one layout
    bs = [np.ascontiguousarray(b[g]) for g in groups]
    res = [np.empty(bg.shape, np.float32) for bg in bs]
    dts = [np.float32(step / (len(g) * b.shape[1])) for g in groups]
    history: list[float] = []
    for i in its:
        if i < n_os:
            num = 0.0
            for P, bg, r, dt_s in zip(projs, bs, res, dts):
                P.forward_native(x, out=r)
                r -= bg
                num += float(np.abs(r).sum(dtype=np.float64))
                P.back_native(r, out=grad)
                grad *= dt_s
                x -= grad
                if positivity:
                    np.maximum(x, 0.0, out=x)
            if i == n_os - 1:  # the plain steps continue from A x − b of the current x
                proj.forward_native(x, out=resid)
                resid -= b
        else:
            num = _plain_step(proj, b, x, resid, grad, absbuf, dt, positivity)
        history.append(num / b_abs_sum if b_abs_sum > 0 else float("nan"))
    return history


def _resire_nesterov(proj, b, x, resid, grad, absbuf, dt, positivity, its, b_abs_sum):
    """FISTA iterations in place on ``x`` (native layout); ``resid`` = A x − b on entry.

    Returns the R-factor history and the number of momentum restarts.
    """
    y = x.copy()          # extrapolated point
    x_prev = x.copy()
    ry = resid.copy()     # A y − b
    ax_prev = resid + b   # A x_{k-1}
    ax = np.empty_like(resid)
    t = 1.0
    f_prev = float(np.dot(resid.ravel(), resid.ravel()))
    history: list[float] = []
    restarts = 0
    for _ in its:
        proj.back_native(ry, out=grad)
        grad *= dt
        np.subtract(y, grad, out=x)               # x_{k+1} = P(y − dt ∇f(y))
        if positivity:
            np.maximum(x, 0.0, out=x)
        proj.forward_native(x, out=ax)             # A x_{k+1}
        np.subtract(ax, b, out=resid)
        np.abs(resid, out=absbuf)
        history.append(float(absbuf.sum(dtype=np.float64)) / b_abs_sum if b_abs_sum > 0 else float("nan"))
        f = float(np.dot(resid.ravel(), resid.ravel()))
        if f > f_prev:                             # restart: drop the momentum
            t = 1.0
            restarts += 1
        f_prev = f
        t_next = 0.5 * (1.0 + np.sqrt(1.0 + 4.0 * t * t))
        beta = np.float32((t - 1.0) / t_next)
        t = t_next
        # y = x + β (x − x_prev),  A y − b = (A x − b) + β (A x − A x_prev)
        np.subtract(x, x_prev, out=y)
        y *= beta
        y += x
        np.subtract(ax, ax_prev, out=ry)
        ry *= beta
        ry += resid
        x_prev[...] = x
        ax_prev, ax = ax, ax_prev
    return history, restarts
