"""Packing analysis of a model (simulated or traced, ours or a reference), in the style of the Miao-group papers.

All quantities use the atoms of a region as centres and every atom of the model as neighbours, so the region's
border does not count as under-coordination:

* **pair distribution function** g(r): pair counts per shell over the shell volume × the mean density, the density
  taken from the neighbour count between 4 and 8 Å (where g ≈ 1 in an amorphous solid), so no region volume is
  needed; its first peak [Å] (of g smoothed by a 0.1 Å Gaussian).
* **coordination number**: neighbours within the bond cutoff of :func:`aetbench.structures.analysis.bond_cutoffs`
  (1.30 × the element's bond length for metals: the first minimum of a metallic-glass g(r)).
* **bond-orientational order** Q4, Q6 (Steinhardt): per atom, ``q_l = sqrt(4π/(2l+1) Σ_m |⟨Y_lm(r̂_ij)⟩_j|²)`` over
  its bonded neighbours; reported as means over the region.
* **Voronoi indices** ⟨n3, n4, n5, n6⟩ (faces with 3 … 6 edges) of the atoms' Voronoi cells; faces smaller than
  1 % of their cell's surface are dropped (the usual rule against numerically tiny faces).  Cells touching the
  model's open border (unbounded) are skipped.
* **icosahedral and polytetrahedral motifs**: the fraction of ⟨0,0,12,0⟩ cells (full icosahedra), and of
  icosahedral-like cells (n3 = 0, n4 ≤ 2, n5 ≥ 8: ⟨0,2,8,x⟩, ⟨0,1,10,2⟩, ⟨0,0,12,0⟩ …), the polytetrahedral
  (five-fold dominated) packing of metallic liquids and glasses.
"""
from __future__ import annotations

from collections import Counter

import numpy as np
from scipy.ndimage import gaussian_filter1d
from scipy.spatial import Voronoi, cKDTree

from ..types import NON_ATOM, AtomicModel

__all__ = ["pair_distribution", "coordination", "steinhardt", "voronoi_indices", "packing_summary"]


def _split(model: AtomicModel, region):
    m = model.select(model.elements != NON_ATOM)
    pos = m.positions
    inside = np.ones(len(pos), bool) if region is None else region.contains(pos)
    return m, pos, inside


def pair_distribution(positions, centres, r_max: float = 10.0, dr: float = 0.05):
    """g(r) with ``centres`` (bool) as centres and all atoms as neighbours; returns ``(r [Å], g)``."""
    pos = np.asarray(positions, float)
    c = np.flatnonzero(centres)
    tree = cKDTree(pos)
    edges = np.arange(0.0, r_max + dr, dr)
    h = np.zeros(edges.size - 1)
    n_far = 0
    for i, nb in zip(c, tree.query_ball_point(pos[c], r_max)):
        d = np.linalg.norm(pos[nb] - pos[i], axis=1)
        d = d[d > 1e-9]
        h += np.histogram(d, edges)[0]
        n_far += int(np.count_nonzero((d >= 4.0) & (d < 8.0)))
    r = 0.5 * (edges[1:] + edges[:-1])
    if c.size == 0 or n_far == 0:
        return r, np.zeros_like(r)
    rho = n_far / (c.size * 4.0 / 3.0 * np.pi * (8.0**3 - 4.0**3))
    g = h / (c.size * rho * 4.0 * np.pi * r**2 * dr)
    return r, g


def coordination(positions, centres, cutoff: float) -> np.ndarray:
    """Number of neighbours within ``cutoff`` [Å] of each centre."""
    pos = np.asarray(positions, float)
    c = np.flatnonzero(centres)
    nb = cKDTree(pos).query_ball_point(pos[c], cutoff)
    return np.array([len(n) - 1 for n in nb], dtype=int)


def steinhardt(positions, centres, cutoff: float, ls=(4, 6)) -> dict[int, np.ndarray]:
    """Per-centre Steinhardt q_l over neighbours within ``cutoff`` [Å] (NaN for an atom without neighbours)."""
    from scipy.special import sph_harm_y  # sph_harm_y(l, m, polar, azimuth)

    pos = np.asarray(positions, float)
    c = np.flatnonzero(centres)
    out = {l: np.full(c.size, np.nan) for l in ls}
    nbs = cKDTree(pos).query_ball_point(pos[c], cutoff)
    for k, (i, nb) in enumerate(zip(c, nbs)):
        nb = [j for j in nb if j != i]
        if not nb:
            continue
        v = pos[nb] - pos[i]
        r = np.linalg.norm(v, axis=1)
        theta = np.arccos(np.clip(v[:, 2] / r, -1, 1))
        phi = np.arctan2(v[:, 1], v[:, 0])
        for l in ls:
            m = np.arange(-l, l + 1)
            y = sph_harm_y(l, m[:, None], theta[None, :], phi[None, :]).mean(axis=1)
            out[l][k] = np.sqrt(4 * np.pi / (2 * l + 1) * np.sum(np.abs(y) ** 2))
    return out


def _polygon_area(p: np.ndarray) -> float:
    c = p.mean(axis=0)
    a = np.cross(p - c, np.roll(p, -1, axis=0) - c)
    return 0.5 * float(np.linalg.norm(a.sum(axis=0)))


def voronoi_indices(positions, centres, min_face_fraction: float = 0.01) -> dict[int, tuple[int, int, int, int]]:
    """Voronoi index ⟨n3, n4, n5, n6⟩ of each bounded centre cell (dict atom index → index)."""
    pos = np.asarray(positions, float)
    vor = Voronoi(pos)
    want = set(np.flatnonzero(centres).tolist())
    faces: dict[int, list] = {i: [] for i in want}
    open_cell = set()
    for (a, b), verts in zip(vor.ridge_points, vor.ridge_vertices):
        for i in (a, b):
            if i in want:
                if -1 in verts:
                    open_cell.add(i)
                else:
                    faces[i].append(verts)
    out = {}
    for i, fl in faces.items():
        if i in open_cell or not fl:
            continue
        areas = np.array([_polygon_area(vor.vertices[f]) for f in fl])
        keep = areas >= min_face_fraction * areas.sum()
        n = Counter(len(f) for f, k in zip(fl, keep) if k)
        out[i] = (n.get(3, 0), n.get(4, 0), n.get(5, 0), n.get(6, 0))
    return out


def packing_summary(model: AtomicModel, region=None, *, cutoff: float | None = None) -> dict:
    """JSON-able packing analysis of ``model``'s atoms in ``region`` (see the module docstring)."""
    from ..structures.analysis import bond_cutoffs

    m, pos, inside = _split(model, region)
    if cutoff is None:
        cut = bond_cutoffs(m.species)
        cutoff = max(cut.values()) if cut else 3.7
    r, g = pair_distribution(pos, inside)
    sel = r > 1.5
    gs = gaussian_filter1d(g, 2.0)  # the peak of g smoothed by 0.1 Å (2 bins): a few hundred centres are noisy
    first = float(r[sel][np.argmax(gs[sel])]) if g.any() else float("nan")
    cn = coordination(pos, inside, cutoff)
    q = steinhardt(pos, inside, cutoff)
    vi = voronoi_indices(pos, inside) if len(pos) >= 5 else {}
    cnt = Counter(vi.values())
    nv = max(len(vi), 1)
    ico = sum(v for k, v in cnt.items() if k == (0, 0, 12, 0)) / nv
    poly = sum(v for k, v in cnt.items() if k[0] == 0 and k[1] <= 2 and k[2] >= 8) / nv
    return {"n_atoms": int(inside.sum()), "cutoff_A": float(cutoff), "first_peak_A": first,
            "g_r": {"r": r.round(3).tolist(), "g": g.round(4).tolist()},
            "cn_mean": float(cn.mean()) if cn.size else float("nan"),
            "cn_sd": float(cn.std()) if cn.size else float("nan"),
            "cn_histogram": {int(k): int(v) for k, v in zip(*np.unique(cn, return_counts=True))},
            "q4_mean": float(np.nanmean(q[4])) if cn.size else float("nan"),
            "q6_mean": float(np.nanmean(q[6])) if cn.size else float("nan"),
            "n_voronoi": len(vi), "voronoi_top": [(f"<{','.join(map(str, k))}>", v / nv) for k, v in cnt.most_common(8)],
            "icosahedral_fraction": float(ico), "polytetrahedral_fraction": float(poly)}
