"""Pairing traced atoms with ground-truth atoms: nearest neighbours, translation fit, one-to-one assignment.

All positions are in Å.  Residuals are always ``model + shift − truth``.

* :func:`fit_shift` — iterate ``shift ← shift − mean residual`` of the nearest-neighbour
  pairs within the cutoff until the update is below ``tol`` (1e-4 Å), as in the paper.
* :func:`nearest_pairs` — many-to-one nearest-neighbour pairs within the cutoff (paper protocol).
* :func:`assign_one_to_one` — optimal one-to-one assignment among the KD-tree
  candidate pairs within the cutoff (minimum of Σ (d − cutoff); strict protocol).
  The candidate graph splits into small connected components (atoms sit ≥ 2 Å apart,
  cutoffs are ~1 Å); each is solved exactly with :func:`scipy.optimize.linear_sum_assignment`,
  and a very large component with :func:`scipy.sparse.csgraph.min_weight_full_bipartite_matching`
  on a graph augmented with dummy partners.
"""
from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment
from scipy.sparse import coo_matrix, csr_matrix
from scipy.sparse.csgraph import connected_components, min_weight_full_bipartite_matching
from scipy.spatial import cKDTree

__all__ = ["nearest_pairs", "fit_shift", "assign_one_to_one", "candidate_pairs"]

#: components with more candidate cells (rows × columns) than this use the sparse solver
DENSE_LIMIT = 250_000


def nearest_pairs(model_xyz, truth_tree: cKDTree, cutoff: float, shift=(0.0, 0.0, 0.0)):
    """Nearest truth atom of every (shifted) model atom, kept when within ``cutoff``.

    Parameters
    ----------
    model_xyz : ndarray, shape (N, 3)
        Model positions [Å].
    truth_tree : cKDTree
        Tree over the truth positions [Å].
    cutoff : float
        Acceptance distance [Å] (inclusive).
    shift : array_like, shape (3,)
        Translation [Å] added to the model.

    Returns
    -------
    model_idx, truth_idx : ndarray of int
        Accepted pairs (a truth atom may appear several times).
    """
    model_xyz = np.asarray(model_xyz, dtype=float).reshape(-1, 3)
    if model_xyz.shape[0] == 0 or truth_tree.n == 0:
        return np.zeros(0, dtype=np.intp), np.zeros(0, dtype=np.intp)
    d, j = truth_tree.query(model_xyz + np.asarray(shift, dtype=float), k=1, distance_upper_bound=cutoff * (1 + 1e-12))
    ok = np.isfinite(d) & (d <= cutoff)
    return np.flatnonzero(ok), j[ok].astype(np.intp)


def fit_shift(model_xyz, truth_xyz, cutoff: float, *, tol: float = 1e-4, max_iter: int = 200,
              truth_tree: cKDTree | None = None) -> np.ndarray:
    """Translation [Å] that moves the model onto the truth (nearest-neighbour pairs within the cutoff).

    Iterates ``shift ← shift − mean(model + shift − truth)`` over the accepted
    nearest-neighbour pairs, from zero, until the update's length is below ``tol``
    [Å] or no pair is accepted.

    Returns
    -------
    ndarray, shape (3,)
        The shift to add to the model positions.
    """
    model_xyz = np.asarray(model_xyz, dtype=float).reshape(-1, 3)
    truth_xyz = np.asarray(truth_xyz, dtype=float).reshape(-1, 3)
    tree = truth_tree if truth_tree is not None else cKDTree(truth_xyz)
    shift = np.zeros(3)
    for _ in range(max_iter):
        i, j = nearest_pairs(model_xyz, tree, cutoff, shift)
        if i.size == 0:
            break
        update = -(model_xyz[i] + shift - truth_xyz[j]).mean(axis=0)
        shift = shift + update
        if np.linalg.norm(update) < tol:
            break
    return shift


def candidate_pairs(model_xyz, truth_xyz, cutoff: float):
    """All (model, truth) pairs within ``cutoff`` [Å] and their distances (KD-tree sparse search)."""
    a = np.asarray(model_xyz, dtype=float).reshape(-1, 3)
    b = np.asarray(truth_xyz, dtype=float).reshape(-1, 3)
    if a.shape[0] == 0 or b.shape[0] == 0:
        e = np.zeros(0, dtype=np.intp)
        return e, e.copy(), np.zeros(0)
    rec = cKDTree(a).sparse_distance_matrix(cKDTree(b), cutoff, output_type="ndarray")
    return rec["i"].astype(np.intp), rec["j"].astype(np.intp), rec["v"].astype(float)


def _solve_dense(i, j, d, cutoff):
    """Optimal gated assignment of one component given its edge lists (see :func:`assign_one_to_one`).

    Minimising Σ (d − cutoff) over the chosen pairs, with 0 for "no pair", is the
    same as minimising Σ d + cutoff/2 per unpaired atom; every candidate has d ≤ cutoff.
    """
    ri, ii = np.unique(i, return_inverse=True)
    rj, jj = np.unique(j, return_inverse=True)
    cost = np.zeros((ri.size, rj.size))
    cost[ii, jj] = d - cutoff * (1 + 1e-9)
    edge = np.zeros(cost.shape, dtype=bool)
    edge[ii, jj] = True
    r, c = linear_sum_assignment(cost)
    ok = edge[r, c]
    return ri[r[ok]], rj[c[ok]]


def _solve_sparse(i, j, d, cutoff):
    """Same as :func:`_solve_dense` for a large component: min-weight full matching with dummies.

    Rows: model atoms then one dummy per truth atom; columns: truth atoms then one
    dummy per model atom.  model i – its own dummy and truth j – its own dummy cost
    ``cutoff / 2`` (an unpaired atom); a dummy–dummy edge (≈ 0) mirrors every real
    edge so that any set of real pairs completes to a full matching.
    """
    ri, ii = np.unique(i, return_inverse=True)
    rj, jj = np.unique(j, return_inverse=True)
    nm, nt = ri.size, rj.size
    eps = 1e-12 * max(cutoff, 1.0)
    rows = np.concatenate([ii, np.arange(nm), nm + np.arange(nt), nm + jj])
    cols = np.concatenate([jj, nt + np.arange(nm), np.arange(nt), nt + ii])
    w = np.concatenate([d + eps, np.full(nm + nt, cutoff / 2 * (1 + 1e-9)), np.full(d.size, eps)])
    g = csr_matrix(coo_matrix((w, (rows, cols)), shape=(nm + nt, nt + nm)))
    r, c = min_weight_full_bipartite_matching(g)
    ok = (r < nm) & (c < nt)
    return ri[r[ok]], rj[c[ok]]


def assign_one_to_one(model_xyz, truth_xyz, cutoff: float, *, dense_limit: int = DENSE_LIMIT):
    """Optimal one-to-one pairs within ``cutoff`` [Å].

    Minimises the total pair distance plus ``cutoff / 2`` for every unpaired model
    or truth atom, i.e. Σ (d − cutoff) over the pairs: a pair is formed whenever it
    helps, so the assignment is never beaten by a greedy one, and at cutoffs beyond
    the atomic spacing chains of pairs are not shifted just to absorb a spurious atom.

    Returns
    -------
    model_idx, truth_idx : ndarray of int
        Matched pairs, sorted by model index; every index appears at most once.
    """
    i, j, d = candidate_pairs(model_xyz, truth_xyz, cutoff)
    if i.size == 0:
        return i, j
    na = np.asarray(model_xyz).reshape(-1, 3).shape[0]
    nb = np.asarray(truth_xyz).reshape(-1, 3).shape[0]
    # connected components of the bipartite candidate graph (nodes: model 0..na-1, truth na..na+nb-1)
    g = coo_matrix((np.ones(i.size), (i, na + j)), shape=(na + nb, na + nb))
    _, lab = connected_components(g, directed=False)
    comp = lab[i]
    # trivial components: one model atom or one truth atom → the shortest edge
    deg_i = np.bincount(i, minlength=na)
    deg_j = np.bincount(j, minlength=nb)
    n_model_in = np.bincount(comp, weights=1.0 / deg_i[i], minlength=lab.max() + 1)
    n_truth_in = np.bincount(comp, weights=1.0 / deg_j[j], minlength=lab.max() + 1)
    trivial = (np.round(n_model_in) <= 1) | (np.round(n_truth_in) <= 1)
    out_i, out_j = [], []
    t_edges = trivial[comp]
    if t_edges.any():
        ti, tj, td, tc = i[t_edges], j[t_edges], d[t_edges], comp[t_edges]
        order = np.lexsort((td, tc))
        first = np.ones(order.size, dtype=bool)
        first[1:] = tc[order][1:] != tc[order][:-1]
        out_i.append(ti[order][first])
        out_j.append(tj[order][first])
    rest = np.flatnonzero(~t_edges)
    if rest.size:
        order = rest[np.argsort(comp[rest], kind="stable")]
        cs = comp[order]
        bounds = np.flatnonzero(np.diff(cs)) + 1
        for sel in np.split(order, bounds):
            ci, cj, cd = i[sel], j[sel], d[sel]
            cells = np.unique(ci).size * np.unique(cj).size
            a, b = (_solve_dense if cells <= dense_limit else _solve_sparse)(ci, cj, cd, cutoff)
            out_i.append(a)
            out_j.append(b)
    mi = np.concatenate(out_i).astype(np.intp)
    mj = np.concatenate(out_j).astype(np.intp)
    o = np.argsort(mi, kind="stable")
    return mi[o], mj[o]
