"""Benchmark: both scoring protocols on a 20,000-atom, three-element particle.

Run with ``aetbench bench`` (or ``pytest aetbench/benchmarks --benchmark-enable``); under the
default ``--benchmark-disable`` each benchmark runs once as a plain test.
"""
from __future__ import annotations

import numpy as np
import pytest

from aetbench.score import score
from aetbench.types import AtomicModel

N = 20_000


@pytest.fixture(scope="module")
def particle():
    """Jittered cubic lattice (2.5 Å) cut to a sphere of 20k atoms; traced copy with noise, misses, extras."""
    rng = np.random.default_rng(20)
    n = 36
    g = (np.arange(n) - (n - 1) / 2) * 2.5
    p = np.stack(np.meshgrid(g, g, g, indexing="ij"), axis=-1).reshape(-1, 3)
    p = p[np.argsort(np.linalg.norm(p, axis=1), kind="stable")[:N]] + rng.uniform(-0.25, 0.25, (N, 3))
    el = rng.choice(np.array(["Co", "Pd", "Pt"]), N, p=[0.45, 0.37, 0.18])
    truth = AtomicModel(p, el)
    keep = rng.random(N) > 0.02
    traced_el = el.copy()
    swap = rng.random(N) < 0.03
    traced_el[swap] = rng.choice(np.array(["Co", "Pd", "Pt"]), swap.sum())
    extra = rng.uniform(-30, 30, (400, 3))
    model = AtomicModel(np.vstack([p[keep] + rng.normal(0, 0.12, (keep.sum(), 3)), extra]),
                        np.concatenate([traced_el[keep], rng.choice(np.array(["Co", "Pd", "Pt"]), 400)]))
    return model, truth


@pytest.mark.parametrize("protocol", ["paper", "strict"])
def test_bench_score_20k(benchmark, particle, protocol):
    model, truth = particle
    df = benchmark(score, model, truth, cutoff=1.0, protocol=protocol)
    assert df["n_truth"].sum() == N
    assert (df["rate_pct"] > 93).all()
    # 0.12 Å noise per axis → 100·√3·0.12 ≈ 20.8 pm
    np.testing.assert_allclose(df["precision_pm"], 100 * np.sqrt(3) * 0.12, rtol=0.05)
