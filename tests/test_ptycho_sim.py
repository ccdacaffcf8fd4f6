"""abTEM 4D-STEM simulator (aetbench.simulate.ptycho) on tiny particles: normalisation, geometry, rotation,
dose statistics, caching, determinism, validation."""
from __future__ import annotations

import numpy as np
import pytest

from aetbench.io.files import AetbenchError
from aetbench.ptycho.data import FourDSTEM
from aetbench.simulate import ptycho
from aetbench.simulate.abtem_adf import wavelength_A
from aetbench.simulate.ptycho import (PtychoConfig, apply_dose_4d, apply_dose_4d_series, bin_patterns, plan_ptycho,
                                      probe_diameter_A, simulate_4dstem)
from aetbench.types import AtomicModel

pytest.importorskip("abtem")

# coarse but physical: 0.1 Å potential sampling (cut-off ≈ 66 mrad), focused 25 mrad probe, 8 Å window, static atoms
FAST = dict(potential_sampling_A=0.1, max_angle_mrad=50.0, window_A=8.0, defocus_A=0.0, scan_step_A=0.3,
            phonon_configs=0, margin_A=2.0)


def cfg(**kw) -> PtychoConfig:
    return PtychoConfig(**{**FAST, **kw})


def _grids(d: FourDSTEM):
    """Detector angles [mrad] of every pixel (u, v) and the scattering angle."""
    a = (np.arange(d.nk) - d.nk // 2) * d.angular_sampling_mrad
    U, V = np.meshgrid(a, a, indexing="ij")
    return U, V, np.hypot(U, V)


def _dark_field(d: FourDSTEM, inner_mrad: float = 32.0) -> np.ndarray:
    _, _, T = _grids(d)
    return (d.intensities * (T > inner_mrad)).sum(axis=(-2, -1))


def _com_mrad(d: FourDSTEM):
    U, V, _ = _grids(d)
    s = d.intensities.sum(axis=(-2, -1))
    return (d.intensities * U).sum(axis=(-2, -1)) / s, (d.intensities * V).sum(axis=(-2, -1)) / s


# one gold atom off-centre (asymmetric in x and y), rotation centre at the origin, 17 × 17 positions
ATOM = np.array([1.5, -1.0, 0.0])


@pytest.fixture(scope="module")
def gold() -> FourDSTEM:
    m = AtomicModel(ATOM[None, :], ["Au"])
    return simulate_4dstem(m, [0.0], cfg(), seed=0, fov_A=5.0, centre=(0.0, 0.0, 0.0), scheduler="synchronous")[0]


# ----------------------------------------------------------------------------- pure helpers and validation

def test_config_validation_one_line_errors():
    with pytest.raises(AetbenchError, match="ptycho.engine"):
        PtychoConfig(engine="bloch")
    with pytest.raises(AetbenchError, match=r"ptycho.semiangle_mrad.*mrad"):
        PtychoConfig(semiangle_mrad=-1.0)
    with pytest.raises(AetbenchError, match=r"ptycho.max_angle_mrad.*semi-angle"):
        PtychoConfig(max_angle_mrad=20.0)
    with pytest.raises(AetbenchError, match=r"ptycho.scan_step_A.*overlap"):
        PtychoConfig(defocus_A=0.0, scan_step_A=0.6)                        # focused probe ≈ 0.96 Å wide
    with pytest.raises(AetbenchError, match="ptycho.phonon_sigma_A.O"):
        PtychoConfig(phonon_sigma_A={"O": 2.0})
    with pytest.raises(AetbenchError, match="ptycho.window_A"):
        PtychoConfig(window_A=0.5)
    with pytest.raises(AetbenchError, match="ptycho.frobnicate: unknown"):
        PtychoConfig.from_dict({"frobnicate": 1})
    c = PtychoConfig.from_dict({"scan_step_A": 0.5, "phonon_sigma_A": {"Si": 0.07}})
    assert c.scan_step_A == 0.5 and c.sigma_of("Si") == 0.07 and c.sigma_of("O") == c.default_phonon_sigma_A
    PtychoConfig(defocus_A=100.0, scan_step_A=2.0)                           # a 5 Å probe overlaps 61 %


def test_probe_diameter():
    lam = wavelength_A(300.0)
    assert probe_diameter_A(300.0, 25.0, 0.0) == pytest.approx(1.22 * lam / 0.025)
    assert probe_diameter_A(300.0, 25.0, 100.0) == pytest.approx(np.hypot(5.0, 1.22 * lam / 0.025))


def test_plan_geometry_and_cutoff_error():
    c = PtychoConfig()                                                       # defaults: 0.05 Å, 60 mrad, 16 Å window
    plan = plan_ptycho(12.0, c, fov_A=30.0)
    ext = plan.cell.extent_A
    assert plan.binning % 2 == 1 and 16.0 <= plan.window_A <= 1.25 * 16.0
    assert ext == pytest.approx(plan.binning * plan.window_A)
    assert ext >= 2 * (12.0 + c.margin_A) and ext >= 30.0
    # the periodic image of a probe at the field's edge (centre − 15 Å − its radius + ext) misses the particle
    r_probe = 0.025 * (100.0 + 12.0)
    assert ext / 2 - 15.0 - r_probe + ext >= ext / 2 + 12.0 + c.margin_A
    big = plan_ptycho(30.0, c, fov_A=88.0)                                   # paper-like: 17.6 Å window, cell kept
    assert big.binning == 5 and big.window_A == pytest.approx(88.0 / 5) and big.cell.extent_A == pytest.approx(88.0)
    small = plan_ptycho(9.0, cfg(window_A=16.0), fov_A=20.0)                # ≈ 22 Å needed: 16 Å window, cell 48 Å
    assert small.binning == 3 and small.window_A == pytest.approx(16.0)
    lam = wavelength_A(300.0)
    assert plan.angular_sampling_mrad == pytest.approx(plan.binning * lam / ext * 1e3)
    assert plan.nk % 2 == 0 and plan.nk // 2 * plan.angular_sampling_mrad <= 60.0
    assert (plan.nk // 2 + 2) * plan.angular_sampling_mrad > 60.0 * 0.9     # reaches close to the requested angle
    assert plan.window_A == pytest.approx(lam / (plan.angular_sampling_mrad * 1e-3))
    assert plan.n_scan == 75 and plan.scan_coordinates_A()[plan.n_scan // 2] == pytest.approx(ext / 2)
    with pytest.raises(AetbenchError, match=r"ptycho.max_angle_mrad: 60.0 mrad exceeds .*sampling_A ≤ 0.1094"):
        plan_ptycho(5.0, PtychoConfig(potential_sampling_A=0.2), fov_A=10.0)
    with pytest.raises(AetbenchError, match="fov_A"):
        plan_ptycho(5.0, PtychoConfig(), fov_A=-1.0)


def test_column_plan_and_simulation_of_a_column_along_the_beam():
    """A column (radius 3 Å, 12 Å thick) gets a cell that deep and sized laterally for the column; atoms outside
    the column raise; the data carry the column's depth (the engines' slice count follows it)."""
    c = cfg()
    sphere = plan_ptycho(6.0, c, fov_A=4.0)                                  # the sphere around a 12 Å column
    col = plan_ptycho(3.0, c, fov_A=4.0, depth_A=12.0)
    assert col.cell.depth_A == pytest.approx(14.0) and col.cell.depth_A % c.slice_thickness_A == pytest.approx(0)
    assert col.cell.extent_A < sphere.cell.extent_A
    assert col.cell.focus_A == pytest.approx(7.0 + c.slice_thickness_A / 2 + c.defocus_A)
    m = AtomicModel(np.array([[0.5, 0.0, -5.0], [-0.5, 0.5, 5.0]]), ["Si", "O"])
    d = simulate_4dstem(m, [0.0], c, seed=0, fov_A=2.0, centre=(0.0, 0.0, 0.0), column_A=(3.0, 12.0),
                        scheduler="synchronous")[0]
    assert d.depth_A == pytest.approx(14.0) and d.metadata["cell_A"][0] == pytest.approx(col.cell.extent_A)
    with pytest.raises(AetbenchError, match="column_A: atoms lie outside"):
        simulate_4dstem(m, [90.0], c, seed=0, fov_A=2.0, centre=(0.0, 0.0, 0.0), column_A=(3.0, 12.0))
    with pytest.raises(AetbenchError, match="column_A"):
        simulate_4dstem(m, [0.0], c, seed=0, fov_A=2.0, column_A=(3.0,))
    with pytest.raises(AetbenchError, match="depth_A"):
        plan_ptycho(3.0, c, fov_A=4.0, depth_A=-1.0)


def test_bin_patterns_centres_zero_frequency_and_conserves_counts():
    g, b, nk = 30, 3, 8
    p = np.zeros((2, g, g))
    p[0, g // 2, g // 2] = 1.0                 # zero frequency
    p[1, g // 2 + b, g // 2 - 2 * b + 1] = 2.0  # (+1, −2) detector pixels away, inside the block
    out = bin_patterns(p, b, nk)
    assert out.dtype == np.float32 and out.shape == (2, nk, nk)
    assert out[0, nk // 2, nk // 2] == 1.0 and out[0].sum() == 1.0
    assert out[1, nk // 2 + 1, nk // 2 - 2] == 2.0 and out[1].sum() == 2.0
    rng = np.random.default_rng(0)
    q = rng.random((g, g))
    lo = g // 2 - nk // 2 * b - b // 2
    assert bin_patterns(q, b, nk).sum() == pytest.approx(q[lo:lo + nk * b, lo:lo + nk * b].sum(), rel=1e-5)
    with pytest.raises(AetbenchError, match="binning"):
        bin_patterns(q, 2, nk)
    with pytest.raises(AetbenchError, match="bin_patterns"):
        bin_patterns(q, 3, 12)


def test_device_must_be_known():
    m = AtomicModel(np.zeros((1, 3)), ["Si"])
    with pytest.raises(AetbenchError, match="device"):
        simulate_4dstem(m, [0.0], cfg(), seed=0, fov_A=1.0, device="tpu")
    try:
        import cupy  # noqa: F401
    except Exception:
        with pytest.raises(AetbenchError, match="CuPy"):
            simulate_4dstem(m, [0.0], cfg(), seed=0, fov_A=1.0, device="gpu")


# ----------------------------------------------------------------------------- physics

def test_vacuum_patterns_sum_to_one_and_are_centred():
    # the only atom lies 9 Å from the scanned 1 Å field: the probe sees vacuum
    m = AtomicModel(np.array([[9.0, 0.0, 0.0]]), ["C"])
    d = simulate_4dstem(m, [0.0], cfg(defocus_A=40.0, scan_step_A=0.5), seed=0, fov_A=1.0, centre=(0.0, 0.0, 0.0),
                        scheduler="synchronous")[0]
    assert d.intensities.dtype == np.float32 and d.intensities.shape[:2] == (2, 2)
    assert d.dose_per_A2 is None and d.nk % 2 == 0
    np.testing.assert_allclose(d.intensities.sum(axis=(-2, -1)), 1.0, atol=2e-3)
    cu, cv = _com_mrad(d)
    assert np.abs(cu).max() < 0.01 * d.angular_sampling_mrad and np.abs(cv).max() < 0.01 * d.angular_sampling_mrad
    _, _, T = _grids(d)
    pat = d.intensities[0, 0]
    assert pat[T < 25.0 - d.angular_sampling_mrad].min() > 0.5 * pat.mean() * (d.nk ** 2) / (T < 25.0).sum()
    assert pat[T > 25.0 + 1.5 * d.angular_sampling_mrad].sum() < 1e-3     # bright-field disk of 25 mrad
    # metadata of the data contract
    assert d.defocus_A == pytest.approx(d.depth_A / 2 + 1.0 + 40.0)       # entrance-surface reference (+ dz/2)
    assert d.centre_A == (d.field_extent_A[0] / 2, d.field_extent_A[1] / 2)
    np.testing.assert_allclose(d.scan_positions_A[1, 0] - d.scan_positions_A[0, 0], [0.5, 0.0])
    np.testing.assert_allclose(d.scan_positions_A[0, 1] - d.scan_positions_A[0, 0], [0.0, 0.5])
    np.testing.assert_allclose(d.scan_positions_A[1, 1], d.centre_A)       # position n // 2 on the centre
    assert d.window_sampling_A == pytest.approx(8.0 / d.nk)


def test_atom_scatters_beyond_max_angle_where_it_is(gold):
    d = gold
    s = d.intensities.sum(axis=(-2, -1))
    assert s.max() <= 1.0 + 1e-4
    expect = np.array(d.centre_A) + ATOM[:2]
    dist = np.linalg.norm(d.scan_positions_A - expect, axis=-1)
    near = np.unravel_index(dist.argmin(), dist.shape)
    assert s[near] < 0.97                                  # gold scatters > 3 % beyond 50 mrad under the probe
    assert s[dist > 4.0].min() > 0.995                     # far from it almost everything stays inside
    df = _dark_field(d)
    assert np.unravel_index(df.argmax(), df.shape) == near
    assert df[near] > 20 * np.median(df)


def test_centre_of_mass_points_towards_the_atom(gold):
    """Axes u, v ↔ x, y without transpose, and the sign: the attractive potential deflects towards the atom."""
    d = gold
    cu, cv = _com_mrad(d)
    expect = np.array(d.centre_A) + ATOM[:2]
    dist = np.linalg.norm(d.scan_positions_A - expect, axis=-1)
    i, j = np.unravel_index(dist.argmin(), dist.shape)
    assert cu[i - 2, j] > 0.2 and cu[i + 2, j] < -0.2      # probe left of the atom → deflected to +u, right → −u
    assert cv[i, j - 2] > 0.2 and cv[i, j + 2] < -0.2
    assert abs(cv[i - 2, j]) < 0.5 * abs(cu[i - 2, j]) and abs(cu[i, j - 2]) < 0.5 * abs(cv[i, j - 2])


def test_rotation_about_the_fixed_centre():
    # an atom on the object's x axis 2 Å from the centre: at 0° it projects at centre + (2, 0); a 90° tilt about
    # y turns x into the beam axis, so it projects on the centre
    m = AtomicModel(np.array([[2.0, 0.0, 0.0]]), ["Au"])
    out = simulate_4dstem(m, [0.0, 90.0], cfg(), seed=0, fov_A=6.0, centre=(0.0, 0.0, 0.0))   # local threads
    assert [o.angle_deg for o in out] == [(0.0, 0.0, 0.0), (0.0, 90.0, 0.0)]
    for d, shift in zip(out, ([2.0, 0.0], [0.0, 0.0])):
        df = _dark_field(d)
        peak = d.scan_positions_A[np.unravel_index(df.argmax(), df.shape)]
        np.testing.assert_allclose(peak, np.array(d.centre_A) + shift, atol=0.151)
    assert out[0].field_extent_A == out[1].field_extent_A and out[0].depth_A == out[1].depth_A


def test_source_size_blurs_over_positions_and_keeps_totals(gold):
    m = AtomicModel(ATOM[None, :], ["Au"])
    b = simulate_4dstem(m, [0.0], cfg(source_size_A=0.4), seed=0, fov_A=5.0, centre=(0.0, 0.0, 0.0),
                        scheduler="synchronous")[0]
    assert b.intensities.shape == gold.intensities.shape
    np.testing.assert_allclose(b.scan_positions_A, gold.scan_positions_A)
    df0, df1 = _dark_field(gold), _dark_field(b)
    assert np.unravel_index(df1.argmax(), df1.shape) == np.unravel_index(df0.argmax(), df0.shape)
    assert df1.max() < 0.85 * df0.max()
    assert df1.sum() == pytest.approx(df0.sum(), rel=0.05)


# ----------------------------------------------------------------------------- dose

def _flat(sx=40, sy=30, nk=10, step=0.5, frac=1.0) -> FourDSTEM:
    I = np.full((sx, sy, nk, nk), frac / nk**2, dtype=np.float32)
    xs, ys = np.arange(sx) * step, np.arange(sy) * step
    P = np.stack(np.meshgrid(xs, ys, indexing="ij"), -1)
    return FourDSTEM(I, P, angular_sampling_mrad=2.0, energy_kV=300.0, semiangle_mrad=25.0, defocus_A=0.0, Cs_A=0.0,
                     field_extent_A=(30.0, 30.0), depth_A=10.0, centre_A=(15.0, 15.0))


def test_dose_counts_match_dose_times_area_times_fraction():
    d = _flat(frac=0.8)
    dose = 500.0                                        # e/Å² → 125 electrons per 0.5 × 0.5 Å position
    n = apply_dose_4d(d, dose, seed=3)
    assert n.dose_per_A2 == dose and n.intensities.dtype == np.float32
    assert n.metadata["electrons_per_position"] == pytest.approx(125.0)
    lam = 0.8 * 125.0 / 100                             # 1.0 count per pixel
    c = n.intensities
    assert c.mean() == pytest.approx(lam, rel=0.02) and c.var() == pytest.approx(lam, rel=0.04)
    tot = c.sum(axis=(-2, -1))
    assert tot.mean() == pytest.approx(100.0, rel=0.01) and tot.var() == pytest.approx(100.0, rel=0.12)
    nb = apply_dose_4d(d, dose, seed=3, background=2.0)
    assert nb.intensities.mean() == pytest.approx(lam + 2.0, rel=0.02)
    assert nb.intensities.var() == pytest.approx(lam + 2.0, rel=0.04)
    # determinism, seeds, pass-through and errors
    assert np.array_equal(apply_dose_4d(d, dose, seed=3).intensities, c)
    assert not np.array_equal(apply_dose_4d(d, dose, seed=4).intensities, c)
    assert apply_dose_4d(d, None, seed=0) is d and apply_dose_4d(d, float("inf"), seed=0) is d
    assert np.array_equal(apply_dose_4d(d, np.float32(dose), seed=3).intensities, c)
    with pytest.raises(AetbenchError, match="dose_per_A2"):
        apply_dose_4d(d, -1.0, seed=0)
    with pytest.raises(AetbenchError, match="background"):
        apply_dose_4d(d, 1.0, seed=0, background=-1.0)
    with pytest.raises(AetbenchError, match="already"):
        apply_dose_4d(n, 1.0, seed=0)
    s = apply_dose_4d_series([d, d], dose, seed=3)
    assert not np.array_equal(s[0].intensities, s[1].intensities)
    assert np.array_equal(apply_dose_4d_series([d, d], dose, seed=3)[1].intensities, s[1].intensities)


# ----------------------------------------------------------------------------- caching and determinism

def _tiny_si() -> AtomicModel:
    return AtomicModel(np.array([[0.0, 0.0, 0.0], [1.1, 1.6, 0.4], [-1.4, 0.5, -1.0]]), ["Si", "O", "O"])


def test_cache_resume(tmp_path, monkeypatch):
    calls = []
    real = ptycho._simulate_tilt_4d

    def counting(job):
        calls.append(job["index"])
        return real(job)

    monkeypatch.setattr(ptycho, "_simulate_tilt_4d", counting)
    c = cfg(scan_step_A=0.4)
    kw = dict(seed=1, fov_A=2.0, cache_dir=tmp_path, scheduler="synchronous")
    first = simulate_4dstem(_tiny_si(), [-30.0, 40.0], c, **kw)
    assert sorted(calls) == [0, 1] and len(list(tmp_path.glob("ptycho-*.npz"))) == 2
    calls.clear()
    second = simulate_4dstem(_tiny_si(), [-30.0, 40.0], c, **kw)
    assert calls == []
    for a, b in zip(first, second):
        assert np.array_equal(a.intensities, b.intensities)
    files = sorted(tmp_path.glob("ptycho-*.npz"), key=lambda p: p.stat().st_mtime)
    files[0].unlink()                                   # an interrupted series resumes at the missing tilt
    third = simulate_4dstem(_tiny_si(), [-30.0, 40.0], c, **kw)
    assert len(calls) == 1
    for a, b in zip(first, third):
        assert np.array_equal(a.intensities, b.intensities)
    calls.clear()
    simulate_4dstem(_tiny_si(), [-30.0, 40.0], c, **{**kw, "seed": 2})   # another seed is another key
    assert sorted(calls) == [0, 1]


def test_frozen_phonons_deterministic_by_seed():
    c = cfg(scan_step_A=0.4, phonon_configs=1, default_phonon_sigma_A=0.1)
    kw = dict(fov_A=2.0, scheduler="synchronous")
    a = simulate_4dstem(_tiny_si(), [0.0, 0.0], c, seed=5, **kw)
    b = simulate_4dstem(_tiny_si(), [0.0, 0.0], c, seed=5, **kw)
    o = simulate_4dstem(_tiny_si(), [0.0, 0.0], c, seed=6, **kw)
    assert np.array_equal(a[0].intensities, b[0].intensities)
    assert not np.allclose(a[0].intensities, o[0].intensities, atol=1e-6)
    # the same orientation at two tilt indices gets two displacement patterns
    assert a[0].metadata["phonon_seed"] != a[1].metadata["phonon_seed"]
    assert not np.allclose(a[0].intensities, a[1].intensities, atol=1e-6)


def test_prism_agrees_with_multislice():
    """PRISM (exit wave cropped to the window) against multislice (pattern binned) on the same cell and detector."""
    m = AtomicModel(np.array([[1.5, -1.0, 0.0], [-2.0, 0.5, 1.0]]), ["Au", "Si"])
    kw = dict(seed=0, fov_A=5.0, centre=(0.0, 0.0, 0.0), scheduler="synchronous")
    ms = simulate_4dstem(m, [0.0], cfg(window_A=6.0, defocus_A=20.0), **kw)[0]
    pr = simulate_4dstem(m, [0.0], cfg(window_A=6.0, defocus_A=20.0, engine="prism"), **kw)[0]
    assert ms.metadata["binning"] == pr.metadata["binning"] == 3
    assert pr.intensities.shape == ms.intensities.shape and pr.angular_sampling_mrad == ms.angular_sampling_mrad
    a, b = ms.intensities, pr.intensities
    assert np.abs(a - b).sum() / a.sum() < 0.08
    assert np.corrcoef(a.ravel(), b.ravel())[0, 1] > 0.99
    assert np.unravel_index(_dark_field(pr).argmax(), a.shape[:2]) == np.unravel_index(_dark_field(ms).argmax(),
                                                                                       a.shape[:2])


def test_dask_distributed_client_gives_the_same_data():
    distributed = pytest.importorskip("dask.distributed")
    c = cfg(scan_step_A=0.4)
    ref = simulate_4dstem(_tiny_si(), [10.0, 50.0], c, seed=2, fov_A=2.0, scheduler="synchronous")
    with distributed.Client(processes=False, n_workers=1, threads_per_worker=2, dashboard_address=None) as client:
        out = simulate_4dstem(_tiny_si(), [10.0, 50.0], c, seed=2, fov_A=2.0, scheduler=client)
    for a, b in zip(ref, out):
        # same data to float32 round-off: FFTW may plan its transforms differently on a worker thread
        # (seen in CI: differences of 1e-18 on patterns of order 1e-1)
        np.testing.assert_allclose(b.intensities, a.intensities, rtol=1e-5, atol=1e-7 * float(a.intensities.max()))
        assert a.angle_deg == b.angle_deg


def _single_slice_model(d: FourDSTEM, atom_field_A, element: str, defocus_A: float, rp) -> np.ndarray:
    """Pattern of a thin object from the data contract alone: probe ψ(k) = A(k) exp(−iχ), χ = π λ C10 k² with
    C10 = −defocus (abTEM's sign), on the window W = λ / angular sampling with nk pixels, centred on ``rp``;
    exit wave probe × exp(iσV) with V the projected potential on the window; |FFT|², fftshift."""
    import abtem
    from ase import Atoms

    nk, lam = d.nk, d.wavelength_A
    W = d.window_sampling_A * nk
    k = np.fft.fftfreq(nk, d=W / nk)
    KX, KY = np.meshgrid(k, k, indexing="ij")
    aperture = (lam * np.hypot(KX, KY) <= d.semiangle_mrad * 1e-3).astype(float)
    chi = np.pi * lam * (-defocus_A) * (KX ** 2 + KY ** 2)
    probe = np.fft.ifft2(aperture * np.exp(-1j * chi) * np.exp(-2j * np.pi * (KX + KY) * W / 2))
    rel = np.asarray(atom_field_A, float) - (np.asarray(rp, float) - W / 2)      # atom in the window frame
    f = 4
    at = Atoms(element, positions=[[rel[0], rel[1], 1.0]], cell=[W, W, 2.0], pbc=True)
    V = np.asarray(abtem.Potential(at, gpts=(nk * f, nk * f), slice_thickness=2.0, projection="infinite")
                   .build().compute().array).sum(0)
    t = np.exp(1j * abtem.core.energy.energy2sigma(d.energy_kV * 1e3) * V)
    T = np.fft.fftshift(np.fft.fft2(t))
    s = nk * f // 2 - nk // 2
    t = np.fft.ifft2(np.fft.ifftshift(T[s:s + nk, s:s + nk])) / f ** 2        # band-limited to the window grid
    I = np.abs(np.fft.fftshift(np.fft.fft2(probe * t))) ** 2
    return I / (np.abs(probe) ** 2).sum() / nk ** 2


def test_data_match_a_single_slice_forward_model_built_from_the_contract():
    """Window sampling, positions, centre, u/v axes and the defocus sign as a reconstructor reads them."""
    atom = np.array([0.7, -0.4, 0.0])
    c = cfg(potential_sampling_A=0.05, defocus_A=40.0, scan_step_A=0.5)
    d = simulate_4dstem(AtomicModel(atom[None], ["Au"]), [0.0], c, seed=0, fov_A=3.0, centre=(0.0, 0.0, 0.0),
                        scheduler="synchronous")[0]
    _, _, T = _grids(d)
    vac = (T <= d.semiangle_mrad).astype(float)
    vac /= vac.sum()                                            # the vacuum pattern: the aperture disk
    mask = np.abs(T - d.semiangle_mrad) > 1.5 * d.angular_sampling_mrad    # skip the disk's edge pixels
    scattered = d.intensities - vac
    strength = np.sqrt((scattered[..., mask] ** 2).sum(-1))
    best = np.argsort(strength.ravel())[-3:]                   # the three positions with the most scattering
    atom_field = np.array(d.centre_A) + atom[:2]
    df = d.metadata["defocus_at_centre_A"]                     # defocus at the atom's plane (the rotation centre)
    assert df == pytest.approx(d.defocus_A - d.depth_A / 2 - 1.0)
    for sign, check in ((1.0, lambda r: r > 0.9), (-1.0, lambda r: r < 0.2)):
        r = []
        for flat in best:
            i, j = np.unravel_index(flat, strength.shape)
            M = _single_slice_model(d, atom_field, "Au", sign * df, d.scan_positions_A[i, j]) - vac
            r.append(np.corrcoef(M[mask], scattered[i, j][mask])[0, 1])
        assert check(np.mean(r)), (sign, r)
