"""Shared types, the rotation convention, I/O, dose and the linear forward model."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aetbench import geometry
from aetbench.io.files import atomic_write_path
from aetbench.simulate.dose import apply_dose
from aetbench.simulate.linear import LinearParams, simulate_linear
from aetbench.structures.random import random_sphere
from aetbench.types import AtomicModel, TiltSeries, Volume

angle = st.floats(-180, 180, allow_nan=False)


@settings(max_examples=30, deadline=None)
@given(angle, angle, angle)
def test_rotation_is_proper_and_inverts(phi, theta, psi):
    R = geometry.rotation_matrix(phi, theta, psi)
    np.testing.assert_allclose(R @ R.T, np.eye(3), atol=1e-12)
    assert np.isclose(np.linalg.det(R), 1.0)
    p = np.random.default_rng(0).normal(size=(5, 3))
    back = geometry.beam_to_object(geometry.object_to_beam(p, (phi, theta, psi), centre=(1, 2, 3)),
                                   (phi, theta, psi), centre=(1, 2, 3))
    np.testing.assert_allclose(back, p, atol=1e-10)


def test_convention_matches_paper_formula():
    # R = (Rz(phi) Ry(theta) Rx(psi))^T with right-handed elementary rotations
    phi, theta, psi = np.deg2rad([20.0, 35.0, -50.0])
    c, s = np.cos, np.sin
    Rz = np.array([[c(phi), -s(phi), 0], [s(phi), c(phi), 0], [0, 0, 1]])
    Ry = np.array([[c(theta), 0, s(theta)], [0, 1, 0], [-s(theta), 0, c(theta)]])
    Rx = np.array([[1, 0, 0], [0, c(psi), -s(psi)], [0, s(psi), c(psi)]])
    np.testing.assert_allclose(geometry.rotation_matrix(20.0, 35.0, -50.0), (Rz @ Ry @ Rx).T, atol=1e-12)
    # theta tilts about the second axis: y is unchanged
    np.testing.assert_allclose(geometry.rotation_matrix(0, 40, 0) @ [0, 1, 0], [0, 1, 0], atol=1e-12)


def test_index_position_round_trip():
    shape = (9, 10, 11)
    idx = np.array([[0, 0, 0], [4, 5, 5], [8, 9, 10]])
    pos = geometry.index_to_position(idx, shape, 0.5)
    np.testing.assert_allclose(pos[1], [0, 0, 0])  # origin at n // 2
    np.testing.assert_allclose(geometry.position_to_index(pos, shape, 0.5), idx)


def test_model_extxyz_round_trip(tmp_path):
    m = random_sphere(30, element="Si", seed=1)
    m.write(tmp_path / "m.xyz")
    r = AtomicModel.read(tmp_path / "m.xyz")
    np.testing.assert_allclose(r.positions, m.positions, atol=1e-8)
    assert list(r.elements) == list(m.elements)
    import ase.io

    assert len(ase.io.read(tmp_path / "m.xyz")) == 30  # ASE-readable


def test_hdf5_round_trips(tmp_path):
    rng = np.random.default_rng(0)
    ts = TiltSeries(rng.random((4, 8, 6)).astype(np.float32), np.arange(4) * 10.0, 0.3, dose=1e4,
                    metadata={"seed": 3, "nested": {"a": [1, 2]}})
    ts.write(tmp_path / "t.h5")
    r = TiltSeries.read(tmp_path / "t.h5")
    np.testing.assert_array_equal(r.images, ts.images)
    np.testing.assert_array_equal(r.angles, ts.angles)
    assert r.pixel_size == 0.3 and r.dose == 1e4 and r.metadata["nested"] == {"a": [1, 2]}
    v = Volume(rng.random((5, 6, 7)).astype(np.float32), 0.25, metadata={"r_factor": [0.5, 0.2]})
    v.write(tmp_path / "v.h5")
    rv = Volume.read(tmp_path / "v.h5")
    np.testing.assert_array_equal(rv.data, v.data)
    assert rv.voxel_size == 0.25 and list(rv.metadata["r_factor"]) == [0.5, 0.2]


def test_atomic_write_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "out.txt"
    with pytest.raises(RuntimeError):
        with atomic_write_path(target) as tmp:
            open(tmp, "w").write("half")
            raise RuntimeError("interrupted")
    assert not target.exists() and list(tmp_path.iterdir()) == []


def test_random_sphere_is_seeded_and_respects_min_distance():
    a, b = random_sphere(100, min_distance=2.2, seed=5), random_sphere(100, min_distance=2.2, seed=5)
    np.testing.assert_array_equal(a.positions, b.positions)
    from scipy.spatial.distance import pdist

    assert pdist(a.positions).min() >= 2.2 - 1e-9
    assert not np.array_equal(a.positions, random_sphere(100, seed=6).positions)


def test_dose_statistics_and_seed():
    ts = TiltSeries(np.full((3, 64, 64), 0.02, np.float32), np.zeros(3), 0.5)
    d = apply_dose(ts, 1e4, seed=1, background=1.0)
    lam = 0.02 * 1e4 * 0.5**2 + 1.0  # detected fraction × dose × pixel area + background
    assert abs(d.images.mean() - lam) < 0.05 * lam
    assert abs(d.images.var() - lam) < 0.1 * lam  # Poisson: variance = mean
    np.testing.assert_array_equal(d.images, apply_dose(ts, 1e4, seed=1, background=1.0).images)
    assert d.dose == 1e4


def test_linear_single_atom_lands_where_geometry_says():
    pos = np.array([[1.3, -0.7, 2.1]])
    m = AtomicModel(pos, ["Si"])
    angles = [(0, 0, 0), (0, 30, 0), (10, 50, -20)]
    ts = simulate_linear(m, angles, pixel_size=0.2, shape=(64, 64), params=LinearParams(blur_sigma_A=0.2),
                         centre=(0.0, 0.0, 0.0))   # a stated centre off the (one-atom) centroid
    for k in range(3):
        beam = geometry.object_to_beam(pos, angles[k])
        img = ts.images[k]
        ix, iy = np.unravel_index(np.argmax(img), img.shape)
        expect = beam[0, :2] / 0.2 + 32
        assert abs(ix - expect[0]) <= 0.5 + 1e-6 and abs(iy - expect[1]) <= 0.5 + 1e-6
        # sub-pixel centroid within 0.02 pixel
        xx, yy = np.meshgrid(np.arange(64), np.arange(64), indexing="ij")
        com = np.array([(img * xx).sum(), (img * yy).sum()]) / img.sum()
        np.testing.assert_allclose(com, expect, atol=0.02)


def test_linear_total_signal_is_tilt_invariant_and_z_ordered():
    m = random_sphere(60, seed=2)
    ts = simulate_linear(m, np.arange(0, 180, 15.0), pixel_size=0.2, shape=(96, 96))
    tot = ts.images.sum(axis=(1, 2))
    assert np.ptp(tot) / tot.mean() < 1e-3
    from aetbench.simulate.linear import default_amplitude

    assert default_amplitude("Si") < default_amplitude("Ge") < default_amplitude("Sn") < default_amplitude("Pt")
