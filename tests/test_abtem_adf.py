"""abTEM ADF tier on tiny particles: geometry, engines, tilt invariance, caching, calibration."""
from __future__ import annotations


import numpy as np
import pytest

from aetbench import geometry
from aetbench.io.files import AetbenchError
from aetbench.simulate import abtem_adf
from aetbench.simulate.abtem_adf import (ADFConfig, fft_friendly, fourier_resample, nyquist_scan_step_A, plan_cell,
                                         simulate_adf, wavelength_A)
from aetbench.simulate.calibrate import calibrate_linear, normalised_cross_correlation
from aetbench.simulate.dose import apply_dose
from aetbench.simulate.linear import LinearParams, simulate_linear
from aetbench.types import AtomicModel

pytest.importorskip("abtem")

# coarse but physical: 0.1 Å sampling (cut-off ≈ 66 mrad), static atoms unless stated
FAST = dict(potential_sampling_A=0.1, slice_thickness_A=2.0, phonon_configs=0, margin_A=3.0)


def cfg(**kw) -> ADFConfig:
    return ADFConfig(**{**FAST, **kw})


def _sphere(n: int = 14, radius: float = 3.2, seed: int = 5) -> AtomicModel:
    """A tiny amorphous Si sphere: random points ≥ 2.2 Å apart inside ``radius`` [Å]."""
    rng = np.random.default_rng(seed)
    pts: list[np.ndarray] = []
    while len(pts) < n:
        p = rng.uniform(-radius, radius, 3)
        if np.linalg.norm(p) < radius and all(np.linalg.norm(p - q) > 2.2 for q in pts):
            pts.append(p)
    return AtomicModel(np.array(pts), ["Si"] * n)


# ----------------------------------------------------------------------------- pure helpers

def test_wavelength_and_nyquist_step():
    assert wavelength_A(300.0) == pytest.approx(0.019687, rel=1e-4)
    assert wavelength_A(200.0) == pytest.approx(0.025079, rel=1e-4)
    assert nyquist_scan_step_A(300.0, 21.4) == pytest.approx(0.019687 / (4 * 0.0214), rel=1e-4)


def test_fft_friendly():
    assert fft_friendly(97) == 98
    assert fft_friendly(970) == 972       # the slow 970 grid of the notes is avoided
    assert fft_friendly(121, 4) == 128
    for n in range(1, 300):
        m = fft_friendly(n, 2)
        assert m >= n and m % 2 == 0


def test_config_validation_one_line_errors():
    with pytest.raises(AetbenchError, match="abtem.engine"):
        ADFConfig(engine="bloch")
    with pytest.raises(AetbenchError, match=r"abtem.semiangle_mrad.*mrad"):
        ADFConfig(semiangle_mrad=-1)
    with pytest.raises(AetbenchError, match="abtem.phonon_sigma_A.Si"):
        ADFConfig(phonon_sigma_A={"Si": -0.1})
    with pytest.raises(AetbenchError, match="abtem.detector_outer_mrad"):
        ADFConfig(detector_inner_mrad=50, detector_outer_mrad=40)
    with pytest.raises(AetbenchError, match="abtem.frobnicate: unknown"):
        ADFConfig.from_dict({"frobnicate": 1})
    assert ADFConfig.from_dict({"engine": "multislice"}).engine == "multislice"


def test_plan_cell_holds_particle_and_checks_detector():
    plan = plan_cell(10.0, ADFConfig())
    assert plan.extent_A >= 2 * (10.0 + 4.0)
    assert plan.depth_A >= 22.0 and plan.depth_A % 2.0 == pytest.approx(0.0)
    assert plan.sampling_A <= 0.0625
    assert plan.gpts % plan.interpolation == 0 and fft_friendly(plan.gpts) == plan.gpts
    assert plan.n_scan % 2 == 1 and plan.scan_step_A <= nyquist_scan_step_A(300, 21.4)
    cut = 2 / 3 * wavelength_A(300) / (2 * plan.sampling_A) * 1e3
    dk = wavelength_A(300) * plan.interpolation / plan.extent_A * 1e3
    assert cut - dk < plan.cutoff_mrad <= cut
    assert plan.outer_mrad <= plan.cutoff_mrad - 1
    assert plan.focus_A == pytest.approx(plan.depth_A / 2 + 1.0)   # half a 2 Å slice (abTEM slicing)
    with pytest.raises(AetbenchError, match="potential_sampling_A ≤"):
        plan_cell(5.0, ADFConfig(potential_sampling_A=0.2, detector_outer_mrad=150.0))


def test_fourier_resample_is_exact_for_band_limited_images():
    L, n = 10.0, 15
    x = np.arange(n) * L / n
    f = lambda u, v: 1 + np.cos(2 * np.pi * 3 * u / L) * np.sin(2 * np.pi * 2 * v / L + 0.3)  # noqa: E731
    img = f(x[:, None], x[None, :])
    xs = np.linspace(-3, 13, 41)
    ys = np.linspace(0.1, 7.7, 23)
    out = fourier_resample(img, L, xs, ys)
    assert np.allclose(out, f(xs[:, None], ys[None, :]), atol=1e-12)
    # Gaussian blur keeps the mean and damps the (3, 2) harmonic by exp(-2π²σ²k²)
    s = 0.4
    blurred = fourier_resample(img, L, x, x, blur_sigma_A=s)
    damp = np.exp(-2 * np.pi**2 * s**2 * ((3 / L) ** 2 + (2 / L) ** 2))
    assert np.allclose(blurred - 1, damp * (img - 1), atol=1e-12)


def test_gpu_without_cupy_is_a_clear_error():
    try:
        import cupy  # noqa: F401
        pytest.skip("CuPy present")
    except Exception:
        pass
    m = AtomicModel([[0, 0, 0]], ["Si"])
    with pytest.raises(AetbenchError, match="CuPy"):
        simulate_adf(m, [0.0], cfg(), seed=0, pixel_size=0.2, shape=(8, 8), device="gpu")


# ----------------------------------------------------------------------------- physics (abTEM runs)

def test_single_atom_lands_where_geometry_predicts():
    """A Au atom off the rotation centre, two general orientations: ADF peak at the predicted sub-pixel spot."""
    centre = np.array([0.4, -0.3, 0.2])
    m = AtomicModel([[1.1, 0.7, -1.4]], ["Au"])
    angles = np.array([[0.0, 35.0, 0.0], [20.0, -50.0, 10.0]])
    px, shape = 0.2, (36, 40)
    ts = simulate_adf(m, angles, cfg(), seed=1, pixel_size=px, shape=shape, centre=centre)
    lin = simulate_linear(m, angles, pixel_size=px, shape=shape, centre=centre)
    assert ts.images.shape == (2, 36, 40) and np.allclose(ts.angles, angles)
    for k in range(2):
        pk = np.unravel_index(ts.images[k].argmax(), shape)
        assert pk == np.unravel_index(lin.images[k].argmax(), shape)
        pred = geometry.object_to_beam(m.positions, angles[k], centre)[0, :2] / px + np.array(shape) // 2
        i, j = np.meshgrid(np.arange(shape[0]), np.arange(shape[1]), indexing="ij")
        w = ts.images[k] * ((i - pred[0]) ** 2 + (j - pred[1]) ** 2 < 4**2)
        com = np.array([(w * i).sum(), (w * j).sum()]) / w.sum()
        assert np.allclose(com, pred, atol=0.05), (com, pred)   # 0.05 px = 1 pm
    # detected fraction per probe position: a single Au atom scatters a few 1e-3 Å² into 40–66 mrad
    xs = ts.images.sum(axis=(1, 2)) * px**2
    assert np.all((xs > 1e-3) & (xs < 0.1)) and abs(xs[0] - xs[1]) / xs[0] < 0.02   # finite field of view
    assert ts.images.min() > -1e-4 * ts.images.max()


def test_prism_agrees_with_multislice_and_signal_is_tilt_invariant():
    m = _sphere()
    kw = dict(seed=3, pixel_size=0.25, shape=(48, 48))
    angles = [0.0, 60.0, 120.0]
    common = dict(phonon_configs=1, phonon_sigma_A={"Si": 0.08})
    ms = simulate_adf(m, angles[:1], cfg(engine="multislice", **common), **kw)
    exact = simulate_adf(m, angles[:1], cfg(engine="prism", interpolation=1, **common), **kw)
    pr = simulate_adf(m, angles, cfg(engine="prism", interpolation=2, **common), **kw)
    assert pr.metadata["interpolation"] == 2 and ms.metadata["cell_A"] == pr.metadata["cell_A"]
    # PRISM without interpolation is the same calculation as multislice (same phonon seed per tilt)
    assert normalised_cross_correlation(ms.images[0], exact.images[0]) > 0.9999
    assert exact.images.sum() == pytest.approx(ms.images.sum(), rel=1e-3)
    ncc = normalised_cross_correlation(ms.images[0], pr.images[0])
    assert ncc >= 0.99, ncc
    # the 6 Å PRISM window (interpolation 2 of a 12.5 Å cell) changes the integrated signal: measured +5.7 % here
    assert abs(pr.images[0].sum() / ms.images[0].sum() - 1) < 0.08
    # Total ADF signal vs tilt.  Measured for this 14-atom sphere at 0.1 Å sampling (40–65 mrad) with one
    # frozen-phonon configuration: 5–8 % peak-to-peak — coherent/dynamical scattering between atoms that
    # overlap in projection does not average out in so few atoms (static atoms: up to 40 %), so the bound
    # here is 10 %; the 2 % target holds for isolated atoms (test above) and for the 208-atom particle (slow
    # test below: every tilt within 2 % of the mean).
    tot = pr.images.sum(axis=(1, 2))
    assert np.ptp(tot) / tot.mean() < 0.10, tot
    # Poisson counts from these images: mean and variance follow the dose
    dose = 1e6
    noisy = np.stack([apply_dose(pr, dose, seed=s).images[0] for s in range(40)])
    expect = pr.images[0] * dose * 0.25**2
    bright = expect > 10
    assert bright.sum() > 50
    assert abs(noisy.mean(0)[bright].mean() / expect[bright].mean() - 1) < 0.01
    assert abs(noisy.var(0, ddof=1)[bright].mean() / expect[bright].mean() - 1) < 0.06


def test_focus_and_defocus_errors_are_recorded_and_act(tmp_path):
    m = AtomicModel([[0.0, 0.0, 0.0]], ["Au"])
    kw = dict(seed=0, pixel_size=0.2, shape=(24, 24))
    ts = simulate_adf(m, [0.0, 0.0], cfg(), defocus_errors_A=[0.0, 60.0], **kw)
    assert ts.metadata["truth"]["defocus_errors_A"] == [0.0, 60.0]
    peak = ts.images.max(axis=(1, 2))
    assert peak[1] < 0.8 * peak[0]           # 6 nm defocus spreads the probe
    r = simulate_adf(m, [0.0] * 3, cfg(defocus_error_sigma_A=30.0), **kw)
    e = np.array(r.metadata["truth"]["defocus_errors_A"])
    assert e.shape == (3,) and np.all(e != 0)
    r2 = simulate_adf(m, [0.0] * 3, cfg(defocus_error_sigma_A=30.0), **kw)
    assert np.array_equal(np.array(r2.metadata["truth"]["defocus_errors_A"]), e)   # seeded


def test_default_focus_is_the_rotation_centre_and_defocus_sign():
    """An atom 8 Å downstream of the centre: sharper with defocus_A = +8 than −8; at None ±8 Å look alike."""
    kw = dict(seed=0, pixel_size=0.2, shape=(12, 12), centre=[0.0, 0.0, 0.0])
    fast = dict(source_size_A=0.0, margin_A=1.5, potential_sampling_A=0.12, slice_thickness_A=4.0)
    down = AtomicModel([[0.0, 0.0, 8.0]], ["Au"])
    up = AtomicModel([[0.0, 0.0, -8.0]], ["Au"])
    peak = lambda m, **c: simulate_adf(m, [0.0], cfg(**fast, **c), **kw).images.max()  # noqa: E731
    assert peak(down, defocus_A=8.0) > 1.07 * peak(down, defocus_A=-8.0)   # measured 1.12
    assert peak(down) == pytest.approx(peak(up), rel=0.02)


def test_cache_resumes_only_missing_tilts(tmp_path, monkeypatch):
    m = AtomicModel([[0.0, 0.0, 0.0], [1.5, 0.0, 1.0]], ["Si", "Ge"])
    kw = dict(seed=2, pixel_size=0.25, shape=(20, 20), cache_dir=tmp_path, scheduler="synchronous")
    first = simulate_adf(m, [0.0, 30.0, 60.0], cfg(), **kw)
    files = sorted(tmp_path.glob("adf-*.npy"))
    assert len(files) == 3 and not list(tmp_path.glob(".*part*"))
    victim = files[1]
    victim.unlink()
    calls = []
    real = abtem_adf._simulate_tilt
    monkeypatch.setattr(abtem_adf, "_simulate_tilt", lambda job: calls.append(job["index"]) or real(job))
    again = simulate_adf(m, [0.0, 30.0, 60.0], cfg(), **kw)
    assert len(calls) == 1 and victim.exists()
    assert np.allclose(again.images, first.images, rtol=1e-6, atol=1e-9)


def test_calibrated_linear_model_matches_abtem():
    m = AtomicModel([[0.0, 0.0, 0.0], [2.4, 0.3, 0.5], [-1.2, 2.0, -0.8], [-0.5, -2.2, 1.0]],
                    ["Si", "Si", "Au", "Si"])
    c = cfg(source_size_A=0.15)
    kw = dict(seed=0, pixel_size=0.2, shape=(40, 40))
    ref = simulate_adf(m, [0.0, 70.0], c, **kw)
    params = calibrate_linear(m, c, reference=ref)
    assert params.amplitude["Au"] > 5 * params.amplitude["Si"] > 0      # Z contrast
    assert 0.05 < params.blur_sigma_A < 0.8
    test = simulate_adf(m, [35.0], c, **kw)                              # an orientation not used in the fit
    lin = simulate_linear(m, [35.0], pixel_size=0.2, shape=(40, 40), params=params,
                          centre=test.metadata["centre_A"])
    assert normalised_cross_correlation(lin.images[0], test.images[0]) >= 0.95
    # integrated signal: the Gaussian profiles miss abTEM's diffuse tails and the least-squares fit favours the
    # peaks; measured −12 % for this 4-atom cluster at 35°
    assert lin.images.sum() == pytest.approx(test.images.sum(), rel=0.2)


@pytest.mark.slow
def test_calibrated_linear_model_matches_abtem_208_atoms():
    """Issue target: the calibrated linear model matches abTEM images of the 208-atom particle (NCC ≥ 0.95).

    PRISM at the scenario's quick physical settings (ADFConfig defaults: 300 kV, 21.4 mrad, 0.0625 Å, 2 Å
    slices, one frozen-phonon configuration, 35 pm source), 128 × 0.195 Å pixels, four tilts; the linear model
    is calibrated on two of them and checked on all four.  ~4 min on 2 cores:
    ``python -m pytest tests/test_abtem_adf.py -m slow -k 208``.
    """
    from aetbench.structures.random import random_sphere

    m = random_sphere(208, seed=0)
    c = ADFConfig()
    angles = np.array([0.0, 45.0, 90.0, 135.0])
    ref = simulate_adf(m, angles, c, seed=0, pixel_size=0.195, shape=(128, 128))
    fit = [0, 2]
    sub = type(ref)(ref.images[fit], ref.angles[fit], pixel_size=ref.pixel_size, dose=None, metadata=ref.metadata)
    params = calibrate_linear(m, c, reference=sub)
    lin = simulate_linear(m, angles, pixel_size=0.195, shape=(128, 128), params=params,
                          centre=ref.metadata["centre_A"])
    ncc = [normalised_cross_correlation(lin.images[k], ref.images[k]) for k in range(len(angles))]
    assert min(ncc) >= 0.95, ncc
    # abTEM's detected signal per Si atom into 40–109 mrad (physical range, not tuned): of order 1e-3 Å²
    xs = ref.images.sum(axis=(1, 2)) * 0.195**2 / len(m)
    assert np.all((xs > 3e-4) & (xs < 3e-3)), xs
    # issue target: the total ADF signal of a sphere is tilt-independent within 2 % (every tilt within 2 % of the
    # series mean).  Measured over the first 24 tilts of the 60-tilt series of the paper's 208-atom particle
    # (scenario asi208-abtem): largest deviation 1.55 %, sd 0.8 %.
    assert np.abs(xs / xs.mean() - 1).max() <= 0.02, xs
    # Measured 0.953-0.957: the shortfall from 1 is the single frozen-phonon snapshot (0.08 Å rms random
    # displacements, a fixed pattern per image), not the linear model: rendered at the snapshot's displaced
    # positions (same seed as abTEM), the same linear model reaches ≈ 0.99 (measured 0.991-0.993).
    import abtem
    from ase import Atoms

    from aetbench.simulate.abtem_adf import _tilt_seed

    plan_off = np.array(ref.metadata["cell_A"]) / 2
    for k, a in enumerate(angles):
        beam = geometry.object_to_beam(m.positions, np.array([0.0, a, 0.0]), ref.metadata["centre_A"]) + plan_off
        atoms = Atoms(["Si"] * len(m), positions=beam, cell=ref.metadata["cell_A"], pbc=True)
        snap = abtem.FrozenPhonons(atoms, 1, sigmas={"Si": c.sigma_of("Si")}, seed=_tilt_seed(0, k))
        disp = snap.randomize(atoms.copy()).positions - plan_off
        assert 0.06 < np.sqrt(((disp - beam + plan_off) ** 2).mean()) < 0.10
        sharp = LinearParams(amplitude=params.amplitude, sigma_A={"Si": 0.0}, default_sigma_A=0.0,
                             blur_sigma_A=params.blur_sigma_A)
        snap_lin = simulate_linear(AtomicModel(disp, m.elements), [[0.0, 0.0, 0.0]], pixel_size=0.195,
                                   shape=(128, 128), params=sharp, centre=[0.0, 0.0, 0.0])
        assert normalised_cross_correlation(snap_lin.images[0], ref.images[k]) >= 0.98


def test_default_detector_collects_the_papers_signal_per_atom(paper_data):
    """The shipped abTEM settings (asi208-abtem) put as much ADF signal on each Si atom as the paper's own aSi208
    projections hold: (counts − background) / (dose × 208), measured here from the 1.6e5 e/Å² series, against
    one abTEM projection of the same ground truth.  A calibration against the paper's signal, not its scores."""
    import tomllib
    from pathlib import Path

    from aetbench.io.models import read_model
    from aetbench.io.paper import read_paper_tilt_series

    ts = read_paper_tilt_series(paper_data / "aSi208/aSi_2nmFosCetr_Dose1p6e5_cov35pm_ForBM3D.mat",
                                paper_data / "aSi208/Si_Angle.mat", pixel_size=0.195, dose=1.6e5)
    img = ts.images.astype(np.float64)
    signal = img.sum(axis=(1, 2)) - 1.0 * img[0].size   # the paper-data README's background: 1 count per pixel
    paper = float(np.mean(signal)) / (1.6e5 * 208)      # (the field's edge still holds the particle's probe tails)
    assert paper == pytest.approx(1.78e-3, rel=0.01)

    toml = Path(abtem_adf.__file__).resolve().parents[1] / "data" / "scenarios" / "asi208-abtem.toml"
    config = ADFConfig.from_dict(tomllib.loads(toml.read_text())["simulation"]["abtem"])
    assert config.detector_inner_mrad == ADFConfig().detector_inner_mrad        # the shipped default, no override
    truth = read_model(paper_data / "aSi208/aSi_208atoms_GT.txt", elements="Si")
    sim = simulate_adf(truth, [[0.0, 0.0, 0.0]], config, seed=0, pixel_size=0.195, shape=(128, 128),
                       centre=truth.positions.mean(axis=0))
    ours = float(sim.images.sum()) * 0.195**2 / len(truth)
    assert ours == pytest.approx(paper, rel=0.05)
