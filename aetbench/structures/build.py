"""Builders: random sequential addition → relaxation → melt-quench → relaxation.

Units: Å, K, fs, amu, eV.  Every step is seeded from the recipe seed, and every
floating-point sum has a fixed order (serial loops; fixed work blocks in the
force kernels; no fastmath; on-disk kernel cache keyed by the package source,
see :mod:`.jit`), so the same seed gives identical coordinates on the same
machine, whatever the process ran before and whether the cache was warm.
"""
from __future__ import annotations

import time

import numpy as np

from ..types import AtomicModel
from .jit import kernel
from .md import fire_relax, langevin_md
from .sw import sw_params, sw_potential

__all__ = ["build_network", "quench_schedule", "random_packing", "MASS"]

MASS = {"Si": 28.0855, "Ge": 72.630, "Sn": 118.710, "O": 15.999, "Co": 58.933, "Pd": 106.42, "Pt": 195.08}


def quench_schedule(t_melt: float, t_end: float, melt_fs: float, quench_fs: float, anneal_T: float = 0.0,
                    anneal_fs: float = 0.0, dt: float = 1.0) -> np.ndarray:
    """Bath temperature [K] per MD step: hold ``t_melt`` for ``melt_fs``, ramp linearly to
    ``t_end`` over ``quench_fs`` (passing an optional hold at ``anneal_T`` for ``anneal_fs``)."""
    parts = [np.full(int(melt_fs / dt), t_melt)]
    if anneal_fs > 0 and anneal_T > t_end:
        k = int(quench_fs / dt * (t_melt - anneal_T) / (t_melt - t_end))
        parts += [np.linspace(t_melt, anneal_T, max(k, 1)), np.full(int(anneal_fs / dt), anneal_T),
                  np.linspace(anneal_T, t_end, max(int(quench_fs / dt) - k, 1))]
    else:
        parts.append(np.linspace(t_melt, t_end, max(int(quench_fs / dt), 1)))
    return np.concatenate(parts)


@kernel
def _rsa(cand, radius, dmin, n):
    """Accept candidate points [Å] in order if ≥ dmin from all accepted ones (cell grid); serial."""
    ncell = max(1, int(2 * radius / dmin))
    h = 2 * radius / ncell
    head = -np.ones(ncell ** 3, dtype=np.int64)
    nxt = -np.ones(n, dtype=np.int64)
    out = np.empty((n, 3))
    m = 0
    d2 = dmin * dmin
    for k in range(cand.shape[0]):
        p = cand[k]
        if p[0] * p[0] + p[1] * p[1] + p[2] * p[2] > radius * radius:
            continue
        c0 = min(ncell - 1, int((p[0] + radius) / h))
        c1 = min(ncell - 1, int((p[1] + radius) / h))
        c2 = min(ncell - 1, int((p[2] + radius) / h))
        ok = True
        for a in range(max(0, c0 - 1), min(ncell, c0 + 2)):
            for b in range(max(0, c1 - 1), min(ncell, c1 + 2)):
                for c in range(max(0, c2 - 1), min(ncell, c2 + 2)):
                    j = head[(a * ncell + b) * ncell + c]
                    while j >= 0 and ok:
                        t = (out[j, 0] - p[0]) ** 2 + (out[j, 1] - p[1]) ** 2 + (out[j, 2] - p[2]) ** 2
                        if t < d2:
                            ok = False
                        j = nxt[j]
        if not ok:
            continue
        out[m] = p
        cell = (c0 * ncell + c1) * ncell + c2
        nxt[m] = head[cell]
        head[cell] = m
        m += 1
        if m == n:
            break
    return out[:m]


@kernel
def _centre(x):
    """Subtract the centroid (serial sums, independent of memory alignment)."""
    c = np.zeros(3)
    for i in range(x.shape[0]):
        for a in range(3):
            c[a] += x[i, a]
    y = x.copy()
    for i in range(x.shape[0]):
        for a in range(3):
            y[i, a] -= c[a] / x.shape[0]
    return y


@kernel
def _max_radius(x):
    r = 0.0
    for i in range(x.shape[0]):
        r = max(r, np.sqrt(x[i, 0] ** 2 + x[i, 1] ** 2 + x[i, 2] ** 2))
    return r


def random_packing(n: int, density: float, min_distance: float, rng) -> np.ndarray:
    """Random sequential addition of ``n`` points [Å] in a sphere sized for ``density`` [atoms/Å³]
    with ``min_distance`` [Å]; the sphere grows by 2 % whenever 200 n candidates were not enough.

    Unlike :func:`aetbench.structures.random.random_sphere` every floating-point
    sum is a serial numba loop, so the result does not depend on memory alignment
    (numpy's SIMD reductions do), which the chaotic melt-quench would amplify.
    """
    radius = (3.0 * n / (4.0 * np.pi * density)) ** (1.0 / 3.0)
    while True:
        cand = rng.uniform(-radius, radius, size=(200 * n, 3))
        x = _rsa(cand, radius, min_distance, n)
        if len(x) == n:
            return _centre(x)
        radius *= 1.02


def _assign_types(n_per: dict[str, int], rng) -> np.ndarray:
    labels = np.concatenate([[e] * c for e, c in n_per.items()])
    return labels[rng.permutation(len(labels))]


def build_network(counts: dict[str, int], *, density: float, seed: int, min_distance: float = 2.1,
                  sw_variants=None, potential: str = "stillinger-weber", t_melt: float = 3000.0, t_end: float = 300.0, melt_fs: float = 5000.0,
                  quench_fs: float = 20000.0, anneal_T: float = 0.0, anneal_fs: float = 0.0,
                  dt: float = 1.0, friction: float = 0.01, wall_margin: float = 1.5,
                  relabel: dict[str, int] | None = None, name: str = "", progress: bool = False,
                  log=None) -> AtomicModel:
    """Melt-quenched particle: tetrahedral networks (a-Si, a-SiGeSn) with a Stillinger–Weber
    potential, or metallic glasses (CoPdPt) with the Gupta many-body potential.

    Parameters
    ----------
    counts : dict element → number of atoms
        Composition used in the melt-quench.
    density : float
        Start number density [atoms/Å³] of the random packing (a-Si 0.050).
    seed : int
        Seed; same seed → identical coordinates.
    min_distance : float
        Minimum distance of the random packing [Å].
    sw_variants : dict, optional
        Element → SW parameter set (e.g. ``{"Si": "Si-vink"}``).
    potential : {"stillinger-weber", "gupta", "eam-zhou2004"}
    t_melt, t_end : float
        Melt and final temperature [K].
    melt_fs, quench_fs : float
        Melt hold and linear quench duration [fs] (optional hold at
        ``anneal_T`` [K] for ``anneal_fs`` [fs] inside the ramp).
    dt : float
        Time step [fs].
    friction : float
        Langevin friction [1/fs].
    wall_margin : float
        Spherical wall at (start radius + margin) [Å] during MD.
    relabel : dict element → count, optional
        After the build, relabel the atoms at random with this composition
        (the paper's SiGeSn geometry: the a-Si network relabelled 1/3 each).
    """
    t0 = time.perf_counter()
    rng = np.random.default_rng(seed)
    n = int(sum(counts.values()))
    start = random_packing(n, density, min_distance, rng)
    els = _assign_types(counts, rng)
    species = sorted(counts)
    types = np.array([species.index(e) for e in els])
    masses = np.array([MASS[e] for e in els])
    r0 = float(_max_radius(start))
    if potential == "gupta":
        from .gupta import gupta_potential

        pot = gupta_potential(species)
    elif potential == "eam-zhou2004":
        from .eam import eam_potential

        pot = eam_potential(species)
    else:
        pot = sw_potential(sw_params(species, sw_variants))
    x, _ = fire_relax(start, types, masses, pot, fmax=0.1, max_steps=300, r_wall=r0 + wall_margin)
    temps = quench_schedule(t_melt, t_end, melt_fs, quench_fs, anneal_T, anneal_fs, dt)
    x, _, md_info = langevin_md(x, types, masses, pot, temps, dt=dt, friction=friction,
                                seed=int(rng.integers(2**31)), r_wall=r0 + wall_margin)
    # final minimisation: FIRE's largest step 10 fs (ASE's default dtmax); with 4 fs an 1.8k-atom CoPdPt
    # glass needed 4,032 steps to 0.01 eV/Å, with 10 fs 1,309 (same fmax; steps stay capped at 0.2 Å)
    x, info = fire_relax(x, types, masses, pot, fmax=0.01, max_steps=5000, dt_max=10.0)
    x = _centre(x)
    if relabel:
        els = _assign_types(relabel, rng)
    if log is not None:
        log.update({"energy_eV": info["energy"], "fmax_eV_per_A": info["fmax"], "md_steps": len(temps),
                    "build_seconds": time.perf_counter() - t0, "neighbor_builds": md_info["neighbor_builds"], "fire_steps": info["steps"]})
    return AtomicModel(x, els, name=name)
