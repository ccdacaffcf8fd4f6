"""The valence force field of silica (Si–O bonds, O–Si–O and Si–O–Si angles, non-bonded repulsion; fixed
topology) and its L-BFGS relaxation at fixed particle size.  The energy and its parameters (:data:`SIO2`) are
given in :mod:`.silica`.  Units: Å, eV.
"""
from __future__ import annotations

import numpy as np
from scipy.optimize import minimize

from .jit import kernel
from .neighbors import neighbor_list

__all__ = ["SIO2", "silica_energy_gradient", "relax_silica"]


#: rho_si [Si/Å³] (a-SiO₂ 2.20 g/cm³), b0 [Å], cos θ_T, cos φ0, k_b [eV/Å²], k_θ [eV], k_φ [eV], k_r [eV/Å²], d_min O–O, Si–Si, Si–O [Å]
SIO2 = dict(rho_si=2.20 / 60.084 * 0.602214, b0=1.61, cos_t=-1.0 / 3.0, cos_p=np.cos(np.radians(147.0)), kb=30.0, kt=5.0, kp=1.0, kr=10.0,
            d_oo=2.5, d_sisi=2.9, d_sio=2.5)


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
