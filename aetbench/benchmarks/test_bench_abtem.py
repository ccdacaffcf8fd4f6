"""Benchmark: seconds per tilt of the abTEM ADF tier, both engines.

Default (always runs, ~1 min on 2 shared cores): a 14-atom a-Si sphere at coarse settings (0.1 Å potential
sampling, 2 Å slices, Nyquist scan), one tilt per engine; checks the two engines agree and prints s/tilt.

Heavy (``AETBENCH_BENCH_HEAVY=1``): the 208-atom a-Si particle (random sphere at 0.05 atoms/Å³, seed 0) at the
"quick physical" settings of ../shared/abtem-notes.md (0.0625 Å, 2 Å slices, Nyquist scan step, 1 phonon
configuration, focus at the centre, 128 × 0.195 Å pixels): PRISM seconds per tilt, the projected 60-tilt series
time, and the cost of one more phonon configuration / defocus sample.  Multislice of the same particle (~15k
probe positions, tens of minutes per tilt) additionally needs ``AETBENCH_BENCH_MULTISLICE=1``.
Run with ``AETBENCH_BENCH_HEAVY=1 python -m pytest aetbench/benchmarks/test_bench_abtem.py -s``.
"""
from __future__ import annotations

import os
import time

import numpy as np
import pytest

from aetbench.simulate.abtem_adf import ADFConfig, simulate_adf
from aetbench.simulate.calibrate import normalised_cross_correlation
from aetbench.types import AtomicModel

pytest.importorskip("abtem")
HEAVY = os.environ.get("AETBENCH_BENCH_HEAVY", "") == "1"


def _timed(model, angles, config, **kw):
    t0 = time.perf_counter()
    ts = simulate_adf(model, angles, config, seed=0, scheduler="synchronous", **kw)
    return ts, (time.perf_counter() - t0) / len(angles)


def _small_sphere() -> AtomicModel:
    rng = np.random.default_rng(5)
    pts: list[np.ndarray] = []
    while len(pts) < 14:
        p = rng.uniform(-3.2, 3.2, 3)
        if np.linalg.norm(p) < 3.2 and all(np.linalg.norm(p - q) > 2.2 for q in pts):
            pts.append(p)
    return AtomicModel(np.array(pts), ["Si"] * 14)


def test_bench_abtem_tiny_both_engines():
    m = _small_sphere()
    base = dict(potential_sampling_A=0.1, slice_thickness_A=2.0, phonon_configs=1, margin_A=3.0)
    kw = dict(pixel_size=0.25, shape=(48, 48))
    pr, t_pr = _timed(m, [30.0], ADFConfig(engine="prism", interpolation=2, **base), **kw)
    ms, t_ms = _timed(m, [30.0], ADFConfig(engine="multislice", **base), **kw)
    print(f"\n[abtem tiny 14 atoms, cell {pr.metadata['cell_A']} Å, {pr.metadata['gpts']}² grid, "
          f"scan step {pr.metadata['scan_step_A']:.3f} Å] prism {t_pr:.1f} s/tilt, multislice {t_ms:.1f} s/tilt")
    assert normalised_cross_correlation(pr.images[0], ms.images[0]) >= 0.99


def _asi208() -> AtomicModel:
    from aetbench.structures.random import random_sphere

    return random_sphere(208, element="Si", min_distance=2.2, density=0.05, seed=0)


@pytest.mark.skipif(not HEAVY, reason="set AETBENCH_BENCH_HEAVY=1 (~5 min on 2 cores)")
def test_bench_abtem_208_atoms_prism_costs():
    """PRISM seconds per tilt on ONE worker for the 208-atom particle and the cost of phonons / defocus samples.

    Settings: ADFConfig defaults (300 kV, 21.4 mrad, 0.0625 Å potential sampling, 2 Å slices, Nyquist scan
    step, one frozen-phonon configuration, 40 mrad to cut-off − 1), 128 × 0.195 Å pixels; focal spread 30 Å
    sampled with 3 defocus values in the PRISM reduction.  The 60-tilt time assumes 2 workers (one tilt each).
    """
    m = _asi208()
    kw = dict(pixel_size=0.195, shape=(128, 128))
    _timed(_small_sphere(), [0.0], ADFConfig(potential_sampling_A=0.1, margin_A=3.0), pixel_size=0.25,
           shape=(32, 32))                                                   # warm-up: imports, numba, FFTW
    pr, t11 = _timed(m, [30.0], ADFConfig(engine="prism"), **kw)
    old, t_old = _timed(m, [30.0], ADFConfig(engine="prism", prism_batch=None), **kw)   # abTEM's "auto" batch
    _, t21 = _timed(m, [30.0], ADFConfig(engine="prism", phonon_configs=2), **kw)
    _, t13 = _timed(m, [30.0], ADFConfig(engine="prism", focal_spread_A=30.0, n_defocus=3), **kw)
    print(f"\n[abtem 208 atoms PRISM, cell {pr.metadata['cell_A']} Å, {pr.metadata['gpts']}² grid, interpolation "
          f"{pr.metadata['interpolation']}, scan step {pr.metadata['scan_step_A']:.3f} Å, one worker]\n"
          f"  (1 config, 1 defocus) {t11:.1f} s/tilt (abTEM's auto reduction batch: {t_old:.1f} s) -> 60 tilts "
          f"on 2 workers ≈ {60 * t11 / 2 / 60:.1f} min\n"
          f"  (2, 1) {t21:.1f} s/tilt: +{t21 - t11:.1f} s per added phonon configuration"
          f"\n  (1, 3) {t13:.1f} s/tilt: +{(t13 - t11) / 2:.1f} s per added defocus sample")
    # the reduction batch changes only the speed
    assert np.allclose(old.images, pr.images, rtol=1e-4, atol=1e-6 * pr.images.max())
    assert t21 > t11 and t13 > t11


@pytest.mark.skipif(not (HEAVY and os.environ.get("AETBENCH_BENCH_MULTISLICE", "") == "1"),
                    reason="set AETBENCH_BENCH_HEAVY=1 AETBENCH_BENCH_MULTISLICE=1 (multislice: tens of minutes)")
def test_bench_abtem_208_atoms_multislice():
    m = _asi208()
    kw = dict(pixel_size=0.195, shape=(128, 128))
    pr, t_pr = _timed(m, [30.0], ADFConfig(engine="prism"), **kw)
    ms, t_ms = _timed(m, [30.0], ADFConfig(engine="multislice"), **kw)
    print(f"\n[abtem 208 atoms] prism {t_pr:.1f} s/tilt, multislice {t_ms:.1f} s/tilt -> 60 tilts ≈ "
          f"{60 * t_ms / 3600:.1f} h on one worker")
    assert normalised_cross_correlation(pr.images[0], ms.images[0]) >= 0.99


@pytest.mark.skipif(not (HEAVY and os.environ.get("AETBENCH_BENCH_SERIES", "") == "1"),
                    reason="set AETBENCH_BENCH_HEAVY=1 AETBENCH_BENCH_SERIES=1 (the full 60-tilt series: ~15-25 min)")
def test_bench_abtem_208_atoms_full_series():
    """The issue's series target: 60 tilts 0–177°, PRISM, 1 phonon configuration, local threads (all cores)."""
    import resource

    m = _asi208()
    angles = np.arange(60) * 3.0
    r0 = resource.getrusage(resource.RUSAGE_SELF)
    t0 = time.perf_counter()
    ts = simulate_adf(m, angles, ADFConfig(engine="prism"), seed=0, pixel_size=0.195, shape=(128, 128))
    wall = time.perf_counter() - t0
    r1 = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
    tot = ts.images.sum(axis=(1, 2))
    print(f"\n[abtem 208 atoms, 60 tilts, {os.cpu_count()} cores] {wall / 60:.1f} min wall, {cpu / 60:.1f} CPU-min, "
          f"{wall / 60:.1f} s/tilt; interpolation {ts.metadata['interpolation']}; total signal within "
          f"{100 * np.abs(tot / tot.mean() - 1).max():.2f} % of the mean")
    assert ts.images.shape == (60, 128, 128)
    assert np.abs(tot / tot.mean() - 1).max() <= 0.02


@pytest.mark.skipif(not HEAVY, reason="set AETBENCH_BENCH_HEAVY=1 (~2 min on 2 cores)")
def test_bench_abtem_208_atoms_multislice_per_position():
    """Multislice cost per tilt of the 208-atom particle, from a timed coarse scan.

    Multislice costs the same for every probe position (one propagation through the cell), so the time of a
    coarse scan (1.5 Å step, ~400 positions) divided by its positions, times the Nyquist scan's positions, is
    the seconds per tilt at the scenario's settings — without the ~20-minute full run.
    """
    from aetbench.simulate.abtem_adf import nyquist_scan_step_A, plan_cell

    m = _asi208()
    base = dict(engine="multislice", phonon_configs=1)
    coarse = ADFConfig(scan_step_A=1.5, **base)
    radius = float(np.linalg.norm(m.positions - m.positions.mean(0), axis=1).max())
    plan_c = plan_cell(radius, coarse, fov_A=128 * 0.195)
    plan_n = plan_cell(radius, ADFConfig(**base), fov_A=128 * 0.195)
    ts, t = _timed(m, [30.0], coarse, pixel_size=0.195, shape=(128, 128))
    per_position = t / plan_c.n_scan**2
    per_tilt = per_position * plan_n.n_scan**2
    print(f"\n[abtem 208 atoms multislice, {plan_n.gpts}² grid, {plan_n.depth_A / 2.0:.0f} slices, one worker] "
          f"{1e3 * per_position:.0f} ms per probe position ({plan_c.n_scan}² positions timed) -> "
          f"{per_tilt / 60:.1f} min per tilt at the Nyquist step {nyquist_scan_step_A(300.0, 21.4):.3f} Å "
          f"({plan_n.n_scan}² positions), 60 tilts ≈ {60 * per_tilt / 3600:.1f} h")
    assert ts.images.shape == (1, 128, 128) and per_position > 0
