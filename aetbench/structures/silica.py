"""Amorphous silica by the network route.

The Si network (Si···Si through the bridging O) is built first, every Si–Si
bond gets an O, and the Si–O network is relaxed with a valence force field.

Si network, default (``network="www"``): a Wooten–Winer–Weaire continuous
random network (WWW, PRL 54, 1392 (1985)).  The ``n`` sites of a diamond lattice
(the Si sublattice of β-cristobalite) nearest to a random point are
randomised by bond switches (a–b, c–d → a–c, b–d around a bond b–c; every
coordination number is kept, no 3-rings) at kT = 1 eV until fewer than 1 % of
the four-fold atoms keep the diamond ring environment, then annealed from 0.7
to 0.1 eV over 30 attempts per atom with the Metropolis rule on the Keating
energy (α = 2.965 eV/Å², β = 0.285 α, d = 2.35 Å, plus a non-bonded repulsion
below 3 Å) after a local relaxation of the atoms within two bonds of the
switch.  WWW networks have ring statistics peaked at 6 (a-Si: Djordjevic, Thorpe
& Wooten, PRB 52, 5685 (1995)), as vitreous silica has (6-membered rings most
frequent, 5 and 7 next: Rino et al., PRB 47, 3053 (1993); WWW-type silica
networks, Vink & Barkema, PRB 67, 245201 (2003)).  A Stillinger–Weber
melt-quench (``network="sw"``) is the alternative; its small particles have
about as many 5- as 6-rings (150 Si: 6/5 ratio 0.8–1.3 over five seeds; 2,603
Si: 1.55).

The network keeps at most four bonds per Si, is scaled so that its Si–Si bond
peak becomes the Si···Si distance of corner-sharing tetrahedra, an O atom is
put on every Si–Si bond (slightly off the midpoint, seeded) and every
under-coordinated Si is completed to four O by non-bridging O; the Si–O
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
spirit of the WWW silica models (scaled a-Si → SiO₂), not a transferable
potential.

Why the size is held: the corner-sharing network is floppy (the Si–O–Si angle
is soft); relaxed freely, the tetrahedra rotate and fold the particle in by
~6 % in volume, while at the size of the scaled network the density is within
10 % of a-SiO₂ (2.20 g/cm³, 0.0662 atoms/Å³; the diamond lattice scaled to
Si···Si 3.09 Å has 0.0220 Si/Å³, the Si density of a-SiO₂).  Units: Å, eV,
degrees.
"""
from __future__ import annotations

import numpy as np
from scipy.optimize import minimize

from ..errors import AetbenchError
from ..types import AtomicModel
from .jit import kernel
from .neighbors import neighbor_list

__all__ = ["decorate_with_oxygen", "decorate_bonds", "network_bonds", "relax_silica", "keating_energy",
           "diamond_sphere", "www_anneal", "build_silica", "SIO2", "KEATING", "WWW"]

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
    x = np.asarray(si_positions, float)
    a, b, _ = network_bonds(x, bond_cutoff)
    return decorate_bonds(x, a, b, si_si=si_si, offset=offset, seed=seed, terminate=terminate)


def decorate_bonds(si_positions, a, b, *, si_si: float | None = None, offset: float = 0.3, seed: int = 0,
                   terminate: bool = True):
    """:func:`decorate_with_oxygen` for an explicit Si–Si bond list ``a[k]``–``b[k]`` (indices).

    The positions [Å] are scaled so that the most probable bond length becomes
    ``si_si`` [Å] (default 3.09 Å); returns (positions, Si–O bonds) as there.
    """
    from .analysis import _first_peak

    x = np.asarray(si_positions, float)
    a = np.asarray(a, np.int64)
    b = np.asarray(b, np.int64)
    d = np.linalg.norm(x[b] - x[a], axis=1)
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
def _keating_local(x, nb, cn, R, nR, T, nT, inR, d2, ka, kb, g, grid, kr, rr):
    """Keating energy [eV] of every term touching the atoms R[:nR] (flagged in inR; T[:nT] = R plus their
    neighbours, the possible angle centres); the gradient [eV/Å] is added into g (exact for the R atoms).
    ka = 3α/(16 d²) [eV/Å⁴], kb = 3β/(8 d²) [eV/Å⁴], d2 = d² [Å²]; repulsion kr [eV/Å²] below rr [Å]."""
    e = 0.0
    if kr > 0.0:
        e += _repulsion(x, nb, cn, R, nR, inR, g, grid, kr, rr)
    for p in range(nR):
        i = R[p]
        for s in range(cn[i]):
            j = nb[i, s]
            if inR[j] and j < i:
                continue
            v0 = x[j, 0] - x[i, 0]
            v1 = x[j, 1] - x[i, 1]
            v2 = x[j, 2] - x[i, 2]
            q = v0 * v0 + v1 * v1 + v2 * v2 - d2
            e += ka * q * q
            c = 4.0 * ka * q
            g[j, 0] += c * v0
            g[j, 1] += c * v1
            g[j, 2] += c * v2
            g[i, 0] -= c * v0
            g[i, 1] -= c * v1
            g[i, 2] -= c * v2
    for p in range(nT):
        i = T[p]
        for s in range(cn[i]):
            j = nb[i, s]
            for t in range(s + 1, cn[i]):
                k = nb[i, t]
                if not (inR[i] or inR[j] or inR[k]):
                    continue
                u0 = x[j, 0] - x[i, 0]
                u1 = x[j, 1] - x[i, 1]
                u2 = x[j, 2] - x[i, 2]
                w0 = x[k, 0] - x[i, 0]
                w1 = x[k, 1] - x[i, 1]
                w2 = x[k, 2] - x[i, 2]
                c = u0 * w0 + u1 * w1 + u2 * w2 + d2 / 3.0
                e += kb * c * c
                f = 2.0 * kb * c
                g[j, 0] += f * w0
                g[j, 1] += f * w1
                g[j, 2] += f * w2
                g[k, 0] += f * u0
                g[k, 1] += f * u1
                g[k, 2] += f * u2
                g[i, 0] -= f * (u0 + w0)
                g[i, 1] -= f * (u1 + w1)
                g[i, 2] -= f * (u2 + w2)
    return e


@kernel
def _grid(x, h):
    """Cell list of cell size h [Å]: (head, next, cell index per atom, cells per axis, lower corner)."""
    n = x.shape[0]
    lo = np.empty(3)
    hi = np.empty(3)
    for a in range(3):
        lo[a] = x[0, a]
        hi[a] = x[0, a]
    for i in range(n):
        for a in range(3):
            lo[a] = min(lo[a], x[i, a])
            hi[a] = max(hi[a], x[i, a])
    m = 1
    for a in range(3):
        m = max(m, int((hi[a] - lo[a]) / h) + 1)
    head = -np.ones(m * m * m, np.int64)
    nxt = -np.ones(n, np.int64)
    cell = np.empty((n, 3), np.int64)
    for i in range(n):
        for a in range(3):
            cell[i, a] = min(m - 1, int((x[i, a] - lo[a]) / h))
        k = (cell[i, 0] * m + cell[i, 1]) * m + cell[i, 2]
        nxt[i] = head[k]
        head[k] = i
    return head, nxt, cell, m


@kernel
def _repulsion(x, nb, cn, R, nR, inR, g, grid, kr, rr):
    """½ kr (r − rr)² for non-bonded pairs closer than rr [Å] with at least one atom in R[:nR]."""
    head, nxt, cell, m = grid
    e = 0.0
    for p in range(nR):
        i = R[p]
        for c0 in range(max(0, cell[i, 0] - 1), min(m, cell[i, 0] + 2)):
            for c1 in range(max(0, cell[i, 1] - 1), min(m, cell[i, 1] + 2)):
                for c2 in range(max(0, cell[i, 2] - 1), min(m, cell[i, 2] + 2)):
                    j = head[(c0 * m + c1) * m + c2]
                    while j >= 0:
                        if j != i and not (inR[j] and j < i) and not _bonded(nb, cn, i, j):
                            v0 = x[j, 0] - x[i, 0]
                            v1 = x[j, 1] - x[i, 1]
                            v2 = x[j, 2] - x[i, 2]
                            r = np.sqrt(v0 * v0 + v1 * v1 + v2 * v2)
                            if r < rr:
                                e += 0.5 * kr * (r - rr) ** 2
                                f = kr * (r - rr) / r
                                g[j, 0] += f * v0
                                g[j, 1] += f * v1
                                g[j, 2] += f * v2
                                g[i, 0] -= f * v0
                                g[i, 1] -= f * v1
                                g[i, 2] -= f * v2
                        j = nxt[j]
    return e


@kernel
def _region(nb, cn, seeds, depth, mark, stamp, R, inR, T):
    """Atoms within ``depth`` bonds of ``seeds`` (R, flagged in inR) and R plus its neighbours (T)."""
    nR = 0
    for s in seeds:
        if mark[s] != stamp:
            mark[s] = stamp
            R[nR] = s
            nR += 1
    lo = 0
    for _ in range(depth):
        hi = nR
        for p in range(lo, hi):
            i = R[p]
            for s in range(cn[i]):
                j = nb[i, s]
                if mark[j] != stamp:
                    mark[j] = stamp
                    R[nR] = j
                    nR += 1
        lo = hi
    for p in range(nR):
        inR[R[p]] = True
        T[p] = R[p]
    nT = nR
    for p in range(nR):
        i = R[p]
        for s in range(cn[i]):
            j = nb[i, s]
            if mark[j] != stamp:
                mark[j] = stamp
                T[nT] = j
                nT += 1
    return nR, nT


@kernel
def _fire_local(x, nb, cn, R, nR, T, nT, inR, d2, ka, kb, g, v, max_steps, fmax, grid, kr, rr):
    """FIRE minimisation of the Keating energy over the atoms R[:nR] (unit masses); returns the energy [eV]."""
    dt, dt_max, alpha, n_pos = 0.1, 0.4, 0.1, 0
    for p in range(nR):
        i = R[p]
        v[i, 0] = 0.0
        v[i, 1] = 0.0
        v[i, 2] = 0.0
    e = 0.0
    for step in range(max_steps + 1):
        for p in range(nT):
            i = T[p]
            g[i, 0] = 0.0
            g[i, 1] = 0.0
            g[i, 2] = 0.0
        e = _keating_local(x, nb, cn, R, nR, T, nT, inR, d2, ka, kb, g, grid, kr, rr)
        fm = 0.0
        pw = 0.0
        vv = 0.0
        ff = 0.0
        for p in range(nR):
            i = R[p]
            for a in range(3):
                fm = max(fm, abs(g[i, a]))
                pw -= g[i, a] * v[i, a]
                vv += v[i, a] * v[i, a]
                ff += g[i, a] * g[i, a]
        if fm < fmax or step == max_steps:
            break
        if pw > 0:
            sc = alpha * np.sqrt(vv / ff) if ff > 0 else 0.0
            for p in range(nR):
                i = R[p]
                for a in range(3):
                    v[i, a] = (1 - alpha) * v[i, a] - sc * g[i, a]
            n_pos += 1
            if n_pos > 5:
                dt = min(dt * 1.1, dt_max)
                alpha *= 0.99
        else:
            n_pos = 0
            dt *= 0.5
            alpha = 0.1
            for p in range(nR):
                i = R[p]
                v[i, 0] = 0.0
                v[i, 1] = 0.0
                v[i, 2] = 0.0
        for p in range(nR):
            i = R[p]
            for a in range(3):
                v[i, a] -= dt * g[i, a]
                x[i, a] += dt * v[i, a]
    return e


@kernel
def _bonded(nb, cn, a, b):
    for s in range(cn[a]):
        if nb[a, s] == b:
            return True
    return False


@kernel
def _replace(nb, cn, a, old, new):
    for s in range(cn[a]):
        if nb[a, s] == old:
            nb[a, s] = new
            return


@kernel
def _closes_ring(nb, cn, a, c, smallest):
    """True when a new bond a–c would close a ring of fewer than ``smallest`` atoms (3 or 4)."""
    for s in range(cn[a]):
        p = nb[a, s]
        if p == c:
            continue
        for t in range(cn[c]):
            q = nb[c, t]
            if q == a:
                continue
            if p == q:
                return True
            if smallest > 4 and _bonded(nb, cn, p, q):
                return True
    return False


@kernel
def _switch(nb, cn, a, b, c, dd):
    """Bonds a–b, c–dd → a–c, b–dd (b–c kept)."""
    _replace(nb, cn, a, b, c)
    _replace(nb, cn, b, a, dd)
    _replace(nb, cn, c, dd, a)
    _replace(nb, cn, dd, c, b)


@kernel
def _www(x, nb, cn, u, kTs, d2, ka, kb, depth, max_steps, fmax, smallest, kr, rr, max_accept):
    """WWW bond-switch Monte Carlo (in place on x, nb, cn).

    Attempt t: bond b–c (b uniform among atoms with two or more bonds, c one of
    its neighbours), a another neighbour of b, dd another neighbour of c; the
    switch a–b, c–dd → a–c, b–dd keeps every coordination number.  Switches
    that would close a ring smaller than ``smallest`` atoms are skipped; the
    atoms within ``depth`` bonds of a, b, c, dd are relaxed (FIRE) and the
    switch is accepted with the Metropolis rule at kTs[t] [eV] (every one when
    kTs[t] is inf); the run stops after ``max_accept`` accepted switches.
    ``u`` (n_attempts, 4) holds the uniform random numbers.  Returns (accepted,
    tried, summed energy change [eV], attempts used).
    """
    n = x.shape[0]
    mark = -np.ones(n, np.int64)
    inR = np.zeros(n, np.bool_)
    R = np.empty(n, np.int64)
    T = np.empty(n, np.int64)
    g = np.zeros((n, 3))
    v = np.zeros((n, 3))
    xb = np.empty((n, 3))
    cand = np.empty(n, np.int64)
    nc = 0
    for i in range(n):
        if cn[i] >= 2:
            cand[nc] = i
            nc += 1
    acc = 0
    tried = 0
    de_tot = 0.0
    seeds = np.empty(4, np.int64)
    grid = _grid(x, rr + 1.0)
    used = u.shape[0]
    for it in range(u.shape[0]):
        if acc >= max_accept:
            used = it
            break
        b = cand[min(int(u[it, 0] * nc), nc - 1)]
        r = u[it, 1] * cn[b]
        c = nb[b, min(int(r), cn[b] - 1)]
        if cn[c] < 2:
            continue
        k = min(int((r - int(r)) * (cn[b] - 1)), cn[b] - 2)
        a = -1
        m = 0
        for s in range(cn[b]):
            if nb[b, s] != c:
                if m == k:
                    a = nb[b, s]
                m += 1
        k = min(int(u[it, 2] * (cn[c] - 1)), cn[c] - 2)
        dd = -1
        m = 0
        for s in range(cn[c]):
            if nb[c, s] != b:
                if m == k:
                    dd = nb[c, s]
                m += 1
        if a == dd or _bonded(nb, cn, a, c) or _bonded(nb, cn, dd, b):
            continue
        _switch(nb, cn, a, b, c, dd)
        bad = _closes_ring(nb, cn, a, c, smallest) or _closes_ring(nb, cn, b, dd, smallest)
        _switch(nb, cn, a, c, b, dd)  # undo: a–c, b–dd → a–b, c–dd
        if bad:
            continue
        tried += 1
        seeds[0] = a
        seeds[1] = b
        seeds[2] = c
        seeds[3] = dd
        # the region (atoms within `depth` bonds of the four) is the same in the old and the new topology
        nR, nT = _region(nb, cn, seeds, depth, mark, it, R, inR, T)
        e0 = _keating_local(x, nb, cn, R, nR, T, nT, inR, d2, ka, kb, g, grid, kr, rr)
        for p in range(nR):
            i = R[p]
            xb[i, 0] = x[i, 0]
            xb[i, 1] = x[i, 1]
            xb[i, 2] = x[i, 2]
        _switch(nb, cn, a, b, c, dd)
        e1 = _fire_local(x, nb, cn, R, nR, T, nT, inR, d2, ka, kb, g, v, max_steps, fmax, grid, kr, rr)
        de = e1 - e0
        if de <= 0.0 or kTs[it] == np.inf or u[it, 3] < np.exp(-de / kTs[it]):
            acc += 1
            de_tot += de
            grid = _grid(x, rr + 1.0)
        else:
            _switch(nb, cn, a, c, b, dd)
            for p in range(nR):
                i = R[p]
                x[i, 0] = xb[i, 0]
                x[i, 1] = xb[i, 1]
                x[i, 2] = xb[i, 2]
        for p in range(nR):
            inR[R[p]] = False
    return acc, tried, de_tot, used


@kernel
def _crystal_like(nb, cn):
    """Per atom: True when it is four-fold and every one of its six bond angles lies in exactly two six-rings
    and in no five-ring, as in the diamond lattice (crystalline memory of the start)."""
    n = nb.shape[0]
    out = np.zeros(n, np.bool_)
    for i in range(n):
        if cn[i] != 4:
            continue
        ok = True
        for s in range(4):
            j = nb[i, s]
            for t in range(s + 1, 4):
                k = nb[i, t]
                n_short = 0  # paths j..k of 2 or 3 bonds avoiding i: four- and five-rings
                n6 = 0       # paths of 4 bonds: six-rings
                for u in range(cn[j]):
                    p = nb[j, u]
                    if p == i or p == k:
                        continue
                    if _bonded(nb, cn, p, k):
                        n_short += 1
                    for w in range(cn[p]):
                        q = nb[p, w]
                        if q == i or q == j or q == k:
                            continue
                        if _bonded(nb, cn, q, k):
                            n_short += 1
                        for z in range(cn[q]):
                            r = nb[q, z]
                            if r == i or r == j or r == p or r == k:
                                continue
                            if _bonded(nb, cn, r, k):
                                n6 += 1
                if n_short != 0 or n6 != 2:
                    ok = False
        out[i] = ok
    return out


@kernel
def _keating_all(x, nb, cn, d2, ka, kb, kr, rr):
    grid = _grid(x, rr + 1.0)
    n = x.shape[0]
    R = np.arange(n)
    inR = np.ones(n, np.bool_)
    g = np.zeros((n, 3))
    e = _keating_local(x, nb, cn, R, n, R, n, inR, d2, ka, kb, g, grid, kr, rr)
    return e, g


@kernel
def _relax_all(x, nb, cn, d2, ka, kb, max_steps, fmax, kr, rr):
    grid = _grid(x, rr + 1.0)
    n = x.shape[0]
    R = np.arange(n)
    inR = np.ones(n, np.bool_)
    g = np.zeros((n, 3))
    v = np.zeros((n, 3))
    return _fire_local(x, nb, cn, R, n, R, n, inR, d2, ka, kb, g, v, max_steps, fmax, grid, kr, rr)


#: Keating potential of the Si network before scaling (WWW 1985: α = 2.965 eV/Å², β = 0.285 α, d = 2.35 Å)
#: plus a non-bonded repulsion ½ k_r (r − r_rep)² below r_rep = 3.0 Å (k_r = 5 eV/Å²; the a-Si g(r) is empty
#: between the bond peak and ~3.1 Å), which keeps the switched network from folding onto itself.
KEATING = dict(alpha=2.965, beta=0.285 * 2.965, d=2.35, kr=5.0, r_rep=3.0)
#: WWW schedule: randomise by n_random accepted switches per atom at infinite temperature (every switch that
#: passes the ring rule; at most 20 attempts per accepted switch), then anneal geometrically from kT0 to kT1 [eV]
#: over n_anneal attempts per atom; local relaxation of the atoms within `depth` bonds of a switch (FIRE, at
#: most max_steps steps, to fmax [eV/Å]); no switch may close a ring of fewer than `smallest` atoms.
WWW = dict(n_random=4.0, kT_random=1.0, chunk=0.25, crystal_max=0.01, max_attempts=60.0, kT0=0.7, kT1=0.1,
           n_anneal=30.0, depth=2, max_steps=300, fmax=1e-2, smallest=4)


def _neighbour_arrays(n, a, b, max_cn=4):
    nb = -np.ones((n, max_cn), np.int64)
    cn = np.zeros(n, np.int64)
    for i, j in zip(np.asarray(a, np.int64), np.asarray(b, np.int64)):
        if cn[i] >= max_cn or cn[j] >= max_cn:
            raise ValueError(f"network: atom with more than {max_cn} bonds")
        nb[i, cn[i]] = j
        cn[i] += 1
        nb[j, cn[j]] = i
        cn[j] += 1
    return nb, cn


def _bond_list(nb, cn):
    own = np.repeat(np.arange(len(cn)), cn)
    other = np.concatenate([nb[i, :cn[i]] for i in range(len(cn))]) if len(cn) else np.zeros(0, np.int64)
    keep = own < other
    return own[keep], other[keep]


def _keating_consts(p):
    d2 = p["d"] ** 2
    return d2, 3.0 * p["alpha"] / (16.0 * d2), 3.0 * p["beta"] / (8.0 * d2)


def keating_energy(x, a, b, params=KEATING):
    """Keating energy [eV] and gradient [eV/Å] of a network with bonds a[k]–b[k] (positions [Å]).

    .. math::

        E = \\frac{3\\alpha}{16 d^2} \\sum_{bonds} (r_{ij}^2 - d^2)^2
          + \\frac{3\\beta}{8 d^2} \\sum_{angles} (\\mathbf r_{ij}\\cdot\\mathbf r_{ik} + d^2/3)^2
          + \\sum_{non-bonded} \\tfrac12 k_r (r - r_{rep})^2 [r < r_{rep}]
    """
    x = np.ascontiguousarray(x, float)
    nb, cn = _neighbour_arrays(len(x), a, b)
    d2, ka, kb = _keating_consts(params)
    return _keating_all(x, nb, cn, d2, ka, kb, params["kr"], params["r_rep"])


@kernel
def _place(lat, rot, shift):
    """Lattice points [Å] shifted by ``shift``, rotated by ``rot``, and their distances from the origin (serial)."""
    n = lat.shape[0]
    y = np.empty((n, 3))
    r = np.empty(n)
    for i in range(n):
        s = 0.0
        for a in range(3):
            v = 0.0
            for c in range(3):
                v += rot[a, c] * (lat[i, c] - shift[c])
            y[i, a] = v
            s += v * v
        r[i] = np.sqrt(s)
    return y, r


def diamond_sphere(n: int, rng, a: float = 5.431):
    """The ``n`` sites of a diamond lattice (cubic constant ``a`` [Å]; Si: 5.431) nearest to a random point,
    in a random orientation, and their nearest-neighbour bonds (β-cristobalite's Si sublattice).

    Sites that would hold on by fewer than two bonds are skipped for the next
    nearest ones, so that no surface Si hangs by a single bridge.

    Returns
    -------
    x : (n, 3) array [Å], centred near the origin
    a_idx, b_idx : int arrays of the bonded pairs (a < b)
    """
    m = int(np.ceil((3.0 * n / (4.0 * np.pi * 8.0)) ** (1.0 / 3.0))) + 3
    base = np.array([[0, 0, 0], [0, .5, .5], [.5, 0, .5], [.5, .5, 0]])
    basis = np.vstack([base, base + 0.25])
    g = np.arange(-m, m + 1)
    cells = np.stack(np.meshgrid(g, g, g, indexing="ij"), -1).reshape(-1, 3)
    lat = np.ascontiguousarray(((cells[:, None, :] + basis[None]).reshape(-1, 3) * a).astype(float))
    q = rng.normal(size=4)
    w, i, j, k = q / np.sqrt(q @ q)
    rot = np.array([[1 - 2 * (j * j + k * k), 2 * (i * j - k * w), 2 * (i * k + j * w)],
                    [2 * (i * j + k * w), 1 - 2 * (i * i + k * k), 2 * (j * k - i * w)],
                    [2 * (i * k - j * w), 2 * (j * k + i * w), 1 - 2 * (i * i + j * j)]])
    y, r = _place(lat, np.ascontiguousarray(rot), rng.uniform(0, a, 3))
    cand = y[np.argsort(r, kind="stable")]
    cut = 0.5 * (np.sqrt(3) / 4 + np.sqrt(2) / 2) * a  # between the 1st and 2nd neighbour shells
    # no Si hanging by a single bond: drop sites with fewer than two bonds and take the next nearest instead
    ok = np.ones(len(cand), bool)
    for _ in range(100):
        sel = np.nonzero(ok)[0][:n]
        ia, ib, _ = network_bonds(cand[sel], cut)
        cn = np.bincount(np.concatenate([ia, ib]), minlength=len(sel))
        if np.all(cn >= 2) or len(sel) < n:
            break
        ok[sel[cn < 2]] = False
    return cand[sel], ia, ib


def www_anneal(x, a, b, *, seed: int, params=KEATING, schedule=WWW):
    """Wooten–Winer–Weaire bond-switch Monte Carlo with the Keating potential (:data:`KEATING`).

    Randomise at kT0 and anneal to kT1 (:data:`WWW`), then relax every atom.
    Coordination numbers never change.  Same seed → identical output.

    Parameters
    ----------
    x : (N, 3) array
        Positions [Å] (a-Si scale: bond 2.35 Å).
    a, b : int arrays
        Bonded pairs.
    seed : int

    Returns
    -------
    x : (N, 3) array [Å]
    a, b : int arrays of the new bonds (a < b)
    info : dict
        ``www_random_switches`` (accepted in the randomisation), ``www_anneal_attempts``,
        ``www_anneal_tried`` (attempts that passed the ring rule), ``www_anneal_accepted``,
        ``keating_eV_per_atom``.
    """
    x = np.ascontiguousarray(np.array(x, float))
    n = len(x)
    nb, cn = _neighbour_arrays(n, a, b)
    d2, ka, kb = _keating_consts(params)
    sc = dict(WWW, **schedule)
    nr = int(round(sc["n_random"] * n))
    na = int(sc["n_anneal"] * n)
    rng = np.random.default_rng(seed)
    u_r = rng.random((int(sc["max_attempts"] * n), 4))
    u_a = rng.random((na, 4))
    kts = sc["kT0"] * (sc["kT1"] / sc["kT0"]) ** np.linspace(0, 1, na)
    args = (d2, ka, kb, int(sc["depth"]), int(sc["max_steps"]), float(sc["fmax"]), int(sc["smallest"]),
            params["kr"], params["r_rep"])
    _relax_all(x, nb, cn, d2, ka, kb, 3000, 1e-3, params["kr"], params["r_rep"])
    # randomise in chunks of `chunk` accepted switches per atom until fewer than `crystal_max` of the four-fold
    # atoms keep the diamond ring environment (or `n_random` switches per atom were accepted)
    acc_r, used, four = 0, 0, max(int(np.sum(cn == 4)), 1)
    step = max(int(round(sc["chunk"] * n)), 1)
    while acc_r < nr and used < len(u_r):
        if np.sum(_crystal_like(nb, cn)) < sc["crystal_max"] * four:
            break
        a_, t_, _, k_ = _www(x, nb, cn, u_r[used:], np.full(len(u_r) - used, float(sc["kT_random"])), *args,
                         min(step, nr - acc_r))
        acc_r += a_
        used += k_
    crystal = float(np.sum(_crystal_like(nb, cn)) / four)
    acc, tried, _, _ = _www(x, nb, cn, u_a, kts, *args, na + 1)
    e = _relax_all(x, nb, cn, d2, ka, kb, 5000, 1e-3, params["kr"], params["r_rep"])
    a2, b2 = _bond_list(nb, cn)
    return x, a2, b2, {"www_random_switches": int(acc_r), "www_crystal_like_after_random": crystal,
                       "www_crystal_like": float(np.sum(_crystal_like(nb, cn)) / four), "www_anneal_attempts": int(na),
                       "www_anneal_tried": int(tried), "www_anneal_accepted": int(acc),
                       "keating_eV_per_atom": float(e / max(n, 1))}


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


def _one_blas_thread():
    """Limit BLAS to one thread for L-BFGS on small vectors: the threads only spin (7× slower wall time on a
    busy 2-core machine) and one thread also fixes the summation order."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover
        import contextlib

        return contextlib.nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


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

    with _one_blas_thread():
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


def build_silica(n_si: int, *, seed: int, network_kw: dict | None = None, log=None, name: str = "",
                 hold_size: float = 1.0, shell: float = 4.0, network: str = "www", www: dict | None = None) -> AtomicModel:
    """a-SiO₂ particle: Si network of ``n_si`` atoms → O on every Si–Si bond → valence-force-field relaxation.

    Parameters
    ----------
    n_si : int
        Number of Si atoms.
    seed : int
        Same seed → identical coordinates.
    network : {"www", "sw"}
        ``"www"`` (default): the ``n_si`` sites of a diamond lattice (the Si
        sublattice of β-cristobalite) nearest to a random point, randomised
        and annealed by WWW bond switches with the Keating potential
        (:func:`www_anneal`; ``www`` overrides :data:`WWW`).  ``"sw"``: a
        Stillinger–Weber melt-quench (``network_kw`` goes to
        :func:`aetbench.structures.build.build_network`), whose small particles
        have about as many 5- as 6-rings.
    hold_size : float
        Size-hold constant of the final relaxation [eV/Å⁴] (:func:`relax_silica`).
    shell : float
        Surface shell [Å] left out of the logged Si density.
    """
    import time

    t0 = time.perf_counter()
    rng = np.random.default_rng(seed)
    if network == "www":
        x, a, b = diamond_sphere(n_si, rng)
        x, a, b, info = www_anneal(x, a, b, seed=int(rng.integers(2**31)), schedule=www or {})
        if log is not None:
            log.update(info)
    elif network == "sw":
        from .build import build_network

        net = build_network({"Si": n_si}, seed=int(rng.integers(2**31)), log=log, **(network_kw or {}))
        x = net.positions
        a, b, _ = network_bonds(x, 2.84)
    else:
        raise AetbenchError(f"network: expected 'www' or 'sw', got {network!r}")
    x, bonds = decorate_bonds(x, a, b, seed=int(rng.integers(2**31)))
    is_o = np.arange(len(x)) >= n_si
    x, info = relax_silica(x, is_o, bonds, hold_size=hold_size)
    if log is not None:
        log.update({"silica_" + k: v for k, v in info.items()})
        log["silica_si_density_per_A3"] = si_interior_density(x, is_o, shell)
        log["build_seconds"] = time.perf_counter() - t0
    el = np.where(is_o, "O", "Si")
    return AtomicModel(x - x.mean(0), el, name=name)
