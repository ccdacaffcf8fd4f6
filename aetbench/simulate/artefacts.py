"""Experimental errors applied to a simulated tilt series, each recorded.

Every transform is seeded and writes exactly what it did under
``ts.metadata["truth"]`` (never read by the reconstruction pipeline), so a test
or a report can check what alignment / angle refinement had to undo:

* :func:`apply_shifts` — per-projection drift/misalignment ``shifts_A`` (n, 2)
  [Å]: the image content is moved by ``+shift`` along (x, y) (sub-pixel,
  periodic Fourier shift);
* :func:`apply_angle_errors` — the images stay those of the *true* angles,
  which move to ``truth["angles_deg"]``; ``ts.angles`` becomes the *nominal*
  angles (true + error) an experiment would record;
* :func:`apply_intensity_scaling` — a factor per projection ``intensity_scale``;
* :func:`random_defocus_errors` — the defocus error per projection [Å] to hand
  to :func:`aetbench.simulate.abtem_adf.simulate_adf` (``defocus_errors_A``),
  which records it itself.
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np

from ..errors import AetbenchError
from ..types import TiltSeries

__all__ = ["apply_shifts", "apply_angle_errors", "apply_intensity_scaling", "random_defocus_errors",
           "fourier_shift"]


def _rng(seed: int, tag: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([int(seed), tag]))


def _with_truth(ts: TiltSeries, **truth) -> dict:
    old = dict(ts.metadata.get("truth", {}))
    for k, v in truth.items():
        if k in old and k != "angles_deg":
            raise AetbenchError(f"artefacts: {k} already applied to this tilt series")
        old[k] = v
    return {**ts.metadata, "truth": old}


def _nonneg(name: str, value: float, unit: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not np.isfinite(value) or value < 0:
        raise AetbenchError(f"{name}: expected a number ≥ 0 [{unit}], got {value!r}")
    return float(value)


def fourier_shift(image: np.ndarray, shift_px) -> np.ndarray:
    """Shift a 2-D image by ``shift_px`` (sx, sy) pixels (periodic, sub-pixel, sum-preserving)."""
    n, m = image.shape
    fx = np.fft.fftfreq(n)[:, None]
    fy = np.fft.fftfreq(m)[None, :]
    phase = np.exp(-2j * np.pi * (fx * shift_px[0] + fy * shift_px[1]))
    return np.real(np.fft.ifft2(np.fft.fft2(image) * phase))


def apply_shifts(ts: TiltSeries, sigma_A: float, *, seed: int, shifts_A=None) -> TiltSeries:
    """Move each projection by a random (or given) shift [Å], recorded as ``truth["shifts_A"]``.

    Parameters
    ----------
    ts : TiltSeries
        Input series.
    sigma_A : float
        Standard deviation [Å] of the Gaussian shift per axis.
    seed : int
        Seed of the shifts.
    shifts_A : array_like (n, 2), optional
        Explicit shifts [Å] along (x, y) instead of random ones.
    """
    sigma_A = _nonneg("shift sigma_A", sigma_A, "Å")
    n = len(ts)
    s = _rng(seed, 11).normal(0.0, sigma_A, (n, 2)) if shifts_A is None else np.asarray(shifts_A, float)
    if s.shape != (n, 2):
        raise AetbenchError(f"shifts_A: expected shape ({n}, 2) in Å, got {s.shape}")
    imgs = np.stack([fourier_shift(ts.images[k].astype(float), s[k] / ts.pixel_size) for k in range(n)])
    return replace(ts, images=imgs, metadata=_with_truth(ts, shifts_A=s.tolist()))


def apply_angle_errors(ts: TiltSeries, sigma_deg, *, seed: int, errors_deg=None) -> TiltSeries:
    """Replace the angles by nominal ones ``true + error`` [deg]; true angles go to ``truth["angles_deg"]``.

    Parameters
    ----------
    sigma_deg : float or (3,) floats
        Standard deviation [deg] of the error of (phi, theta, psi).
    errors_deg : array_like (n, 3), optional
        Explicit errors [deg] instead of random ones.
    """
    sig = np.broadcast_to(np.asarray(sigma_deg, dtype=float), (3,))
    if np.any(~np.isfinite(sig)) or np.any(sig < 0):
        raise AetbenchError(f"angle sigma_deg: expected numbers ≥ 0 [deg], got {sigma_deg!r}")
    n = len(ts)
    err = _rng(seed, 13).normal(0.0, 1.0, (n, 3)) * sig if errors_deg is None else np.asarray(errors_deg, float)
    if err.shape != (n, 3):
        raise AetbenchError(f"errors_deg: expected shape ({n}, 3) in degrees, got {err.shape}")
    true = np.asarray(ts.metadata.get("truth", {}).get("angles_deg", ts.angles), dtype=float)
    meta = _with_truth(ts, angles_deg=true.tolist(), angle_errors_deg=err.tolist())
    return replace(ts, angles=ts.angles + err, metadata=meta)


def apply_intensity_scaling(ts: TiltSeries, sigma_rel: float, *, seed: int, scales=None) -> TiltSeries:
    """Multiply each projection by ``1 + N(0, sigma_rel)`` (or given factors), recorded as ``truth["intensity_scale"]``."""
    sigma_rel = _nonneg("intensity sigma_rel", sigma_rel, "relative")
    n = len(ts)
    f = 1.0 + _rng(seed, 17).normal(0.0, sigma_rel, n) if scales is None else np.asarray(scales, float).reshape(-1)
    if f.shape != (n,) or np.any(f <= 0):
        raise AetbenchError(f"intensity scales: expected {n} positive factors, got {f!r}")
    return replace(ts, images=ts.images * f[:, None, None], metadata=_with_truth(ts, intensity_scale=f.tolist()))


def random_defocus_errors(n: int, sigma_A: float, *, seed: int) -> np.ndarray:
    """Random defocus error [Å] per projection, N(0, sigma_A), for ``simulate_adf(defocus_errors_A=…)``."""
    sigma_A = _nonneg("defocus sigma_A", sigma_A, "Å")
    return _rng(seed, 19).normal(0.0, sigma_A, int(n))
