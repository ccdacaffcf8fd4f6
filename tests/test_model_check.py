"""The per-projection localisation check of the bound's model (aetbench.score.model_check)."""
from __future__ import annotations

import numpy as np
import pytest

from aetbench import geometry
from aetbench.errors import AetbenchError
from aetbench.score import bound as B
from aetbench.score.model_check import model_check, render_counts
from aetbench.simulate.dose import apply_dose
from aetbench.simulate.linear import LinearParams, simulate_linear
from aetbench.structures.random import random_sphere
from aetbench.types import AtomicModel, TiltSeries

PIXEL = 0.25
ANGLES = geometry.single_axis_angles(np.arange(0.0, 180.0, 3.0))


def _particle():
    return random_sphere(60, seed=3).centred()


def test_linear_tier_data_pass_the_check():
    """The linear tier renders exactly the bound's model: z-std 1 within its statistical error, no floor."""
    truth = _particle()
    params = LinearParams(amplitude={"Si": 1.78e-3}, default_sigma_A=0.25, blur_sigma_A=0.30)
    clean = simulate_linear(truth, ANGLES, pixel_size=PIXEL, shape=(56, 56), params=params)
    for dose, seed in ((1.6e4, 1), (1.6e5, 2)):
        ts = apply_dose(clean, dose, seed=seed, background=1.0)
        res, prof = B.bound_for_case(ts, truth)
        r = model_check(ts, truth, prof)
        tol = 4.0 / np.sqrt(2.0 * r["n"])  # 4 standard errors of a standard deviation
        assert abs(r["z_std"] - 1.0) < tol, r
        assert not r["excess_significant"] and r["floor_pm"] == 0.0
        assert abs(r["lag1_corr"]) < 0.05


@pytest.mark.parametrize("seed", [0, 1])
def test_per_projection_displacements_are_measured(seed):
    """Independent displacements of every atom in every image (one phonon configuration per projection) show up as
    the excess they were drawn with, with no lag-1 correlation, and carry into 3D as s·sqrt(trace (ΣPᵀP)⁻¹)."""
    truth = _particle()
    prof = B.Profile({"Si": 1.7e-3}, {"Si": 0.5}, 1.0, 1.6e5 * PIXEL ** 2)
    s = 0.05  # Å per axis
    mu = render_counts(truth, ANGLES, (56, 56), PIXEL, prof, displacement_A=s, rng=seed)
    ts = TiltSeries(np.random.default_rng(10 + seed).poisson(mu).astype(float), ANGLES, PIXEL, dose=1.6e5)
    r = model_check(ts, truth, prof, centre=np.zeros(3))
    assert r["excess_significant"] and r["z_std"] > 1.1
    assert r["excess_pm"] > 100 * s  # neighbours' displacements leak into the local steps ...
    assert r["displacement_pm"] == pytest.approx(100 * s, rel=0.15)  # ... and the calibration removes that
    assert abs(r["lag1_corr"]) < 0.05
    # single axis, 60 tilts over 180°: Σ PᵀP = diag(30, 60, 30), trace of the inverse 1/12
    assert r["floor_pm"] == pytest.approx(r["displacement_pm"] * np.sqrt(1 / 30 + 1 / 60 + 1 / 30), rel=1e-3)
    # the same data without displacements: no excess
    ts0 = TiltSeries(np.random.default_rng(10 + seed).poisson(render_counts(truth, ANGLES, (56, 56), PIXEL, prof))
                     .astype(float), ANGLES, PIXEL, dose=1.6e5)
    r0 = model_check(ts0, truth, prof, centre=np.zeros(3))
    assert not r0["excess_significant"] and r0["z_std"] < 1.05 and r0["floor_pm"] == 0.0


def test_a_wrong_profile_is_seen():
    """Data with atoms 30 % wider than the model's profile fail the check (and correlate across neighbouring tilts,
    since the error follows the slowly turning configuration)."""
    truth = _particle()
    wide = B.Profile({"Si": 1.7e-3}, {"Si": 0.65}, 1.0, 1.6e5 * PIXEL ** 2)
    ts = TiltSeries(np.random.default_rng(4).poisson(render_counts(truth, ANGLES, (56, 56), PIXEL, wide))
                    .astype(float), ANGLES, PIXEL, dose=1.6e5)
    model = B.Profile({"Si": 1.7e-3}, {"Si": 0.5}, 1.0, 1.6e5 * PIXEL ** 2)
    r = model_check(ts, truth, model, centre=np.zeros(3))
    assert r["excess_significant"] and r["z_std"] > 1.2 and r["lag1_corr"] > 0.1


def test_bad_inputs():
    truth = _particle()
    prof = B.Profile({"Si": 1.7e-3}, {"Si": 0.5}, 1.0, 1e4 * PIXEL ** 2)
    ts = TiltSeries(render_counts(truth, ANGLES, (56, 56), PIXEL, prof), ANGLES, PIXEL, dose=1e4)
    with pytest.raises(AetbenchError, match="no atoms"):
        model_check(ts, AtomicModel(np.zeros((0, 3)), np.array([], dtype="<U2")), prof)
    with pytest.raises(AetbenchError, match="max_atoms"):
        model_check(ts, truth, prof, max_atoms=0)
    with pytest.raises(AetbenchError, match="element 'Ge'"):
        model_check(ts, AtomicModel(truth.positions, np.array(["Ge"] * len(truth))), prof)
