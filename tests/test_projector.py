"""Projector pair: exact adjoint, single-axis == general, geometry convention, simulator consistency."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aetbench import geometry
from aetbench.io.files import AetbenchError
from aetbench.reconstruct.projector import Projector, back_project, forward_project, is_single_axis
from aetbench.simulate.linear import LinearParams, simulate_linear
from aetbench.types import AtomicModel

VSHAPE = (13, 10, 11)
ISHAPE = (15, 12)


def _adjoint_gap(P: Projector, seed: int) -> float:
    """Worst relative mismatch of ⟨Ax, y⟩ and ⟨x, Aᵀy⟩ (float64 sums of the float32 operators).

    Non-negative test vectors make every term positive (no cancellation), so the
    plain relative error is meaningful; signed vectors are checked relative to
    ``‖Ax‖·‖y‖`` (their inner products can cancel to ~0).
    """
    rng = np.random.default_rng(seed)
    gaps = []
    for signed in (False, True):
        draw = rng.standard_normal if signed else rng.random
        x = draw(P.volume_shape).astype(np.float32)
        y = draw(P.projections_shape).astype(np.float32)
        ax = P.forward(x).astype(np.float64)
        lhs = np.sum(ax * y)
        rhs = np.sum(x.astype(np.float64) * P.back(y))
        scale = np.linalg.norm(ax) * np.linalg.norm(y) if signed else max(abs(lhs), abs(rhs))
        gaps.append(abs(lhs - rhs) / scale)
    return max(gaps)


angle = st.floats(-180.0, 180.0, allow_nan=False, allow_infinity=False)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(angle, angle, angle), min_size=1, max_size=4), st.integers(0, 2**31 - 1))
def test_adjoint_general_random_euler(angles, seed):
    rng = np.random.default_rng(seed)
    shifts = rng.uniform(-2, 2, (len(angles), 2))
    P = Projector(VSHAPE, np.array(angles), image_shape=ISHAPE, shifts=shifts, method="general")
    assert _adjoint_gap(P, seed) < 1e-5


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(angle, angle, angle), min_size=1, max_size=4), st.integers(0, 2**31 - 1))
def test_adjoint_shear_warp_random_euler(angles, seed):
    """Every principal axis (x, y, z) and layout: the shear-warp pair is an exact transpose."""
    rng = np.random.default_rng(seed)
    shifts = rng.uniform(-2, 2, (len(angles), 2))
    P = Projector(VSHAPE, np.array(angles), image_shape=ISHAPE, shifts=shifts, method="shear_warp")
    assert _adjoint_gap(P, seed) < 1e-5


def test_shear_warp_agrees_with_the_general_splat():
    """Same geometry as the voxel-driven splat: every voxel's footprint has the same mass and centroid; on a smooth
    object the images agree to the second interpolation's extra blur, for beams closest to x, y and z."""
    from aetbench.reconstruct.shearwarp import shear_warp_plan

    shape, ims = (24, 22, 20), (28, 26)
    angles = np.array([[0.0, 20.0, 0.0], [10.0, 70.0, -5.0], [90.0, 80.0, 0.0], [33.0, -55.0, 140.0],
                       [-120.0, 15.0, -33.0], [2.0, -3.0, 1.5]])
    shifts = np.random.default_rng(2).uniform(-1.5, 1.5, (len(angles), 2))
    sw = Projector(shape, angles, ims, shifts, method="shear_warp")
    gen = Projector(shape, angles, ims, shifts, method="general")
    plan = shear_warp_plan(sw.R, sw.shifts, shape, ims)
    principal = np.argmax(np.abs(sw.R[:, 2, :]), axis=1)
    assert set(principal) == {0, 1, 2} and set(plan.layout) == {0, 1, 2}
    ii, jj = np.indices(ims)
    for idx in ([12, 11, 10], [5, 17, 14], [19, 3, 6]):
        vol = np.zeros(shape, np.float32)
        vol[tuple(idx)] = 1.0
        a, b = sw.forward(vol), gen.forward(vol)
        np.testing.assert_allclose(a.sum(axis=(1, 2)), b.sum(axis=(1, 2)), atol=1e-5)
        for k in range(len(angles)):
            if b[k].sum() > 0.999:
                ca = [(ii * a[k]).sum() / a[k].sum(), (jj * a[k]).sum() / a[k].sum()]
                cb = [(ii * b[k]).sum() / b[k].sum(), (jj * b[k]).sum() / b[k].sum()]
                np.testing.assert_allclose(ca, cb, atol=1e-4)
    g = [np.arange(n) - n // 2 for n in shape]
    X, Y, Z = np.meshgrid(*g, indexing="ij")
    blob = np.exp(-((X - 2) ** 2 + (Y + 1) ** 2 + (Z - 1.5) ** 2) / (2 * 2.0 ** 2)).astype(np.float32)
    a, b = sw.forward(blob), gen.forward(blob)
    for k in range(len(angles)):
        assert np.corrcoef(a[k].ravel(), b[k].ravel())[0, 1] > 0.995  # a one-voxel shift gives ≈ 0.94
        assert a[k].sum() == pytest.approx(b[k].sum(), rel=1e-4)


def test_near_axis_projections_are_the_general_splat_exactly():
    """A series with small phi / psi (measured or refined angles, ≤ 3°) takes the row splat: the general operator
    to float32 round-off, both directions, at any tilt and with shifts."""
    rng = np.random.default_rng(4)
    n = 12
    angles = np.column_stack([rng.normal(0, 1.2, n), np.linspace(-75, 75, n), rng.normal(0, 1.2, n)])
    shifts = rng.normal(0, 1.5, (n, 2))
    fast = Projector(VSHAPE, angles, ISHAPE, shifts)
    slow = Projector(VSHAPE, angles, ISHAPE, shifts, method="general")
    assert fast.method == "shear_warp" and set(fast._plan.layout) == {2}
    vol = rng.random(VSHAPE).astype(np.float32)
    img = rng.random((n, *ISHAPE)).astype(np.float32)
    np.testing.assert_allclose(fast.forward(vol), slow.forward(vol), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(fast.back(img), slow.back(img), rtol=1e-5, atol=1e-5)


def test_auto_picks_shear_warp_for_euler_angles():
    assert Projector((8, 8, 8), [[10.0, 5.0, 0.0]]).method == "shear_warp"
    assert Projector((8, 8, 8), [[0.0, 5.0, 0.0]]).method == "single_axis"


@pytest.mark.parametrize("shape,ishape", [(VSHAPE, ISHAPE), ((16, 16, 16), (16, 16)), ((12, 14, 9), (10, 11))])
def test_adjoint_single_axis(shape, ishape):
    theta = np.linspace(-73.0, 81.0, 9)
    shifts = np.zeros((9, 2))
    shifts[:, 0] = np.linspace(-1.3, 2.2, 9)
    P = Projector(shape, theta, image_shape=ishape, shifts=shifts)
    assert P.single_axis
    assert _adjoint_gap(P, 1) < 1e-5


def test_single_axis_equals_general():
    rng = np.random.default_rng(3)
    theta = rng.uniform(-90, 90, 7)
    shifts = np.column_stack([rng.uniform(-2, 2, 7), np.zeros(7)])
    vol = rng.random(VSHAPE).astype(np.float32)
    img = rng.random((7, *ISHAPE)).astype(np.float32)
    fast = Projector(VSHAPE, theta, ISHAPE, shifts, method="single_axis")
    slow = Projector(VSHAPE, theta, ISHAPE, shifts, method="general")
    np.testing.assert_allclose(fast.forward(vol), slow.forward(vol), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(fast.back(img), slow.back(img), rtol=1e-5, atol=1e-5)
    assert is_single_axis(geometry.single_axis_angles(theta))
    assert not is_single_axis([[10.0, 20.0, 0.0]])


@pytest.mark.parametrize("angles", [(0.0, 0.0, 0.0), (0.0, 90.0, 0.0), (0.0, 37.0, 0.0), (25.0, -40.0, 60.0),
                                    (-120.0, 15.0, -33.0)])
def test_single_voxel_lands_where_geometry_says(angles):
    shape = (21, 19, 17)
    idx = np.array([14, 5, 11])
    vol = np.zeros(shape, np.float32)
    vol[tuple(idx)] = 1.0
    img = forward_project(vol, [angles], image_shape=(25, 23))[0]
    assert img.sum() == pytest.approx(1.0, abs=1e-6)
    ii, jj = np.indices(img.shape)
    centroid = np.array([(ii * img).sum(), (jj * img).sum()])
    spacing = 0.7
    pos = geometry.index_to_position(idx, shape, spacing)
    beam = geometry.object_to_beam(pos, angles)
    expected = beam[:2] / spacing + np.array([25 // 2, 23 // 2])
    np.testing.assert_allclose(centroid, expected, atol=1e-5)


def test_tilt_convention_sign():
    """theta = +90°: r_beam = R r with R = Ry(90)ᵀ, so object +z lands on image -x; y is untouched."""
    vol = np.zeros((16, 16, 16), np.float32)
    vol[8, 11, 13] = 1.0  # x = 0, y = +3, z = +5 voxels
    img = forward_project(vol, [[0.0, 90.0, 0.0]])[0]
    assert np.unravel_index(np.argmax(img), img.shape) == (8 - 5, 8 + 3)


def test_projection_matches_simulate_linear():
    """Projecting a voxelised Gaussian model reproduces simulate_linear's images (same frame, no flips)."""
    pix = 0.4
    n = 40
    model = AtomicModel([[2.0, -1.2, 3.1], [-3.3, 2.4, -0.8], [0.7, 3.5, -3.0]], ["Si", "Si", "Si"])
    params = LinearParams(default_sigma_A=0.4, blur_sigma_A=0.0, amplitude={"Si": 1.0})
    angles = np.array([[0, 0, 0], [0, 60, 0], [30, -45, 20], [-70, 20, 110]], float)
    ts = simulate_linear(model, angles, pixel_size=pix, shape=(n, n), params=params, centre=(0.0, 0.0, 0.0))
    g = geometry.axis_coordinates(n, pix)   # the volume's origin is the stated rotation centre
    X, Y, Z = np.meshgrid(g, g, g, indexing="ij")
    vol = np.zeros((n, n, n))
    for p in model.positions:
        vol += np.exp(-((X - p[0]) ** 2 + (Y - p[1]) ** 2 + (Z - p[2]) ** 2) / (2 * 0.4**2))
    vol /= (2 * np.pi * 0.4**2) ** 1.5 / pix**3  # each atom integrates to 1 (volume units × voxels)
    proj = forward_project(vol.astype(np.float32), angles)
    sim = ts.images * pix**2  # per-pixel fraction → integrated per pixel
    for k in range(len(angles)):
        assert np.corrcoef(proj[k].ravel(), sim[k].ravel())[0, 1] > 0.98
        assert proj[k].sum() == pytest.approx(sim[k].sum(), rel=0.02)


def test_bad_input_raises():
    with pytest.raises(AetbenchError, match="angles"):
        Projector((8, 8, 8), np.zeros((3, 2)))
    with pytest.raises(AetbenchError, match="volume_shape"):
        Projector((8, 8), [0.0])
    with pytest.raises(AetbenchError, match="single_axis"):
        Projector((8, 8, 8), [[10.0, 5.0, 0.0]], method="single_axis")
    with pytest.raises(AetbenchError, match="volume"):
        Projector((8, 8, 8), [0.0]).forward(np.zeros((8, 8, 7)))
    with pytest.raises(AetbenchError, match="images"):
        back_project(np.zeros((8, 8)), [0.0])


# ------------------------------------------------------------------------------ GPU backend
_GPU_CHECK = """
import numpy as np
from aetbench.reconstruct.gpu import GpuProjector, available
from aetbench.reconstruct.projector import Projector
if not available():
    raise SystemExit(77)
rng = np.random.default_rng(0)
vs, ims = (6, 5, 7), (7, 6)
ang = np.array([[10.0, 30.0, -20.0], [0.0, -50.0, 0.0], [70.0, 5.0, 100.0]])
sh = rng.uniform(-1, 1, (3, 2))
G, C = GpuProjector(vs, ang, ims, sh), Projector(vs, ang, ims, sh, method="general")
x, y = rng.random(vs).astype(np.float32), rng.random((3, *ims)).astype(np.float32)
gx, gy = G.forward(x), G.back(y)
np.testing.assert_allclose(gx, C.forward(x), rtol=1e-5, atol=1e-5)
np.testing.assert_allclose(gy, C.back(y), rtol=1e-5, atol=1e-5)
lhs, rhs = float(np.sum(gx.astype(np.float64) * y)), float(np.sum(x.astype(np.float64) * gy))
assert abs(lhs - rhs) < 1e-5 * abs(lhs), (lhs, rhs)
print("ok")
"""


def run_gpu_check(code: str, timeout: int = 300) -> str:
    """Run ``code`` on a CUDA GPU if numba sees one, else under numba's CUDA simulator (a subprocess, since the
    simulator must be switched on before numba.cuda is imported); skip when neither is usable."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    env = dict(os.environ)
    try:
        from numba import cuda

        real = cuda.is_available() and not os.environ.get("NUMBA_ENABLE_CUDASIM")
    except Exception:  # noqa: BLE001
        real = False
    if not real:
        env["NUMBA_ENABLE_CUDASIM"] = "1"
    root = str(Path(__file__).resolve().parents[1])
    env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
    p = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=timeout)
    if p.returncode == 77 or "No module named 'numba.cuda" in p.stderr:
        pytest.skip("neither a CUDA GPU nor numba's CUDA simulator is usable")
    assert p.returncode == 0, p.stderr[-3000:]
    return p.stdout


def test_gpu_projector_matches_cpu_and_is_adjoint():
    assert "ok" in run_gpu_check(_GPU_CHECK)


def test_gpu_build_restores_numpy_aliases_numba_cuda_needs(monkeypatch):
    """NumPy 2.5 dropped np.row_stack, which numba-cuda registers at its first kernel compile (seen on an H200
    image): the GPU backend puts the alias back (to np.vstack) only where NumPy lacks it."""
    from aetbench.reconstruct import gpu

    monkeypatch.delitem(np.__dict__, "row_stack", raising=False)
    gpu._numpy_names_for_numba_cuda()
    assert np.row_stack is np.vstack
    keep = np.isin
    gpu._numpy_names_for_numba_cuda()
    assert np.isin is keep and np.row_stack is np.vstack
