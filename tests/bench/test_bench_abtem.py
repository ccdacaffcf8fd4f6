"""Benchmark: seconds per tilt of the abTEM ADF tier, both engines.

Default (always runs, ~1 min on 2 shared cores): a 14-atom a-Si sphere at coarse settings (0.1 Å potential
sampling, 2 Å slices, Nyquist scan), one tilt per engine; checks the two engines agree and prints s/tilt.

Heavy (``AETBENCH_BENCH_HEAVY=1``): the 208-atom a-Si particle (random sphere at 0.05 atoms/Å³) at the
"quick physical" settings of ../shared/abtem-notes.md (0.0625 Å, 2 Å slices, Nyquist scan step, 1 phonon
configuration, focus at the centre, 128 × 0.195 Å pixels): one tilt per engine (multislice is ~10-100× slower),
the projected 60-tilt series time, and the cost of one more phonon configuration / defocus sample (PRISM).
Run with ``AETBENCH_BENCH_HEAVY=1 python -m pytest tests/bench/test_bench_abtem.py -s``.
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


@pytest.mark.skipif(not HEAVY, reason="set AETBENCH_BENCH_HEAVY=1 (minutes on 2 cores)")
def test_bench_abtem_208_atoms():
    from aetbench.structures.random import random_sphere

    m = random_sphere(208, element="Si", min_distance=2.2, density=0.05, seed=1)
    kw = dict(pixel_size=0.195, shape=(128, 128))
    quick = ADFConfig(engine="prism")
    pr, t_pr = _timed(m, [30.0], quick, **kw)
    _, t_pr2 = _timed(m, [30.0], ADFConfig(engine="prism", phonon_configs=2), **kw)
    _, t_df = _timed(m, [30.0], ADFConfig(engine="prism", focal_spread_A=30.0, n_defocus=2), **kw)
    ms, t_ms = _timed(m, [30.0], ADFConfig(engine="multislice"), **kw)
    print(f"\n[abtem 208 atoms, cell {pr.metadata['cell_A']} Å, {pr.metadata['gpts']}² grid, interpolation "
          f"{pr.metadata['interpolation']}, scan step {pr.metadata['scan_step_A']:.3f} Å]\n"
          f"  prism {t_pr:.1f} s/tilt -> 60 tilts ≈ {60 * t_pr / 60:.1f} min; +1 phonon config +{t_pr2 - t_pr:.1f} s/tilt;"
          f" +1 defocus sample +{t_df - t_pr:.1f} s/tilt\n  multislice {t_ms:.1f} s/tilt -> 60 tilts ≈ "
          f"{60 * t_ms / 3600:.1f} h")
    assert normalised_cross_correlation(pr.images[0], ms.images[0]) >= 0.99
