"""Gupta / RGL second-moment tight-binding many-body potential (numba).

.. math::

    E = \\sum_i \\Big[\\sum_{j\\ne i} A_{ij} e^{-p_{ij}(r_{ij}/r^0_{ij}-1)} S(r_{ij})
        - \\Big(\\sum_{j\\ne i} \\xi_{ij}^2 e^{-2q_{ij}(r_{ij}/r^0_{ij}-1)} S(r_{ij})\\Big)^{1/2}\\Big]

Energies in eV, distances in Å.  ``S`` is a quintic switch from 1 at ``r_s``
to 0 at ``r_c`` (so forces are continuous).

Parameters
----------
* Pure elements: Cleri & Rosato, PRB 48, 22 (1993), Table I (Co hcp, Pd and
  Pt fcc).  With the default switch (4.2 → 5.0 Å) they give fcc Pd a = 3.891 Å,
  E_c = 3.92 eV; fcc Pt a = 3.925 Å, E_c = 5.83 eV; ideal hcp Co a = 2.483 Å,
  E_c = 4.36 eV (experiment: 3.890 / 3.89, 3.924 / 5.84, 2.507 / 4.39;
  checked in ``tests/test_structures.py``).
* Cross terms (no fitted Co–Pd–Pt alloy set is used): the standard mixing rules,
  arithmetic mean for p, q, r⁰ and **geometric** mean for A and ξ
  (``MIXING``).  Check against the alloys: L1₂ CoPt₃ a = 3.835 Å (experiment
  3.831 Å) and negative formation energies of CoPt₃ / CoPt (Co–Pt orders);
  the older rule (arithmetic A) gave +0.07…+0.18 eV/atom, i.e. demixing.

Known limitation: Pt has the smallest p − 2q (2.6) of the three, so its bond
length reacts strongly to its embedding density; in the Co-rich glass a Pt atom
gets ~20 % less density than in fcc Pt (ξ_CoPt, ξ_PdPt < ξ_PtPt), and Pt–Pt
bonds come out near 2.60–2.65 Å instead of the fcc 2.77 Å.  This is a property
of the second-moment model with mixing rules, not of the kernel; the published
alloy EAM of Zhou, Johnson & Wadley (:mod:`.eam`, no mixing-rule fit) contracts
Pt bonds even more in the same glass (Pt–Pt 2.57–2.63 Å on ``copdpt_small``).
For comparison, measured Pt–Pt neighbour distances fall with Co content in the
ordered alloys: 2.775 Å (Pt), 2.709 Å (CoPt₃), 2.689 Å in-plane (CoPt); the
model gives 2.712 Å (CoPt₃) and 2.648 Å (CoPt).  ASE's EMT
has no Co parameters, and matscipy is not installed, so there is no external
reference implementation to compare with here.
"""
from __future__ import annotations

import numpy as np
from numba import prange

from ..errors import AetbenchError
from .jit import kernel, pair_force_block, reduce_blocks

__all__ = ["GUPTA_ELEMENTS", "MIXING", "gupta_pair_parameters", "gupta_potential"]

#: (A [eV], ξ [eV], p, q, r0 [Å]) — Cleri & Rosato 1993
GUPTA_ELEMENTS = {
    "Co": (0.0950, 1.4880, 11.604, 2.286, 2.497),
    "Pd": (0.1746, 1.7180, 10.867, 3.742, 2.751),
    "Pt": (0.2975, 2.6950, 10.612, 4.004, 2.775),
}

#: mixing rule per parameter (index in GUPTA_ELEMENTS order: A, ξ, p, q, r0)
MIXING = ("geometric", "geometric", "arithmetic", "arithmetic", "arithmetic")


@kernel
def _switch(r, rs, rc):
    if r <= rs:
        return 1.0, 0.0
    if r >= rc:
        return 0.0, 0.0
    t = (r - rs) / (rc - rs)
    s = 1.0 - t * t * t * (10.0 - 15.0 * t + 6.0 * t * t)
    ds = -30.0 * t * t * (1.0 - t) * (1.0 - t) / (rc - rs)
    return s, ds


NBLOCK = 16  #: fixed work blocks: summation order independent of the thread count
PARALLEL_MIN_ATOMS = 3000  #: below this the threads' start-up costs more than the force loop saves


@kernel
def _rho_block(b, nb, pos, types, offset, index, pair, rs, rc, rb, cr, cg):
    """Pass 1 over the pairs (i < j) owned by the atoms of block ``b``: density terms into rb[b];
    per neighbour slot, (dE_rep/dr)/r into ``cr`` and (dg/dr)/r into ``cg`` for pass 2
    (:func:`.jit.pair_force_block`), so each pair's distance and exponentials are computed once per force call.
    Returns the block's repulsive energy [eV]."""
    n = pos.shape[0]
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
            r = np.sqrt(dx * dx + dy * dy + dz * dz)
            if r >= rc:
                cr[s] = 0.0
                cg[s] = 0.0
                continue
            tj = types[j]
            sw, dsw = _switch(r, rs, rc)
            r0 = pair[4, ti, tj]
            x = r / r0 - 1.0
            er = pair[0, ti, tj] * np.exp(-pair[2, ti, tj] * x)
            e += 2.0 * er * sw
            eg = pair[1, ti, tj] ** 2 * np.exp(-2.0 * pair[3, ti, tj] * x)
            g = eg * sw
            rb[b, i] += g
            rb[b, j] += g
            cr[s] = 2.0 * (-pair[2, ti, tj] / r0 * er * sw + er * dsw) / r
            cg[s] = (-2.0 * pair[3, ti, tj] / r0 * g + eg * dsw) / r
    return e


@kernel
def _embed(rb):
    """Block-order sum of the densities; embedding energy −Σ√ρ [eV] and dF/dρ = −1/(2√ρ) per atom."""
    nb, n = rb.shape[0], rb.shape[1]
    rho = np.zeros(n)
    dF = np.zeros(n)
    for i in range(n):
        for b in range(nb):
            rho[i] += rb[b, i]
        if rho[i] > 0:
            dF[i] = -0.5 / np.sqrt(rho[i])
    energy = 0.0
    for i in range(n):
        if rho[i] > 0:
            energy -= np.sqrt(rho[i])
    return energy, dF


@kernel(parallel=True)
def _gupta_parallel(pos, types, offset, index, pair, cut):
    n = pos.shape[0]
    rs = cut[0, 0, 0]
    rc = cut[0, 0, 1]
    nb = min(NBLOCK, max(n, 1))
    rb = np.zeros((nb, n))
    cr = np.empty(index.shape[0])
    cg = np.empty(index.shape[0])
    eb = np.zeros(nb)
    for b in prange(nb):
        eb[b] = _rho_block(b, nb, pos, types, offset, index, pair, rs, rc, rb, cr, cg)
    energy, dF = _embed(rb)
    fb = np.zeros((nb, n, 3))
    for b in prange(nb):
        pair_force_block(b, nb, pos, offset, index, cr, cg, cg, dF, fb)
    eforce, f = reduce_blocks(fb, eb)
    return energy + eforce, f


@kernel
def _gupta_serial(pos, types, offset, index, pair, cut):
    n = pos.shape[0]
    rs = cut[0, 0, 0]
    rc = cut[0, 0, 1]
    nb = min(NBLOCK, max(n, 1))
    rb = np.zeros((nb, n))
    cr = np.empty(index.shape[0])
    cg = np.empty(index.shape[0])
    eb = np.zeros(nb)
    for b in range(nb):
        eb[b] = _rho_block(b, nb, pos, types, offset, index, pair, rs, rc, rb, cr, cg)
    energy, dF = _embed(rb)
    fb = np.zeros((nb, n, 3))
    for b in range(nb):
        pair_force_block(b, nb, pos, offset, index, cr, cg, cg, dF, fb)
    eforce, f = reduce_blocks(fb, eb)
    return energy + eforce, f


@kernel
def _gupta(pos, types, offset, index, pair, cut, unused):
    """Gupta energy [eV] and forces [eV/Å]; pair[k, ti, tj]: k = 0 A, 1 ξ, 2 p, 3 q, 4 r0;
    cut[0, 0, :2] = (r_s, r_c).  Same fixed blocks and block-order sums on one or many threads."""
    if pos.shape[0] < PARALLEL_MIN_ATOMS:
        return _gupta_serial(pos, types, offset, index, pair, cut)
    return _gupta_parallel(pos, types, offset, index, pair, cut)


def gupta_potential(species, r_switch: float = 4.2, r_cut: float = 5.0):
    """:class:`~aetbench.structures.md.Potential` for ``species`` (Co, Pd, Pt).

    Parameters
    ----------
    species : list of str
        Element symbols in type order.
    r_switch, r_cut : float
        Switch start and cutoff [Å] (between the 2nd and 3rd fcc neighbour shells).
    """
    from .md import Potential

    pair = gupta_pair_parameters(species)
    cut = np.zeros((1, 1, 2))
    cut[0, 0] = (r_switch, r_cut)
    return Potential(1, (pair, cut, np.zeros((1, 1, 1))), float(r_cut))


def gupta_pair_parameters(species) -> np.ndarray:
    """Pair parameters ``pair[k, i, j]`` (k = 0 A [eV], 1 ξ [eV], 2 p, 3 q, 4 r0 [Å]) for ``species``.

    Like pairs are Cleri & Rosato's; unlike pairs follow :data:`MIXING`
    (geometric A, ξ; arithmetic p, q, r0).
    """
    vals = []
    for s in species:
        if s not in GUPTA_ELEMENTS:
            raise AetbenchError(f"Gupta potential: no parameters for {s!r}; known: {sorted(GUPTA_ELEMENTS)}")
        vals.append(GUPTA_ELEMENTS[s])
    v = np.array(vals, dtype=np.float64)  # (S, 5)
    pair = np.empty((5, len(species), len(species)))
    for k, rule in enumerate(MIXING):
        if rule == "geometric":
            pair[k] = np.sqrt(np.outer(v[:, k], v[:, k]))
        else:
            pair[k] = 0.5 * (v[:, k][:, None] + v[:, k][None, :])
    return pair
