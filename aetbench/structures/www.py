"""Wooten–Winer–Weaire continuous random networks of four-fold atoms (the Si network of :mod:`.silica`).

The ``n`` sites of a diamond lattice nearest to a random point (:func:`diamond_sphere`) are randomised by bond
switches (a–b, c–d → a–c, b–d around a bond b–c; every coordination number is kept, no 3-rings) at kT = 1 eV
until fewer than 1 % of the four-fold atoms keep the diamond ring environment, then annealed with the
Metropolis rule on the Keating energy (:data:`KEATING`) after a local relaxation of the atoms within two bonds
of the switch (:func:`www_anneal`, schedule :data:`WWW`).  WWW, PRL 54, 1392 (1985).  Units: Å, eV.
"""
from __future__ import annotations

import numpy as np

from .jit import kernel
from .neighbors import neighbor_list

__all__ = ["network_bonds", "keating_energy", "diamond_sphere", "www_anneal", "KEATING", "WWW"]


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
