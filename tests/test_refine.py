"""Position refinement against the projections: gradients, recovery, and what it gains over tracing."""
from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial import cKDTree

from aetbench import geometry
from aetbench.io.files import AetbenchError
from aetbench.simulate.dose import apply_dose
from aetbench.simulate.linear import LinearParams, simulate_linear
from aetbench.structures.random import random_sphere
from aetbench.trace.refine import refine_positions, render_atoms
from aetbench.types import NON_ATOM, AtomicModel, TracedModel


def test_render_matches_linear_simulator():
    m = random_sphere(15, seed=3)
    ang = geometry.single_axis_angles(np.arange(0, 180, 30.0))
    p = LinearParams(default_sigma_A=0.2, blur_sigma_A=0.25)
    ts = simulate_linear(m, ang, pixel_size=0.2, shape=(64, 64), params=p)
    amp = p.amplitude_of("Si") / 0.2**2  # image units × pixel²
    img = render_atoms(m.positions, np.full(15, amp), np.full(15, p.width_of("Si")), ang,
                       pixel_size=0.2, shape=(64, 64))
    # both place a position p [Å] (about the rotation centre 0) at (R p)_xy / pixel + m // 2
    assert np.corrcoef(img.ravel(), ts.images.ravel())[0, 1] > 0.999
    np.testing.assert_allclose(img.sum(), ts.images.sum(), rtol=2e-3)


def _case(dose, seed=0):
    truth = random_sphere(40, seed=seed, min_distance=2.2)
    truth = AtomicModel(truth.positions - truth.positions.mean(0), truth.elements)
    ts = simulate_linear(truth, np.arange(0, 180, 6.0), pixel_size=0.25, shape=(64, 64), centre=(0, 0, 0))
    return truth, apply_dose(ts, dose, seed=seed, background=0.0)


def test_refinement_recovers_positions_from_perturbed_start():
    truth, ts = _case(None)
    rng = np.random.default_rng(1)
    start = truth.positions + rng.normal(0, 0.12, truth.positions.shape)
    traced = TracedModel(AtomicModel(start, truth.elements), np.ones(len(truth)))
    out = refine_positions(traced, None, ts, iterations=200)
    err = np.linalg.norm(out.model.positions - truth.positions, axis=1)
    assert err.max() < 0.01, err.max()  # Å, noise-free
    assert abs(np.nanmean(out.features["refine_sigma_A"]) - LinearParams().width_of("Si")) < 0.01


def test_refinement_at_dose_beats_start_and_keeps_non_atoms():
    truth, ts = _case(2e5, seed=4)
    rng = np.random.default_rng(2)
    start = truth.positions + rng.normal(0, 0.1, truth.positions.shape)
    pos = np.vstack([start, [[9.0, 9.0, 9.0]]])
    el = np.append(truth.elements, NON_ATOM)
    traced = TracedModel(AtomicModel(pos, el), np.ones(len(el)))
    out = refine_positions(traced, None, ts, data="preprocessed", iterations=100)
    err0 = np.sqrt(((start - truth.positions) ** 2).sum(1).mean())
    err1 = np.sqrt(((out.model.positions[:-1] - truth.positions) ** 2).sum(1).mean())
    assert err1 < 0.3 * err0, (err0, err1)
    np.testing.assert_array_equal(out.model.positions[-1], [9.0, 9.0, 9.0])  # non-atoms untouched
    assert out.model.elements[-1] == NON_ATOM


def test_refinement_is_deterministic():
    truth, ts = _case(5e4, seed=5)
    start = truth.positions + 0.05
    traced = TracedModel(AtomicModel(start, truth.elements), np.ones(len(truth)))
    a = refine_positions(traced, None, ts, data="preprocessed", iterations=30)
    b = refine_positions(traced, None, ts, data="preprocessed", iterations=30)
    np.testing.assert_array_equal(a.model.positions, b.model.positions)


def test_refine_bad_input():
    truth, ts = _case(None)
    traced = TracedModel(truth, np.ones(len(truth)))
    with pytest.raises(AetbenchError):
        refine_positions(traced, None, ts, data="denoised")
    with pytest.raises(AetbenchError):
        refine_positions(traced, None, None)


def test_pruning_drops_duplicates_and_atoms_in_empty_space():
    truth, ts = _case(2e5, seed=6)
    extra = np.array([truth.positions[0] + [0.7, 0.3, 0.0],  # a duplicate next to a real atom
                      [4.0, -4.0, 4.0]])  # nothing there (the 40-atom particle has a radius of ~4.5 Å)
    pos = np.vstack([truth.positions, extra])
    traced = TracedModel(AtomicModel(pos, ["Si"] * len(pos)), np.ones(len(pos)))
    out = refine_positions(traced, None, ts, data="preprocessed", iterations=80, prune_distance_A=1.9)
    kept = out.model.elements != NON_ATOM
    assert kept.sum() == len(truth)
    d = np.linalg.norm(out.model.positions[kept] - truth.positions, axis=1)
    assert d.max() < 0.05, d.max()
    assert np.all(out.features["refine_gain"][kept] > 0)


def test_refine_fits_the_measured_series_it_is_given():
    """refine takes the background-free measured series from the pre-processing (``measured=``) instead of
    subtracting the background itself; the ``raw=`` fallback prepares the same series, so both give one result,
    and the fit follows the data it is handed (a different series gives different positions)."""
    from aetbench.preprocess.raw import measured_projections

    truth, ts = _case(None)
    raw = ts.with_images(ts.images + 1.5)  # a flat background of 1.5 per pixel on the measured counts
    rng = np.random.default_rng(3)
    traced = TracedModel(AtomicModel(truth.positions + rng.normal(0, 0.1, truth.positions.shape), truth.elements),
                         np.ones(len(truth)))
    measured = measured_projections(raw, ts)
    assert abs(float(np.median(measured.images[:, :4, :4]))) < 0.05  # background removed by the pre-processing
    a = refine_positions(traced, None, ts, measured=measured, iterations=20)
    b = refine_positions(traced, None, ts, raw=raw, iterations=20)
    np.testing.assert_array_equal(a.model.positions, b.model.positions)
    c = refine_positions(traced, None, ts, measured=raw, iterations=20)  # background left in: a different fit
    assert np.abs(c.model.positions - a.model.positions).max() > 1e-4


def test_refinement_with_geometry_recovers_angles_and_shifts():
    """refine_geometry: the atoms and every projection's Euler angles and shift fitted jointly (noise-free data
    with 0.3° errors on each Euler angle and 0.1 Å drift): orientations to ≤ 0.02° and shifts to ≤ 0.005 Å rms up to the gauges, and
    positions as good as with the true geometry; correct geometry stays put."""
    from aetbench.score.geometry import angle_errors_deg, rotation_errors_deg, shift_errors_A
    from aetbench.simulate import artefacts

    truth, clean = _case(None)
    ts = artefacts.apply_shifts(artefacts.apply_angle_errors(clean, 0.3, seed=3), 0.1, seed=3)
    true_ang, true_sh = np.asarray(ts.metadata["truth"]["angles_deg"]), np.asarray(ts.metadata["truth"]["shifts_A"])
    rng = np.random.default_rng(1)
    start = TracedModel(AtomicModel(truth.positions + rng.normal(0, 0.05, truth.positions.shape), truth.elements),
                        np.ones(len(truth)))
    out = refine_positions(start, None, ts, data="preprocessed", iterations=300, refine_geometry=True)
    found = np.asarray(out.metadata["refined_angles"])
    assert np.all(angle_errors_deg(ts.angles, true_ang) > 0.2) and rotation_errors_deg(ts.angles, true_ang) > 0.3
    assert rotation_errors_deg(found, true_ang) < 0.02
    assert angle_errors_deg(found, true_ang)[1] < 0.01
    away = np.abs(np.cos(np.deg2rad(true_ang[:, 1]))) > 0.5   # phi ± psi is not defined at theta = 90°
    assert np.all(angle_errors_deg(found[away], true_ang[away]) < 0.02), angle_errors_deg(found[away], true_ang[away])
    drift = -np.asarray(out.metadata["refined_shifts_px"]) * ts.pixel_size   # images move by −drift
    assert shift_errors_A(drift, true_sh, true_ang, ts.pixel_size) < 0.005
    err = out.model.positions - truth.positions
    err -= err.mean(axis=0)                                                     # the translation gauge
    assert np.sqrt((err ** 2).sum(1).mean()) < 0.01                             # Å
    plain = refine_positions(start, None, clean, data="preprocessed", iterations=100, refine_geometry=True)
    assert np.all(angle_errors_deg(plain.metadata["refined_angles"], clean.angles) < 0.01)
    with pytest.raises(AetbenchError, match="max_angle_deg > 0"):
        refine_positions(start, None, ts, refine_geometry=True, max_angle_deg=0.0, data="preprocessed")


@pytest.mark.parametrize("dose,seed", [(2e4, 7), (2e5, 8)])
def test_atoms_the_tracing_missed_are_added_from_the_residual(dose, seed):
    """Five atoms left out of the start and one spurious duplicate put in: the residual test adds the five back
    (within a few pm of the truth), pruning drops the duplicate, and nothing is added in empty space."""
    truth, ts = _case(dose, seed=seed)
    rng = np.random.default_rng(seed)
    missing = rng.choice(len(truth), 5, replace=False)
    start = np.delete(truth.positions, missing, axis=0) + rng.normal(0, 0.05, (len(truth) - 5, 3))
    start = np.vstack([start, start[0] + [0.8, 0.2, 0.0]])
    traced = TracedModel(AtomicModel(start, ["Si"] * len(start)), np.arange(len(start), dtype=float),
                         {"height": np.ones(len(start))})
    out = refine_positions(traced, None, ts, data="preprocessed", iterations=80, prune_distance_A=1.9,
                           add_distance_A=1.9)
    kept = out.model.elements != NON_ATOM
    assert kept.sum() == len(truth)
    assert out.features["refine_added"].sum() == 5 and np.all(out.model.elements[len(start):] == "Si")
    assert np.isnan(out.intensity[len(start):]).all() and np.isnan(out.features["height"][len(start):]).all()
    d, i = cKDTree(truth.positions).query(out.model.positions[kept])
    assert len(set(i)) == len(truth) and d.max() < (0.1 if dose < 1e5 else 0.03), d.max()
    # without the addition, the five stay missing
    plain = refine_positions(traced, None, ts, data="preprocessed", iterations=80, prune_distance_A=1.9)
    assert (plain.model.elements != NON_ATOM).sum() == len(truth) - 5 and "refine_added" not in plain.features


def test_additions_bad_input():
    truth, ts = _case(None)
    traced = TracedModel(truth, np.ones(len(truth)))
    with pytest.raises(AetbenchError, match="add_distance_A"):
        refine_positions(traced, None, ts, data="preprocessed", add_distance_A=-1.0)


def test_reclassify_gives_each_atom_the_element_the_projections_show():
    """Four of 40 atoms start with the wrong element (Co ↔ Pd): the fit's element choice puts them right; with one
    element it changes nothing."""
    truth = random_sphere(40, seed=9, min_distance=2.2)
    el = np.where(np.arange(40) % 2 == 0, "Co", "Pd")
    truth = AtomicModel(truth.positions - truth.positions.mean(0), el)
    ts = apply_dose(simulate_linear(truth, np.arange(0, 180, 6.0), pixel_size=0.25, shape=(64, 64),
                                    centre=(0, 0, 0)), 5e4, seed=9, background=0.0)
    wrong = el.copy()
    wrong[[0, 1, 2, 3]] = ["Pd", "Co", "Pd", "Co"]
    traced = TracedModel(AtomicModel(truth.positions + 0.03, wrong), np.ones(40))
    out = refine_positions(traced, None, ts, data="preprocessed", iterations=60, reclassify=True)
    assert list(out.model.elements) == list(el)
    keep = refine_positions(traced, None, ts, data="preprocessed", iterations=60)
    assert list(keep.model.elements) == list(wrong)


def test_additions_use_the_refined_geometry():
    """With ``refine_geometry`` the residual is taken in the fitted angles and shifts: the images carry a shift of
    0.6 px per projection, which the joint fit finds, and the missing atoms are still added where they are."""
    truth, ts = _case(2e5, seed=11)
    rng = np.random.default_rng(11)
    sh = rng.normal(0, 0.6, (len(ts), 2))
    from scipy import ndimage

    shifted = ts.with_images(np.stack([ndimage.shift(im, s, order=3, mode="constant")
                                       for im, s in zip(ts.images, sh)]))
    missing = rng.choice(len(truth), 3, replace=False)
    start = np.delete(truth.positions, missing, axis=0)
    traced = TracedModel(AtomicModel(start, ["Si"] * len(start)), np.ones(len(start)))
    out = refine_positions(traced, None, shifted, data="preprocessed", iterations=150, prune_distance_A=1.9,
                           add_distance_A=1.9, refine_geometry=True, max_geometry_shift_px=2.0)
    kept = out.model.elements != NON_ATOM
    assert kept.sum() == len(truth) and out.features["refine_added"].sum() == 3
    pos = out.model.positions[kept]
    pos = pos - pos.mean(0) + truth.positions.mean(0)  # a common translation is a gauge of the shift fit
    d, i = cKDTree(truth.positions).query(pos)
    assert len(set(i)) == len(truth) and d.max() < 0.1, d.max()


def test_a_weak_partner_of_a_close_pair_must_be_detectable():
    """Of a pair closer than ``pair_distance`` the weaker atom is dropped when its signal is below the detection
    threshold, kept when above it; pairs farther apart are not judged."""
    from aetbench.trace.refine import _to_drop

    p = np.array([[0.0, 0, 0], [2.0, 0, 0], [10.0, 0, 0], [12.5, 0, 0]])
    gain = np.array([5.0, 1.0, 5.0, 1.0])
    inv = np.zeros(4, np.int64)
    z = np.array([20.0, 3.0, 20.0, 3.0])
    drop = _to_drop(p, gain, 1.8, inv, 0.0, z, 5.0, 2.35)
    assert drop.tolist() == [False, True, False, False]       # 2.0 Å apart: judged; 2.5 Å: not
    drop = _to_drop(p, gain, 1.8, inv, 0.0, np.array([20.0, 6.0, 20.0, 3.0]), 5.0, 2.35)
    assert not drop.any()                                      # a detectable partner stays
    assert not _to_drop(p, gain, 1.8, inv, 0.0).any()         # without signals: the distance rule alone


def test_noise_partners_of_atoms_are_dropped_and_atoms_kept():
    """Four spurious atoms started 2.0 Å from real ones (beyond the minimum distance, within the shortest bond) in
    noisy images: with ``significance_distance_A="nn"`` every true atom, judged beside its partner, passes the
    detection test and stays, and the spurious ones are gone."""
    truth, ts = _case(2e4, seed=5)
    rng = np.random.default_rng(5)
    hosts = rng.choice(len(truth), 4, replace=False)
    direction = rng.normal(size=(4, 3))
    direction /= np.linalg.norm(direction, axis=1, keepdims=True)
    start = np.vstack([truth.positions + rng.normal(0, 0.05, truth.positions.shape),
                       truth.positions[hosts] + 2.0 * direction])
    traced = TracedModel(AtomicModel(start, ["Si"] * len(start)), np.ones(len(start)))
    out = refine_positions(traced, None, ts, data="preprocessed", iterations=80, prune_distance_A="bond",
                           significance_distance_A="nn", elements=["Si"])
    kept = out.model.elements != NON_ATOM
    d, i = cKDTree(truth.positions).query(out.model.positions[kept])
    assert kept.sum() == len(truth) and len(set(i)) == len(truth) and d.max() < 0.15, (kept.sum(), d.max())
