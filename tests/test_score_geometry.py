"""Projection geometry against the truth (aetbench.score.geometry): gauges removed, errors in degrees and Å."""
from __future__ import annotations

import numpy as np
import pytest

from aetbench import geometry as geo
from aetbench.errors import AetbenchError
from aetbench.score.geometry import angle_errors_deg, geometry_record, geometry_rows, shift_errors_A
from aetbench.types import TiltSeries

TRUE = np.stack([np.zeros(30), np.arange(30) * 6.0 - 87.0, np.zeros(30)], axis=1)


def test_angle_errors_remove_common_phi_theta_but_not_psi():
    rng = np.random.default_rng(0)
    e = rng.normal(0, [0.1, 0.2, 0.3], (30, 3))
    found = TRUE + e + [1.0, -2.0, 0.0]              # a turned object on top of the per-projection errors
    got = angle_errors_deg(found, TRUE)
    want = np.sqrt(((e - [e[:, 0].mean(), e[:, 1].mean(), 0.0]) ** 2).mean(axis=0))
    assert np.allclose(got, want)
    assert angle_errors_deg(TRUE + [0, 0, 0.5], TRUE)[2] == pytest.approx(0.5)   # a common psi is an error


def test_shift_errors_remove_an_object_translation():
    rng = np.random.default_rng(1)
    t = np.array([0.3, -0.2, 0.5])                   # Å: a moved object shifts projection k by (R_k t)_xy
    R = geo.rotation_matrices(TRUE)[:, :2, :]
    true = rng.normal(0, 0.4, (30, 2))
    assert shift_errors_A(true + R @ t, true, TRUE, 0.2) == pytest.approx(0.0, abs=1e-9)
    e = rng.normal(0, 0.03, (30, 2))
    assert shift_errors_A(true + e, true, TRUE, 0.2) == pytest.approx(np.sqrt((e ** 2).mean()), rel=0.15)


def test_bad_shapes_are_one_line_errors():
    with pytest.raises(AetbenchError, match=r"angles: expected finite Euler angles of shape \(30, 3\)"):
        angle_errors_deg(TRUE[:5], TRUE)
    with pytest.raises(AetbenchError, match=r"shifts: expected \(30, 2\) arrays"):
        shift_errors_A(np.zeros((30, 3)), np.zeros((30, 2)), TRUE, 0.2)


def test_record_only_with_a_truth_and_rows_nominal_then_found():
    imgs = np.zeros((30, 4, 4), np.float32)
    plain = TiltSeries(imgs, TRUE, 0.2)
    assert geometry_record(plain, plain, {}) is None
    nominal = TRUE + [0, 0.3, 0] * (np.arange(30)[:, None] % 2 * 2 - 1)   # ±0.3° on theta
    ts = TiltSeries(imgs, nominal, 0.2, metadata={"truth": {"angles_deg": TRUE.tolist()}})
    done = TiltSeries(imgs, TRUE, 0.2, metadata={"align_shifts_px": np.zeros((30, 2)).tolist()})
    rec = geometry_record(ts, done, {"refined_angles": TRUE.tolist()})
    rows = geometry_rows("s", 1e4, "m", rec)
    assert [r["geometry"] for r in rows] == ["nominal", "found"]
    assert rows[0]["theta_rms_deg"] == pytest.approx(0.3) and rows[1]["theta_rms_deg"] == pytest.approx(0.0)
    assert rows[1]["shift_rms_A"] == 0.0
