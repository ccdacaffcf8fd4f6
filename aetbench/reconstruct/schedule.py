"""Step-size schedules for RESIRE: the two-step Chebyshev cycle behind ``resire(accelerate="cyclic")``.

RESIRE's plain iteration ``x ← max(0, x − h·dt₀·Aᵀ(A x − b))`` with ``dt₀ = 1 / (n_proj · n_x)`` and the paper's
``h = 1`` is the explicit Euler discretisation of the projected gradient flow ``dx/dτ = −Aᵀ(A x − b)``, ``x ≥ 0``,
and 1000 such steps stop that flow at ``τ = 1000 dt₀``: the early stop is what regularises the reconstruction
(more steps fit the noise).  Reaching the same ``τ`` in fewer iterations needs longer steps, but a constant step
is stable only while ``h · μ < 2`` for the largest eigenvalue ``μ`` of ``dt₀·AᵀA`` (about 0.96 for 60 tilts over
180°: the smooth, box-filling mode of each slice), i.e. ``h < 2.1``.

Alternating two steps ``h_long, h_short`` (Richardson's method with Chebyshev parameters, Young 1954; "scheduled
relaxation", Yang & Mittal 2014) multiplies each eigen-component by ``p(μ) = (1 − h_long μ)(1 − h_short μ)`` per
cycle.  For the slow components, the noise the early stop holds back, ``p(μ) ≈ 1 − (h_long + h_short) μ``: the
same flow time as ``h_long + h_short`` plain steps, so the cycle follows the paper's path, only faster.  The stiff
components stay stable as long as ``|p| < 1`` on ``(0, μ_max]``.  :func:`two_step_cycle` picks, for a given mean
step, the pair whose ``p`` equioscillates between its minimum and ``μ_max`` (``p_min = −ρ``, ``p(μ_max) = ρ``),
which makes ``ρ`` — the contraction of the stiffest components per cycle — as small as possible.

Examples
--------
>>> long, short, rho = two_step_cycle(10 / 3, 0.9566)
>>> round(long, 3), round(short, 3), round(rho, 3)
(5.453, 1.214, 0.679)
"""
from __future__ import annotations

import math

import numpy as np

from ..errors import AetbenchError
from .projector import Projector, is_single_axis

__all__ = ["normal_eigenvalue_max", "two_step_cycle", "max_cycle_speedup", "RHO_MAX"]

#: the largest accepted per-cycle factor ρ of the stiffest components (a contraction of at least 10 % per cycle)
RHO_MAX = 0.9


def normal_eigenvalue_max(angles_deg, volume_shape, image_shape, n_length: int, *, iterations: int = 60,
                          rtol: float = 1e-6, projector: Projector | None = None) -> float:
    """Largest eigenvalue of ``dt₀ · AᵀA`` (``dt₀ = 1 / (n_proj · n_length)``, RESIRE's step unit) by power iteration.

    For tilts about y the operator is independent in every y plane, so the eigenvalue is computed on one x–z
    slab of the volume (``ny = 1``): milliseconds.  Any other Euler angles couple neighbouring planes (a voxel's
    footprint splits between two image rows, and a one-voxel slab would see about half the eigenvalue), so the
    power iteration then runs on the whole volume with ``projector`` (default: the series' own, ``"auto"``), at
    the cost of one RESIRE iteration per power step (about 12 for the default tolerance).

    Parameters
    ----------
    angles_deg : array (n, 3)
        Euler angles [deg] of the projections.
    volume_shape : tuple of 3 int
        ``(nx, ny, nz)`` voxels of the reconstruction.
    image_shape : tuple of 2 int
        ``(mx, my)`` pixels of the projections.
    n_length : int
        The step normalisation's projection length (RESIRE: the images' first axis).
    projector : Projector, optional
        The reconstruction's projector (used for non-single-axis geometries).

    Returns
    -------
    float
        ``μ_max`` (dimensionless).

    Examples
    --------
    >>> angles = [[0.0, t, 0.0] for t in range(0, 180, 3)]
    >>> round(normal_eigenvalue_max(angles, (32, 32, 32), (32, 32), 32), 2)
    0.95
    """
    nx, ny, nz = (int(s) for s in volume_shape)
    if is_single_axis(angles_deg):
        P = Projector((nx, 1, nz), angles_deg, image_shape=image_shape, method="general")
    else:
        P = projector if projector is not None else Projector((nx, ny, nz), angles_deg, image_shape=image_shape)
        rtol = max(rtol, 1e-4)
    scale = np.float32(1.0 / (len(P) * int(n_length)))
    # in the kernels' native layout with preallocated buffers, like RESIRE's own loop (no transposes or copies)
    v = P.to_native(np.ones(P.volume_shape, np.float32))  # the top eigenvector is smooth and positive: few steps
    v /= np.linalg.norm(v)
    img = np.empty(P.projections_shape, np.float32)
    w, prod = np.empty_like(v), np.empty_like(v)
    mu = 0.0
    for _ in range(iterations):
        P.back_native(P.forward_native(v, out=img), out=w)
        w *= scale
        mu_new = float(np.multiply(v, w, out=prod).sum(dtype=np.float64))  # Rayleigh quotient, ‖v‖ = 1
        norm = float(np.linalg.norm(w))
        if norm == 0.0:
            raise AetbenchError("geometry: the projections see no voxel of the volume (no overlap of beam and volume)")
        np.multiply(w, np.float32(1.0 / norm), out=v)
        if abs(mu_new - mu) <= rtol * mu_new:
            return mu_new
        mu = mu_new
    return mu


def _pair(mean: float, mu: float) -> tuple[float, float, float]:
    """(long, short, ρ) of the equioscillating two-step cycle with mean step ``mean`` for ``μ_max = mu``."""
    s, L = float(mean), float(mu)
    # p(μ) = 1 − 2 s μ + P μ²;  p(s / P) = −ρ (the minimum) and p(L) = ρ  →  L² P² + (2 − 2 s L) P − s² = 0
    c = 2.0 - 2.0 * s * L
    prod = (-c + math.sqrt(c * c + 4.0 * L * L * s * s)) / (2.0 * L * L)
    if s * s <= prod or s / prod > L:  # no pair with its minimum inside (0, μ_max]: short steps, s μ_max ≲ 1,
        return s, s, (1.0 - s * L) ** 2  # where the constant step itself is stable
    d = math.sqrt(s * s - prod)
    return s + d, s - d, 1.0 - 2.0 * s * L + prod * L * L


def two_step_cycle(mean_step: float, mu_max: float) -> tuple[float, float, float]:
    """The two steps of the Chebyshev cycle with mean ``mean_step`` for the largest eigenvalue ``mu_max``.

    Parameters
    ----------
    mean_step : float
        ``(h_long + h_short) / 2`` in units of ``dt₀`` (the paper's step is 1); the cycle covers the flow time of
        ``2 · mean_step`` plain steps.
    mu_max : float
        Largest eigenvalue of ``dt₀ · AᵀA`` (:func:`normal_eigenvalue_max`).

    Returns
    -------
    (h_long, h_short, rho) : tuple of float
        The steps [dt₀] and ``ρ = max |p|`` over the stiff components (``ρ ≤`` :data:`RHO_MAX`).

    Raises
    ------
    AetbenchError
        When no stable pair with ``ρ ≤ RHO_MAX`` has this mean (the message gives the largest that has).
    """
    if not (np.isfinite(mean_step) and mean_step > 0):
        raise AetbenchError(f"speedup: expected a positive mean step (units of the paper's step), got {mean_step!r}")
    if not (np.isfinite(mu_max) and mu_max > 0):
        raise AetbenchError(f"geometry: expected a positive largest eigenvalue of the normal operator, got {mu_max!r}")
    long, short, rho = _pair(mean_step, mu_max)
    if rho > RHO_MAX:
        raise AetbenchError(f"speedup: a mean step of {mean_step:g} × the paper's is not stable for this geometry "
                            f"(largest eigenvalue {mu_max:.3f} of dt·AᵀA; the two-step cycle allows at most "
                            f"{max_cycle_speedup(mu_max):.2f})")
    return long, short, rho


def max_cycle_speedup(mu_max: float) -> float:
    """The largest mean step [dt₀] whose two-step cycle has ``ρ ≤ RHO_MAX`` for ``μ_max = mu_max``."""
    lo, hi = 1e-6, 2.0 / mu_max
    while _pair(hi, mu_max)[2] <= RHO_MAX:
        lo, hi = hi, 2.0 * hi
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if _pair(mid, mu_max)[2] <= RHO_MAX else (lo, mid)
    return lo


def cycle_multipliers(iterations: int, long: float, short: float) -> np.ndarray:
    """The step [dt₀] of each of ``iterations`` iterations: long and short alternating, the last one short.

    An odd count begins with a short step (the stiffest components are damped before the first long step
    either way), so its flow time is ``(iterations − 1) × mean + short``, a little under ``iterations × mean``.

    Examples
    --------
    >>> cycle_multipliers(5, 4.0, 1.0).tolist()
    [1.0, 4.0, 1.0, 4.0, 1.0]
    """
    n = int(iterations)
    k = np.arange(n)
    return np.where((n - 1 - k) % 2 == 0, short, long).astype(np.float64)
