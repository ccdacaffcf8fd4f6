"""Benchmark: position refinement against the projections, per 1 000 atoms (60 tilts, 0.347 Å pixels as in
the paper's 20k-atom geometry; a 1 000-atom a-Si-like sphere at 0.05 atoms/Å³, 20 L-BFGS iterations).

Cost is O(N · window) per evaluation (separable ±4σ windows, parallel over projections), so the time scales
linearly with the atom count; the 16k-atom refinement of the 20k pipeline is ~16× this.  Run with
``pytest aetbench/benchmarks/test_bench_refine.py --benchmark-enable``.
"""
from __future__ import annotations

import numpy as np
import pytest

from aetbench.simulate.linear import simulate_linear
from aetbench.trace.refine import refine_positions
from aetbench.types import AtomicModel, TracedModel

PIX = 0.347  # Å


@pytest.fixture(scope="module")
def case():
    from scipy.spatial import cKDTree

    rng = np.random.default_rng(0)
    n_atoms = 1000
    radius = (n_atoms / 0.05 * 3 / (4 * np.pi)) ** (1 / 3)  # Å
    pts = rng.uniform(-radius, radius, (6 * n_atoms, 3))
    pts = pts[np.linalg.norm(pts, axis=1) < radius]
    keep: list[int] = []
    tree = cKDTree(pts)
    taken = np.zeros(len(pts), bool)
    for i in range(len(pts)):  # greedy hard-core thinning at 2.2 Å
        if taken[i]:
            continue
        keep.append(i)
        taken[tree.query_ball_point(pts[i], 2.2)] = True
        if len(keep) == n_atoms:
            break
    truth = AtomicModel(pts[keep], ["Si"] * len(keep))
    m = int(2 * radius / PIX) + 20
    ts = simulate_linear(truth, np.arange(0.0, 180.0, 3.0), pixel_size=PIX, shape=(m, m), centre=(0.0, 0.0, 0.0))
    start = TracedModel(AtomicModel(truth.positions + rng.normal(0, 0.1, truth.positions.shape), truth.elements),
                        np.ones(len(truth)))
    return truth, ts, start


def test_bench_refine_per_1k_atoms(benchmark, case):
    truth, ts, start = case
    refine_positions(TracedModel(AtomicModel(truth.positions[:3], ["Si"] * 3), np.ones(3)), None, ts, iterations=2)

    out = benchmark.pedantic(lambda: refine_positions(start, None, ts, iterations=20), rounds=1, iterations=1)
    err0 = np.linalg.norm(start.model.positions - truth.positions, axis=1).mean()
    err = np.linalg.norm(out.model.positions - truth.positions, axis=1).mean()
    benchmark.extra_info["n_atoms"] = len(truth)
    assert err < 0.25 * err0, (err, err0)
