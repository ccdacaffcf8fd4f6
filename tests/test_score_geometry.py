"""Projection geometry against the truth (aetbench.score.geometry): gauges removed, errors in degrees and Å."""
from __future__ import annotations

import numpy as np
import pytest

from aetbench import geometry as geo
from aetbench.errors import AetbenchError
from aetbench.score.geometry import angle_errors_deg, geometry_record, rotation_errors_deg, geometry_rows, shift_errors_A
from aetbench.types import TiltSeries

TRUE = np.stack([np.zeros(30), np.arange(30) * 6.0 - 87.0, np.zeros(30)], axis=1)


def test_angle_errors_remove_a_rotation_of_the_whole_object():
    from scipy.spatial.transform import Rotation

    rng = np.random.default_rng(0)
    e = rng.normal(0, [0.1, 0.2, 0.3], (30, 3))
    Q = Rotation.from_rotvec(np.deg2rad([0.04, -0.03, 0.05])).as_matrix()  # a turned object: no information
    true = TRUE + [0.0, 90.0, 0.0]                                          # theta 3..177 deg, as in the paper
    turned = geo.euler_angles(geo.rotation_matrices(true) @ Q, near=true)
    assert np.abs(turned - true).max() > 0.03
    assert np.all(angle_errors_deg(turned, true) < 0.002)                  # removed to first order
    assert rotation_errors_deg(turned, true) < 0.002 and rotation_errors_deg(true + e, true) > 0.1
    got = angle_errors_deg(true + e, true)
    assert np.allclose(got, np.sqrt((e ** 2).mean(axis=0)), rtol=0.1)     # 3 of 90 degrees of freedom removed
    assert angle_errors_deg(true + [0, 0, 0.5], true)[2] > 0.05             # a common psi is not a gauge


def test_euler_angles_invert_rotation_matrices_on_both_branches():
    rng = np.random.default_rng(2)
    a = np.stack([rng.uniform(-5, 5, 50), rng.uniform(-89, 179, 50), rng.uniform(-5, 5, 50)], axis=1)
    assert np.allclose(geo.euler_angles(geo.rotation_matrices(a), near=a), a, atol=1e-9)
    b = geo.euler_angles(geo.rotation_matrices(a))
    assert np.all(np.abs(b[:, 1]) <= 90) and np.allclose(geo.rotation_matrices(b), geo.rotation_matrices(a))
    assert np.linalg.matrix_rank(geo.rotation_gauges(a)) == 3


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
    assert rows[1]["shift_rms_A"] == 0.0 and rows[1]["rotation_rms_deg"] < 1e-6 < rows[0]["rotation_rms_deg"]
