"""Calibrate the fast linear model against abTEM images of the same particle.

The linear model renders each atom as a Gaussian of integrated cross-section
``A_e`` [Å²] and width ``hypot(sigma_e, blur)`` [Å].  Here ``sigma_e`` is fixed
to the frozen-phonon rms displacement of the abTEM configuration (the thermal
smearing of a projected atom), and the per-element cross-sections ``A_e``
together with one shared ``blur`` (probe, potential and source size) are
fitted to abTEM images by least squares: for a trial blur the ``A_e`` follow
from a non-negative linear least-squares fit, and the blur minimises the
residual (bounded scalar search).
"""
from __future__ import annotations

import numpy as np
from scipy.optimize import minimize_scalar, nnls

from ..errors import AetbenchError
from ..score.image import normalised_cross_correlation  # noqa: F401  (re-exported: its old home)
from ..types import AtomicModel, TiltSeries
from .abtem_adf import ADFConfig, simulate_adf
from .linear import LinearParams, simulate_linear

__all__ = ["calibrate_linear", "fit_linear_params", "normalised_cross_correlation"]


def fit_linear_params(model: AtomicModel, ts: TiltSeries, *, sigma_A: dict[str, float] | None = None,
                      default_sigma_A: float = 0.08, centre=None, blur_bounds_A=(0.01, 1.5)) -> LinearParams:
    """Fit per-element cross-sections [Å²] and one blur [Å] of the linear model to ``ts``.

    Parameters
    ----------
    model : AtomicModel
        The particle that produced ``ts`` (object frame, Å).
    ts : TiltSeries
        Noise-free images in detected fraction per pixel (e.g. from
        :func:`simulate_adf`), simulated at ``ts.metadata["truth"]["angles_deg"]``
        when present, else at ``ts.angles``.
    sigma_A : dict, optional
        Fixed intrinsic width [Å] per element (default: ``default_sigma_A``).
    centre : array_like (3,), optional
        Rotation centre [Å]; default ``ts.metadata["centre_A"]`` or the centroid.
    blur_bounds_A : (float, float)
        Search interval of the blur σ [Å].

    Returns
    -------
    LinearParams
    """
    sigma_A = dict(sigma_A or {})
    angles = np.asarray(ts.metadata.get("truth", {}).get("angles_deg", ts.angles), dtype=float)
    if centre is None:
        centre = ts.metadata.get("centre_A", model.positions.mean(axis=0))
    species = model.species
    target = np.asarray(ts.images, float).ravel()
    if not np.all(np.isfinite(target)):
        raise AetbenchError("calibrate: the reference images contain non-finite values")

    def basis(blur: float) -> np.ndarray:
        cols = []
        for e in species:
            p = LinearParams(amplitude={e: 1.0}, sigma_A={e: sigma_A.get(e, default_sigma_A)},
                             default_sigma_A=default_sigma_A, blur_sigma_A=blur)
            img = simulate_linear(model.select(model.elements == e), angles, pixel_size=ts.pixel_size,
                                  shape=ts.shape, params=p, centre=centre).images
            cols.append(img.ravel())
        return np.stack(cols, axis=1)

    def solve(blur: float):
        B = basis(blur)
        amp, res = nnls(B, target)
        return amp, res

    best = minimize_scalar(lambda b: solve(b)[1], bounds=blur_bounds_A, method="bounded",
                           options={"xatol": 2e-3})
    amp, _ = solve(float(best.x))
    return LinearParams(amplitude={e: float(a) for e, a in zip(species, amp)},
                        sigma_A={e: float(sigma_A.get(e, default_sigma_A)) for e in species},
                        default_sigma_A=default_sigma_A, blur_sigma_A=float(best.x))


def calibrate_linear(model: AtomicModel, config: ADFConfig, angles_deg=(0.0, 60.0, 120.0), *, seed: int = 0,
                     pixel_size: float = 0.195, shape: tuple[int, int] | None = None, reference: TiltSeries | None = None,
                     **simulate_kw) -> LinearParams:
    """Linear-model parameters that reproduce abTEM ADF images of ``model``.

    Simulates ``model`` with :func:`simulate_adf` at ``angles_deg`` (unless a
    noise-free ``reference`` series is given) and fits per-element
    cross-sections [Å²] and the blur [Å] with :func:`fit_linear_params`; the
    intrinsic widths are the frozen-phonon rms displacements of ``config``.

    Parameters
    ----------
    model : AtomicModel
        Particle [Å].
    config : ADFConfig
        abTEM settings (the same as the physical series to match).
    angles_deg : array_like
        Tilts used for the fit [deg] (theta list or (n, 3) Euler angles).
    seed, pixel_size, shape, **simulate_kw
        Passed to :func:`simulate_adf`; ``shape`` defaults to a square that
        holds the particle plus 3 Å.

    Returns
    -------
    LinearParams
    """
    if reference is None:
        if shape is None:
            r = float(np.linalg.norm(model.positions - model.positions.mean(axis=0), axis=1).max())
            n = int(np.ceil(2 * (r + 3.0) / pixel_size))
            shape = (n, n)
        reference = simulate_adf(model, angles_deg, config, seed=seed, pixel_size=pixel_size, shape=shape,
                                 **simulate_kw)
    sig = {e: config.sigma_of(e) for e in model.species} if config.phonon_configs > 0 else {e: 0.0 for e in
                                                                                          model.species}
    return fit_linear_params(model, reference, sigma_A=sig, default_sigma_A=config.default_phonon_sigma_A)
