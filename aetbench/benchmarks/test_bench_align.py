"""Benchmark: alignment and angle refinement on a paper-sized tilt series (60 × 128 × 128, 0.195 Å).

Seconds per stage of issue 14: projection matching (:func:`align_projections`,
defaults of liao2026) and one Gauss–Newton refinement round of all 60
projections' Euler angles and shifts against a 128³ volume
(:func:`refine_projection_geometry`).  Run with ``python -m pytest
aetbench/benchmarks/test_bench_align.py --benchmark-enable``; with the default
``--benchmark-disable`` each runs once and checks it recovered the simulated
errors and stayed within a time budget with a wide margin for a shared machine.
"""
from __future__ import annotations

import time

import numpy as np
import pytest

from aetbench.preprocess.align import align_projections, remove_translation
from aetbench.reconstruct.angles import refine_projection_geometry
from aetbench.reconstruct.resire import resire
from aetbench.simulate import artefacts
from aetbench.simulate.linear import simulate_linear
from aetbench.structures.random import random_sphere

PIXEL = 0.195


@pytest.fixture(scope="module")
def clean():
    return simulate_linear(random_sphere(208, seed=1), np.arange(0.0, 178.0, 3.0), pixel_size=PIXEL,
                           shape=(128, 128))


def test_bench_align_projections_60x128(benchmark, clean):
    ts = artefacts.apply_shifts(clean, 0.4, seed=1)
    t0 = time.perf_counter()
    out = benchmark.pedantic(align_projections, args=(ts,), kwargs={"rounds": 5, "iterations": 10},
                             rounds=1, iterations=1)
    seconds = time.perf_counter() - t0
    err, _ = remove_translation((np.asarray(out.metadata["alignment"]["shifts_A"])
                                 - np.asarray(ts.metadata["truth"]["shifts_A"])) / PIXEL, ts.angles)
    rms = float(np.sqrt((err ** 2).mean())) * PIXEL
    print(f"align_projections, 60 x 128 x 128: {seconds:.1f} s, shift error {rms:.4f} Å rms")
    assert rms < 0.05  # Å
    assert seconds < 240.0  # ≈ 30 s measured on a heavily shared 2-core machine


def test_bench_refine_round_60x128(benchmark, clean):
    vol = resire(clean, iterations=60).data
    ts = artefacts.apply_angle_errors(clean, 0.3, seed=2)
    t0 = time.perf_counter()
    res = benchmark.pedantic(refine_projection_geometry, args=(vol, ts.images, ts.angles), kwargs={"steps": 2},
                             rounds=1, iterations=1)
    seconds = time.perf_counter() - t0
    before = np.sqrt(((ts.angles - clean.angles) ** 2).mean(axis=0))
    after = np.sqrt(((res["angles_deg"] - clean.angles) ** 2).mean(axis=0))
    print(f"refine_projection_geometry (2 Gauss-Newton steps), 60 x 128³: {seconds:.1f} s; "
          f"angle error rms {before.round(3)} -> {after.round(3)} deg")
    assert np.all(after < before)
    assert seconds < 300.0
