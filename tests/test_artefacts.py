"""Recorded experimental errors: exactly what the pipeline would have to undo."""
from __future__ import annotations

import numpy as np
import pytest

from aetbench import geometry
from aetbench.io.files import AetbenchError
from aetbench.simulate.artefacts import (apply_angle_errors, apply_intensity_scaling, apply_shifts, fourier_shift,
                                         random_defocus_errors)
from aetbench.simulate.linear import simulate_linear
from aetbench.types import AtomicModel, TiltSeries


@pytest.fixture(scope="module")
def series() -> TiltSeries:
    m = AtomicModel([[0.0, 0.0, 0.0], [2.0, -1.0, 1.5], [-1.5, 2.2, -0.7]], ["Si", "Si", "Ge"])
    return simulate_linear(m, np.arange(0, 180, 30.0), pixel_size=0.25, shape=(48, 48))


def _com(img):
    i, j = np.meshgrid(np.arange(img.shape[0]), np.arange(img.shape[1]), indexing="ij")
    return np.array([(img * i).sum(), (img * j).sum()]) / img.sum()


def test_shifts_are_recorded_and_undoable(series):
    out = apply_shifts(series, 0.8, seed=4)
    s = np.array(out.metadata["truth"]["shifts_A"])
    assert s.shape == (6, 2) and np.std(s) > 0.2
    for k in range(6):   # content moved by +shift
        moved = _com(out.images[k]) - _com(series.images[k])
        assert np.allclose(moved, s[k] / series.pixel_size, atol=1e-6)
        back = fourier_shift(out.images[k], -s[k] / series.pixel_size)
        assert np.allclose(back, series.images[k], atol=1e-6 * series.images[k].max())
    assert np.allclose(out.images.sum(axis=(1, 2)), series.images.sum(axis=(1, 2)))
    again = apply_shifts(series, 0.8, seed=4)
    assert np.array_equal(again.images, out.images)                      # seeded
    assert not np.allclose(apply_shifts(series, 0.8, seed=5).metadata["truth"]["shifts_A"], s)
    with pytest.raises(AetbenchError, match="already applied"):
        apply_shifts(out, 0.8, seed=1)


def test_angle_errors_keep_true_angles_and_hand_over_nominal(series):
    out = apply_angle_errors(series, [0.0, 1.0, 0.0], seed=2)
    truth = np.array(out.metadata["truth"]["angles_deg"])
    err = np.array(out.metadata["truth"]["angle_errors_deg"])
    assert np.array_equal(truth, series.angles)
    assert np.allclose(out.angles, truth + err) and np.all(err[:, [0, 2]] == 0) and np.std(err[:, 1]) > 0.2
    assert np.array_equal(out.images, series.images)                     # images stay those of the true angles
    # the true angles reproduce the images; the nominal ones do not
    m = AtomicModel([[0.0, 0.0, 0.0], [2.0, -1.0, 1.5], [-1.5, 2.2, -0.7]], ["Si", "Si", "Ge"])
    true_ts = simulate_linear(m, truth, pixel_size=0.25, shape=(48, 48))
    nominal_ts = simulate_linear(m, out.angles, pixel_size=0.25, shape=(48, 48))
    assert np.allclose(true_ts.images, out.images)
    assert not np.allclose(nominal_ts.images, out.images, atol=1e-4)
    assert np.allclose(geometry.rotation_matrices(truth), geometry.rotation_matrices(out.angles - err))


def test_intensity_scaling_and_defocus_errors(series):
    out = apply_intensity_scaling(series, 0.05, seed=1)
    f = np.array(out.metadata["truth"]["intensity_scale"])
    assert np.allclose(out.images.sum(axis=(1, 2)) / series.images.sum(axis=(1, 2)), f)
    assert np.all(f > 0) and 0.005 < np.std(f) < 0.2
    both = apply_shifts(out, 0.5, seed=3)
    assert set(both.metadata["truth"]) == {"intensity_scale", "shifts_A"}
    d = random_defocus_errors(50, 40.0, seed=9)
    assert d.shape == (50,) and np.array_equal(d, random_defocus_errors(50, 40.0, seed=9))
    assert 25.0 < d.std() < 55.0
    with pytest.raises(AetbenchError, match="sigma_rel"):
        apply_intensity_scaling(series, -1.0, seed=0)
    with pytest.raises(AetbenchError, match=r"shifts_A: expected shape \(6, 2\)"):
        apply_shifts(series, 0.0, seed=0, shifts_A=np.zeros((5, 2)))
