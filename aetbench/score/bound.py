"""The physical limit: Cramér–Rao bound on 3D atom positions, and per-atom uncertainty.

Model
-----
Every atom projects as a 2-D Gaussian of integrated amplitude ``A`` [Å²] and
width ``w`` [Å] (per element) on a flat background ``b``; at tilt ``k`` the
expected value of pixel ``p`` is::

    mu_kp = c * sum_a A_a / (2 pi w_a²) exp(-|x_p - (u_ka, v_ka)|² / (2 w_a²)) + b

with ``(u_ka, v_ka)`` the first two beam-frame coordinates of atom ``a``,
``R_k @ (r_a - centre)`` (:mod:`aetbench.geometry`, any Euler angles), and the
Gaussian sampled at pixel centres and cut at 4.5 w exactly as the linear tier
renders it (:mod:`aetbench.simulate.linear`).  For counts (``noise="poisson"``)
``c = dose × pixel area`` [e/px] and ``b`` is in counts/px (the linear tier's
images × ``c`` + background are the Poisson means of :mod:`aetbench.simulate.dose`);
for phase images (``noise="gaussian"``) ``c = 1`` and the noise is Gaussian
with a per-pixel standard deviation ``sigma`` fitted from the residual.

Fisher information
------------------
``F_ab = sum_k P_kᵀ M_kab P_k`` with ``P_k`` the first two rows of ``R_k`` and
``M_kab = sum_p W_kp ∇_a mu_kp ∇_b mu_kpᵀ`` (2×2, analytic in-plane
derivatives ``∂mu/∂u_a = G_a(p) (x_p − u_a) / w_a²``), ``W = 1/mu`` (Poisson)
or ``1/sigma²`` (Gaussian).  Atoms couple only where their footprints overlap.
The joint bound of atom ``a`` is ``sqrt(trace [F⁻¹]_aa)`` (3D, pm).

Inversion
---------
* ``method="dense"`` (default up to :data:`DENSE_MAX_ATOMS` atoms): every pair
  of atoms, the full Fisher matrix, Cholesky inverse.  Exact.
* ``method="local"``: the stated approximation for large particles.  Pairs are
  kept only within ``pair_radius_A`` in 3D (default twice the largest 4.5 w
  footprint radius), and each atom's block of the inverse is that of the
  principal sub-matrix over the atoms it is coupled to.  Dropping far, weak
  couplings makes it a slight under-estimate: −0.3 to −0.4 % in RMS against the
  dense inverse at 1,000–3,000 atoms (measured, see :func:`joint_bound`;
  ``tests/test_bound.py`` checks it).

Profile
-------
On the linear tier the tier's own per-element ``A``, ``w`` and background are
used exactly (``metadata["amplitude_A2"]``, ``["width_A"]``,
``["background_counts"]``).  Otherwise (abTEM / ptychographic tiers, read-in
data) :func:`fit_profile` fits an effective per-element ``(A, w)``, one ``b`` and
a 3D translation of the model (absorbing a rotation-centre mismatch) to the tilt
series at the given positions by Poisson (counts) or Gaussian (phase images)
maximum likelihood, and reports Pearson χ² per pixel.

Rotation centre
---------------
``centre`` argument, else ``ts.metadata["centre_A"]`` (every tier records it),
else the model's centroid (the project's one rule, and the convention of the
paper's data).  Traced models are about the volume centre, which is the
rotation centre: :func:`atom_sigma_pm` uses the origin for them.  Profile fits
also fit a 3D translation, which absorbs a small centre mismatch.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np
from numba import njit, prange

from .. import geometry
from ..errors import AetbenchError
from ..simulate.linear import gaussian_window
from ..types import AtomicModel, TiltSeries

__all__ = ["Profile", "BoundResult", "fit_profile", "tier_profile", "case_profile", "rotation_centre",
           "joint_bound", "fisher_matrix", "bound_for_case", "atom_sigma_pm", "profile_at_dose", "grid_angles",
           "bound_grid", "cached_case_bound", "bound_columns", "cached_atom_sigma", "write_model_sigma",
           "DENSE_MAX_ATOMS", "REACH_W"]

#: footprint of one atom in units of its width (the linear tier's renderer cut)
REACH_W = 4.5
#: above this many atoms ``method="auto"`` uses the local approximation
DENSE_MAX_ATOMS = 1500


@dataclass
class Profile:
    """Per-element projected atom profile and the noise model.

    Attributes
    ----------
    amplitude_A2, width_A : dict[str, float]
        Integrated amplitude [Å² × image unit] and Gaussian width [Å] per element.
    background : float
        Flat background [counts/px for Poisson, image units otherwise].
    scale : float
        ``c``: dose × pixel area [e/px] for counts, 1 for phase images.
    noise : {"poisson", "gaussian"}
    sigma : float
        Gaussian noise standard deviation per pixel (``nan`` for Poisson).
    shift_A : list of 3 floats
        Fitted translation [Å] of the model (0 for the tier profile).
    chi2_per_pixel : float
        Pearson χ² per pixel of the profile on the data (``nan`` when not measured).
    source : str
        ``"linear-tier"`` or ``"fit"``.
    """

    amplitude_A2: dict
    width_A: dict
    background: float
    scale: float
    noise: str = "poisson"
    sigma: float = float("nan")
    shift_A: list = field(default_factory=lambda: [0.0, 0.0, 0.0])
    chi2_per_pixel: float = float("nan")
    source: str = "fit"

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class BoundResult:
    """Joint Cramér–Rao bound of every atom.

    Attributes
    ----------
    per_atom_pm : ndarray (N,)
        ``sqrt(trace [F⁻¹]_aa)`` per atom [pm].
    elements : ndarray (N,)
    method : str
        ``"dense"`` or ``"local"``.
    seconds : float
    """

    per_atom_pm: np.ndarray
    elements: np.ndarray
    method: str
    seconds: float = 0.0

    @property
    def rms_pm(self) -> float:
        return float(np.sqrt(np.mean(self.per_atom_pm ** 2)))

    @property
    def median_pm(self) -> float:
        return float(np.median(self.per_atom_pm))

    @property
    def max_pm(self) -> float:
        return float(np.max(self.per_atom_pm))

    def rms_by_element(self) -> dict:
        """RMS bound [pm] over the atoms of each element."""
        return {str(e): float(np.sqrt(np.mean(self.per_atom_pm[self.elements == e] ** 2)))
                for e in np.unique(self.elements)}

    def summary(self) -> dict:
        return {"rms_pm": self.rms_pm, "median_pm": self.median_pm, "max_pm": self.max_pm,
                "by_element_pm": self.rms_by_element(), "method": self.method, "n_atoms": int(self.per_atom_pm.size),
                "seconds": self.seconds}


# --------------------------------------------------------------------------------------------- geometry helpers
def rotation_centre(ts: TiltSeries, model: AtomicModel, centre=None) -> np.ndarray:
    """Rotation centre [Å] by the rule of the module docstring."""
    if centre is not None:
        return np.asarray(centre, dtype=float).reshape(3)
    if "centre_A" in ts.metadata:
        return np.asarray(ts.metadata["centre_A"], dtype=float).reshape(3)
    return model.positions.mean(axis=0)


def _beam(positions, angles, centre):
    R = geometry.rotation_matrices(angles)
    rel = np.asarray(positions, float) - np.asarray(centre, float)
    beam = np.einsum("kij,aj->kai", R, rel)
    return R, np.ascontiguousarray(beam[..., 0]), np.ascontiguousarray(beam[..., 1])


def _atom_arrays(model: AtomicModel, profile: Profile):
    try:
        amp = np.array([profile.amplitude_A2[e] for e in model.elements], float)
        wid = np.array([profile.width_A[e] for e in model.elements], float)
    except KeyError as exc:
        raise AetbenchError(f"profile: no amplitude/width for element {str(exc.args[0])!r}") from None
    return amp, wid


# --------------------------------------------------------------------------------------------- numba kernels
@njit(cache=True)
def _rect(f, reach, n):  # pragma: no cover - numba
    i0 = max(int(math.floor(f - reach)), 0)
    i1 = min(int(math.ceil(f + reach)), n - 1)
    return i0, i1


@njit(parallel=True, cache=True)
def _render_mu(u, v, norm, width, nx, ny, pixel, reach_w, out):  # pragma: no cover - numba
    """out[k] += sum_a norm_a exp(-r²/2w²) (norm = c A / 2πw²), parallel over tilts."""
    for k in prange(u.shape[0]):
        add_gaussians(out[k], u[k], v[k], norm, width, pixel, reach_w)


@njit(cache=True)
def add_gaussians(img, u, v, norm, width, pixel, reach_w):  # pragma: no cover - numba
    """img[i, j] += sum_a norm_a exp(-r²/2w_a²) over one projection's atoms at (u_a, v_a) [Å] (0 at pixel n // 2),
    each within ``reach_w`` widths (:func:`aetbench.simulate.linear.gaussian_window`)."""
    nx, ny = img.shape
    for a in range(u.size):
        w = width[a]
        fx, fy, i0, i1, j0, j1 = gaussian_window(u[a], v[a], w, pixel, reach_w, nx, ny)
        inv = 0.5 / (w * w)
        for i in range(i0, i1 + 1):
            dx = (i - fx) * pixel
            gx = norm[a] * math.exp(-dx * dx * inv)
            for j in range(j0, j1 + 1):
                dy = (j - fy) * pixel
                img[i, j] += gx * math.exp(-dy * dy * inv)


@njit(parallel=True, cache=True)
def _pair_blocks(pa, pb, u, v, norm, width, P, W, pixel, reach_w, out):  # pragma: no cover - numba
    """Fisher 3×3 blocks of atom pairs (pa[q], pb[q]) summed over tilts.

    W: (K, nx, ny) per-pixel weights (1/mu or 1/sigma²); P: (K, 2, 3) first two rows of R.
    """
    K, nx, ny = W.shape
    cx = nx // 2
    cy = ny // 2
    for q in prange(pa.size):
        a = pa[q]
        b = pb[q]
        wa = width[a]
        wb = width[b]
        ra = reach_w * wa / pixel
        rb = reach_w * wb / pixel
        ia2 = 1.0 / (wa * wa)
        ib2 = 1.0 / (wb * wb)
        acc = np.zeros((3, 3))
        for k in range(K):
            fxa = u[k, a] / pixel + cx
            fya = v[k, a] / pixel + cy
            fxb = u[k, b] / pixel + cx
            fyb = v[k, b] / pixel + cy
            ia0, ia1 = _rect(fxa, ra, nx)
            ja0, ja1 = _rect(fya, ra, ny)
            ib0, ib1 = _rect(fxb, rb, nx)
            jb0, jb1 = _rect(fyb, rb, ny)
            i0 = max(ia0, ib0)
            i1 = min(ia1, ib1)
            j0 = max(ja0, jb0)
            j1 = min(ja1, jb1)
            if i0 > i1 or j0 > j1:
                continue
            muu = 0.0
            muv = 0.0
            mvu = 0.0
            mvv = 0.0
            for i in range(i0, i1 + 1):
                dxa = (i - fxa) * pixel
                dxb = (i - fxb) * pixel
                gxa = norm[a] * math.exp(-0.5 * dxa * dxa * ia2)
                gxb = norm[b] * math.exp(-0.5 * dxb * dxb * ib2)
                for j in range(j0, j1 + 1):
                    dya = (j - fya) * pixel
                    dyb = (j - fyb) * pixel
                    ga = gxa * math.exp(-0.5 * dya * dya * ia2) * ia2
                    gb = gxb * math.exp(-0.5 * dyb * dyb * ib2) * ib2
                    wgt = W[k, i, j] * ga * gb
                    muu += wgt * dxa * dxb
                    muv += wgt * dxa * dyb
                    mvu += wgt * dya * dxb
                    mvv += wgt * dya * dyb
            for r in range(3):
                p0r = P[k, 0, r]
                p1r = P[k, 1, r]
                for s in range(3):
                    acc[r, s] += p0r * (muu * P[k, 0, s] + muv * P[k, 1, s]) + p1r * (mvu * P[k, 0, s] + mvv * P[k, 1, s])
        for r in range(3):
            for s in range(3):
                out[q, r, s] = acc[r, s]


@njit(parallel=True, cache=True)
def _profile_normal(u, v, amp, width, el, n_el, scale, back, data, poisson, pixel, reach_w, gk, hk, stats):
    # pragma: no cover - numba
    """Per tilt: gradient gk (K, P) and Fisher/normal matrix hk (K, P, P) of the profile parameters.

    Parameters per tilt: A_e (n_el), w_e (n_el), b, then in-plane shifts u, v (mapped to 3D outside).
    stats[k] = (log-likelihood or -½ sum of squares, Pearson chi² sum, residual sum of squares).
    """
    K, N = u.shape
    nx = data.shape[1]
    ny = data.shape[2]
    npar = 2 * n_el + 3
    for k in prange(K):
        mu = np.full((nx, ny), back)
        J = np.zeros((npar, nx, ny))
        for a in range(N):
            w = width[a]
            e = el[a]
            fx, fy, i0, i1, j0, j1 = gaussian_window(u[k, a], v[k, a], w, pixel, reach_w, nx, ny)
            if i0 > i1 or j0 > j1:
                continue
            inv = 0.5 / (w * w)
            norm = scale * amp[a] / (2.0 * np.pi * w * w)
            for i in range(i0, i1 + 1):
                dx = (i - fx) * pixel
                for j in range(j0, j1 + 1):
                    dy = (j - fy) * pixel
                    r2 = dx * dx + dy * dy
                    g = norm * math.exp(-r2 * inv)
                    mu[i, j] += g
                    J[e, i, j] += g / amp[a]
                    J[n_el + e, i, j] += g * (r2 / (w * w * w) - 2.0 / w)
                    J[2 * n_el + 1, i, j] += g * dx / (w * w)
                    J[2 * n_el + 2, i, j] += g * dy / (w * w)
        for i in range(nx):
            for j in range(ny):
                J[2 * n_el, i, j] = 1.0
        ll = 0.0
        chi = 0.0
        ss = 0.0
        for i in range(nx):
            for j in range(ny):
                m = mu[i, j]
                d = data[k, i, j]
                res = d - m
                ss += res * res
                if poisson:
                    ll += (d * math.log(m) - m) if d > 0 else -m
                    chi += res * res / m
                    wr = res / m
                    wj = 1.0 / m
                else:
                    ll += -0.5 * res * res
                    wr = res
                    wj = 1.0
                for p in range(npar):
                    jp = J[p, i, j]
                    if jp == 0.0:
                        continue
                    gk[k, p] += wr * jp
                    for q in range(p, npar):
                        hk[k, p, q] += wj * jp * J[q, i, j]
        for p in range(npar):
            for q in range(p):
                hk[k, p, q] = hk[k, q, p]
        stats[k, 0] = ll
        stats[k, 1] = chi
        stats[k, 2] = ss


# --------------------------------------------------------------------------------------------- profile
def _is_counts(ts: TiltSeries) -> bool:
    img = ts.images
    return bool(ts.dose is not None and np.isfinite(ts.dose) and np.all(img >= 0)
                and np.all(np.abs(img - np.rint(img)) < 1e-6))


def tier_profile(ts: TiltSeries, model: AtomicModel) -> Profile | None:
    """The linear tier's own profile (exact), from the series metadata; ``None`` for other series."""
    md = ts.metadata
    if md.get("simulator") != "linear" or "amplitude_A2" not in md or "width_A" not in md:
        return None
    if ts.dose is None or not np.isfinite(ts.dose):
        return None
    missing = set(model.species) - set(md["amplitude_A2"])
    if missing:
        return None
    return Profile({k: float(v) for k, v in md["amplitude_A2"].items()}, {k: float(v) for k, v in md["width_A"].items()},
                   float(md.get("background_counts", 0.0)), float(ts.dose) * ts.pixel_size ** 2, "poisson",
                   source="linear-tier")


def fit_profile(ts: TiltSeries, model: AtomicModel, *, centre=None, noise: str | None = None, fit_shift: bool = True,
                width0_A: float = 0.5, iterations: int = 40, tol: float = 1e-7) -> Profile:
    """Effective per-element profile ``(A, w)``, background ``b`` (and a 3D shift) by maximum likelihood.

    Fisher scoring on the Poisson likelihood of counts (``noise="poisson"``,
    the default for non-negative integer images with a known dose) or on the
    Gaussian likelihood (least squares) of other images, at the positions of
    ``model``.  Starts: ``w = width0_A``, ``b`` = median pixel, amplitudes from
    the total background-free signal shared as ``Z^1.7``.  Widths stay within
    ``(0, max(1.5 Å, 4 px)]``: wider "atoms" only arise when the model is far
    from the data (e.g. a traced model with many spurious atoms).

    Returns
    -------
    Profile
        With ``chi2_per_pixel`` (Pearson, counts) or the fitted ``sigma`` (phase images).
    """
    if len(model) == 0:
        raise AetbenchError("fit_profile: the model has no atoms")
    noise = noise or ("poisson" if _is_counts(ts) else "gaussian")
    if noise not in ("poisson", "gaussian"):
        raise AetbenchError(f"noise: expected 'poisson' or 'gaussian', got {noise!r}")
    c0 = rotation_centre(ts, model, centre)
    data = np.ascontiguousarray(ts.images, dtype=float)
    pix = ts.pixel_size
    scale = float(ts.dose) * pix ** 2 if (noise == "poisson" and ts.dose and np.isfinite(ts.dose)) else 1.0
    species = model.species
    n_el = len(species)
    el = np.array([species.index(e) for e in model.elements], dtype=np.int64)
    from ase.data import atomic_numbers

    z = np.array([atomic_numbers.get(e, 14) for e in species], float)
    b = float(np.median(data))
    if noise == "poisson":
        b = max(b, 1e-3)
    total = float((data - b).sum()) / (scale * len(ts) * pix ** 2)  # signal per projection [image units × Å²]
    weights = (z / 14.0) ** 1.7
    n_per = np.array([np.sum(el == i) for i in range(n_el)], float)
    a_unit = max(total, 1e-12) / float(np.sum(weights * n_per))
    theta = np.concatenate([a_unit * weights, np.full(n_el, width0_A), [b], np.zeros(3)])
    R = geometry.rotation_matrices(ts.angles)

    def evaluate(th):
        amp = th[:n_el][el]
        wid = th[n_el:2 * n_el][el]
        _, u, v = _beam(model.positions + th[-3:], ts.angles, c0)
        K = len(ts)
        npar = 2 * n_el + 3
        gk = np.zeros((K, npar))
        hk = np.zeros((K, npar, npar))
        st = np.zeros((K, 3))
        _profile_normal(u, v, amp, wid, el, n_el, scale, th[2 * n_el], data, noise == "poisson", pix, REACH_W,
                        gk, hk, st)
        # map in-plane (u, v) shift derivatives to the 3D shift: d mu / d s = Du R0 + Dv R1
        T = np.zeros((K, npar, 2 * n_el + 4))
        T[:, :2 * n_el + 1, :2 * n_el + 1] = np.eye(2 * n_el + 1)
        T[:, 2 * n_el + 1, 2 * n_el + 1:] = R[:, 0, :]
        T[:, 2 * n_el + 2, 2 * n_el + 1:] = R[:, 1, :]
        g = np.einsum("kpq,kp->q", T, gk)
        H = np.einsum("kpq,kpr,krs->qs", T, hk, T)
        return st.sum(axis=0), g, H

    w_max = _w_max(pix)  # an atom's projected profile is never wider (guards fits of spurious models)
    free = np.ones(theta.size, bool)
    if not fit_shift:
        free[-3:] = False
    stats, g, H = evaluate(theta)
    for _ in range(iterations):
        Hf = H[np.ix_(free, free)]
        d = np.zeros_like(theta)
        try:
            d[free] = np.linalg.solve(Hf + 1e-12 * np.diag(np.diag(Hf)), g[free])
        except np.linalg.LinAlgError:
            d[free] = np.linalg.lstsq(Hf, g[free], rcond=None)[0]
        step = 1.0
        improved = False
        for _ in range(30):
            trial = theta + step * d
            if (np.all(trial[:2 * n_el] > 0) and np.all(trial[n_el:2 * n_el] <= w_max)
                    and (noise != "poisson" or trial[2 * n_el] > 0)):
                st2, g2, H2 = evaluate(trial)
                if st2[0] >= stats[0] - 1e-12 * abs(stats[0]):
                    improved = True
                    break
            step *= 0.5
        if not improved:
            break
        gain = st2[0] - stats[0]
        theta, stats, g, H = trial, st2, g2, H2
        if gain <= tol * max(1.0, abs(stats[0])):
            break
    npix = data.size
    prof = Profile({s: float(theta[i]) for i, s in enumerate(species)},
                   {s: float(theta[n_el + i]) for i, s in enumerate(species)}, float(theta[2 * n_el]), scale, noise,
                   shift_A=[float(x) for x in theta[-3:]], source="fit")
    if noise == "poisson":
        prof.chi2_per_pixel = float(stats[1] / npix)
    else:
        prof.sigma = float(np.sqrt(stats[2] / npix))
        prof.chi2_per_pixel = 1.0
    return prof


def _w_max(pixel_size: float) -> float:
    """Widest projected atom profile a fit may return [Å]: max(1.5 Å, 4 px)."""
    return max(1.5, 4.0 * float(pixel_size))


def case_profile(ts: TiltSeries, model: AtomicModel, *, centre=None) -> Profile:
    """The linear tier's exact profile when the series comes from it, else :func:`fit_profile`."""
    prof = tier_profile(ts, model)
    return prof if prof is not None else fit_profile(ts, model, centre=centre)


# --------------------------------------------------------------------------------------------- Fisher and bound
def _weights(ts_shape, u, v, amp, wid, profile: Profile, pixel):
    K, nx, ny = ts_shape
    mu = np.zeros((K, nx, ny))
    norm = profile.scale * amp / (2 * np.pi * wid ** 2)
    _render_mu(u, v, norm, wid, nx, ny, pixel, REACH_W, mu)
    if profile.noise == "poisson":
        mu += profile.background
        if np.any(mu <= 0):
            raise AetbenchError("profile: background must be > 0 counts/px for a Poisson bound")
        return 1.0 / mu, norm
    if not (profile.sigma > 0):
        raise AetbenchError("profile: a Gaussian-noise profile needs sigma > 0")
    return np.full((K, nx, ny), 1.0 / profile.sigma ** 2), norm


def _blocks(model, angles, shape, pixel, profile, centre, pa, pb):
    pos = model.positions + np.asarray(profile.shift_A, float)
    R, u, v = _beam(pos, angles, centre)
    amp, wid = _atom_arrays(model, profile)
    W, norm = _weights((len(angles), *shape), u, v, amp, wid, profile, pixel)
    P = np.ascontiguousarray(R[:, :2, :])
    out = np.zeros((pa.size, 3, 3))
    _pair_blocks(pa.astype(np.int64), pb.astype(np.int64), u, v, norm, wid, P, W, float(pixel), REACH_W, out)
    return out


def fisher_matrix(model: AtomicModel, angles, shape, pixel_size: float, profile: Profile, centre=(0.0, 0.0, 0.0),
                  pairs=None):
    """Fisher information of all 3N coordinates.

    Parameters
    ----------
    pairs : (pa, pb) index arrays, optional
        Atom pairs (``pa <= pb``) to compute; default every pair (dense, exact).

    Returns
    -------
    scipy.sparse.csr_matrix (3N, 3N) [1/Å²]
    """
    import scipy.sparse as sp

    n = len(model)
    angles = np.asarray(angles, float)
    if angles.ndim == 1:
        angles = geometry.single_axis_angles(angles)
    if pairs is None:
        pa, pb = np.triu_indices(n)
    else:
        pa, pb = pairs
    blocks = _blocks(model, angles, tuple(shape), pixel_size, profile, centre, np.asarray(pa), np.asarray(pb))
    off = pa != pb
    rows = np.concatenate([pa, pb[off]])
    cols = np.concatenate([pb, pa[off]])
    data = np.concatenate([blocks, np.transpose(blocks[off], (0, 2, 1))])
    r = np.broadcast_to(3 * rows[:, None, None] + np.arange(3)[None, :, None], data.shape).ravel()
    c = np.broadcast_to(3 * cols[:, None, None] + np.arange(3)[None, None, :], data.shape).ravel()
    return sp.csr_matrix((data.ravel(), (r, c)), shape=(3 * n, 3 * n))


def _dense_diag_inverse(F) -> np.ndarray:
    import scipy.linalg as sla

    Fd = F.toarray() if hasattr(F, "toarray") else np.asarray(F)
    n3 = Fd.shape[0]
    try:
        c, low = sla.cho_factor(Fd, lower=True, overwrite_a=True, check_finite=False)
        inv = sla.cho_solve((c, low), np.eye(n3), overwrite_b=True, check_finite=False)
    except np.linalg.LinAlgError:
        inv = np.linalg.pinv(F.toarray() if hasattr(F, "toarray") else F)
    return np.diagonal(inv).reshape(-1, 3).sum(axis=1)


@njit(parallel=True, cache=True)
def _local_traces(indptr, indices, pid, blocks, out):  # pragma: no cover - numba
    """For each atom a: trace of [F_SS⁻¹]_aa over S = {a} ∪ its coupled atoms (CSR rows, sorted); ``inf`` where
    the data hold no information on a (a singular neighbourhood)."""
    n = indptr.size - 1
    for a in prange(n):
        hood = indices[indptr[a]:indptr[a + 1]]   # sorted, contains a
        m = hood.size
        sub = np.zeros((3 * m, 3 * m))
        ka = 0
        for x in range(m):
            b = hood[x]
            if b == a:
                ka = x
            for t in range(indptr[b], indptr[b + 1]):
                c = indices[t]
                # position of c in hood (binary search)
                lo = 0
                hi = m
                while lo < hi:
                    mid = (lo + hi) // 2
                    if hood[mid] < c:
                        lo = mid + 1
                    else:
                        hi = mid
                if lo < m and hood[lo] == c:
                    q = pid[t]
                    tr = q < 0
                    qq = -q - 1 if tr else q
                    for r in range(3):
                        for s in range(3):
                            sub[3 * x + r, 3 * lo + s] = blocks[qq, s, r] if tr else blocks[qq, r, s]
        # an atom the data say nothing about (outside the field) or two coinciding atoms make ``sub`` singular:
        # a ridge 1e-10 of the mean diagonal keeps the solve defined, and a variance it alone explains is infinite
        scale = 0.0
        for i in range(3 * m):
            scale += sub[i, i]
        scale /= 3 * m
        if not scale > 0.0:
            out[a] = np.inf
            continue
        for i in range(3 * m):
            sub[i, i] += 1e-10 * scale
        rhs = np.zeros((3 * m, 3))
        for r in range(3):
            rhs[3 * ka + r, r] = 1.0
        sol = np.linalg.solve(sub, rhs)
        v = sol[3 * ka, 0] + sol[3 * ka + 1, 1] + sol[3 * ka + 2, 2]
        out[a] = v if v * scale < 1e6 else np.inf


def _local_diag_inverse(n, pa, pb, blocks) -> np.ndarray:
    """Trace of each atom's 3×3 block of the inverse of its neighbourhood's principal sub-matrix.

    The neighbourhood of atom a is a and every atom it shares a computed pair block with.
    """
    import scipy.sparse as sp

    off = pa != pb
    rows = np.concatenate([pa, pb[off]])
    cols = np.concatenate([pb, pa[off]])
    ids = np.arange(pa.size)
    pid = np.concatenate([ids, -ids[off] - 1])  # negative: transposed block
    A = sp.csr_matrix((pid.astype(float) + 0.5, (rows, cols)), shape=(n, n))  # +0.5 keeps id 0 stored
    A.sort_indices()
    out = np.empty(n)
    _local_traces(A.indptr.astype(np.int64), A.indices.astype(np.int64), np.floor(A.data).astype(np.int64),
                  np.ascontiguousarray(blocks), out)
    return out


def joint_bound(model: AtomicModel, angles, shape, pixel_size: float, profile: Profile, *, centre=(0.0, 0.0, 0.0),
                method: str = "auto", pair_radius_A: float | None = None) -> BoundResult:
    """Joint Cramér–Rao bound of every atom's 3D position [pm].

    Parameters
    ----------
    model : AtomicModel
        Positions [Å] at which the bound is evaluated (truth, or a traced model).
    angles : array_like (n, 3) [deg]
    shape : (nx, ny) px
    pixel_size : float [Å]
    profile : Profile
    centre : (3,) [Å]
        Rotation centre (:func:`rotation_centre`).
    method : {"auto", "dense", "local"}
        ``auto``: dense up to :data:`DENSE_MAX_ATOMS` atoms, else local.
    pair_radius_A : float
        Local method only: couplings kept within ``pair_radius_A`` [Å] in 3D
        (default ``2 × 4.5 w_max``: every pair that overlaps in projection when
        their separation lies along the beam); each atom's neighbourhood is the
        atoms it is coupled to.

    Notes
    -----
    Error of the local approximation against the dense inverse (random a-Si
    spheres, 60 tilts 0–177°, 0.347 Å pixels, w = 0.5 Å, A = 1.7e-3 Å², b = 1,
    1.6e4 e/Å²): RMS bound −0.26 % at 1,000 atoms, −0.37 % at 3,000 atoms (per
    atom −1.0 … +0.05 %); it under-estimates because far couplings are dropped.
    Cost of the local method on a 20,000-atom sphere (286² px, 60 tilts):
    23 s wall (23 s CPU), 0.33 GB peak on a 2-core machine shared with other
    jobs (load ≈ 8; 102 s wall at load ≈ 16); the dense method at 3,000 atoms
    took 167 s and 4.2 GB (load ≈ 16).
    """
    import time

    t0 = time.perf_counter()
    n = len(model)
    if n == 0:
        raise AetbenchError("joint_bound: the model has no atoms")
    if method == "auto":
        method = "dense" if n <= DENSE_MAX_ATOMS else "local"
    if method not in ("dense", "local"):
        raise AetbenchError(f"method: expected 'auto', 'dense' or 'local', got {method!r}")
    angles = np.asarray(angles, float)
    if angles.ndim == 1:
        angles = geometry.single_axis_angles(angles)
    if method == "dense":
        F = fisher_matrix(model, angles, shape, pixel_size, profile, centre)
        tr = _dense_diag_inverse(F)
    else:
        from scipy.spatial import cKDTree

        wmax = max(profile.width_A[e] for e in model.species)
        pair_radius_A = pair_radius_A or 2 * REACH_W * wmax
        pp = cKDTree(model.positions).query_pairs(pair_radius_A, output_type="ndarray")
        pa = np.concatenate([np.arange(n), pp[:, 0]])
        pb = np.concatenate([np.arange(n), pp[:, 1]])
        blocks = _blocks(model, angles, tuple(shape), pixel_size, profile, centre, pa, pb)
        tr = _local_diag_inverse(n, pa, pb, blocks)
    per_atom = 100.0 * np.sqrt(np.clip(tr, 0, None))
    return BoundResult(per_atom, model.elements.copy(), method, time.perf_counter() - t0)


def bound_for_case(ts: TiltSeries, truth: AtomicModel, *, centre=None, method: str = "auto",
                   profile: Profile | None = None) -> tuple[BoundResult, Profile]:
    """Bound of one case at the true positions: tier profile (linear) or fitted profile (everything else)."""
    c0 = rotation_centre(ts, truth, centre)
    prof = profile or case_profile(ts, truth, centre=c0)
    res = joint_bound(truth, ts.angles, ts.shape, ts.pixel_size, prof, centre=c0, method=method)
    return res, prof


def atom_sigma_pm(ts: TiltSeries, model: AtomicModel, *, centre=None, method: str = "auto") -> tuple[np.ndarray, Profile]:
    """Per-atom uncertainty [pm] from the data alone: profile fitted at ``model``'s (traced) positions, then the bound.

    ``centre`` defaults to the origin: traced positions are about the volume centre, the rotation centre.
    """
    c0 = np.zeros(3) if centre is None else np.asarray(centre, float).reshape(3)
    prof = fit_profile(ts, model, centre=c0)
    if max(prof.width_A.values()) >= 0.999 * _w_max(ts.pixel_size):
        raise AetbenchError(f"profile fit at the traced positions ran to the width limit "
                            f"({_w_max(ts.pixel_size):.2f} Å): the model does not describe the data, no σ")
    res = joint_bound(model, ts.angles, ts.shape, ts.pixel_size, prof, centre=c0, method=method)
    return res.per_atom_pm, prof


def profile_at_dose(profile: Profile, dose: float, pixel_size: float) -> Profile:
    """The same atoms and background [counts/px] at another dose (counts scale with dose; phase images unchanged)."""
    from dataclasses import replace

    if profile.noise != "poisson":
        return profile
    return replace(profile, scale=float(dose) * pixel_size ** 2)


def grid_angles(n_tilts: int, tilt_range_deg) -> np.ndarray:
    """``n_tilts`` single-axis tilts about y evenly spaced over ``tilt_range_deg = (start, stop)`` inclusive [deg]."""
    start, stop = (float(x) for x in tilt_range_deg)
    if n_tilts < 1:
        raise AetbenchError(f"tilts: expected a number of tilts >= 1, got {n_tilts}")
    return geometry.single_axis_angles(np.linspace(start, stop, int(n_tilts)) if n_tilts > 1 else [start])


def bound_grid(model: AtomicModel, profile, *, shape, pixel_size: float, centre, doses, tilt_counts,
               tilt_range_deg, method: str = "auto") -> list[dict]:
    """Joint bound over a dose [e/Å²] × number-of-tilts grid (single-axis, :func:`grid_angles`).

    ``profile`` is one :class:`Profile` or a list of ``(dose, Profile)`` (profiles fitted at several doses): each
    grid dose then uses the profile of the nearest dose in log dose, so that a grid cell at a case's own dose and
    geometry reproduces that case's bound.
    Returns one dict per cell: ``dose``, ``n_tilts``, ``rms_pm``, ``median_pm``, ``max_pm``, ``profile_dose``.
    """
    fitted = [(None, profile)] if isinstance(profile, Profile) else [(float(d), p) for d, p in profile]

    def nearest(dose):
        if fitted[0][0] is None:
            return fitted[0]
        return min(fitted, key=lambda t: abs(np.log(t[0]) - np.log(dose)))

    rows = []
    for n_t in tilt_counts:
        angles = grid_angles(int(n_t), tilt_range_deg)
        for dose in doses:
            pdose, base = nearest(float(dose))
            prof = profile_at_dose(base, float(dose), pixel_size)
            r = joint_bound(model, angles, shape, pixel_size, prof, centre=centre, method=method)
            rows.append({"dose": float(dose), "n_tilts": int(n_t), "rms_pm": r.rms_pm, "median_pm": r.median_pm,
                         "max_pm": r.max_pm, "profile_dose": pdose})
    return rows


def cached_case_bound(make_ts, truth: AtomicModel, cache_path=None, *, dose: float | None = None,
                      check=None) -> dict:
    """Bound summary of one case at its true positions, cached as JSON at ``cache_path``.

    Returns ``{"rms_pm", "median_pm", "max_pm", "by_element_pm", "method", "profile"}``, with ``"model_check"`` =
    ``check(ts, truth, profile)`` when ``check`` is given (:func:`aetbench.score.model_check.model_check`), or ``{}``
    for a noise-free case (no bound) or when the bound cannot be computed (``"error"`` then says why): a report
    never fails on it.
    """
    import json
    from pathlib import Path

    if dose is not None and not np.isfinite(dose):
        return {}
    if cache_path is not None and Path(cache_path).is_file():
        try:  # a damaged entry is recomputed, never trusted
            held = json.loads(Path(cache_path).read_text())
            if isinstance(held, dict):
                return held
        except (OSError, ValueError):
            pass
    try:
        ts = make_ts()
        res, prof = bound_for_case(ts, truth)
        out = {**res.summary(), "profile": prof.to_dict()}
    except (AetbenchError, np.linalg.LinAlgError, ValueError, FloatingPointError) as exc:
        return {"error": f"{exc.__class__.__name__}: {exc}"}
    if check is not None:
        try:  # is the bound's model enough for these data? (a report never fails on it)
            out["model_check"] = check(ts, truth, prof)
        except (AetbenchError, np.linalg.LinAlgError, ValueError, FloatingPointError) as exc:
            out["model_check"] = {"error": f"{exc.__class__.__name__}: {exc}"}
    if cache_path is not None:
        from ..io.files import atomic_write_text

        text = json.dumps(out, default=lambda o: None if isinstance(o, float) and not np.isfinite(o) else float(o))
        atomic_write_text(cache_path, text.replace("NaN", "null"))
    return out


def bound_columns(row: dict, summary: dict) -> dict:
    """``bound_pm`` (RMS over the atoms of the row's element) and ``precision_over_bound`` for a score row, with the
    case's model check (:mod:`aetbench.score.model_check`): ``model_z_std`` and ``model_floor_pm``."""
    b = (summary or {}).get("by_element_pm", {}).get(str(row.get("element")))
    prec = row.get("precision_pm")
    ratio = float(prec) / b if b and prec is not None and np.isfinite(prec) else float("nan")
    mc = (summary or {}).get("model_check") or {}
    z, floor = mc.get("z_std"), mc.get("floor_pm")
    return {"bound_pm": float(b) if b else float("nan"), "precision_over_bound": ratio,
            "model_z_std": float(z) if z is not None else float("nan"),
            "model_floor_pm": float(floor) if floor is not None else float("nan")}


def cached_atom_sigma(make_ts, model: AtomicModel, cache_path=None, *, dose: float | None = None):
    """:func:`atom_sigma_pm` of a traced model, cached as ``.npy``; ``None`` for noise-free data, empty models or
    when it cannot be computed (a report never fails on it)."""
    from pathlib import Path

    if len(model) == 0 or (dose is not None and not np.isfinite(dose)):
        return None
    if cache_path is not None and Path(cache_path).is_file():
        try:  # a damaged or foreign entry is recomputed, never trusted
            held = np.load(cache_path)
            if held.shape == (len(model),):
                return held
        except (OSError, ValueError, EOFError):
            pass
    try:
        sigma, _ = atom_sigma_pm(make_ts(), model)
    except (AetbenchError, np.linalg.LinAlgError, ValueError, FloatingPointError):
        return None
    if cache_path is not None:
        from ..io.files import atomic_write_path

        with atomic_write_path(cache_path) as tmp:
            with open(tmp, "wb") as f:
                np.save(f, sigma)
    return sigma


def write_model_sigma(path, model: AtomicModel, sigma_pm=None) -> None:
    """Write ``model`` as extended XYZ with a per-atom ``sigma_pm`` column [pm] when given (atomically)."""
    from ..io.files import atomic_write_path

    atoms = model.to_ase()
    if sigma_pm is not None:
        atoms.arrays["sigma_pm"] = np.asarray(sigma_pm, float)
    with atomic_write_path(path) as tmp:
        atoms.write(str(tmp), format="extxyz")
