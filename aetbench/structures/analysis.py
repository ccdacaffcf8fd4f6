"""Realism analysis of a built nanoparticle.

All distances in Å, angles in degrees, densities in atoms/Å³.  *Interior*
atoms are those deeper than ``shell`` Å below the particle surface (radius
from the radius of gyration of a uniform sphere, R = √(5/3) R_g); coordination,
four-fold fraction and bond angles are reported for them, so the surface does
not count as under-coordination.
"""
from __future__ import annotations

from itertools import combinations

import numpy as np

from ..types import AtomicModel
from .neighbors import neighbor_list

__all__ = ["bond_cutoffs", "analyse", "pair_key", "rdf", "shortest_path_rings", "voronoi_density"]

#: covalent / metallic bond lengths [Å] used for default bond cutoffs
#: (a-Si 2.35, a-Ge 2.46, α-Sn 2.81, Si–O 1.61; metals: 2 × metallic radius, CN 12; Ta: bcc nearest neighbour)
BOND_LENGTH = {"Si": 2.35, "Ge": 2.45, "Sn": 2.81, "O": 1.48, "Co": 2.50, "Pd": 2.74, "Pt": 2.77, "Ta": 2.86}
METALS = {"Co", "Pd", "Pt", "Ta"}


def pair_key(a: str, b: str) -> str:
    """Canonical pair label ``"A-B"`` (sorted)."""
    a, b = sorted((a, b))
    return f"{a}-{b}"


def bond_cutoffs(species, factor: float | None = None, override=None) -> dict[str, float]:
    """Bond cutoff [Å] per pair: ``factor`` × mean of the element bond lengths.

    Default factor 1.21 for covalent networks (Si: 2.84 Å, the first minimum of
    the a-Si g(r)) and 1.30 for metals (the first minimum of a metallic-glass g(r)).
    """
    if factor is None:
        factor = 1.30 if set(species) <= METALS else 1.21
    out = {}
    for a, b in combinations(sorted(species) + [], 2):
        out[pair_key(a, b)] = factor * 0.5 * (BOND_LENGTH.get(a, 2.5) + BOND_LENGTH.get(b, 2.5))
    for a in species:
        out[pair_key(a, a)] = factor * BOND_LENGTH.get(a, 2.5)
    if override:
        out.update({pair_key(*k.split("-")): float(v) for k, v in override.items()})
    return out


def rdf(positions, r_max: float = 8.0, dr: float = 0.02, mask_a=None, mask_b=None):
    """Radial distribution g(r) of a finite cluster, normalised by the pair count per shell volume.

    Returns ``(r [Å], g)``; for a finite particle g decays at large r (no
    shape correction), which does not move the peak positions.
    """
    pos = np.asarray(positions, float)
    n = len(pos)
    a = np.ones(n, bool) if mask_a is None else np.asarray(mask_a)
    b = np.ones(n, bool) if mask_b is None else np.asarray(mask_b)
    off, idx = neighbor_list(pos, r_max)
    own = np.repeat(np.arange(n), np.diff(off))
    sel = a[own] & b[idx]
    d = np.linalg.norm(pos[idx[sel]] - pos[own[sel]], axis=1)
    edges = np.arange(0, r_max + dr, dr)
    h, _ = np.histogram(d, edges)
    r = 0.5 * (edges[1:] + edges[:-1])
    rg = np.sqrt(np.mean(np.sum((pos - pos.mean(0)) ** 2, axis=1)))
    vol = 4 / 3 * np.pi * (np.sqrt(5 / 3) * rg) ** 3
    rho_b = b.sum() / vol
    g = h / (max(a.sum(), 1) * rho_b * 4 * np.pi * r**2 * dr)
    return r, g


def voronoi_density(positions, mask, radius: float) -> float:
    """Number density [atoms/Å³] of the atoms in ``mask``: their count over the sum of their Voronoi
    cell volumes [Å³].

    Cells that are unbounded or reach beyond ``radius`` [Å] from the centroid
    (surface-open cells) are left out of both sums.  Unlike counting atoms in a
    sphere, this has no boundary-sampling noise (a 50-atom sphere count scatters
    by ±10 %) and no bias from where the outermost counted atom happens to lie.
    """
    from scipy.spatial import ConvexHull, Voronoi

    pos = np.asarray(positions, float)
    c = pos.mean(0)
    vor = Voronoi(pos)
    n, vol = 0, 0.0
    for i in np.nonzero(mask)[0]:
        reg = vor.regions[vor.point_region[i]]
        if not reg or -1 in reg:
            continue
        v = vor.vertices[reg]
        if np.max(np.linalg.norm(v - c, axis=1)) > radius:
            continue
        vol += ConvexHull(v).volume
        n += 1
    return float(n / vol) if n else float("nan")


def _first_peak(d: np.ndarray) -> float:
    """Mode of bonded distances [Å] (histogram of 0.005 Å bins smoothed by a 0.04 Å Gaussian)."""
    if d.size == 0:
        return float("nan")
    edges = np.arange(d.min() - 0.2, d.max() + 0.2, 0.005)
    h, _ = np.histogram(d, edges)
    k = np.exp(-0.5 * (np.arange(-30, 31) * 0.005 / 0.04) ** 2)
    hs = np.convolve(h, k, mode="same")
    return float(0.5 * (edges[:-1] + edges[1:])[np.argmax(hs)])


def shortest_path_rings(adj, atoms=None, max_size: int = 10) -> dict[int, int]:
    """Number of shortest-path rings per size [atoms] of a bond graph given as neighbour lists.

    The package's one ring counter, :func:`aetbench.score.rings.find_rings` (rings with no shortcut across
    them, Franzblau, PRB 44, 4925 (1991), as matscipy counts them), on ``adj``.

    Parameters
    ----------
    adj : list of neighbour lists (symmetric)
    atoms : iterable of int, optional
        Count only rings through at least one of these atoms (default all rings).
    max_size : int
        Largest ring size searched [atoms].
    """
    from ..score.rings import ring_size_counts

    n = len(adj)
    deg = np.array([len(a) for a in adj], np.int64)
    off = np.zeros(n + 1, np.int64)
    np.cumsum(deg, out=off[1:])
    idx = np.concatenate([np.asarray(a, np.int64).ravel() for a in adj]) if n else np.zeros(0, np.int64)
    centres = None if atoms is None else np.asarray(list(atoms), np.int64)
    return ring_size_counts(off, idx, max_size=max_size, centres=centres)


def analyse(model: AtomicModel, *, cutoffs=None, shell: float = 3.0, rings: bool = True,
            max_ring: int = 10, crystal_like: bool = False) -> dict:
    """Realism metrics of a particle (JSON-able dict).

    Keys: ``n_atoms``, ``counts``, ``radius_A``, ``density_per_A3`` (interior atoms over their
    Voronoi volume, :func:`voronoi_density`), ``density_sphere_per_A3`` (interior count over the sphere
    through the outermost interior atom),
    ``n_interior``, ``min_distance_A`` (all atoms) and ``first_peak_A`` (mode of
    the bonded distances with at least one interior atom) per pair,
    ``bond_cutoff_A`` per pair, ``coordination`` (interior mean, per element and
    ``"all"``), ``fourfold_fraction`` (interior, per element and ``"all"``),
    ``angle_mean_deg``/``angle_sd_deg`` (interior centres, per centre element and
    ``"all"``), ``rings`` (size [atoms] → number of shortest-path rings, :func:`aetbench.score.rings.find_rings`,
    with at least one interior atom; bonds: pairs closer than ``cutoffs``), and
    ``crystal_like_fraction`` when asked.
    """
    pos = np.asarray(model.positions, float)
    el = np.asarray(model.elements)
    n = len(pos)
    species = model.species
    cut = bond_cutoffs(species) if cutoffs is None else dict(cutoffs)
    c0 = pos.mean(0)
    rr = np.linalg.norm(pos - c0, axis=1)
    radius = float(np.sqrt(5 / 3) * np.sqrt(np.mean(rr**2)))
    interior = rr < radius - shell
    if interior.sum() < 5:
        interior = rr < 0.6 * radius
    r_in = float(rr[interior].max()) if interior.any() else 0.0
    out: dict = {"n_atoms": n, "counts": model.counts(), "radius_A": radius,
                 "n_interior": int(interior.sum()),
                 "density_per_A3": voronoi_density(pos, interior, radius) if n >= 5 else float("nan"),
                 "density_sphere_per_A3": float(interior.sum() / (4 / 3 * np.pi * r_in**3)) if r_in > 0
                 else float("nan")}
    rmax = max(cut.values())
    off, idx = neighbor_list(pos, max(rmax, 6.0))
    own = np.repeat(np.arange(n), np.diff(off))
    vec = pos[idx] - pos[own]
    d = np.linalg.norm(vec, axis=1)
    pk = np.array([pair_key(a, b) for a, b in zip(el[own], el[idx])]) if n else np.array([])
    cmat = np.array([cut.get(k, 0.0) for k in pk])
    bonded = d < cmat
    out["bond_cutoff_A"] = {k: float(v) for k, v in sorted(cut.items())}
    out["min_distance_A"], out["first_peak_A"] = {}, {}
    half = own < idx
    both_in = interior[own] | interior[idx]
    for k in sorted(set(pk.tolist())):
        s = (pk == k) & half
        out["min_distance_A"][k] = float(d[s].min())
        sb = s & bonded & both_in
        if sb.sum() < 20:  # too few bonds at interior atoms: use all
            sb = s & bonded
        out["first_peak_A"][k] = _first_peak(d[sb])
    cn = np.bincount(own[bonded], minlength=n)
    out["coordination"], out["fourfold_fraction"] = {}, {}
    out["angle_mean_deg"], out["angle_sd_deg"] = {}, {}
    angles = []
    ang_el = []
    for i in np.nonzero(interior)[0]:
        s = np.nonzero(bonded[off[i]:off[i + 1]])[0] + off[i]
        u = vec[s] / d[s, None]
        for p, q in combinations(range(len(s)), 2):
            angles.append(np.degrees(np.arccos(np.clip(u[p] @ u[q], -1, 1))))
            ang_el.append(el[i])
    angles = np.asarray(angles)
    ang_el = np.asarray(ang_el)
    for name in species + ["all"]:
        m = interior & ((el == name) if name != "all" else True)
        if m.any():
            out["coordination"][name] = float(cn[m].mean())
            out["fourfold_fraction"][name] = float(np.mean(cn[m] == 4))
        sa = angles if name == "all" else angles[ang_el == name] if angles.size else angles
        if sa.size:
            out["angle_mean_deg"][name] = float(sa.mean())
            out["angle_sd_deg"][name] = float(sa.std())
    out["coordination_histogram"] = {int(k): int(v) for k, v in
                                     zip(*np.unique(cn[interior], return_counts=True))}
    if rings:
        from ..score.rings import ring_size_counts

        boff = np.zeros(n + 1, np.int64)
        np.cumsum(np.bincount(own[bonded], minlength=n), out=boff[1:])
        out["rings"] = ring_size_counts(boff, idx[bonded], max_size=max_ring, centres=interior)
    if crystal_like:
        from .crystal import crystal_like_fraction

        out["crystal_like_fraction"] = crystal_like_fraction(pos, interior)
    return out
