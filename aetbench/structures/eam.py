"""Zhou–Johnson–Wadley alloy embedded-atom method (EAM) potential (numba).

X. W. Zhou, R. A. Johnson, H. N. G. Wadley, Phys. Rev. B 69, 144113 (2004): one functional form and one
parameter set per element, fitted so that the elements can be combined into alloys without cross fits.
Energies in eV, distances in Å, electron densities in the model's arbitrary units.

.. math::

    E = \\sum_i F_{t_i}(\\rho_i) + \\sum_{i<j} \\phi_{t_i t_j}(r_{ij}),
    \\qquad \\rho_i = \\sum_{j \\ne i} f_{t_j}(r_{ij})

with ``x = r / r_e``

* density   ``f(r) = f_e exp(-β'(x-1)) / (1 + (x-λ')^20)``
* pair      ``φ_aa(r) = A exp(-α(x-1)) / (1 + (x-κ)^20) - B exp(-β(x-1)) / (1 + (x-λ)^20)``
* cross     ``φ_ab(r) = ½ [f_b/f_a φ_aa + f_a/f_b φ_bb]``
* embedding ``F(ρ)``: ``Σ Fn_k (ρ/ρ_n - 1)^k`` below ``ρ_n``; ``Σ F_k (ρ/ρ_e - 1)^k`` (F3 → F3' at ``ρ ≥ ρ_e``)
  up to ``ρ_0``; ``F_e [1 - η ln(ρ/ρ_s)] (ρ/ρ_s)^η`` above.

Parameters are the published ones as tabulated in LAMMPS ``tools/eam_database/EAM_code`` (same file order,
see :data:`FIELDS`).  As in Zhou's ``create.f`` the functions are cut (not shifted) at
``r_c = √10/2 · √2 · max(r_e)`` (6.20 Å with Pt; the jump there is < 1e-5 eV) and held constant below
``r = 0.5 Å``.

Kernel: the pair functions φ_ab, f_a, f_b of each type pair are tabulated with their exact derivatives on a
uniform grid (:data:`TABLE_STEP`) and interpolated by cubic Hermite polynomials, so the forces are the exact
derivative of the interpolated energy (interpolation error ~1e-10 eV per pair); the embedding function is
evaluated analytically per atom.  ``mode = 1`` evaluates the pair functions analytically instead (slower;
kept as a cross-check).  Fixed work blocks and block-order sums as in :mod:`.gupta`.

Checks (``tests/test_eam.py``): fcc Pd a = 3.890 Å, E_c = 3.910 eV; fcc Pt 3.920 Å, 5.770 eV; ideal hcp Co
a = 2.506 Å, 4.410 eV (the 2004 fit); L1_2 CoPt3 a = 3.821 Å (experiment 3.831 Å); ASE's EAM calculator on
the same functions (setfl file) agrees to 4e-10 eV / 1e-5 eV/Å.  Known limitation for the CoPdPt glass:
Co–Pt and Pt–Pt bonds come out 0.10 and 0.15-0.21 Å shorter than the sums of the metallic radii (Gupta:
0.05 and 0.13-0.15 Å), because a Pt site among Co/Pd neighbours holds only ~0.8 of its fitted ρ_e and
F'(ρ) < 0 there pulls the neighbours in.  Per force call the kernel costs ~2× Gupta (1.7× more pairs
inside the longer cutoff).
"""
from __future__ import annotations

import numpy as np
from numba import prange

from ..errors import AetbenchError
from .jit import kernel, pair_force_block, reduce_blocks

__all__ = ["ZHOU2004", "FIELDS", "eam_cutoff", "eam_density", "eam_pair", "eam_embedding", "eam_tables",
           "eam_potential", "eam_energy_reference", "write_setfl"]

#: the 27 values per element in EAM_code order (units: re Å; A, B, Fn*, F*, Fe, F3p eV; mass amu)
FIELDS = ("re", "fe", "rhoe", "rhos", "alpha", "beta", "A", "B", "kappa", "lam", "Fn0", "Fn1", "Fn2", "Fn3",
          "F0", "F1", "F2", "F3", "eta", "Fe", "Z", "mass", "F3p", "betap", "lamp", "rhon_factor", "rho0_factor")

# Zhou, Johnson & Wadley (2004), as tabulated in LAMMPS tools/eam_database/EAM_code (27 values, FIELDS order)
_TABLE = """
Co 2.505979 1.975299 27.206789 27.206789 8.679625 4.629134 0.421378 0.640107 0.5 1.0
   -2.541799 -0.219415 0.733381 -1.589003 -2.56 0.00 0.705845 -0.687140 0.694608 -2.559307
   27 58.9332 -0.687140 4.629134 1.0 0.85 1.15
Pd 2.750897 1.595417 21.335246 21.940073 8.697397 4.638612 0.406763 0.598880 0.397263 0.754799
   -2.321006 -0.473983 1.615343 -0.231681 -2.36 0.00 1.481742 -1.675615 1.130000 -2.352753
   46 106.42 -1.675615 4.638612 0.754799 0.85 1.15
Pt 2.771916 2.336509 33.367564 35.205357 7.105782 3.789750 0.556398 0.696037 0.385255 0.770510
   -1.455568 -2.149952 0.528491 1.222875 -4.17 0.00 3.010561 -2.420128 1.450000 -4.145597
   78 195.08 -2.420128 3.789750 0.770510 0.25 1.15
Cu 2.556162 1.554485 21.175871 21.175395 8.127620 4.334731 0.396620 0.548085 0.308782 0.756515
   -2.170269 -0.263788 1.088878 -0.817603 -2.19 0.00 0.561830 -2.100595 0.310490 -2.186568
   29 63.546 -2.100595 4.334731 0.756515 0.85 1.15
Ni 2.488746 2.007018 27.562015 27.562031 8.383453 4.471175 0.429046 0.633531 0.443599 0.820658
   -2.693513 -0.076445 0.241442 -2.375626 -2.70 0.00 0.265390 -0.152856 0.445470 -2.7
   28 58.6934 -0.152856 4.471175 0.820658 0.85 1.15
"""


def _parse(text):
    out = {}
    tok = text.split()
    for k in range(0, len(tok), 28):
        out[tok[k]] = dict(zip(FIELDS, (float(v) for v in tok[k + 1:k + 28])))
    return out


#: element → {field: value} (Zhou, Johnson & Wadley 2004)
ZHOU2004 = _parse(_TABLE)

R_MIN = 0.5  #: Å; the functions are held at their r = 0.5 Å values below this (as in create.f)
TABLE_STEP = 0.002  #: Å, grid step of the Hermite pair tables
_EMB_KEYS = ("rhoe", "rhos", "Fn0", "Fn1", "Fn2", "Fn3", "F0", "F1", "F2", "F3", "F3p", "eta", "Fe",
             "rhon_factor", "rho0_factor")
_PAIR_KEYS = ("re", "fe", "betap", "lamp", "A", "alpha", "kappa", "B", "beta", "lam")


def _params(el):
    if el not in ZHOU2004:
        raise AetbenchError(f"EAM (Zhou 2004): no parameters for element {el!r}; known: {sorted(ZHOU2004)}")
    return ZHOU2004[el]


def eam_cutoff(species) -> float:
    """Cutoff [Å] of Zhou's ``create.f``: √10/2 times the largest fcc lattice constant √2·r_e."""
    return float(np.sqrt(10.0) / 2.0 * max(np.sqrt(2.0) * _params(s)["re"] for s in species))


def _g(r, re, c, p, k):
    """``c exp(-p(x-1)) / (1 + (x-k)^20)`` with x = r/re, and its r-derivative [per Å]."""
    x = r / re
    e = c * np.exp(-p * (x - 1.0))
    d19 = (x - k) ** 19
    den = 1.0 + d19 * (x - k)
    v = e / den
    return v, v * (-p - 20.0 * d19 / den) / re


def eam_density(el: str, r):
    """Electron density ``f(r)`` of element ``el`` at distance ``r`` [Å] and ``df/dr`` [1/Å] (numpy)."""
    p = _params(el)
    r = np.maximum(np.asarray(r, dtype=np.float64), R_MIN)
    return _g(r, p["re"], p["fe"], p["betap"], p["lamp"])


def _pair_like(p, r):
    a, da = _g(r, p["re"], p["A"], p["alpha"], p["kappa"])
    b, db = _g(r, p["re"], p["B"], p["beta"], p["lam"])
    return a - b, da - db


def eam_pair(a: str, b: str, r):
    """Pair energy ``φ_ab(r)`` [eV] and ``dφ/dr`` [eV/Å] at ``r`` [Å] (numpy); held constant below 0.5 Å."""
    pa, pb = _params(a), _params(b)
    r0 = np.asarray(r, dtype=np.float64)
    r = np.maximum(r0, R_MIN)
    if a == b:
        v, d = _pair_like(pa, r)
    else:
        fa, dfa = eam_density(a, r)
        fb, dfb = eam_density(b, r)
        paa, dpaa = _pair_like(pa, r)
        pbb, dpbb = _pair_like(pb, r)
        v = 0.5 * (fb / fa * paa + fa / fb * pbb)
        d = 0.5 * ((dfb * fa - fb * dfa) / fa**2 * paa + fb / fa * dpaa
                   + (dfa * fb - fa * dfb) / fb**2 * pbb + fa / fb * dpbb)
    return v, np.where(r0 < R_MIN, 0.0, d)


def eam_embedding(el: str, rho):
    """Embedding energy ``F(ρ)`` [eV] of element ``el`` and ``dF/dρ`` (numpy)."""
    p = np.array([_params(el)[k] for k in _EMB_KEYS])
    rho = np.atleast_1d(np.asarray(rho, dtype=np.float64))
    out = np.array([_embed_one(p, v) for v in rho.ravel()]).reshape(rho.shape + (2,))
    return out[..., 0], out[..., 1]


@kernel
def _embed_one(p, rho):
    """F(ρ) [eV] and dF/dρ for the embedding parameters ``p`` in ``_EMB_KEYS`` order."""
    rhoe, rhos = p[0], p[1]
    rhon = p[13] * rhoe
    rho0 = p[14] * rhoe
    if rho < rhon:
        y = rho / rhon - 1.0
        f = p[2] + y * (p[3] + y * (p[4] + y * p[5]))
        df = (p[3] + y * (2.0 * p[4] + 3.0 * y * p[5])) / rhon
        return f, df
    if rho < rho0:
        f3 = p[9] if rho < rhoe else p[10]
        y = rho / rhoe - 1.0
        f = p[6] + y * (p[7] + y * (p[8] + y * f3))
        df = (p[7] + y * (2.0 * p[8] + 3.0 * y * f3)) / rhoe
        return f, df
    eta, fe = p[11], p[12]
    s = rho / rhos
    sp = s ** eta
    lg = np.log(s)
    return fe * (1.0 - eta * lg) * sp, -fe * eta * eta * lg * sp / rho


# ------------------------------------------------------------------ kernel

@kernel
def _gfun(r, re, c, p, k):
    x = r / re
    e = c * np.exp(-p * (x - 1.0))
    d19 = (x - k) ** 19
    den = 1.0 + d19 * (x - k)
    v = e / den
    return v, v * (-p - 20.0 * d19 / den) / re


@kernel
def _analytic_terms(r, a, b, par):
    """φ_ab, dφ_ab, f_b, df_b, f_a, df_a at r [Å] from the element parameters par[0, t, :] (_PAIR_KEYS)."""
    if r < 0.5:
        r = 0.5
    pa = par[0, a]
    pb = par[0, b]
    fa, dfa = _gfun(r, pa[0], pa[1], pa[2], pa[3])
    u1, du1 = _gfun(r, pa[0], pa[4], pa[5], pa[6])
    u2, du2 = _gfun(r, pa[0], pa[7], pa[8], pa[9])
    phaa = u1 - u2
    dphaa = du1 - du2
    if a == b:
        return phaa, dphaa, fa, dfa, fa, dfa
    fb, dfb = _gfun(r, pb[0], pb[1], pb[2], pb[3])
    u1, du1 = _gfun(r, pb[0], pb[4], pb[5], pb[6])
    u2, du2 = _gfun(r, pb[0], pb[7], pb[8], pb[9])
    phbb = u1 - u2
    dphbb = du1 - du2
    q = fb / fa
    dq = (dfb * fa - fb * dfa) / (fa * fa)
    w = fa / fb
    dw = (dfa * fb - fa * dfb) / (fb * fb)
    return 0.5 * (q * phaa + w * phbb), 0.5 * (dq * phaa + q * dphaa + dw * phbb + w * dphbb), fb, dfb, fa, dfa


@kernel
def _hermite_terms(r, row, tab, rlo, h):
    """Cubic Hermite interpolation of the six columns (value, derivative pairs) of tab[row] at r [Å]."""
    n = tab.shape[1]
    if r <= rlo:
        return tab[row, 0, 0], 0.0, tab[row, 0, 2], 0.0, tab[row, 0, 4], 0.0
    u = (r - rlo) / h
    k = int(u)
    if k > n - 2:
        k = n - 2
    t = u - k
    t2 = t * t
    t3 = t2 * t
    h00 = 2.0 * t3 - 3.0 * t2 + 1.0
    h10 = (t3 - 2.0 * t2 + t) * h
    h01 = 3.0 * t2 - 2.0 * t3
    h11 = (t3 - t2) * h
    d00 = (6.0 * t2 - 6.0 * t) / h
    d10 = 3.0 * t2 - 4.0 * t + 1.0
    d01 = -d00
    d11 = 3.0 * t2 - 2.0 * t
    y0 = tab[row, k]
    y1 = tab[row, k + 1]
    v0 = h00 * y0[0] + h10 * y0[1] + h01 * y1[0] + h11 * y1[1]
    g0 = d00 * y0[0] + d10 * y0[1] + d01 * y1[0] + d11 * y1[1]
    v1 = h00 * y0[2] + h10 * y0[3] + h01 * y1[2] + h11 * y1[3]
    g1 = d00 * y0[2] + d10 * y0[3] + d01 * y1[2] + d11 * y1[3]
    v2 = h00 * y0[4] + h10 * y0[5] + h01 * y1[4] + h11 * y1[5]
    g2 = d00 * y0[4] + d10 * y0[5] + d01 * y1[4] + d11 * y1[5]
    return v0, g0, v1, g1, v2, g2


@kernel
def _terms(r, ti, tj, tab, par, meta):
    """φ, φ', f_tj, f_tj', f_ti, f_ti' of the pair (ti, tj) at r [Å]: Hermite tables or (mode 1) analytic."""
    if meta[0, 0, 4] > 0.5:
        return _analytic_terms(r, ti, tj, par)
    return _hermite_terms(r, ti * int(meta[0, 0, 3]) + tj, tab, meta[0, 0, 0], meta[0, 0, 1])


NBLOCK = 16  #: fixed work blocks: summation order independent of the thread count
PARALLEL_MIN_ATOMS = 3000  #: below this the threads' start-up costs more than the force loop saves


@kernel
def _rho_block(b, nb, pos, types, offset, index, tab, par, meta, rb, cph, cfj, cfi):
    """Pass 1 over the pairs (i < j) owned by the atoms of block ``b``: densities into rb[b]; per neighbour
    slot φ'/r, f_tj'/r, f_ti'/r into ``cph``, ``cfj``, ``cfi`` for pass 2 (:func:`.jit.pair_force_block`), so
    each pair's terms are evaluated once per force call.  Returns the block's pair energy [eV]."""
    n = pos.shape[0]
    rc2 = meta[0, 0, 2] * meta[0, 0, 2]
    e = 0.0
    for i in range(b * n // nb, (b + 1) * n // nb):
        ti = types[i]
        for s in range(offset[i], offset[i + 1]):
            j = index[s]
            if j <= i:
                continue
            dx = pos[j, 0] - pos[i, 0]
            dy = pos[j, 1] - pos[i, 1]
            dz = pos[j, 2] - pos[i, 2]
            r2 = dx * dx + dy * dy + dz * dz
            if r2 >= rc2:  # list built with a skin: skip before the square root
                cph[s] = 0.0
                cfj[s] = 0.0
                cfi[s] = 0.0
                continue
            r = np.sqrt(r2)
            ph, dph, fj, dfj, fi, dfi = _terms(r, ti, types[j], tab, par, meta)
            e += ph
            rb[b, i] += fj
            rb[b, j] += fi
            cph[s] = dph / r
            cfj[s] = dfj / r
            cfi[s] = dfi / r
    return e


@kernel
def _embed_all(rb, types, par):
    """Block-order sum of the densities; embedding energy [eV] and dF/dρ per atom."""
    nb, n = rb.shape[0], rb.shape[1]
    dF = np.zeros(n)
    energy = 0.0
    for i in range(n):
        rho = 0.0
        for b in range(nb):
            rho += rb[b, i]
        f, d = _embed_one(par[1, types[i]], rho)
        energy += f
        dF[i] = d
    return energy, dF


@kernel(parallel=True)
def _eam_parallel(pos, types, offset, index, tab, par, meta):
    n = pos.shape[0]
    nb = min(NBLOCK, max(n, 1))
    rb = np.zeros((nb, n))
    cph = np.empty(index.shape[0])
    cfj = np.empty(index.shape[0])
    cfi = np.empty(index.shape[0])
    eb = np.zeros(nb)
    for b in prange(nb):
        eb[b] = _rho_block(b, nb, pos, types, offset, index, tab, par, meta, rb, cph, cfj, cfi)
    energy, dF = _embed_all(rb, types, par)
    fb = np.zeros((nb, n, 3))
    for b in prange(nb):
        pair_force_block(b, nb, pos, offset, index, cph, cfj, cfi, dF, fb)
    epair, f = reduce_blocks(fb, eb)
    return energy + epair, f


@kernel
def _eam_serial(pos, types, offset, index, tab, par, meta):
    n = pos.shape[0]
    nb = min(NBLOCK, max(n, 1))
    rb = np.zeros((nb, n))
    cph = np.empty(index.shape[0])
    cfj = np.empty(index.shape[0])
    cfi = np.empty(index.shape[0])
    eb = np.zeros(nb)
    for b in range(nb):
        eb[b] = _rho_block(b, nb, pos, types, offset, index, tab, par, meta, rb, cph, cfj, cfi)
    energy, dF = _embed_all(rb, types, par)
    fb = np.zeros((nb, n, 3))
    for b in range(nb):
        pair_force_block(b, nb, pos, offset, index, cph, cfj, cfi, dF, fb)
    epair, f = reduce_blocks(fb, eb)
    return energy + epair, f


@kernel
def _eam(pos, types, offset, index, tab, par, meta):
    """EAM energy [eV] and forces [eV/Å].

    tab[a*S + b, k, :] = (φ_ab, φ_ab', f_b, f_b', f_a, f_a') on the grid r_k = r_lo + k h;
    par[0, t, :] pair parameters (_PAIR_KEYS), par[1, t, :15] embedding parameters (_EMB_KEYS);
    meta[0, 0, :] = (r_lo [Å], h [Å], r_c [Å], S, mode: 0 tables / 1 analytic).
    """
    if pos.shape[0] < PARALLEL_MIN_ATOMS:
        return _eam_serial(pos, types, offset, index, tab, par, meta)
    return _eam_parallel(pos, types, offset, index, tab, par, meta)


def eam_tables(species, step: float = TABLE_STEP):
    """Hermite tables, element parameters and meta data of the kernel (see :func:`_eam`).

    Parameters
    ----------
    species : list of str
        Element symbols in type order.
    step : float
        Grid step [Å] of the pair tables.
    """
    if not 1e-4 <= step <= 0.05:
        raise AetbenchError(f"EAM table step: {step} Å out of range [1e-4, 0.05] Å")
    species = list(species)
    s = len(species)
    rc = eam_cutoff(species)
    n = int(np.ceil((rc - R_MIN) / step)) + 2
    r = R_MIN + step * np.arange(n)
    tab = np.empty((s * s, n, 6))
    for a, ea in enumerate(species):
        for b, eb in enumerate(species):
            row = a * s + b
            tab[row, :, 0], tab[row, :, 1] = eam_pair(ea, eb, r)
            tab[row, :, 2], tab[row, :, 3] = eam_density(eb, r)
            tab[row, :, 4], tab[row, :, 5] = eam_density(ea, r)
    par = np.zeros((2, s, 15))
    for t, el in enumerate(species):
        p = _params(el)
        par[0, t, :len(_PAIR_KEYS)] = [p[k] for k in _PAIR_KEYS]
        par[1, t, :] = [p[k] for k in _EMB_KEYS]
    meta = np.array([[[R_MIN, step, rc, s, 0.0]]])
    return tab, par, meta


def eam_potential(species, analytic: bool = False):
    """:class:`~aetbench.structures.md.Potential` (kernel id 2) of the Zhou 2004 EAM for ``species``.

    Parameters
    ----------
    species : list of str
        Element symbols in type order (any of :data:`ZHOU2004`).
    analytic : bool
        Evaluate the pair functions analytically instead of from the Hermite tables (slower; for checks).
    """
    from .md import Potential

    tab, par, meta = eam_tables(species)
    if analytic:
        meta[0, 0, 4] = 1.0
    return Potential(2, (tab, par, meta), float(meta[0, 0, 2]))


def eam_energy_reference(positions, elements) -> float:
    """Total EAM energy [eV] of a free cluster by direct numpy sums of the analytic functions (O(N²))."""
    x = np.asarray(positions, dtype=np.float64)
    el = list(elements)
    species = sorted(set(el))
    rc = eam_cutoff(species)
    d = np.linalg.norm(x[:, None] - x[None], axis=2)
    e = 0.0
    for i in range(len(x)):
        rho = 0.0
        for j in range(len(x)):
            if j == i or d[i, j] >= rc:
                continue
            rho += float(eam_density(el[j], d[i, j])[0])
            if j > i:
                e += float(eam_pair(el[i], el[j], d[i, j])[0])
        e += float(eam_embedding(el[i], rho)[0][0])
    return e


def write_setfl(path, species, nr: int = 10000, nrho: int = 10000) -> None:
    """Write the potential as a LAMMPS ``eam/alloy`` (setfl) file from the analytic functions.

    Grids as in ``create.f``: r from 0 to r_c in ``nr`` points; ρ from 0 to max(100, 2 max ρ_e,
    max f) in ``nrho`` points; pair data as r·φ(r).
    """
    species = list(species)
    rc = eam_cutoff(species)
    r = np.linspace(0.0, rc, nr)
    dr = r[1] - r[0]
    fmax = max(float(eam_density(e, r)[0].max()) for e in species)
    rhom = max(100.0, 2.0 * max(_params(e)["rhoe"] for e in species), fmax)
    rho = np.linspace(0.0, rhom, nrho)
    lines = ["Zhou, Johnson, Wadley PRB 69 144113 (2004) EAM", "written by aetbench.structures.eam", "",
             f"{len(species)} " + " ".join(species), f"{nrho} {rho[1] - rho[0]:.16e} {nr} {dr:.16e} {rc:.16e}"]

    def block(v):
        return [" ".join(f"{x:.16e}" for x in v[k:k + 5]) for k in range(0, len(v), 5)]

    for e in species:
        p = _params(e)
        lines.append(f"{int(p['Z'])} {p['mass']} {np.sqrt(2.0) * p['re']:.6f} fcc")
        lines += block(eam_embedding(e, rho)[0])
        lines += block(eam_density(e, r)[0])
    for i, a in enumerate(species):
        for b in species[:i + 1]:
            lines += block(r * eam_pair(a, b, r)[0])
    from ..io.files import atomic_write_text

    atomic_write_text(path, "\n".join(lines) + "\n")
