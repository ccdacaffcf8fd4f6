"""Stillinger–Weber three-body potential (multi-species), numba kernel.

Energies in eV, distances in Å, forces in eV/Å.

.. math::

    E = \\sum_{i<j} \\phi_2(r_{ij}) + \\sum_i \\sum_{j<k} \\lambda_{ijk}\\sqrt{\\epsilon_{ij}\\epsilon_{ik}}
        (\\cos\\theta_{jik} + 1/3)^2 e^{\\gamma\\sigma_{ij}/(r_{ij}-a\\sigma_{ij})}
        e^{\\gamma\\sigma_{ik}/(r_{ik}-a\\sigma_{ik})}

    \\phi_2(r) = A\\epsilon_{ij}[B(\\sigma_{ij}/r)^p - (\\sigma_{ij}/r)^q] e^{\\sigma_{ij}/(r-a\\sigma_{ij})}

Parameters per element (ε [eV], σ [Å], λ); mixing ε_ij = √(ε_iε_j),
σ_ij = (σ_i+σ_j)/2, λ_ij = √(λ_iλ_j), λ_ijk = √(λ_ijλ_ik) (the usual
Si–Ge mixing, e.g. Laradji, Landau & Dünweg, PRB 51, 4894 (1995)).
The φ₂ minimum (and the diamond-lattice bond length) is at 2^{1/6} σ_ij.

Sources
-------
* Si: Stillinger & Weber, PRB 31, 5262 (1985): ε = 2.1683 eV, σ = 2.0951 Å, λ = 21.
* Si (``"Si-vink"``): Vink, Barkema, van der Weg & Mousseau, J. Non-Cryst.
  Solids 282, 248 (2001): ε = 1.64833 eV, λ = 31.5 — better a-Si (fewer
  five-fold defects, correct bond-angle spread).
* Ge: Ding & Andersen, PRB 34, 6987 (1986): ε = 1.93 eV, σ = 2.181 Å, λ = 31.
* Sn: *derived here*, not a published fit, the way Ding & Andersen scaled SW
  to Ge: σ from the α-Sn bond length 2.810 Å (a = 6.489 Å; σ = 2.810/2^{1/6}
  = 2.5034 Å), ε = E_c/2 with the α-Sn cohesive energy E_c = 3.14 eV (Kittel)
  — as Ding & Andersen's Ge ε = 1.93 eV ≈ 3.85/2 — and λ as Ge.  (Before: ε
  scaled from Si by 3.14/4.63 = 1.47 eV, 7 % softer Sn bonds.)

Bond-stretching stiffness φ₂''(2^{1/6}σ) ∝ ε/σ²: Si (SW) 0.49, Si-vink 0.38,
Ge 0.41, Sn 0.25 (relative units): in the alloy the soft Si-vink bonds take
more of the size-mismatch strain than Ge's (Si–Si comes out ~0.04 Å long).
"""
from __future__ import annotations

import numpy as np
from numba import prange

from ..errors import AetbenchError
from .jit import kernel, reduce_blocks

__all__ = ["SW_ELEMENTS", "SWParams", "sw_params", "sw_energy_forces", "sw_potential", "A_SW", "B_SW", "A_CUT", "GAMMA"]

A_SW = 7.049556277
B_SW = 0.6022245584
P_SW = 4.0
Q_SW = 0.0
A_CUT = 1.80
GAMMA = 1.20

#: per element (ε [eV], σ [Å], λ)
SW_ELEMENTS = {
    "Si": (2.1683, 2.0951, 21.0),
    "Si-vink": (1.64833, 2.0951, 31.5),
    "Ge": (1.93, 2.181, 31.0),
    "Sn": (3.14 / 2, 2.810 / 2 ** (1 / 6), 31.0),
}


class SWParams:
    """Mixed SW parameters for a list of species.

    Attributes
    ----------
    species : list of str
        Element symbols in type order.
    eps, sigma : (S, S) arrays
        ε_ij [eV], σ_ij [Å].
    lam3 : (S, S, S) array
        λ_ijk √(ε_ij ε_ik) [eV] for centre i.
    cutoff : float
        Largest a σ_ij [Å].
    """

    def __init__(self, species, variants=None):
        variants = variants or {}
        vals = []
        for s in species:
            key = variants.get(s, s)
            if key not in SW_ELEMENTS:
                raise AetbenchError(f"Stillinger-Weber: no parameters for {key!r}; known: {sorted(SW_ELEMENTS)}")
            vals.append(SW_ELEMENTS[key])
        e = np.array([v[0] for v in vals])
        s_ = np.array([v[1] for v in vals])
        lam = np.array([v[2] for v in vals])
        self.species = list(species)
        self.eps = np.sqrt(np.outer(e, e))
        self.sigma = 0.5 * (s_[:, None] + s_[None, :])
        lij = np.sqrt(np.outer(lam, lam))
        self.lam3 = np.sqrt(lij[:, :, None] * lij[:, None, :]) * np.sqrt(self.eps[:, :, None] * self.eps[:, None, :])
        self.cutoff = float(A_CUT * self.sigma.max())

    def bond_length(self, a: str, b: str) -> float:
        """Ideal bond length 2^{1/6} σ_ab [Å]."""
        i, j = self.species.index(a), self.species.index(b)
        return float(2 ** (1 / 6) * self.sigma[i, j])


def sw_params(species, variants=None) -> SWParams:
    """Build :class:`SWParams` for ``species`` (e.g. ``["Si"]``, ``variants={"Si": "Si-vink"}``)."""
    return SWParams(species, variants)


NBLOCK = 16  #: fixed number of work blocks: the force sum order does not depend on the thread count


@kernel
def _sw_atom(i, pos, types, offset, index, eps, sigma, lam3, f, uv, ir, ee, de, jj):
    """Energy of the terms owned by atom i (pairs j > i, triplets centred on i); forces added to f."""
    energy = 0.0
    third = 1.0 / 3.0
    ti = types[i]
    m = 0
    for s in range(offset[i], offset[i + 1]):
        j = index[s]
        tj = types[j]
        sg = sigma[ti, tj]
        rc = A_CUT * sg
        dx = pos[j, 0] - pos[i, 0]
        dy = pos[j, 1] - pos[i, 1]
        dz = pos[j, 2] - pos[i, 2]
        r2 = dx * dx + dy * dy + dz * dz
        if r2 >= rc * rc:
            continue
        r = np.sqrt(r2)
        rinv = 1.0 / r
        inv = 1.0 / (r - rc)
        if j > i:
            # two-body, p = 4, q = 0
            sr2 = sg * sg * rinv * rinv
            srp = sr2 * sr2
            ex = np.exp(sg * inv)
            bracket = B_SW * srp - 1.0
            ep = eps[ti, tj] * A_SW
            energy += ep * bracket * ex
            dphi = ep * ex * (-P_SW * B_SW * srp * rinv - bracket * sg * inv * inv)
            c = dphi * rinv
            f[i, 0] += c * dx
            f[i, 1] += c * dy
            f[i, 2] += c * dz
            f[j, 0] -= c * dx
            f[j, 1] -= c * dy
            f[j, 2] -= c * dz
        uv[m, 0] = dx * rinv
        uv[m, 1] = dy * rinv
        uv[m, 2] = dz * rinv
        ir[m] = rinv
        e3 = np.exp(GAMMA * sg * inv)
        ee[m] = e3
        de[m] = -e3 * GAMMA * sg * inv * inv
        jj[m] = j
        m += 1
    for a in range(m):
        j = jj[a]
        tj = types[j]
        for b in range(a + 1, m):
            k = jj[b]
            L = lam3[ti, tj, types[k]]
            c = uv[a, 0] * uv[b, 0] + uv[a, 1] * uv[b, 1] + uv[a, 2] * uv[b, 2]
            c3 = c + third
            w = L * c3 * c3
            energy += w * ee[a] * ee[b]
            dhu = w * de[a] * ee[b]
            dhv = w * ee[a] * de[b]
            dhc = 2.0 * L * c3 * ee[a] * ee[b]
            cu = dhc * ir[a]
            cv = dhc * ir[b]
            for d in range(3):
                gj = dhu * uv[a, d] + cu * (uv[b, d] - c * uv[a, d])
                gk = dhv * uv[b, d] + cv * (uv[a, d] - c * uv[b, d])
                f[j, d] -= gj
                f[k, d] -= gk
                f[i, d] += gj + gk
    return energy


@kernel
def _sw_block(b, nb, pos, types, offset, index, eps, sigma, lam3, maxn, fb):
    """Energy [eV] of work block ``b`` of ``nb`` (atoms ``b n // nb`` … ``(b + 1) n // nb - 1``); forces into fb[b]."""
    n = pos.shape[0]
    uv = np.empty((maxn, 3))
    ir = np.empty(maxn)
    ee = np.empty(maxn)
    de = np.empty(maxn)
    jj = np.empty(maxn, dtype=np.int64)
    e = 0.0
    for i in range(b * n // nb, (b + 1) * n // nb):
        e += _sw_atom(i, pos, types, offset, index, eps, sigma, lam3, fb[b], uv, ir, ee, de, jj)
    return e


@kernel
def _max_count(offset):
    maxn = 0
    for i in range(offset.shape[0] - 1):
        maxn = max(maxn, offset[i + 1] - offset[i])
    return maxn


@kernel(parallel=True)
def _sw_parallel(pos, types, offset, index, eps, sigma, lam3):
    n = pos.shape[0]
    maxn = _max_count(offset)
    nb = min(NBLOCK, max(n, 1))
    fb = np.zeros((nb, n, 3))
    eb = np.zeros(nb)
    for b in prange(nb):
        eb[b] = _sw_block(b, nb, pos, types, offset, index, eps, sigma, lam3, maxn, fb)
    return reduce_blocks(fb, eb)


@kernel
def _sw_serial(pos, types, offset, index, eps, sigma, lam3):
    n = pos.shape[0]
    maxn = _max_count(offset)
    nb = min(NBLOCK, max(n, 1))
    fb = np.zeros((nb, n, 3))
    eb = np.zeros(nb)
    for b in range(nb):
        eb[b] = _sw_block(b, nb, pos, types, offset, index, eps, sigma, lam3, maxn, fb)
    return reduce_blocks(fb, eb)


PARALLEL_MIN_ATOMS = 3000  #: below this the threads' start-up costs more than the force loop saves


@kernel
def _sw(pos, types, offset, index, eps, sigma, lam3):
    """SW energy and forces; the same fixed blocks and block-order sums on one or many threads, so both
    drivers give the same bits."""
    if pos.shape[0] < PARALLEL_MIN_ATOMS:
        return _sw_serial(pos, types, offset, index, eps, sigma, lam3)
    return _sw_parallel(pos, types, offset, index, eps, sigma, lam3)


def sw_potential(params: SWParams):
    """:class:`~aetbench.structures.md.Potential` for the MD / FIRE drivers."""
    from .md import Potential

    return Potential(0, (params.eps[None].copy(), params.sigma[None].copy(), params.lam3.copy()), params.cutoff)


def sw_energy_forces(positions, types, params: SWParams, neighbors=None):
    """Stillinger–Weber energy [eV] and forces [eV/Å] of a free cluster.

    Parameters
    ----------
    positions : (N, 3) array
        Positions in Å.
    types : (N,) int array
        Index into ``params.species`` per atom.
    params : SWParams
    neighbors : (offset, index), optional
        A full neighbour list with cutoff ≥ ``params.cutoff`` (built if omitted).
    """
    from .neighbors import neighbor_list

    pos = np.ascontiguousarray(positions, dtype=np.float64)
    t = np.ascontiguousarray(types, dtype=np.int64)
    if neighbors is None:
        neighbors = neighbor_list(pos, params.cutoff)
    return _sw(pos, t, neighbors[0], neighbors[1], params.eps, params.sigma, params.lam3)
