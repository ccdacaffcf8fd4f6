"""Position refinement by the data's likelihood: Poisson on counts, background and atom profile from the data.

Today's refinement (:mod:`aetbench.trace.refine`) minimises unweighted least
squares on background-subtracted projections.  This one maximises the
likelihood of the measured counts under the bound's forward model
(:mod:`aetbench.score.bound`): every atom a 2-D Gaussian of per-element
amplitude ``A`` and width ``w`` on a flat background ``b``; ``(A, w, b)`` are
fitted to the counts at the current positions by Poisson maximum likelihood
(:func:`aetbench.score.bound.fit_profile`), then positions take Fisher-scoring
steps ``Δ = F⁻¹ ∇ log L`` with the joint Fisher matrix ``F`` (atom pairs within
twice the 4.5 w footprint, sparse), each step halved until the likelihood
rises; the profile is refitted every ``refit_every`` steps.  Phase images
(non-count data) use the Gaussian likelihood (least squares with the fitted
noise level) instead.

Positions are about the volume centre, as everywhere in tracing (the rotation
centre is the origin; see :mod:`aetbench.trace.refine`).  Non-atom peaks are
carried through unchanged.
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from ..errors import AetbenchError
from ..score.bound import add_gaussians
from ..simulate.linear import gaussian_window
from ..types import NON_ATOM, AtomicModel, TiltSeries, TracedModel, Volume

__all__ = ["refine_positions_ml", "log_likelihood_gradient"]


@njit(parallel=True, cache=True)
def _ll_grad(u, v, norm, width, back, data, poisson, pixel, reach_w, ll, gu, gv):  # pragma: no cover - numba
    """Per tilt: log-likelihood ll[k] and its derivatives gu/gv[k, a] wrt the in-plane atom positions [1/Å]."""
    K, N = u.shape
    nx = data.shape[1]
    ny = data.shape[2]
    for k in prange(K):
        mu = np.full((nx, ny), back)
        add_gaussians(mu, u[k], v[k], norm, width, pixel, reach_w)
        r = np.empty((nx, ny))
        s = 0.0
        for i in range(nx):
            for j in range(ny):
                d = data[k, i, j]
                m = mu[i, j]
                if poisson:
                    s += (d * math.log(m) - m) if d > 0 else -m
                    r[i, j] = d / m - 1.0
                else:
                    s += -0.5 * (d - m) * (d - m)
                    r[i, j] = d - m
        ll[k] = s
        for a in range(N):
            w = width[a]
            fx, fy, i0, i1, j0, j1 = gaussian_window(u[k, a], v[k, a], w, pixel, reach_w, nx, ny)
            inv = 0.5 / (w * w)
            iw2 = 1.0 / (w * w)
            su = 0.0
            sv = 0.0
            for i in range(i0, i1 + 1):
                dx = (i - fx) * pixel
                gx = norm[a] * math.exp(-dx * dx * inv) * iw2
                for j in range(j0, j1 + 1):
                    dy = (j - fy) * pixel
                    g = gx * math.exp(-dy * dy * inv) * r[i, j]
                    su += g * dx
                    sv += g * dy
            gu[k, a] = su
            gv[k, a] = sv


def log_likelihood_gradient(model: AtomicModel, ts: TiltSeries, profile, centre=(0.0, 0.0, 0.0)):
    """Log-likelihood of ``ts`` and its gradient wrt every atom position (N, 3) [1/Å] (Gaussian: scaled by σ²)."""
    from ..score.bound import REACH_W, _atom_arrays, _beam

    amp, wid = _atom_arrays(model, profile)
    R, u, v = _beam(model.positions + np.asarray(profile.shift_A, float), ts.angles, centre)
    K = len(ts)
    ll = np.zeros(K)
    gu = np.zeros((K, len(model)))
    gv = np.zeros((K, len(model)))
    _ll_grad(u, v, profile.scale * amp / (2 * np.pi * wid ** 2), wid, float(profile.background),
             np.ascontiguousarray(ts.images, dtype=float), profile.noise == "poisson", ts.pixel_size, REACH_W,
             ll, gu, gv)
    grad = np.einsum("ka,ki->ai", gu, R[:, 0, :]) + np.einsum("ka,ki->ai", gv, R[:, 1, :])
    if profile.noise != "poisson":
        return float(ll.sum()) / profile.sigma ** 2, grad / profile.sigma ** 2
    return float(ll.sum()), grad


def refine_positions_ml(traced: TracedModel, volume: Volume | None, ts: TiltSeries, *, raw: TiltSeries | None = None,
                        iterations: int = 10, refit_every: int = 3, max_step_A: float = 0.3,
                        tolerance_A: float = 1e-4) -> TracedModel:
    """Maximum-likelihood refinement of the traced atoms against the measured series.

    Parameters
    ----------
    traced : TracedModel
        Start positions [Å] about the volume centre, with element labels.
    volume : Volume or None
        Unused (the step signature of :mod:`aetbench.methods`).
    ts : TiltSeries
        The series the method worked on; ``raw`` (the measured counts) is used when given.
    iterations : int
        Fisher-scoring steps.
    refit_every : int
        Steps between profile refits (the profile is fitted before the first step).
    max_step_A : float
        Largest move of one atom in one step [Å] (longer steps are scaled down).
    tolerance_A : float
        Stop when no atom moves more than this [Å].
    """
    import scipy.sparse as sp
    import scipy.sparse.linalg as spla
    from scipy.spatial import cKDTree

    from ..score.bound import REACH_W, fisher_matrix, fit_profile

    data = raw if raw is not None else ts
    if "align_shifts_px" in ts.metadata and raw is not None:
        raise AetbenchError("refine_ml: aligned series are not supported yet (needs the alignment shifts applied)")
    keep = traced.model.elements != NON_ATOM
    model = traced.model.select(keep)
    if len(model) == 0:
        return traced
    centre = np.zeros(3)
    pos = model.positions.copy()
    prof = None
    for it in range(iterations):
        cur = AtomicModel(pos, model.elements)
        if prof is None or it % max(refit_every, 1) == 0:
            prof = fit_profile(data, cur, centre=centre, fit_shift=False)
        ll, g = log_likelihood_gradient(cur, data, prof, centre)
        wmax = max(prof.width_A[e] for e in cur.species)
        pp = cKDTree(pos).query_pairs(2 * REACH_W * wmax, output_type="ndarray")
        n = len(cur)
        pa = np.concatenate([np.arange(n), pp[:, 0]])
        pb = np.concatenate([np.arange(n), pp[:, 1]])
        F = fisher_matrix(cur, data.angles, data.shape, data.pixel_size, prof, centre, pairs=(pa, pb)).tocsc()
        reg = 1e-9 * F.diagonal().max()  # fisher_matrix and the gradient carry the same 1/σ² for phase images
        step = spla.spsolve(F + reg * sp.identity(F.shape[0], format="csc"), g.ravel()).reshape(-1, 3)
        big = np.linalg.norm(step, axis=1).max()
        if big > max_step_A:
            step *= max_step_A / big
        t = 1.0
        for _ in range(12):
            ll2, _ = log_likelihood_gradient(AtomicModel(pos + t * step, model.elements), data, prof, centre)
            if ll2 >= ll:
                break
            t *= 0.5
        else:
            break
        pos = pos + t * step
        moved = float(np.linalg.norm(t * step, axis=1).max())
        if moved < tolerance_A:
            break
    new_pos = traced.model.positions.copy()
    new_pos[keep] = pos
    return TracedModel(AtomicModel(new_pos, traced.model.elements, traced.model.name), traced.intensity,
                       dict(traced.features))
