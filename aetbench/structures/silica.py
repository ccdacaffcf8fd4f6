"""Amorphous silica by the network route.

An a-Si network (Stillinger–Weber melt-quench) keeps at most four bonds per Si
(the longest bonds of five-fold defects are dropped), is scaled so that its
Si–Si bond peak becomes the Si···Si distance of corner-sharing tetrahedra,
an O atom is put on every Si–Si bond (slightly off the midpoint, seeded) and
every under-coordinated Si is completed to four O by non-bridging O; the Si–O
network is then relaxed at fixed particle size with a valence force field of
fixed topology:

.. math::

    E = \\sum_{Si-O} \\tfrac12 k_b (r - b_0)^2
      + \\sum_{O-Si-O} \\tfrac12 k_{\\theta} (\\cos\\theta - \\cos\\theta_T)^2
      + \\sum_{Si-O-Si} \\tfrac12 k_{\\phi} (\\cos\\phi - \\cos\\phi_0)^2
      + \\sum_{\\text{non-bonded}} \\tfrac12 k_r (r - d_{min})^2 [r < d_{min}]

with b₀ = 1.61 Å, θ_T = 109.47°, φ₀ = 147° (the mean Si–O–Si angle of vitreous
silica, 147° from neutron diffraction, Neuefeind & Liss 1996, 151° from ²⁹Si/¹⁷O
NMR, Mauri et al., PRB 62, R4786 (2000); the mode is 144°, Mozzi & Warren 1969),
k_b = 30 eV/Å², k_θ = 5 eV, k_φ = 1 eV, and repulsion k_r = 10 eV/Å² for
non-bonded pairs (neither bonded nor bonded to a common atom) closer than 2.5 Å
(O–O), 2.9 Å (Si–Si) and 2.5 Å (Si–O).  This is a Keating-type model in the
spirit of the WWW silica models (Wooten, Winer & Weaire 1985; scaled a-Si →
SiO₂), not a transferable potential.

Why the size is held: the corner-sharing network is floppy (the Si–O–Si angle
is soft); relaxed freely, the tetrahedra of a quenched a-Si topology rotate
and fold the particle in by ~6 % in volume (Si–O–Si means of 140–143°,
0.072–0.077 atoms/Å³), while at the size of the scaled network the density is
within 10 % of a-SiO₂ (2.20 g/cm³, 0.0662 atoms/Å³).  Units: Å, eV, degrees.
"""
from __future__ import annotations

import numpy as np
from scipy.optimize import minimize

from ..types import AtomicModel
from .jit import kernel
from .neighbors import neighbor_list

__all__ = ["decorate_with_oxygen", "network_bonds", "relax_silica", "SIO2"]

#: rho_si [Si/Å³] (a-SiO₂ 2.20 g/cm³), b0 [Å], cos θ_T, cos φ0, k_b [eV/Å²], k_θ [eV], k_φ [eV], k_r [eV/Å²], d_min O–O, Si–Si, Si–O [Å]
SIO2 = dict(rho_si=2.20 / 60.084 * 0.602214, b0=1.61, cos_t=-1.0 / 3.0, cos_p=np.cos(np.radians(147.0)), kb=30.0, kt=5.0, kp=1.0, kr=10.0,
            d_oo=2.5, d_sisi=2.9, d_sio=2.5)


def network_bonds(si_positions, bond_cutoff: float, max_bonds: int = 4):
    """Si–Si bonds of a network with at most ``max_bonds`` per atom.

    Bonds are pairs closer than ``bond_cutoff`` [Å]; where an atom has more
    than ``max_bonds`` (five-fold defects of a-Si), its longest bonds are
    dropped first (longest-first over the whole network, stable order), since
    Si in silica is four-fold.

    Returns
    -------
    a, b : (K,) int arrays
        Bonded pairs, ``a < b``.
    d : (K,) array
        Their lengths [Å].
    """
    x = np.asarray(si_positions, float)
    n = len(x)
    off, idx = neighbor_list(x, bond_cutoff)
    own = np.repeat(np.arange(n), np.diff(off))
    keep = own < idx
    a, b = own[keep], idx[keep]
    d = np.linalg.norm(x[b] - x[a], axis=1)
    order = np.lexsort((b, a, -d))  # longest first; ties by index
    cn = np.bincount(a, minlength=n) + np.bincount(b, minlength=n)
    ok = np.ones(len(a), bool)
    for e in order:
        if cn[a[e]] <= max_bonds and cn[b[e]] <= max_bonds:
            continue
        ok[e] = False
        cn[a[e]] -= 1
        cn[b[e]] -= 1
    return a[ok], b[ok], d[ok]


def decorate_with_oxygen(si_positions, bond_cutoff: float, *, si_si: float | None = None, offset: float = 0.3,
                         seed: int = 0, terminate: bool = True):
    """Scale an a-Si network and put an O on every Si–Si bond.

    The network keeps at most four bonds per Si (:func:`network_bonds`); it is
    scaled so that its most probable Si–Si bond (the g(r) first peak, not the
    median, which the long surface bonds pull up) becomes ``si_si``.

    Parameters
    ----------
    si_positions : (N, 3) array
        a-Si network positions [Å].
    bond_cutoff : float
        Si–Si bond cutoff of the input network [Å] (2.84 for a-Si).
    si_si : float, optional
        Target Si–Si distance [Å]; default 2 b₀ sin(φ₀/2) = 3.09 Å (φ₀ = 147°).
    offset : float
        Random sideways displacement of each O from the bond midpoint [Å].
    seed : int
    terminate : bool
        Complete every under-coordinated Si (surface dangling bonds) to four O
        with non-bridging O.

    Returns
    -------
    positions : (N + M, 3) array
        Si first, then O [Å].
    bonds : (K, 2) int array
        Si–O bonds (Si index, O index).
    """
    from .analysis import _first_peak

    x = np.asarray(si_positions, float)
    a, b, d = network_bonds(x, bond_cutoff)
    target = si_si if si_si is not None else 2 * SIO2["b0"] * np.sin(np.arccos(SIO2["cos_p"]) / 2)
    xs = x * (target / _first_peak(d))
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
        # non-bridging O on under-coordinated Si, each opposite the mean direction of the O it already has
        nbr = [[] for _ in range(n)]
        for s, j in bonds:
            nbr[s].append(o[j - n] - xs[s])
        extra, eb = [], []
        for i in range(n):
            while len(nbr[i]) < 4:
                v = -np.sum([w / np.linalg.norm(w) for w in nbr[i]], axis=0) if nbr[i] else np.zeros(3)
                v = v + 0.3 * rng.normal(size=3)
                w = SIO2["b0"] * v / np.linalg.norm(v)
                nbr[i].append(w)
                extra.append(xs[i] + w)
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
    """Angles (centre first) and the excluded pairs of the repulsion: bonded (1-2) pairs and pairs
    bonded to a common atom (1-3: O–O of one tetrahedron, Si–Si sharing an O), as CSR lists."""
    partners = [[] for _ in range(n)]
    for a, b in bonds:
        partners[a].append(int(b))
        partners[b].append(int(a))
    ang = []
    excl = [set(p) for p in partners]
    for i, p in enumerate(partners):
        for u in range(len(p)):
            for v in range(u + 1, len(p)):
                ang.append((i, p[u], p[v]))
                excl[p[u]].add(p[v])
                excl[p[v]].add(p[u])
    excl = [sorted(e) for e in excl]
    counts = np.array([len(e) for e in excl])
    off = np.concatenate([[0], np.cumsum(counts)])
    idx = np.array([q for e in excl for q in e], dtype=np.int64)
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


@kernel
def _size_hold(y, s0, k):
    """Energy ½ k (S − s0)² [eV] and gradient of S = mean |r − centroid|² [Å²] (serial sums)."""
    n = y.shape[0]
    c = np.zeros(3)
    for i in range(n):
        for a in range(3):
            c[a] += y[i, a]
    c /= n
    s = 0.0
    for i in range(n):
        for a in range(3):
            s += (y[i, a] - c[a]) ** 2
    s /= n
    g = np.empty((n, 3))
    for i in range(n):
        for a in range(3):
            g[i, a] = k * (s - s0) * 2.0 * (y[i, a] - c[a]) / n
    return 0.5 * k * (s - s0) ** 2, g


def relax_silica(x, is_o, bonds, params=SIO2, max_iter: int = 3000, gtol: float = 1e-3,
                 hold_size: float = 0.0):
    """L-BFGS relaxation of the valence force field (topology fixed; neighbour list refreshed on each call).

    ``hold_size`` [eV/Å⁴] > 0 adds ½ k (S − S₀)², S the mean squared distance
    from the centroid [Å²] and S₀ its start value: the relaxation then keeps the
    particle's size (a fixed-density relaxation, as in WWW network models)
    instead of letting the floppy corner-sharing network fold in.
    """
    n = len(x)
    ang, boff, bidx = _topology(n, bonds)
    cos0 = np.where(is_o[ang[:, 0]], params["cos_p"], params["cos_t"])
    kang = np.where(is_o[ang[:, 0]], params["kp"], params["kt"])
    b = np.asarray(bonds, np.int64)
    rcut = max(params["d_oo"], params["d_sisi"], params["d_sio"])
    # start size S₀ [Å²]: with s0 = 0 and k = 1 the energy is ½ S₀²
    s0 = float(np.sqrt(2.0 * _size_hold(np.ascontiguousarray(x, float), 0.0, 1.0)[0])) if hold_size > 0 else 0.0

    def fun(flat):
        y = flat.reshape(-1, 3)
        off, idx = neighbor_list(y, rcut)
        e, g = _vff(y, is_o, b, ang, cos0, kang, off, idx, params["b0"], params["kb"], params["kr"],
                    params["d_oo"], params["d_sisi"], params["d_sio"], boff, bidx)
        if hold_size > 0:
            eh, gh = _size_hold(y, s0, hold_size)
            e, g = e + eh, g + gh
        return e, g.ravel()

    res = minimize(fun, np.asarray(x, float).ravel(), jac=True, method="L-BFGS-B",
                   options={"maxiter": max_iter, "gtol": gtol})
    return res.x.reshape(-1, 3), {"energy_eV": float(res.fun), "iterations": int(res.nit)}


def si_interior_density(x, is_o, shell: float = 4.0) -> float:
    """Si number density [Si/Å³] inside the sphere of radius R − ``shell`` [Å] (R from the radius of
    gyration of all atoms, R = √(5/3) R_g), counted over that sphere's volume."""
    c = x.mean(0)
    rr = np.linalg.norm(x - c, axis=1)
    rc = np.sqrt(5 / 3) * np.sqrt(np.mean(rr**2)) - shell
    return float(np.sum((rr < rc) & ~is_o) / (4 / 3 * np.pi * rc**3))


def build_silica(n_si: int, *, seed: int, network_kw: dict, log=None, name: str = "",
                 hold_size: float = 1.0, shell: float = 4.0) -> AtomicModel:
    """a-SiO₂ particle: a-Si network of ``n_si`` atoms → O on every bond → valence-force-field relaxation.

    The network is scaled by its Si–Si bond peak (:func:`decorate_with_oxygen`)
    and relaxed at the size of the scaled network (``hold_size`` [eV/Å⁴], see
    :func:`relax_silica`; 0 lets it fold in by ~6 % in volume).
    """
    from .build import build_network

    rng = np.random.default_rng(seed)
    net = build_network({"Si": n_si}, seed=int(rng.integers(2**31)), log=log, **network_kw)
    x, bonds = decorate_with_oxygen(net.positions, 2.84, seed=int(rng.integers(2**31)))
    is_o = np.arange(len(x)) >= n_si
    x, info = relax_silica(x, is_o, bonds, hold_size=hold_size)
    if log is not None:
        log.update({"silica_" + k: v for k, v in info.items()})
        log["silica_si_density_per_A3"] = si_interior_density(x, is_o, shell)
    el = np.where(is_o, "O", "Si")
    return AtomicModel(x - x.mean(0), el, name=name)
