"""Amorphous silica by the network route.

An a-Si network (Stillinger–Weber melt-quench) is scaled so that its bonds
become Si–Si distances of corner-sharing tetrahedra, an O atom is put on every
Si–Si bond (slightly off the midpoint, seeded) and a non-bridging O on every
three-fold Si, and the Si–O network is
relaxed with a valence force field of fixed topology:

.. math::

    E = \\sum_{Si-O} \\tfrac12 k_b (r - b_0)^2
      + \\sum_{O-Si-O} \\tfrac12 k_{\\theta} (\\cos\\theta - \\cos\\theta_T)^2
      + \\sum_{Si-O-Si} \\tfrac12 k_{\\phi} (\\cos\\phi - \\cos\\phi_0)^2
      + \\sum_{\\text{non-bonded}} \\tfrac12 k_r (r - d_{min})^2 [r < d_{min}]

with b₀ = 1.61 Å, θ_T = 109.47°, φ₀ = 144° (the experimental Si–O–Si mode,
Mozzi & Warren 1969), k_b = 30 eV/Å², k_θ = 5 eV, k_φ = 1 eV, and repulsion
k_r = 10 eV/Å² for non-bonded pairs closer than 2.5 Å (O–O), 2.9 Å (Si–Si)
and 2.5 Å (Si–O).  This is a Keating-type model in the spirit of the WWW
silica models (Wooten, Winer & Weaire 1985; scaled a-Si → SiO₂), not a
transferable potential.  Units: Å, eV, degrees.
"""
from __future__ import annotations

import numpy as np
from scipy.optimize import minimize

from ..types import AtomicModel
from .jit import kernel
from .neighbors import neighbor_list

__all__ = ["decorate_with_oxygen", "relax_silica", "SIO2"]

#: b0 [Å], cos θ_T, cos φ0, k_b [eV/Å²], k_θ [eV], k_φ [eV], k_r [eV/Å²], d_min O–O, Si–Si, Si–O [Å]
SIO2 = dict(b0=1.61, cos_t=-1.0 / 3.0, cos_p=np.cos(np.radians(144.0)), kb=30.0, kt=5.0, kp=1.0, kr=10.0,
            d_oo=2.5, d_sisi=2.9, d_sio=2.5)


def decorate_with_oxygen(si_positions, bond_cutoff: float, *, si_si: float | None = None, offset: float = 0.3,
                         seed: int = 0, terminate: bool = True):
    """Scale an a-Si network and put an O on every Si–Si bond.

    Parameters
    ----------
    si_positions : (N, 3) array
        a-Si network positions [Å].
    bond_cutoff : float
        Si–Si bond cutoff of the input network [Å] (2.84 for a-Si).
    si_si : float, optional
        Target Si–Si distance [Å]; default 2 b₀ sin(φ₀/2) = 3.06 Å.
    offset : float
        Random sideways displacement of each O from the bond midpoint [Å].
    seed : int
    terminate : bool
        Also put a non-bridging O on every three-fold Si (surface dangling bonds).

    Returns
    -------
    positions : (N + M, 3) array
        Si first, then O [Å].
    bonds : (K, 2) int array
        Si–O bonds (Si index, O index).
    """
    x = np.asarray(si_positions, float)
    off, idx = neighbor_list(x, bond_cutoff)
    own = np.repeat(np.arange(len(x)), np.diff(off))
    keep = own < idx
    a, b = own[keep], idx[keep]
    d = np.linalg.norm(x[b] - x[a], axis=1)
    mean_bond = np.median(d)
    target = si_si if si_si is not None else 2 * SIO2["b0"] * np.sin(np.arccos(SIO2["cos_p"]) / 2)
    xs = x * (target / mean_bond)
    rng = np.random.default_rng(seed)
    mid = 0.5 * (xs[a] + xs[b])
    u = xs[b] - xs[a]
    u /= np.linalg.norm(u, axis=1)[:, None]
    r = rng.normal(size=mid.shape)
    r -= np.sum(r * u, axis=1)[:, None] * u
    r /= np.linalg.norm(r, axis=1)[:, None]
    o = mid + offset * r
    n = len(xs)
    io = n + np.arange(len(o))
    bonds = np.concatenate([np.stack([a, io], 1), np.stack([b, io], 1)])
    if terminate:
        # non-bridging O on three-fold Si (dangling bonds), opposite the mean of its three bonds
        cn = np.bincount(bonds[:, 0], minlength=n)
        allo = np.vstack([xs, o])
        extra, eb = [], []
        for i in np.nonzero(cn == 3)[0]:
            nbr = bonds[bonds[:, 0] == i, 1]
            v = (allo[nbr] - xs[i]).sum(0)
            nv = np.linalg.norm(v)
            if nv < 1e-6:
                continue
            extra.append(xs[i] - SIO2["b0"] * v / nv)
            eb.append((i, n + len(o) + len(extra) - 1))
        if extra:
            o = np.vstack([o, extra])
            bonds = np.concatenate([bonds, np.array(eb, dtype=bonds.dtype)])
    return np.vstack([xs, o]), bonds


@kernel
def _vff(x, is_o, bonds, angles, cos0, kang, nb_off, nb_idx, b0, kb, kr, d_oo, d_sisi, d_sio, bonded_off,
         bonded_idx):
    n = x.shape[0]
    g = np.zeros((n, 3))
    e = 0.0
    for k in range(bonds.shape[0]):
        i, j = bonds[k, 0], bonds[k, 1]
        d = x[j] - x[i]
        r = np.sqrt(np.sum(d * d))
        e += 0.5 * kb * (r - b0) ** 2
        c = kb * (r - b0) / r
        g[j] += c * d
        g[i] -= c * d
    for k in range(angles.shape[0]):
        i, j, m = angles[k, 0], angles[k, 1], angles[k, 2]  # centre i
        a = x[j] - x[i]
        b = x[m] - x[i]
        ra = np.sqrt(np.sum(a * a))
        rb = np.sqrt(np.sum(b * b))
        c = np.sum(a * b) / (ra * rb)
        dc = kang[k] * (c - cos0[k])
        e += 0.5 * kang[k] * (c - cos0[k]) ** 2
        ga = dc * (b / (ra * rb) - c * a / (ra * ra))
        gb = dc * (a / (ra * rb) - c * b / (rb * rb))
        g[j] += ga
        g[m] += gb
        g[i] -= ga + gb
    for i in range(n):
        for s in range(nb_off[i], nb_off[i + 1]):
            j = nb_idx[s]
            if j <= i:
                continue
            bonded = False
            for t in range(bonded_off[i], bonded_off[i + 1]):
                if bonded_idx[t] == j:
                    bonded = True
            if bonded:
                continue
            if is_o[i] and is_o[j]:
                dm = d_oo
            elif not is_o[i] and not is_o[j]:
                dm = d_sisi
            else:
                dm = d_sio
            d = x[j] - x[i]
            r = np.sqrt(np.sum(d * d))
            if r < dm:
                e += 0.5 * kr * (r - dm) ** 2
                c = kr * (r - dm) / r
                g[j] += c * d
                g[i] -= c * d
    return e, g


def _topology(n, bonds):
    partners = [[] for _ in range(n)]
    for a, b in bonds:
        partners[a].append(b)
        partners[b].append(a)
    ang, cos0, kang = [], [], []
    for i, p in enumerate(partners):
        for u in range(len(p)):
            for v in range(u + 1, len(p)):
                ang.append((i, p[u], p[v]))
    counts = np.array([len(p) for p in partners])
    off = np.concatenate([[0], np.cumsum(counts)])
    idx = np.array([q for p in partners for q in p], dtype=np.int64)
    return np.array(ang, dtype=np.int64).reshape(-1, 3), off, idx


def silica_energy_gradient(x, is_o, bonds, params=SIO2):
    """Valence-force-field energy [eV] and gradient [eV/Å] (for tests and relaxation)."""
    n = len(x)
    ang, boff, bidx = _topology(n, bonds)
    cos0 = np.where(is_o[ang[:, 0]], params["cos_p"], params["cos_t"])
    kang = np.where(is_o[ang[:, 0]], params["kp"], params["kt"])
    off, idx = neighbor_list(x, max(params["d_oo"], params["d_sisi"], params["d_sio"]))
    return _vff(np.ascontiguousarray(x, float), is_o, np.asarray(bonds, np.int64), ang, cos0, kang, off, idx,
                params["b0"], params["kb"], params["kr"], params["d_oo"], params["d_sisi"], params["d_sio"],
                boff, bidx)


def relax_silica(x, is_o, bonds, params=SIO2, max_iter: int = 3000, gtol: float = 1e-3):
    """L-BFGS relaxation of the valence force field (topology fixed; neighbour list refreshed on each call)."""
    n = len(x)
    ang, boff, bidx = _topology(n, bonds)
    cos0 = np.where(is_o[ang[:, 0]], params["cos_p"], params["cos_t"])
    kang = np.where(is_o[ang[:, 0]], params["kp"], params["kt"])
    b = np.asarray(bonds, np.int64)
    rcut = max(params["d_oo"], params["d_sisi"], params["d_sio"])

    def fun(flat):
        y = flat.reshape(-1, 3)
        off, idx = neighbor_list(y, rcut)
        e, g = _vff(y, is_o, b, ang, cos0, kang, off, idx, params["b0"], params["kb"], params["kr"],
                    params["d_oo"], params["d_sisi"], params["d_sio"], boff, bidx)
        return e, g.ravel()

    res = minimize(fun, np.asarray(x, float).ravel(), jac=True, method="L-BFGS-B",
                   options={"maxiter": max_iter, "gtol": gtol})
    return res.x.reshape(-1, 3), {"energy_eV": float(res.fun), "iterations": int(res.nit)}


def build_silica(n_si: int, *, seed: int, network_kw: dict, log=None, name: str = "") -> AtomicModel:
    """a-SiO₂ particle: a-Si network of ``n_si`` atoms → O on every bond → valence-force-field relaxation."""
    from .build import build_network

    rng = np.random.default_rng(seed)
    net = build_network({"Si": n_si}, seed=int(rng.integers(2**31)), log=log, **network_kw)
    x, bonds = decorate_with_oxygen(net.positions, 2.84, seed=int(rng.integers(2**31)))
    is_o = np.arange(len(x)) >= n_si
    x, info = relax_silica(x, is_o, bonds)
    if log is not None:
        log.update({"silica_" + k: v for k, v in info.items()})
    el = np.where(is_o, "O", "Si")
    return AtomicModel(x - x.mean(0), el, name=name)
