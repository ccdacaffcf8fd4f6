"""Crystal-like neighbourhoods by adaptive common-neighbour analysis (a-CNA).

Stukowski, Modelling Simul. Mater. Sci. Eng. 20, 045021 (2012): for each atom
take its 12 nearest neighbours, a local cutoff r_c = (1+√2)/2 × their mean
distance, and for each neighbour j the signature (common neighbours, bonds
among them, bonds in the largest connected bond cluster).  fcc = 12 × (4,2,1);
hcp = 6 × (4,2,1) + 6 × (4,2,2); bcc (14 neighbours, r_c from the 8 + 6
nearest) = 8 × (6,6,6) + 6 × (4,4,4).  Icosahedral (12 × (5,5,5)) is *not*
crystal-like.  Distances in Å.
"""
from __future__ import annotations

import numpy as np
from scipy.spatial import cKDTree

__all__ = ["cna_labels", "crystal_like_fraction"]


def _largest_bond_cluster(edges: list[tuple[int, int]]) -> int:
    if not edges:
        return 0
    parent: dict[int, int] = {}

    def find(a):
        while parent.setdefault(a, a) != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    for a, b in edges:
        parent[find(a)] = find(b)
    size: dict[int, int] = {}
    for a, _ in edges:
        r = find(a)
        size[r] = size.get(r, 0) + 1
    return max(size.values())


def _signatures(pos, centre, nbrs, rc):
    out = []
    nset = list(nbrs)
    sub = pos[nset]
    dmat = np.linalg.norm(sub[:, None] - sub[None], axis=2)
    bonded = (dmat < rc) & ~np.eye(len(nset), dtype=bool)
    for a in range(len(nset)):
        common = np.nonzero(bonded[a])[0]
        edges = [(int(p), int(q)) for k, p in enumerate(common) for q in common[k + 1:] if bonded[p, q]]
        out.append((len(common), len(edges), _largest_bond_cluster(edges)))
    return out


def cna_labels(positions, atoms=None) -> np.ndarray:
    """a-CNA structure label per atom: ``"fcc"``, ``"hcp"``, ``"bcc"``, ``"ico"`` or ``"other"``.

    Parameters
    ----------
    positions : (N, 3) array
        Positions in Å.
    atoms : index array, optional
        Atoms to classify (default all); others get ``"other"``.
    """
    pos = np.asarray(positions, float)
    n = len(pos)
    tree = cKDTree(pos)
    k = min(15, n)
    dist, nb = tree.query(pos, k=k)
    labels = np.full(n, "other", dtype=object)
    todo = range(n) if atoms is None else np.asarray(atoms)
    for i in todo:
        if k < 15:
            break
        d, j = dist[i, 1:], nb[i, 1:]
        rc = 0.5 * (1 + np.sqrt(2)) * d[:12].mean()
        if np.sum(d < rc) == 12:
            sig = _signatures(pos, i, j[:12], rc)
            s421 = sig.count((4, 2, 1))
            s422 = sig.count((4, 2, 2))
            if s421 == 12:
                labels[i] = "fcc"
                continue
            if s421 == 6 and s422 == 6:
                labels[i] = "hcp"
                continue
            if sig.count((5, 5, 5)) == 12:
                labels[i] = "ico"
                continue
        rcb = 0.5 * (1 + np.sqrt(2)) * (2 / np.sqrt(3) * d[:8].mean() + d[8:14].mean()) / 2
        if np.sum(d < rcb) == 14:
            sig = _signatures(pos, i, j[:14], rcb)
            if sig.count((6, 6, 6)) == 8 and sig.count((4, 4, 4)) == 6:
                labels[i] = "bcc"
    return labels


def crystal_like_fraction(positions, interior=None) -> float:
    """Fraction of (interior) atoms with an fcc, hcp or bcc neighbourhood (a-CNA)."""
    idx = np.arange(len(positions)) if interior is None else np.nonzero(interior)[0]
    if idx.size == 0:
        return float("nan")
    lab = cna_labels(positions, idx)[idx]
    return float(np.isin(lab, ["fcc", "hcp", "bcc"]).mean())
