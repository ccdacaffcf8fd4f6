"""Benchmark: seconds per tilt of the abTEM 4D-STEM simulator (aetbench.simulate.ptycho).

Default (always runs, a few seconds): a 3-atom SiO2 fragment at coarse settings, one tilt; prints s/tilt and
bytes per tilt.

Heavy (``AETBENCH_BENCH_HEAVY=1``): a 201-atom silica-like particle (random sphere at 0.066 atoms/Å³,
≥ 1.55 Å apart, one Si per two O, seed 0; radius ≈ 9 Å) at smoke settings (300 kV, 25 mrad, +100 Å defocus,
0.5 Å step over a 24 Å field = 48² positions, 10 Å window, 50 mrad, 0.1 Å potential sampling, 2 Å slices, one
frozen-phonon configuration), one worker, multislice and PRISM; then the same particle at paper-like sampling
(0.05 Å, 1 Å slices, 0.4 Å step, 60 mrad, 16 Å window) over a 4 Å field to give milliseconds per probe position.
Run with ``AETBENCH_BENCH_HEAVY=1 python -m pytest aetbench/benchmarks/test_bench_ptycho_sim.py -s``.
"""
from __future__ import annotations

import os
import time

import numpy as np
import pytest

from aetbench.simulate.ptycho import PtychoConfig, simulate_4dstem
from aetbench.types import AtomicModel

pytest.importorskip("abtem")
HEAVY = os.environ.get("AETBENCH_BENCH_HEAVY", "") == "1"


def _timed(model, angles, config, **kw):
    """Result and wall seconds per tilt; the CPU seconds per tilt (all threads) go to ``_timed.cpu``."""
    t0, c0 = time.perf_counter(), time.process_time()
    out = simulate_4dstem(model, angles, config, seed=0, scheduler="synchronous", **kw)
    _timed.cpu = (time.process_time() - c0) / len(angles)
    return out, (time.perf_counter() - t0) / len(angles)


def _silica_like(n: int = 201) -> AtomicModel:
    from aetbench.structures.random import random_sphere

    m = random_sphere(n, element="Si", min_distance=1.55, density=0.066, seed=0)
    return AtomicModel(m.positions, ["Si" if i % 3 == 0 else "O" for i in range(n)])


def test_bench_ptycho_tiny():
    m = AtomicModel(np.array([[0.0, 0.0, 0.0], [1.1, 1.6, 0.4], [-1.4, 0.5, -1.0]]), ["Si", "O", "O"])
    c = PtychoConfig(potential_sampling_A=0.1, max_angle_mrad=50.0, window_A=8.0, defocus_A=40.0, scan_step_A=0.4,
                     phonon_configs=1, margin_A=2.0)
    _timed(m, [0.0], c, fov_A=1.0)                                           # warm-up: imports, FFTW plans
    (d,), t = _timed(m, [20.0], c, fov_A=4.0)
    print(f"\n[ptycho tiny: 3 atoms, cell {d.metadata['cell_A']} Å, {d.metadata['gpts']}² grid, "
          f"{d.intensities.shape} patterns] {t:.2f} s/tilt, {d.intensities.nbytes / 1e6:.1f} MB/tilt")
    assert d.intensities.shape[:2] == (10, 10)
    assert np.all(d.intensities.sum(axis=(-2, -1)) <= 1.0 + 1e-4)


@pytest.mark.skipif(not HEAVY, reason="set AETBENCH_BENCH_HEAVY=1 (~3 min on 2 cores)")
def test_bench_ptycho_silica_like_201_atoms():
    m = _silica_like()
    radius = float(np.linalg.norm(m.positions - m.positions.mean(0), axis=1).max())
    smoke = PtychoConfig(potential_sampling_A=0.1, slice_thickness_A=2.0, scan_step_A=0.5, max_angle_mrad=50.0,
                         window_A=10.0, phonon_configs=1)
    _timed(AtomicModel(np.zeros((1, 3)), ["Si"]), [0.0], PtychoConfig(potential_sampling_A=0.1, max_angle_mrad=50,
                                                                       window_A=8.0), fov_A=1.0)   # warm-up
    (d,), t = _timed(m, [30.0], smoke, fov_A=24.0)
    npos = d.intensities.shape[0] * d.intensities.shape[1]
    print(f"\n[ptycho 201-atom silica-like, radius {radius:.1f} Å, smoke settings: cell {d.metadata['cell_A']} Å, "
          f"{d.metadata['gpts']}² grid, {d.metadata['n_slices']} slices, window {d.metadata['window_A']:.1f} Å, "
          f"{d.intensities.shape} patterns, {d.intensities.nbytes / 1e6:.0f} MB] {t:.1f} s/tilt "
          f"({_timed.cpu:.1f} CPU-s) "
          f"({1e3 * t / npos:.1f} ms per position) -> 49 tilts ≈ {49 * t / 60:.0f} min on one worker")
    assert d.intensities.nbytes < 100e6
    s = d.intensities.sum(axis=(-2, -1))
    print(f"  pattern sums {s.min():.5f} … {s.max():.5f} (Si/O scatter little beyond 50 mrad)")
    assert s.max() <= 1.0 + 1e-4 and s.min() < 1.0 - 1e-4               # the particle scatters beyond 50 mrad
    from dataclasses import replace

    (q,), tq = _timed(m, [30.0], replace(smoke, engine="prism"), fov_A=24.0)
    a, b = d.intensities, q.intensities
    print(f"  PRISM (interpolation {q.metadata['binning']}, same cell and detector): {tq:.1f} s/tilt "
          f"({_timed.cpu:.1f} CPU-s); against "
          f"multislice: L1 {np.abs(a - b).sum() / a.sum():.3f}, "
          f"correlation {np.corrcoef(a.ravel(), b.ravel())[0, 1]:.4f}")
    paper = PtychoConfig(potential_sampling_A=0.05, slice_thickness_A=1.0, scan_step_A=0.4, max_angle_mrad=60.0,
                         window_A=16.0, phonon_configs=1)
    (p,), tp = _timed(m, [30.0], paper, fov_A=4.0)
    npp = p.intensities.shape[0] * p.intensities.shape[1]
    print(f"[same particle, paper-like sampling: cell {p.metadata['cell_A']} Å, {p.metadata['gpts']}² grid, "
          f"{p.metadata['n_slices']} slices, nk {p.nk}, {npp} positions] {tp:.1f} s ({_timed.cpu:.1f} CPU-s) "
          f"({1e3 * tp / npp:.0f} ms per position, one frozen-phonon configuration)")
