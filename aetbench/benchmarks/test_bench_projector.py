"""Benchmark: forward + back projection (FP+BP) of a 128³ volume × 60 projections, and 290³ (heavy).

Limits on 2 cores (issue 18): FP+BP 128³ × 60 ≤ 25 ms on the single-axis path, ≤ 150 ms for arbitrary Euler
angles (``method="auto"``: shear-warp, or the exact splat along y rows for projections within ≈ 3° of the tilt axis,
as in a measured series: ``euler-near-axis``); the voxel-driven ``general`` splat runs beside them as the peer.  The 290³ × 60 pair (the paper's 20k-atom geometry, 10.5× the voxels) runs with
``AETBENCH_BENCH_HEAVY=1``.  Run with ``pytest aetbench/benchmarks/test_bench_projector.py --benchmark-enable``; under
the default ``--benchmark-disable`` each runs once as a plain test (which also checks ⟨x, AᵀAx⟩ > 0 at full
size).  The GPU pair (``aetbench.reconstruct.gpu``) is benchmarked alongside when numba sees a CUDA device.
"""
from __future__ import annotations

import os

import numpy as np
import pytest

from aetbench.reconstruct.projector import Projector

N_PROJ = 60
HEAVY = os.environ.get("AETBENCH_BENCH_HEAVY", "") == "1"
SIZES = [128, pytest.param(290, marks=pytest.mark.skipif(not HEAVY, reason="set AETBENCH_BENCH_HEAVY=1 (290³)"))]


def _volume(n: int) -> np.ndarray:
    return np.random.default_rng(0).random((n, n, n), dtype=np.float32)


def _angles(single_axis: bool, near_axis: bool = False) -> np.ndarray:
    """Tilts −70…70° about y; Euler: phi and psi uniform over the circle, or (``near_axis``) 1° rms as in a
    measured series (CoPdPt: within ±2.8°)."""
    rng = np.random.default_rng(1)
    a = np.zeros((N_PROJ, 3))
    a[:, 1] = np.linspace(-70.0, 70.0, N_PROJ)
    if not single_axis:
        if near_axis:
            a[:, [0, 2]] = rng.normal(0.0, 1.0, (N_PROJ, 2))
        else:
            a[:, 0] = rng.uniform(-180.0, 180.0, N_PROJ)
            a[:, 2] = rng.uniform(-180.0, 180.0, N_PROJ)
    return a


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("single_axis,near_axis,method", [(True, False, "auto"), (False, False, "auto"),
                                                          (False, True, "auto"), (False, False, "general")],
                         ids=["single_axis", "euler", "euler-near-axis", "euler-general"])
def test_bench_forward_back(benchmark, n, single_axis, near_axis, method):
    volume = _volume(n)
    P = Projector(volume.shape, _angles(single_axis, near_axis), method=method)
    assert P.single_axis is single_axis
    assert P.method == ("single_axis" if single_axis else "shear_warp" if method == "auto" else "general")
    x = P.to_native(volume)
    img = np.empty(P.projections_shape, np.float32)
    out = np.empty_like(x)
    P.back_native(P.forward_native(x, out=img), out=out)  # compile / warm caches

    def run():
        return P.back_native(P.forward_native(x, out=img), out=out)

    res = benchmark.pedantic(run, rounds=5 if n <= 128 else 2, iterations=1, warmup_rounds=1 if n <= 128 else 0)
    assert res.shape == x.shape and np.isfinite(res).all()
    # AᵀA is positive: ⟨x, AᵀA x⟩ = ‖A x‖² > 0
    assert float(np.sum(res.astype(np.float64) * x)) > 0


def _gpu_usable() -> bool:
    if os.environ.get("NUMBA_ENABLE_CUDASIM"):
        return False  # the simulator is for correctness, not timing
    from aetbench.reconstruct.gpu import available

    return available()


@pytest.mark.skipif(not _gpu_usable(), reason="no CUDA GPU")
@pytest.mark.parametrize("n", [128, 290])
def test_bench_forward_back_gpu(benchmark, n):
    from numba import cuda

    from aetbench.reconstruct.gpu import GpuProjector

    volume = _volume(n)
    G = GpuProjector(volume.shape, _angles(False))
    x = cuda.to_device(volume)
    pad = G.new_pad()
    out = cuda.device_array(volume.shape, np.float32)

    def run():
        G.forward_device(x, pad)
        G.back_device(pad, out)
        cuda.synchronize()

    benchmark.pedantic(run, rounds=5, iterations=1, warmup_rounds=1)
    cpu = Projector(volume.shape, _angles(False))
    ref = cpu.back(cpu.forward(volume))
    np.testing.assert_allclose(out.copy_to_host(), ref, rtol=1e-3, atol=1e-3 * float(ref.max()))
