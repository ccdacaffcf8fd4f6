"""Preprocessing stage: background, Poisson–Gaussian denoising, normalisation, alignment."""
from __future__ import annotations

import numpy as np
import pytest

from aetbench.io.files import AetbenchError
from aetbench.preprocess import (align_centre_of_mass, bm3d_like, denoise, estimate_background,
                                 estimate_noise_params, gat_forward, gat_inverse, normalise_intensity,
                                 shift_images, subtract_background)
from aetbench.preprocess.gat import _expected_gat
from aetbench.simulate.dose import apply_dose
from aetbench.simulate.linear import simulate_linear
from aetbench.structures.random import random_sphere
from aetbench.types import TiltSeries

PIXEL = 0.195  # Å, as the paper's aSi208 data


@pytest.fixture(scope="module")
def clean_ts():
    """Noise-free linear ADF projections of a 208-atom Si sphere, 128×128 px of 0.195 Å."""
    model = random_sphere(208, seed=3)
    return simulate_linear(model, np.array([-60.0, -33.0, 0.0, 21.0, 45.0, 72.0]), pixel_size=PIXEL,
                           shape=(128, 128))


def _counts_scale(ts, peak_counts=10.0):
    """Dose [e/Å²] that puts the brightest noise-free pixel at ``peak_counts`` (paper-like counts)."""
    return peak_counts / (ts.images.max() * ts.pixel_size**2)


@pytest.fixture(scope="module")
def noisy_pair(clean_ts):
    dose = _counts_scale(clean_ts, 10.0)
    noisy = apply_dose(clean_ts, dose, seed=7, background=1.0)
    truth = clean_ts.images * dose * PIXEL**2 + 1.0
    return noisy, truth


def _psnr(x, truth):
    return 10 * np.log10(truth.max() ** 2 / np.mean((x - truth) ** 2))


# ---------------------------------------------------------------------------------------------- GAT
@pytest.mark.parametrize("alpha,sigma", [(1.0, 0.0), (2.0, 3.0), (0.5, 0.5)])
def test_gat_inverse_is_exact_on_expected_values(alpha, sigma):
    y = np.array([0.05, 0.3, 1.0, 3.0, 10.0, 50.0, 150.0])  # scaled counts
    D = _expected_gat(y, sigma / alpha)
    back = gat_inverse(D, alpha=alpha, sigma=sigma)
    np.testing.assert_allclose(back, alpha * y, rtol=2e-3)


@pytest.mark.parametrize("alpha,sigma", [(1.0, 0.0), (2.0, 3.0), (0.5, 0.5)])
@pytest.mark.parametrize("y", [2.0, 5.0, 20.0, 100.0])
def test_gat_roundtrip_unbiased_on_constant_patches(alpha, sigma, y):
    rng = np.random.default_rng(int(y * 10 + alpha * 100 + sigma))
    n = 400_000
    z = alpha * rng.poisson(y / alpha, n) + rng.normal(0.0, sigma, n)
    f = gat_forward(z, alpha=alpha, sigma=sigma)
    assert abs(f.std() - 1.0) < 0.15  # variance stabilised
    est = gat_inverse(f.mean(), alpha=alpha, sigma=sigma)  # an ideal denoiser returns E[f]
    assert abs(est / y - 1.0) < 0.01
    # the naive algebraic inverse is biased at low counts: the unbiased inverse must beat it
    naive = alpha * ((f.mean() / 2) ** 2 - 0.375 - (sigma / alpha) ** 2)
    if y / alpha <= 5:
        assert abs(est - y) < abs(naive - y)


def test_closed_form_close_to_exact_at_large_counts():
    D = gat_forward(np.array([30.0, 100.0, 400.0]))
    np.testing.assert_allclose(gat_inverse(D, exact=False), gat_inverse(D), rtol=1e-3)


@pytest.mark.parametrize("alpha,sigma", [(2.0, 3.0), (0.5, 1.0), (1.0, 1.0)])
def test_noise_parameters_recovered(alpha, sigma):
    rng = np.random.default_rng(11)
    x = np.linspace(0, 1, 128)
    y = (0.5 + 60.0 * np.outer(x, x**2))[None].repeat(8, axis=0)  # smooth signal, 0.5 … 60.5 counts
    z = alpha * rng.poisson(y / alpha) + rng.normal(0.0, sigma, y.shape)
    est = estimate_noise_params(z)
    assert est["alpha"] == pytest.approx(alpha, rel=0.10)
    assert est["sigma"] == pytest.approx(sigma, rel=0.10)


def test_noise_estimate_on_simulated_counts_is_poisson(noisy_pair):
    noisy, _ = noisy_pair
    est = estimate_noise_params(noisy.images)
    assert est["alpha"] == pytest.approx(1.0, rel=0.10)
    assert est["sigma"] < 0.3


# ---------------------------------------------------------------------------------------------- denoisers
@pytest.fixture(scope="module")
def denoised(noisy_pair):
    noisy, _ = noisy_pair
    return {m: denoise(noisy, method=m) for m in ("gaussian", "nlm", "bm3d-like", "none")}


def test_denoisers_improve_psnr(noisy_pair, denoised):
    noisy, truth = noisy_pair
    p0 = _psnr(noisy.images, truth)
    p = {m: _psnr(ts.images, truth) for m, ts in denoised.items()}
    assert p["none"] == pytest.approx(p0)
    for m in ("gaussian", "nlm", "bm3d-like"):
        assert p[m] > p0 + 6.0, (m, p)
    assert p["bm3d-like"] > p["gaussian"] + 0.5, p
    assert p["bm3d-like"] > p["nlm"] + 1.0, p
    # … and beats a Gaussian pre-filter even with its width tuned on the truth
    best_gauss = max(_psnr(denoise(noisy, method="gaussian", sigma_px=s).images, truth) for s in (0.7, 1.5, 2.0))
    assert p["bm3d-like"] > max(best_gauss, p["gaussian"]) + 0.5, (p, best_gauss)


def test_bm3d_like_keeps_intensity_and_records_noise(noisy_pair, denoised):
    noisy, truth = noisy_pair
    ts = denoised["bm3d-like"]
    assert ts.images.shape == noisy.images.shape
    # total counts per projection preserved (unbiased inverse): within 2 % each, 1.5 % on average
    ratio = ts.images.sum(axis=(1, 2)) / truth.sum(axis=(1, 2))
    np.testing.assert_allclose(ratio, 1.0, atol=0.02)
    assert abs(ratio.mean() - 1.0) < 0.015
    assert ts.metadata["denoise_method"] == "bm3d-like"
    assert ts.metadata["noise_alpha"] == pytest.approx(1.0, rel=0.1)


def test_bm3d_like_gaussian_noise_flat_image():
    rng = np.random.default_rng(2)
    img = 5.0 + rng.normal(0, 1.0, (64, 64))
    out = bm3d_like(img, sigma=1.0)
    assert out.shape == img.shape
    assert np.std(out - 5.0) < 0.15  # noise std reduced > 6×
    assert abs(out.mean() - 5.0) < 0.02


def test_explicit_noise_parameters_are_used(noisy_pair):
    noisy, _ = noisy_pair
    ts = denoise(noisy, method="gaussian", alpha=2.0, sigma=0.5, sigma_px=2.0)
    assert ts.metadata["noise_alpha"] == 2.0 and ts.metadata["noise_sigma"] == 0.5
    assert ts.metadata["denoise_options"] == {"sigma_px": 2.0}


@pytest.mark.parametrize("kwargs,match", [
    ({"method": "wavelet"}, "unknown method"),
    ({"method": "nlm", "sigma_px": 1.0}, "unknown option"),
    ({"method": "gaussian", "sigma_px": -1.0}, "sigma_px"),
    ({"method": "bm3d-like", "group": 12}, "power of two"),
    ({"method": "bm3d-like", "alpha": -1.0}, "alpha"),
])
def test_bad_denoise_options(noisy_pair, kwargs, match):
    noisy, _ = noisy_pair
    with pytest.raises(AetbenchError, match=match) as e:
        denoise(noisy, **kwargs)
    assert "\n" not in str(e.value)


def test_bm3d_backend_optional(noisy_pair):
    """'bm3d' needs the optional (non-commercial) package: a one-line error without it."""
    import importlib.util

    if importlib.util.find_spec("bm3d") is None:
        with pytest.raises(AetbenchError, match="optional 'bm3d' package"):
            denoise(noisy_pair[0], method="bm3d")
    else:  # pragma: no cover - only where the non-commercial package is installed
        noisy, truth = noisy_pair
        assert _psnr(denoise(noisy, method="bm3d").images, truth) > _psnr(noisy.images, truth) + 6.0


# ---------------------------------------------------------------------------------------------- background
@pytest.mark.parametrize("level", [1.0, 3.0])
def test_background_estimate_within_10_percent(clean_ts, level):
    dose = _counts_scale(clean_ts, 10.0)
    noisy = apply_dose(clean_ts, dose, seed=3, background=level)
    est = estimate_background(noisy.images)
    np.testing.assert_allclose(est, level, rtol=0.10)
    # the particle must be excluded: the plain image mean is far above the level
    assert noisy.images.mean() > 1.15 * level
    out = subtract_background(noisy)
    assert out.metadata["background_level"] == pytest.approx(level, rel=0.10)
    corners = out.images[:, :16, :16]
    assert abs(corners.mean()) < 0.1 * level
    clipped = subtract_background(noisy, clip=True)
    assert clipped.images.min() >= 0.0


def test_background_bad_input():
    ts = TiltSeries(np.ones((2, 32, 32)), [0.0, 10.0], pixel_size=0.2)
    with pytest.raises(AetbenchError, match="border_px"):
        subtract_background(ts, border_px=40)


# ---------------------------------------------------------------------------------------------- normalise
def test_normalise_equalises_totals(clean_ts):
    rng = np.random.default_rng(5)
    factors = rng.uniform(0.7, 1.3, len(clean_ts))
    ts = clean_ts.with_images(clean_ts.images * factors[:, None, None])
    out = normalise_intensity(ts)
    totals = out.images.sum(axis=(1, 2))
    np.testing.assert_allclose(totals, totals.mean(), rtol=1e-10)
    assert totals.mean() == pytest.approx(ts.images.sum(axis=(1, 2)).mean())
    scale = np.array(out.metadata["normalise_scale"])
    np.testing.assert_allclose(scale * factors, (scale * factors)[0], rtol=1e-6)  # undoes the drift


def test_normalise_rejects_non_positive_totals():
    ts = TiltSeries(np.stack([np.ones((8, 8)), -np.ones((8, 8))]), [0.0, 10.0], pixel_size=0.2)
    with pytest.raises(AetbenchError, match="projection 1"):
        normalise_intensity(ts)


# ---------------------------------------------------------------------------------------------- alignment
@pytest.mark.parametrize("noisy", [False, True])
def test_alignment_recovers_random_shifts(clean_ts, noisy):
    rng = np.random.default_rng(9)
    true = rng.uniform(-6.0, 6.0, (len(clean_ts), 2))
    shifted = clean_ts.with_images(shift_images(clean_ts.images, true))
    if noisy:  # peak ≈ 1000 counts on a 1-count background: Poisson CoM error ≈ 0.01 px
        shifted = subtract_background(apply_dose(shifted, 100 * _counts_scale(clean_ts, 10.0), seed=4, background=1.0))
    out = align_centre_of_mass(shifted)
    applied = np.array(out.metadata["align_shifts_px"])
    # the particle's centroid is the rotation centre, so its projection sits on n//2 before shifting
    np.testing.assert_allclose(applied, -true, atol=0.1)
    if not noisy:
        np.testing.assert_allclose(out.images, clean_ts.images, atol=0.02 * clean_ts.images.max())


def test_alignment_at_paper_dose_is_at_the_poisson_limit(clean_ts):
    """At paper-like counts the CoM error is set by counting statistics, r_rms / sqrt(N)."""
    rng = np.random.default_rng(10)
    true = rng.uniform(-4.0, 4.0, (len(clean_ts), 2))
    dose = _counts_scale(clean_ts, 10.0)
    shifted = clean_ts.with_images(shift_images(clean_ts.images, true))
    noisy = apply_dose(shifted, dose, seed=5, background=1.0)
    applied = np.array(align_centre_of_mass(subtract_background(noisy)).metadata["align_shifts_px"])
    img = clean_ts.images[0]
    X, Y = np.meshgrid(*(np.arange(n) - n // 2 for n in img.shape), indexing="ij")
    r_rms = np.sqrt((img * (X**2 + Y**2)).sum() / img.sum() / 2)  # per axis, pixels
    limit = r_rms / np.sqrt(img.sum() * dose * PIXEL**2)
    err = applied + true
    assert np.sqrt(np.mean(err**2)) < 2.0 * limit
    assert np.abs(err).max() < 5.0 * limit


def test_alignment_x_only_and_bad_axes(clean_ts):
    shifted = clean_ts.with_images(shift_images(clean_ts.images, np.tile([3.0, -2.0], (len(clean_ts), 1))))
    out = align_centre_of_mass(shifted, axes="x")
    applied = np.array(out.metadata["align_shifts_px"])
    np.testing.assert_allclose(applied[:, 0], -3.0, atol=0.1)
    assert np.all(applied[:, 1] == 0.0)
    with pytest.raises(AetbenchError, match="axes"):
        align_centre_of_mass(clean_ts, axes="z")


# ---------------------------------------------------------------------------------------------- paper data
def test_denoise_paper_aSi208_reduces_background_noise(paper_data):
    from scipy.io import loadmat

    raw = loadmat(paper_data / "aSi208" / "aSi_2nmFosCetr_Dose1p6e4_cov35pm_ForBM3D.mat")["Trunc_projections_forBM3D"]
    images = np.asarray(raw, dtype=float).transpose(2, 0, 1)[::10]  # 6 of the 60 projections
    angles = np.arange(0, 180, 3.0)[::10]
    ts = TiltSeries(images, angles, pixel_size=PIXEL, dose=1.6e4)
    est = estimate_noise_params(images)
    assert est["alpha"] == pytest.approx(1.0, rel=0.1)  # Poisson counts
    out = denoise(ts, method="bm3d-like")
    corner = (slice(None), slice(0, 24), slice(0, 24))  # far from the 1.9 nm particle
    v0 = images[corner].var()
    v1 = out.images[corner].var()
    assert v0 == pytest.approx(images[corner].mean(), rel=0.2)  # Poisson background ~1 count
    assert v1 < 0.1 * v0
    assert out.images[corner].mean() == pytest.approx(images[corner].mean(), rel=0.05)
    assert out.images.sum() == pytest.approx(images.sum(), rel=0.02)
