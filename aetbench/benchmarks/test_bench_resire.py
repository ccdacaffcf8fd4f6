"""Benchmark: one RESIRE iteration (FP + BP + update, in place) at 128³ × 60, single-axis and Euler; plain,
Nesterov and the cyclic steps as peers (the same cost per iteration: the Nesterov residual is a linear
combination, no extra projection; the cyclic steps only change the step, after a one-off power iteration,
``metadata["schedule_seconds"]``, not in the per-iteration time).  The 290³ × 60 iteration (the 20k-atom
geometry) runs with ``AETBENCH_BENCH_HEAVY=1``.

Run with ``pytest aetbench/benchmarks/test_bench_resire.py --benchmark-enable``.
"""
from __future__ import annotations

import os

import numpy as np
import pytest

from aetbench import geometry
from aetbench.reconstruct.resire import resire
from aetbench.types import TiltSeries

HEAVY = os.environ.get("AETBENCH_BENCH_HEAVY", "") == "1"
SIZES = [128, pytest.param(290, marks=pytest.mark.skipif(not HEAVY, reason="set AETBENCH_BENCH_HEAVY=1 (290³)"))]
ITERATIONS = 3


def _series(n: int, single_axis: bool) -> TiltSeries:
    rng = np.random.default_rng(0)
    theta = np.linspace(-70.0, 70.0, 60)
    ang = geometry.single_axis_angles(theta)
    if not single_axis:  # the CoPdPt data: phi and psi within ±2.8°
        ang[:, 0] = rng.uniform(-2.8, 2.8, 60)
        ang[:, 2] = rng.uniform(-2.8, 2.8, 60)
    return TiltSeries(rng.random((60, n, n), dtype=np.float32) * 10, ang, 0.347)


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("single_axis", [True, False], ids=["single_axis", "euler"])
@pytest.mark.parametrize("accelerate", ["none", "nesterov", "cyclic"])
def test_bench_resire_iteration(benchmark, n, single_axis, accelerate):
    ts = _series(n, single_axis)
    resire(ts, iterations=1, accelerate=accelerate)  # compile

    def run():
        return resire(ts, iterations=ITERATIONS, accelerate=accelerate)

    vol = benchmark.pedantic(run, rounds=2, iterations=1)
    benchmark.extra_info["seconds_per_iteration"] = vol.metadata["seconds"] / ITERATIONS
    r = vol.metadata["r_factor"]
    assert len(r) == ITERATIONS and r[-1] < r[0]
    assert vol.metadata["single_axis_projector"] is single_axis
