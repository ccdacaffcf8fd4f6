"""RESIRE / SIRT / FBP on small volumes: round trip to atom positions, convergence, amplitude, determinism."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from aetbench import geometry
from aetbench.io.files import AetbenchError
from aetbench.reconstruct import fbp, forward_project, resire, sirt
from aetbench.simulate.linear import simulate_linear
from aetbench.types import AtomicModel, TiltSeries, Volume

PIX = 0.4  # Å


def _random_model(n_atoms: int, radius: float, dmin: float, seed: int) -> AtomicModel:
    rng = np.random.default_rng(seed)
    pos: list[np.ndarray] = []
    while len(pos) < n_atoms:
        p = rng.uniform(-radius, radius, 3)
        if np.linalg.norm(p) <= radius and all(np.linalg.norm(p - q) >= dmin for q in pos):
            pos.append(p)
    return AtomicModel(np.array(pos), ["Si"] * n_atoms)


def _peaks(vol: Volume, rel_threshold: float = 0.25, half: int = 2) -> np.ndarray:
    """Local maxima above threshold, refined by the centre of mass of a (2·half+1)³ box → positions [Å]."""
    d = vol.data.astype(np.float64)
    is_max = (d == ndimage.maximum_filter(d, size=2 * half + 1)) & (d > rel_threshold * d.max())
    out = []
    for idx in np.argwhere(is_max):
        lo = idx - half
        box = d[lo[0]:idx[0] + half + 1, lo[1]:idx[1] + half + 1, lo[2]:idx[2] + half + 1]
        w = box / box.sum()
        grid = np.indices(box.shape).reshape(3, -1)
        out.append(lo + (grid * w.reshape(-1)).sum(axis=1))
    return vol.index_to_position(np.array(out))


@pytest.fixture(scope="module")
def atoms_series():
    model = _random_model(20, radius=5.0, dmin=2.3, seed=7)
    thetas = np.linspace(-70.0, 70.0, 36)
    ts = simulate_linear(model, thetas, pixel_size=PIX, shape=(44, 44))
    return model, ts


@pytest.fixture(scope="module")
def atoms_resire(atoms_series):
    _, ts = atoms_series
    return resire(ts, iterations=150)


def test_resire_round_trip_atom_positions(atoms_series, atoms_resire):
    model, ts = atoms_series
    vol = atoms_resire
    assert vol.shape == (44, 44, 44) and vol.data.dtype == np.float32 and vol.voxel_size == PIX
    peaks = _peaks(vol) + np.asarray(ts.metadata["centre_A"])   # reconstruction frame → object frame
    assert len(peaks) == len(model)
    dist = np.linalg.norm(model.positions[:, None, :] - peaks[None, :, :], axis=2)
    nearest = dist.min(axis=1)
    assert len(set(dist.argmin(axis=1).tolist())) == len(model)  # one peak per atom
    assert nearest.max() < 0.1, nearest


def test_resire_r_factor_decreases_monotonically(atoms_resire):
    r = np.array(atoms_resire.metadata["r_factor"])
    assert len(r) == 150
    assert np.all(np.diff(r) <= 1e-7 * r[:-1]), np.diff(r).max()
    assert r[-1] < 0.1 * r[0] and r[-1] < 0.08  # floor: Gaussian atoms of ~1 voxel width on a voxel grid


def test_resire_amplitude_preserved(atoms_series, atoms_resire):
    """Σ voxels of the reconstruction ≈ Σ of one projection (sum along the beam is the projector's unit)."""
    _, ts = atoms_series
    assert atoms_resire.data.sum() == pytest.approx(ts.images[len(ts) // 2].sum(), rel=0.03)


def test_resire_deterministic_and_initial(atoms_series, atoms_resire):
    _, ts = atoms_series
    a = resire(ts, iterations=5)
    b = resire(ts, iterations=5)
    np.testing.assert_array_equal(a.data, b.data)
    # warm start from the converged volume: already near the minimum, so R stays low from the start
    c = resire(ts, iterations=2, initial=atoms_resire)
    assert c.metadata["r_factor"][0] <= atoms_resire.metadata["r_factor"][-1] * 1.001
    assert a.metadata["r_factor"][0] > 10 * c.metadata["r_factor"][0]


def test_resire_nesterov_reaches_plain_r_factor_in_a_third(atoms_series, atoms_resire):
    """FISTA momentum: the plain method's 150-iteration R-factor in ≤ 50 iterations, same atoms, never rising."""
    model, ts = atoms_series
    fast = resire(ts, iterations=50, accelerate="nesterov")
    r_plain = atoms_resire.metadata["r_factor"][-1]
    r = np.array(fast.metadata["r_factor"])
    assert r[-1] <= r_plain, (r[-1], r_plain)
    assert np.all(np.diff(r) <= 1e-3 * r[:-1])  # restarts keep it (near-)monotone
    peaks = _peaks(fast) + np.asarray(ts.metadata["centre_A"])   # reconstruction frame → object frame
    assert len(peaks) == len(model)
    assert np.linalg.norm(model.positions[:, None, :] - peaks[None, :, :], axis=2).min(axis=1).max() < 0.1
    with pytest.raises(AetbenchError, match="accelerate"):
        resire(ts, iterations=1, accelerate="adam")


def test_resire_ordered_subsets_reach_plain_r_factor_in_a_third(atoms_series, atoms_resire):
    """Ordered subsets (6 groups of 6 projections, 25 subset + 25 plain iterations): the plain 150-iteration
    R-factor in ≤ 50 iterations, same atoms."""
    from aetbench.reconstruct.resire import make_projector, r_factor

    model, ts = atoms_series
    fast = resire(ts, iterations=50, accelerate="subsets", subsets=6)
    assert fast.metadata["subsets"] == 6 and len(fast.metadata["r_factor"]) == 50
    r_true = r_factor(make_projector(ts, fast.shape).forward(fast.data), ts.images)
    assert r_true <= atoms_resire.metadata["r_factor"][-1], r_true
    peaks = _peaks(fast) + np.asarray(ts.metadata["centre_A"])   # reconstruction frame → object frame
    assert len(peaks) == len(model)
    assert np.linalg.norm(model.positions[:, None, :] - peaks[None, :, :], axis=2).min(axis=1).max() < 0.1
    with pytest.raises(AetbenchError, match="subsets"):
        resire(ts, iterations=1, accelerate="subsets", subsets=len(ts) + 1)
    # no subset sweeps = plain RESIRE; the split is checked
    plain = resire(ts, iterations=3)
    none = resire(ts, iterations=3, accelerate="subsets", subset_iterations=0)
    np.testing.assert_allclose(none.data, plain.data, rtol=1e-6, atol=1e-7 * float(plain.data.max()))
    with pytest.raises(AetbenchError, match="subset_iterations"):
        resire(ts, iterations=3, accelerate="subsets", subset_iterations=4)


def test_resire_cyclic_follows_the_plain_path_in_a_third(atoms_series, atoms_resire):
    """Two alternating steps (mean 10/3): 45 iterations land on the plain method's 150th iterate (the same
    early-stopped reconstruction, not just the same R-factor), where momentum lands elsewhere."""
    model, ts = atoms_series
    plain = atoms_resire.data
    fast = resire(ts, iterations=45, accelerate="cyclic")
    m = fast.metadata
    long, short = m["cycle_steps"]
    assert m["flow_steps"] == pytest.approx(22 * (long + short) + short) and len(m["r_factor"]) == 45
    assert long + short == pytest.approx(20.0 / 3.0) and long > 2.0 / m["normal_eigenvalue_max"] > short
    assert m["r_factor"][-1] <= atoms_resire.metadata["r_factor"][-1]

    def dist(v):
        return float(np.linalg.norm(v - plain) / np.linalg.norm(plain))

    assert dist(fast.data) < 0.01, dist(fast.data)                       # measured 0.0045
    assert dist(resire(ts, iterations=45).data) > 0.2                    # plain steps get a third of the way
    assert dist(resire(ts, iterations=45, accelerate="nesterov").data) > 0.1   # momentum: another path (0.14)
    peaks = _peaks(fast) + np.asarray(ts.metadata["centre_A"])
    assert len(peaks) == len(model)
    # φ, ψ within ±2.8° (the CoPdPt data): the eigenvalue comes from the whole volume, the cycle stays on the path
    rng = np.random.default_rng(3)
    ang = ts.angles.copy()
    ang[:, 0], ang[:, 2] = rng.uniform(-2.8, 2.8, len(ang)), rng.uniform(-2.8, 2.8, len(ang))
    ts_e = TiltSeries(forward_project(plain, ang, image_shape=ts.shape), ang, ts.pixel_size)
    e_plain = resire(ts_e, iterations=150).data
    e_fast = resire(ts_e, iterations=45, accelerate="cyclic")
    assert e_fast.metadata["normal_eigenvalue_max"] == pytest.approx(m["normal_eigenvalue_max"], rel=0.05)
    assert np.linalg.norm(e_fast.data - e_plain) / np.linalg.norm(e_plain) < 0.01
    with pytest.raises(AetbenchError, match="speedup.*at most 3.9"):
        resire(ts, iterations=2, accelerate="cyclic", speedup=5.0)
    with pytest.raises(AetbenchError, match="speedup"):
        resire(ts, iterations=2, accelerate="cyclic", speedup=0.5)


def test_two_step_cycle_is_stable_and_keeps_the_flow_time():
    """The pair's polynomial p(μ) = (1 − h₁μ)(1 − h₂μ): slope −2·mean at 0 (the plain flow for slow components),
    |p| ≤ ρ over the stiff components, equioscillating at its minimum and at μ_max; constant steps below ~1."""
    from aetbench.reconstruct.schedule import RHO_MAX, cycle_multipliers, max_cycle_speedup, two_step_cycle

    for mu in (0.5, 0.9566, 1.4):
        for mean in [m for m in (0.9, 1.5, 2.5, 10 / 3, 0.95 * max_cycle_speedup(mu)) if m <= max_cycle_speedup(mu)]:
            h1, h2, rho = two_step_cycle(mean, mu)
            lam = np.linspace(0.0, mu, 20001)
            p = (1 - h1 * lam) * (1 - h2 * lam)
            assert h1 + h2 == pytest.approx(2 * mean) and rho <= RHO_MAX and p[-1] == pytest.approx(rho, rel=1e-6)
            if h1 > h2:  # a real pair: equioscillation, |p| ≤ ρ beyond the first root
                assert -p.min() == pytest.approx(rho, rel=1e-3)
                assert np.all(np.abs(p[lam > 1.0 / h1]) <= rho * (1 + 1e-9))
    assert two_step_cycle(0.9, 1.0)[:2] == (0.9, 0.9)
    assert max_cycle_speedup(0.9566) == pytest.approx(3.92, abs=0.01)
    np.testing.assert_array_equal(cycle_multipliers(4, 4.0, 1.0), [4.0, 1.0, 4.0, 1.0])  # ends short
    np.testing.assert_array_equal(cycle_multipliers(5, 4.0, 1.0), [1.0, 4.0, 1.0, 4.0, 1.0])  # odd: short first
    with pytest.raises(AetbenchError, match="speedup"):
        two_step_cycle(4.5, 0.9566)


@pytest.mark.parametrize("euler", [False, True], ids=["single_axis", "euler"])
def test_normal_eigenvalue_max_equals_the_dense_operator(euler):
    """Power iteration (one slab for tilts about y, the whole volume otherwise) = the largest eigenvalue of the
    dense dt₀·AᵀA.  With φ, ψ of a few degrees one slab would see about half of it (the footprints split
    between image rows), and a cycle designed for that would diverge."""
    from aetbench.reconstruct.projector import Projector
    from aetbench.reconstruct.schedule import normal_eigenvalue_max

    vs, ims = (9, 7, 9), (9, 7)
    ang = np.array([[0.0, t, 0.0] for t in np.linspace(-60.0, 60.0, 13)])
    if euler:
        rng = np.random.default_rng(1)
        ang[:, 0], ang[:, 2] = rng.uniform(-2.8, 2.8, 13), rng.uniform(-2.8, 2.8, 13)
    P = Projector(vs, ang, image_shape=ims)
    cols = []
    for i in range(int(np.prod(vs))):
        e = np.zeros(int(np.prod(vs)), np.float32)
        e[i] = 1.0
        cols.append(P.forward(e.reshape(vs)).ravel())
    A = np.array(cols, dtype=np.float64).T
    dense = np.linalg.eigvalsh(A.T @ A).max() / (len(ang) * ims[0])
    assert normal_eigenvalue_max(ang, vs, ims, ims[0], projector=P) == pytest.approx(dense, rel=1e-3)


def test_resire_in_place_iterations_match_reference(atoms_series):
    """The buffer-reusing loop is the textbook update x ← max(0, x − t Aᵀ(Ax − b)) (float32 round-off)."""
    from aetbench.reconstruct.resire import make_projector

    _, ts = atoms_series
    vol = resire(ts, iterations=4)
    P = make_projector(ts, vol.shape)
    b = ts.images.astype(np.float32)
    x = np.zeros(vol.shape, np.float32)
    t = np.float32(1.0 / (len(ts) * vol.shape[2]))
    for _ in range(4):
        x = np.maximum(x - t * P.back(P.forward(x) - b), 0.0)
    np.testing.assert_allclose(vol.data, x, rtol=1e-5, atol=1e-6 * float(x.max()))


def _phantom(n: int) -> np.ndarray:
    g = np.arange(n) - n // 2
    X, Y, Z = np.meshgrid(g, g, g, indexing="ij")
    ph = np.zeros((n, n, n), np.float32)
    ph[(X / 13.0) ** 2 + (Y / 11.0) ** 2 + (Z / 9.0) ** 2 < 1] = 1.0
    ph[((X - 4) / 4.0) ** 2 + ((Y + 3) / 5.0) ** 2 + ((Z - 2) / 3.0) ** 2 < 1] = 2.0
    ph[((X + 6) ** 2 + (Y - 4) ** 2 + (Z + 3) ** 2) < 9] = 0.3
    return ph


def _corr(a, b) -> float:
    return float(np.corrcoef(np.ravel(a), np.ravel(b))[0, 1])


@pytest.fixture(scope="module")
def phantom_full():
    ph = _phantom(36)
    angles = geometry.single_axis_angles(np.arange(-90.0, 90.0, 3.0))
    return ph, TiltSeries(forward_project(ph, angles), angles, pixel_size=0.5)


@pytest.mark.parametrize("name", ["ramp", "hann", "shepp-logan", "cosine"])
def test_fbp_phantom_and_amplitude(phantom_full, name):
    ph, ts = phantom_full
    vol = fbp(ts, filter=name)
    assert vol.voxel_size == 0.5 and vol.data.dtype == np.float32
    assert _corr(vol.data, ph) > 0.9
    # a uniform region is reconstructed with the right amplitude (full 180° scheme)
    inside = (ph == 1.0) & (ndimage.binary_erosion(ph == 1.0, iterations=2))
    assert vol.data[inside].mean() == pytest.approx(1.0, abs=0.05)


def test_sirt_phantom_limited_wedge():
    ph = _phantom(36)
    angles = geometry.single_axis_angles(np.linspace(-70.0, 70.0, 36))
    ts = TiltSeries(forward_project(ph, angles), angles, pixel_size=0.5)
    vol = sirt(ts, iterations=60)
    assert _corr(vol.data, ph) > 0.9
    r = np.array(vol.metadata["r_factor"])
    assert r[-1] < 0.3 * r[0] and r[-1] < 0.05
    np.testing.assert_array_equal(vol.data, sirt(ts, iterations=60).data)


def test_general_euler_reconstruction():
    """Non-single-axis scheme (general projector path) reconstructs too."""
    ph = _phantom(24)[::1, ::1, ::1]
    rng = np.random.default_rng(0)
    angles = np.column_stack([rng.uniform(-180, 180, 30), rng.uniform(-70, 70, 30), rng.uniform(-180, 180, 30)])
    ts = TiltSeries(forward_project(ph, angles), angles, pixel_size=0.5)
    vol = resire(ts, iterations=40)
    assert vol.metadata["single_axis_projector"] is False
    assert _corr(vol.data, ph) > 0.9
    assert _corr(fbp(ts).data, ph) > 0.8


def test_bad_arguments(phantom_full):
    _, ts = phantom_full
    with pytest.raises(AetbenchError, match="iterations"):
        resire(ts, iterations=0)
    with pytest.raises(AetbenchError, match="step"):
        resire(ts, step=-1.0)
    with pytest.raises(AetbenchError, match="volume_shape"):
        sirt(ts, volume_shape=(4, 4))
    with pytest.raises(AetbenchError, match="relaxation"):
        sirt(ts, relaxation=3.0)
    with pytest.raises(AetbenchError, match="filter"):
        fbp(ts, filter="gauss")
    with pytest.raises(AetbenchError, match="initial"):
        resire(ts, initial=np.zeros((3, 3, 3)))


_RESIRE_GPU = """
import numpy as np
from aetbench.reconstruct.gpu import available
from aetbench.reconstruct.projector import forward_project
from aetbench.reconstruct.resire import resire
from aetbench.types import TiltSeries
if not available():
    raise SystemExit(77)
rng = np.random.default_rng(0)
vol = np.zeros((6, 5, 6), np.float32)
vol[1:5, 1:4, 2:5] = rng.random((4, 3, 3))
ang = np.array([[0.0, -40.0, 0.0], [3.0, 0.0, -2.0], [-2.0, 60.0, 1.0]])
ts = TiltSeries(forward_project(vol, ang, image_shape=(6, 5)), ang, 0.3)
for acc in ("none", "nesterov", "cyclic"):
    c = resire(ts, iterations=2, accelerate=acc, volume_shape=vol.shape, device="cpu", projector="general")
    g = resire(ts, iterations=2, accelerate=acc, volume_shape=vol.shape, device="gpu")
    np.testing.assert_allclose(g.data, c.data, rtol=1e-5, atol=1e-6 * float(c.data.max()))
    np.testing.assert_allclose(g.metadata["r_factor"], c.metadata["r_factor"], rtol=1e-5)
    assert g.metadata["device"] == "gpu"
print("ok")
"""


def test_resire_gpu_matches_cpu():
    """--device gpu RESIRE (plain, Nesterov and the cyclic steps) = CPU RESIRE to float32 round-off (simulator when no GPU)."""
    try:
        from tests.test_projector import run_gpu_check
    except ImportError:  # tests/ itself on sys.path
        from test_projector import run_gpu_check

    assert "ok" in run_gpu_check(_RESIRE_GPU, timeout=600)


def test_resire_device_argument():
    from aetbench.reconstruct import gpu

    _, ts = _tiny_series()
    with pytest.raises(AetbenchError, match="device"):
        resire(ts, iterations=1, device="tpu")
    if not gpu.available():
        with pytest.raises(AetbenchError, match="gpu"):
            resire(ts, iterations=1, device="gpu")


def _tiny_series():
    vol = np.zeros((6, 6, 6), np.float32)
    vol[3, 3, 3] = 1.0
    ang = geometry.single_axis_angles(np.array([-30.0, 0.0, 30.0]))
    return vol, TiltSeries(forward_project(vol, ang), ang, 0.4)


def test_schedule_examples():
    """The schedule module's docstring examples hold (the numbers quoted in its documentation)."""
    import doctest

    from aetbench.reconstruct import schedule

    assert doctest.testmod(schedule).failed == 0
