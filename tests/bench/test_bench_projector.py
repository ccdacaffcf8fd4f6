"""Benchmark: forward + back projection of a 128³ volume × 60 projections.

Targets on 2 cores: ≤ 0.1 s on the single-axis path, ≤ 0.8 s for arbitrary
Euler angles.  Run with ``pytest tests/bench/test_bench_projector.py
--benchmark-enable``; under the default ``--benchmark-disable`` each runs once
as a plain test (which also checks the adjoint at full size).
"""
from __future__ import annotations

import numpy as np
import pytest

from aetbench.reconstruct.projector import Projector

N = 128
N_PROJ = 60


@pytest.fixture(scope="module")
def volume():
    return np.random.default_rng(0).random((N, N, N), dtype=np.float32)


def _angles(single_axis: bool) -> np.ndarray:
    rng = np.random.default_rng(1)
    a = np.zeros((N_PROJ, 3))
    a[:, 1] = np.linspace(-70.0, 70.0, N_PROJ)
    if not single_axis:
        a[:, 0] = rng.uniform(-180.0, 180.0, N_PROJ)
        a[:, 2] = rng.uniform(-180.0, 180.0, N_PROJ)
    return a


@pytest.mark.parametrize("single_axis", [True, False], ids=["single_axis", "euler"])
def test_bench_forward_back(benchmark, volume, single_axis):
    P = Projector(volume.shape, _angles(single_axis))
    assert P.single_axis is single_axis
    P.back(P.forward(volume[:8, :8, :8].repeat(16, 0).repeat(16, 1).repeat(16, 2)))  # compile / warm caches

    def run():
        return P.back(P.forward(volume))

    out = benchmark.pedantic(run, rounds=5, iterations=1, warmup_rounds=1)
    assert out.shape == volume.shape and np.isfinite(out).all()
    # AᵀA is positive: ⟨x, AᵀA x⟩ = ‖A x‖² > 0
    assert float(np.sum(out.astype(np.float64) * volume)) > 0
