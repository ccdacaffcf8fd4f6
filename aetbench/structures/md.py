"""FIRE relaxation and Langevin molecular dynamics for free clusters (numba).

Units: positions Å, energies eV, forces eV/Å, masses amu, time fs,
temperatures K, velocities Å/fs.  A soft spherical wall (harmonic,
``k_wall`` eV/Å² beyond ``r_wall`` Å from the origin) keeps atoms from
evaporating during the melt.

A force field is a :class:`Potential`: a kernel id (see :func:`_kernel`), a
tuple of three float64 3-D parameter arrays and a cutoff.  Kernels are
dispatched by id inside numba (not passed as first-class functions) so the
compiled loops can be cached on disk.  The whole MD / FIRE loop runs inside numba; the
neighbour list (cutoff + skin) is rebuilt when an atom has moved more than
half the skin, and at every rebuild the atoms are re-stored in neighbour-cell
order (restored to the caller's order on return): the force loops then read
memory that is close together (18k-atom CoPdPt glass, one thread: neighbour
list 95 → 38 ms with the half-cell grid of :mod:`.neighbors`, Gupta forces
36 → 22 ms with the one-pass kernel of :mod:`.gupta`).  The MD loops are serial and the force kernels sum fixed work blocks
in a fixed order (on one thread or many), so the same seed gives the same
trajectory, bit for bit; :mod:`.jit` keeps the on-disk kernel cache consistent
with the source (see there for the stale-cache bug this prevents).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .eam import _eam
from .gupta import _gupta
from .jit import kernel
from .neighbors import _cell_list, _neighbors
from .sw import _sw

__all__ = ["Potential", "fire_relax", "langevin_md", "KB_EV", "ACC"]

KB_EV = 8.617333262e-5  #: Boltzmann constant [eV/K]
ACC = 9.64853321e-3  #: 1 eV/(Å amu) in Å/fs²


@dataclass
class Potential:
    """A numba force kernel with its parameters.

    Attributes
    ----------
    kernel : int
        Kernel id: 0 = Stillinger–Weber (:mod:`.sw`), 1 = Gupta/RGL many-body (:mod:`.gupta`),
        2 = Zhou–Johnson–Wadley alloy EAM (:mod:`.eam`).
    params : tuple of three float64 3-D arrays
        Parameter arrays passed to the kernel.
    cutoff : float
        Interaction cutoff [Å].
    """

    kernel: object
    params: tuple
    cutoff: float

    def energy_forces(self, pos, types):
        """Energy [eV] and forces [eV/Å] (no wall)."""
        pos = _c(pos, np.float64)
        off, idx = _neighbors(pos, float(self.cutoff))
        return _kernel(int(self.kernel), pos, _c(types, np.int64), off, idx, _params(self))


def _c(a, dtype):
    """C-contiguous copy-if-needed: every kernel sees one array layout (one compiled specialisation)."""
    return np.ascontiguousarray(a, dtype=dtype)


def _params(pot):
    return tuple(_c(p, np.float64) for p in pot.params)


@kernel
def _kernel(kind, pos, types, off, idx, params):
    if kind == 0:
        return _sw(pos, types, off, idx, params[0][0], params[1][0], params[2])
    if kind == 2:
        return _eam(pos, types, off, idx, params[0], params[1], params[2])
    return _gupta(pos, types, off, idx, params[0], params[1], params[2])


@kernel
def _wall(pos, r_wall, k_wall, f):
    e = 0.0
    for i in range(pos.shape[0]):
        r = np.sqrt(pos[i, 0] ** 2 + pos[i, 1] ** 2 + pos[i, 2] ** 2)
        if r > r_wall:
            d = r - r_wall
            e += 0.5 * k_wall * d * d
            for a in range(3):
                f[i, a] -= k_wall * d * pos[i, a] / r
    return e


@kernel
def _moved(x, ref, lim2):
    for i in range(x.shape[0]):
        d = 0.0
        for a in range(3):
            t = x[i, a] - ref[i, a]
            d += t * t
        if d > lim2:
            return True
    return False


@kernel
def _spatial_order(x, cutoff):
    """Atom order sorted by neighbour cell (edge cutoff/2, z fastest): atoms that interact sit close in memory."""
    return _cell_list(x, 0.5 * cutoff)[0]


@kernel
def _permute_rows(a, order):
    out = np.empty_like(a)
    for s in range(order.shape[0]):
        out[s] = a[order[s]]
    return out


@kernel
def _restore_rows(a, perm):
    """Rows back to the original atom order: ``out[perm[s]] = a[s]``."""
    out = np.empty_like(a)
    for s in range(perm.shape[0]):
        out[perm[s]] = a[s]
    return out


@kernel
def _langevin(kernel, params, x, types, masses, temps, dt, friction, cutoff, skin, r_wall, k_wall, seed):
    np.random.seed(seed)
    n = x.shape[0]
    acc = np.empty(n)
    for i in range(n):
        acc[i] = ACC / masses[i]
    v = np.empty((n, 3))
    for i in range(n):
        s = np.sqrt(KB_EV * temps[0] * acc[i])
        for a in range(3):
            v[i, a] = s * np.random.standard_normal()
    c1 = np.exp(-friction * dt)
    c2 = np.sqrt(1 - c1 * c1)
    perm = np.arange(n)  # perm[s] = original index of the atom stored in row s
    order = _spatial_order(x, cutoff + skin)
    x, v, acc, types, perm = (_permute_rows(x, order), _permute_rows(v, order), _permute_rows(acc, order),
                              _permute_rows(types, order), _permute_rows(perm, order))
    ref = x.copy()
    off, idx = _neighbors(x, cutoff + skin)
    nb = 1
    e, f = _kernel(kernel, x, types, off, idx, params)
    if r_wall > 0:
        e += _wall(x, r_wall, k_wall, f)
    lim2 = (0.5 * skin) ** 2
    for t in temps:
        for i in range(n):
            s = c2 * np.sqrt(KB_EV * t * acc[i])
            for a in range(3):
                v[i, a] += 0.5 * dt * acc[i] * f[i, a]
                x[i, a] += 0.5 * dt * v[i, a]
                v[i, a] = c1 * v[i, a] + s * np.random.standard_normal()
                x[i, a] += 0.5 * dt * v[i, a]
        if _moved(x, ref, lim2):
            order = _spatial_order(x, cutoff + skin)  # atoms diffuse in the melt: keep memory order local
            x, v, acc, types, perm = (_permute_rows(x, order), _permute_rows(v, order), _permute_rows(acc, order),
                                      _permute_rows(types, order), _permute_rows(perm, order))
            off, idx = _neighbors(x, cutoff + skin)
            ref = x.copy()
            nb += 1
        e, f = _kernel(kernel, x, types, off, idx, params)
        if r_wall > 0:
            e += _wall(x, r_wall, k_wall, f)
        for i in range(n):
            for a in range(3):
                v[i, a] += 0.5 * dt * acc[i] * f[i, a]
    return _restore_rows(x, perm), _restore_rows(v, perm), nb


@kernel
def _fire(kernel, params, x, types, masses, fmax, max_steps, dt, dt_max, cutoff, skin, r_wall, k_wall):
    n = x.shape[0]
    v = np.zeros((n, 3))
    alpha = 0.1
    n_pos = 0
    perm = _spatial_order(x, cutoff + skin)  # memory order = cell order (perm[s]: original index of row s)
    x, types, masses = _permute_rows(x, perm), _permute_rows(types, perm), _permute_rows(masses, perm)
    ref = x.copy()
    off, idx = _neighbors(x, cutoff + skin)
    e, f = _kernel(kernel, x, types, off, idx, params)
    if r_wall > 0:
        e += _wall(x, r_wall, k_wall, f)
    lim2 = (0.5 * skin) ** 2
    step = 0
    fm = 0.0
    for step in range(max_steps):
        fm = 0.0
        p = 0.0
        vn = 0.0
        fn = 0.0
        for i in range(n):
            f2 = f[i, 0] ** 2 + f[i, 1] ** 2 + f[i, 2] ** 2
            fm = max(fm, f2)
            fn += f2
            for a in range(3):
                p += f[i, a] * v[i, a]
                vn += v[i, a] ** 2
        fm = np.sqrt(fm)
        if fm < fmax:
            break
        if p > 0:
            sc = np.sqrt(vn) / max(np.sqrt(fn), 1e-300)
            for i in range(n):
                for a in range(3):
                    v[i, a] = (1 - alpha) * v[i, a] + alpha * sc * f[i, a]
            n_pos += 1
            if n_pos > 5:
                dt = min(dt * 1.1, dt_max)
                alpha *= 0.99
        else:
            v[:] = 0.0
            dt *= 0.5
            alpha = 0.1
            n_pos = 0
        big = 0.0
        for i in range(n):
            d2 = 0.0
            for a in range(3):
                v[i, a] += dt * ACC / masses[i] * f[i, a]
                d2 += (dt * v[i, a]) ** 2
            big = max(big, d2)
        scale = 1.0
        big = np.sqrt(big)
        if big > 0.2:  # cap the step at 0.2 Å
            scale = 0.2 / big
        for i in range(n):
            for a in range(3):
                x[i, a] += scale * dt * v[i, a]
        if _moved(x, ref, lim2):
            off, idx = _neighbors(x, cutoff + skin)
            ref[:] = x
        e, f = _kernel(kernel, x, types, off, idx, params)
        if r_wall > 0:
            e += _wall(x, r_wall, k_wall, f)
    return _restore_rows(x, perm), e, fm, step


def fire_relax(pos, types, masses, pot: Potential, *, fmax: float = 0.01, max_steps: int = 2000,
               dt: float = 1.0, dt_max: float = 4.0, skin: float = 0.8, r_wall: float = 0.0,
               k_wall: float = 5.0):
    """Minimise the energy with FIRE (Bitzek et al., PRL 97, 170201 (2006)).

    Parameters
    ----------
    pos : (N, 3) array
        Start positions [Å] (not modified).
    types : (N,) int array
        Species index per atom.
    masses : (N,) array
        Masses [amu].
    pot : Potential
    fmax : float
        Stop when the largest force is below this [eV/Å].
    max_steps : int
    dt, dt_max : float
        Initial and largest time step [fs].
    skin : float
        Neighbour-list skin [Å].
    r_wall, k_wall : float
        Spherical wall radius [Å] (0 = none) and stiffness [eV/Å²].

    Returns
    -------
    pos : (N, 3) array
    info : dict
        ``energy`` [eV], ``fmax`` [eV/Å], ``steps``.
    """
    x = np.array(pos, dtype=np.float64, order="C")
    x, e, fm, steps = _fire(int(pot.kernel), _params(pot), x, _c(types, np.int64), _c(masses, np.float64),
                            float(fmax), int(max_steps), float(dt), float(dt_max), float(pot.cutoff),
                            float(skin), float(r_wall), float(k_wall))
    return x, {"energy": float(e), "fmax": float(fm), "steps": int(steps)}


def langevin_md(pos, types, masses, pot: Potential, temperatures, *, dt: float = 1.0, friction: float = 0.01,
                seed: int = 0, skin: float = 0.8, r_wall: float = 0.0, k_wall: float = 5.0):
    """Langevin dynamics (BAOAB splitting) along a temperature schedule.

    Parameters
    ----------
    pos : (N, 3) array
        Start positions [Å] (not modified).
    types : (N,) int array
    masses : (N,) array
        Masses [amu].
    pot : Potential
    temperatures : array (n_steps,)
        Bath temperature [K] at each step; start velocities are drawn at the first.
    dt : float
        Time step [fs].
    friction : float
        Langevin friction [1/fs].
    seed : int
        Seed of the noise (same seed → same trajectory).
    skin, r_wall, k_wall : float
        Neighbour skin [Å], wall radius [Å] (0 = none), wall stiffness [eV/Å²].

    Returns
    -------
    pos, vel : (N, 3) arrays
        Final positions [Å] and velocities [Å/fs].
    info : dict
        ``neighbor_builds``.
    """
    x = np.array(pos, dtype=np.float64, order="C")
    temps = _c(temperatures, np.float64)
    x, v, nb = _langevin(int(pot.kernel), _params(pot), x, _c(types, np.int64), _c(masses, np.float64),
                         temps, float(dt), float(friction), float(pot.cutoff), float(skin), float(r_wall),
                         float(k_wall), int(seed) % (2**32))
    return x, v, {"neighbor_builds": int(nb)}
