"""Benchmark: the paper-size structure builds (minutes each; marked ``slow``).

Run on demand: ``pytest tests/bench/test_bench_structures.py -m slow -s`` (or
``aetbench bench --heavy``).  Each build goes to a temporary cache, prints its
realism metrics and asserts the issue's targets and time limits (2 cores).
The small ``asi208`` build is not slow and runs with the default selection.
"""
from __future__ import annotations

import json
import time

import pytest

from aetbench.structures.command import _build_cached


def _timed(name, tmp_path):
    t0 = time.perf_counter()
    model, m, _ = _build_cached(name, None, tmp_path, False)
    dt = time.perf_counter() - t0
    keep = ("n_atoms", "radius_A", "density_per_A3", "first_peak_A", "coordination", "fourfold_fraction",
            "angle_mean_deg", "angle_sd_deg", "rings", "crystal_like_fraction", "build")
    print(f"\n{name}: {dt:.1f} s\n" + json.dumps({k: m[k] for k in keep if k in m}, indent=1))
    return model, m, dt


def test_bench_asi208(benchmark, tmp_path):
    model, m, dt = benchmark.pedantic(_timed, args=("asi208", tmp_path), rounds=1, iterations=1)
    # the target (≤ 15 s on 2 idle cores) is read off the benchmark table, not asserted here:
    # the default test run shares the cores with everything else
    assert m["fourfold_fraction"]["Si"] >= 0.9


@pytest.mark.slow
def test_bench_asi20k(tmp_path):
    model, m, dt = _timed("asi20k", tmp_path)
    assert m["first_peak_A"]["Si-Si"] == pytest.approx(2.35, abs=0.03)
    assert m["fourfold_fraction"]["Si"] >= 0.9
    assert dt <= 600.0


@pytest.mark.slow
def test_bench_sigesn14k(tmp_path):
    model, m, dt = _timed("sigesn14k", tmp_path)
    pk = m["first_peak_A"]
    assert pk["Si-Si"] < pk["Ge-Ge"] < pk["Sn-Sn"]
    assert dt <= 600.0


@pytest.mark.slow
def test_bench_copdpt18k(tmp_path):
    model, m, dt = _timed("copdpt18k", tmp_path)
    assert m["crystal_like_fraction"] <= 0.10
    assert dt <= 600.0
