"""Ring statistics of network models (silica): ground truth vs traced.

A *bond* is an atom pair whose distance lies in ``bond_window_A`` (default
1.61 ± 0.30 Å around the Si–O bond of silica), between a Si and an O atom
(``bond_pairs="Si-O"``) or between any two atoms (``bond_pairs="any"``: a
traced model with wrong element labels keeps its geometry-defined network, and
the damage shows as rings whose atom types do not alternate).

Rings follow King's shortest-path criterion (King, Nature 213, 1112 (1967);
Franzblau, PRB 44, 4925 (1991)): a ring is counted when it is a shortest closed
path through some pair of bonds that meet at an atom (j–i–k): the shortest
paths j → k that avoid i, each closed through i.  All equally short paths are
kept (up to ``max_paths`` per bond pair), and each distinct ring (atom set) is
counted once.  Ring size is the number of atoms; a ring whose atom types
alternate Si, O, Si, O … (*good ring*) has size/2 Si ("n-membered" in the
silica literature, where the ring distribution of vitreous silica peaks at 6 Si
= 12 atoms).

Units: Å.  The search is a numba BFS per bond pair, limited to the largest
ring size asked for; a 8.2k-atom silica particle (sio2_7k) takes 0.3 s.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from numba import njit

from ..io.files import AetbenchError

__all__ = ["bond_graph", "find_rings", "good_rings", "ring_statistics", "compare_rings", "SIO2_WINDOW_A"]

#: default bond window [Å]: Si–O 1.61 ± 0.30 Å
SIO2_WINDOW_A = (1.31, 1.91)


def _as_model(model):
    """AtomicModel from an AtomicModel or a TracedModel (its atoms, non-atom peaks dropped)."""
    if hasattr(model, "atoms") and hasattr(model, "model"):
        return model.atoms()
    if not (hasattr(model, "positions") and hasattr(model, "elements")):
        raise AetbenchError(f"ring statistics: expected an AtomicModel or TracedModel, got {type(model).__name__}")
    return model


def _check_window(bond_window_A):
    try:
        lo, hi = (float(v) for v in bond_window_A)
    except (TypeError, ValueError):
        raise AetbenchError(f"bond_window_A: expected (lo, hi) in Å, got {bond_window_A!r}") from None
    if not (0.0 <= lo < hi <= 6.0):
        raise AetbenchError(f"bond_window_A: expected 0 <= lo < hi <= 6 Å, got ({lo}, {hi})")
    return lo, hi


def bond_graph(positions, elements=None, *, bond_window_A=SIO2_WINDOW_A, bond_pairs: str = "Si-O"):
    """Bonds of a model as a CSR adjacency.

    Parameters
    ----------
    positions : (N, 3) array
        Atom positions [Å].
    elements : (N,) array of str, optional
        Element labels (needed for ``bond_pairs`` other than ``"any"``).
    bond_window_A : (lo, hi)
        A pair is bonded when lo ≤ distance < hi [Å].
    bond_pairs : str
        ``"A-B"`` (e.g. ``"Si-O"``): only pairs of one A and one B atom;
        ``"any"``: every pair in the window.

    Returns
    -------
    off : (N + 1,) int64 array
    idx : (2 K,) int64 array
        Neighbours of atom i are ``idx[off[i]:off[i + 1]]`` (ascending).
    """
    from scipy.spatial import cKDTree

    lo, hi = _check_window(bond_window_A)
    x = np.asarray(positions, float).reshape(-1, 3)
    n = len(x)
    pairs = cKDTree(x).query_pairs(hi, output_type="ndarray") if n > 1 else np.zeros((0, 2), np.int64)
    if len(pairs):
        d = np.linalg.norm(x[pairs[:, 1]] - x[pairs[:, 0]], axis=1)
        pairs = pairs[d >= lo]
    if bond_pairs != "any":
        parts = str(bond_pairs).split("-")
        if len(parts) != 2 or elements is None:
            raise AetbenchError(f"bond_pairs: expected 'any' or 'A-B' (e.g. 'Si-O') with element labels, "
                                f"got {bond_pairs!r}")
        el = np.asarray(elements).astype(str)
        a, b = el[pairs[:, 0]], el[pairs[:, 1]]
        keep = ((a == parts[0]) & (b == parts[1])) | ((a == parts[1]) & (b == parts[0]))
        pairs = pairs[keep]
    src = np.concatenate([pairs[:, 0], pairs[:, 1]]).astype(np.int64)
    dst = np.concatenate([pairs[:, 1], pairs[:, 0]]).astype(np.int64)
    order = np.lexsort((dst, src))
    off = np.zeros(n + 1, np.int64)
    np.cumsum(np.bincount(src, minlength=n), out=off[1:])
    return off, dst[order]


@njit(cache=True)
def _rings_kernel(off, idx, centres, max_size, max_paths):
    """Rows of ring atoms (ring order, padded with -1) found from each centre's bond pairs."""
    n = off.shape[0] - 1
    dist = -np.ones(n, np.int64)
    queue = np.empty(n, np.int64)
    out = np.full((1024, max_size), -1, np.int64)
    m = 0
    maxd = max_size - 2  # path j → k of at most max_size - 1 atoms
    path = np.empty(max_size, np.int64)
    nxt_pos = np.empty(max_size, np.int64)
    for ci in range(centres.shape[0]):
        i = centres[ci]
        for s in range(off[i], off[i + 1]):
            j = idx[s]
            for t in range(s + 1, off[i + 1]):
                k = idx[t]
                # BFS from j avoiding i, level by level, until k is reached
                dist[j] = 0
                head = 0
                tail = 1
                queue[0] = j
                found = -1
                while head < tail and found < 0:
                    u = queue[head]
                    head += 1
                    if dist[u] >= maxd:
                        break
                    for q in range(off[u], off[u + 1]):
                        w = idx[q]
                        if w == i or dist[w] >= 0:
                            continue
                        dist[w] = dist[u] + 1
                        queue[tail] = w
                        tail += 1
                        if w == k:
                            found = dist[w]
                if found > 0:
                    # every shortest path k → j (distance decreasing by one per step)
                    L = found
                    path[0] = k
                    nxt_pos[0] = off[k]
                    depth = 0
                    npaths = 0
                    while depth >= 0 and npaths < max_paths:
                        u = path[depth]
                        if depth == L:
                            # u == j: a ring i, k, ..., j
                            if m == out.shape[0]:
                                bigger = np.full((2 * m, max_size), -1, np.int64)
                                bigger[:m] = out
                                out = bigger
                            out[m, 0] = i
                            for p in range(L + 1):
                                out[m, p + 1] = path[p]
                            m += 1
                            npaths += 1
                            depth -= 1
                            continue
                        moved = False
                        while nxt_pos[depth] < off[u + 1]:
                            w = idx[nxt_pos[depth]]
                            nxt_pos[depth] += 1
                            if w != i and dist[w] == L - depth - 1:
                                depth += 1
                                path[depth] = w
                                nxt_pos[depth] = off[w]
                                moved = True
                                break
                        if not moved:
                            depth -= 1
                for p in range(tail):
                    dist[queue[p]] = -1
    return out[:m]


def find_rings(off, idx, *, max_size: int = 18, centres=None, max_paths: int = 64) -> list[np.ndarray]:
    """Distinct shortest-path rings (King's criterion) of a graph.

    Parameters
    ----------
    off, idx : CSR adjacency (:func:`bond_graph`)
    max_size : int
        Largest ring searched [atoms].
    centres : array of int or bool mask, optional
        Atoms whose bond pairs are searched (default all); a ring is found
        when any of its atoms is a centre.
    max_paths : int
        At most this many equally short paths are kept per bond pair
        (guards against combinatorial blow-up in dense graphs).

    Returns
    -------
    list of int arrays
        Atom indices of each ring in ring order, sorted by (size, atoms).
    """
    if not 3 <= int(max_size) <= 64:
        raise AetbenchError(f"max_size: expected 3-64 atoms, got {max_size}")
    off = np.ascontiguousarray(off, np.int64)
    idx = np.ascontiguousarray(idx, np.int64)
    n = len(off) - 1
    if centres is None:
        c = np.arange(n, dtype=np.int64)
    else:
        c = np.asarray(centres)
        c = np.nonzero(c)[0] if c.dtype == bool else c.astype(np.int64)
    rows = _rings_kernel(off, idx, c, int(max_size), int(max_paths))
    if len(rows) == 0:
        return []
    key = np.sort(np.where(rows < 0, n, rows), axis=1)
    _, first = np.unique(key, axis=0, return_index=True)
    rings = [r[r >= 0] for r in rows[np.sort(first)]]
    rings.sort(key=lambda r: (len(r), tuple(np.sort(r))))
    return rings


def good_rings(rings, elements, pair=("Si", "O")) -> np.ndarray:
    """True for rings whose atom types alternate ``pair[0]``, ``pair[1]`` around the ring (even size)."""
    el = np.asarray(elements).astype(str)
    out = np.zeros(len(rings), bool)
    for r, ring in enumerate(rings):
        if len(ring) % 2:
            continue
        e = el[ring]
        a, b = e[0::2], e[1::2]
        out[r] = (np.all(a == pair[0]) and np.all(b == pair[1])) or (np.all(a == pair[1]) and np.all(b == pair[0]))
    return out


def _shell_mask(x, shell_A):
    if shell_A <= 0:
        return np.ones(len(x), bool)
    rr = np.linalg.norm(x - x.mean(0), axis=1)
    radius = np.sqrt(5 / 3) * np.sqrt(np.mean(rr**2))
    return rr < radius - shell_A


def ring_statistics(model, *, bond_window_A=SIO2_WINDOW_A, sizes=range(6, 19), bond_pairs: str = "Si-O",
                    pair=("Si", "O"), shell_A: float = 0.0, max_paths: int = 64) -> pd.DataFrame:
    """Shortest-path ring counts per ring size and the fraction of good (alternating) rings.

    Parameters
    ----------
    model : AtomicModel or TracedModel
    bond_window_A : (lo, hi)
        Bond distance window [Å] (default Si–O 1.61 ± 0.30 Å).
    sizes : iterable of int
        Ring sizes reported [atoms] (default 6–18: rings of 3–9 Si).
    bond_pairs : str
        ``"Si-O"`` (bonds only between unlike atoms of ``pair``) or ``"any"``.
    pair : (str, str)
        The two elements whose alternation makes a good ring.
    shell_A : float
        Count only rings with at least one atom deeper than this below the
        particle surface [Å] (radius √(5/3) R_g); 0 counts all.
    max_paths : int
        See :func:`find_rings`.

    Returns
    -------
    DataFrame
        One row per size: ``size_atoms``, ``size_si`` (= size_atoms/2 for even
        sizes, NaN for odd), ``n_rings``, ``n_good``, ``good_fraction``
        (n_good/n_rings, NaN without rings) and ``fraction`` (n_rings over all
        rings of the listed sizes).  ``attrs`` holds ``n_atoms``, ``n_bonds``,
        ``bond_window_A``, ``bond_pairs``.
    """
    sizes = sorted({int(s) for s in sizes})
    if not sizes or sizes[0] < 3 or sizes[-1] > 64:
        raise AetbenchError(f"sizes: expected ring sizes in 3-64 atoms, got {sizes}")
    if float(shell_A) < 0:
        raise AetbenchError(f"shell_A: expected >= 0 Å, got {shell_A}")
    m = _as_model(model)
    x = np.asarray(m.positions, float)
    el = np.asarray(m.elements).astype(str)
    if bond_pairs != "any" and bond_pairs == "Si-O":
        bond_pairs = f"{pair[0]}-{pair[1]}"
    off, idx = bond_graph(x, el, bond_window_A=bond_window_A, bond_pairs=bond_pairs)
    centres = _shell_mask(x, float(shell_A))
    rings = find_rings(off, idx, max_size=sizes[-1], centres=centres, max_paths=max_paths)
    good = good_rings(rings, el, pair)
    size = np.array([len(r) for r in rings], int)
    rows = []
    total = int(np.isin(size, sizes).sum())
    for s in sizes:
        sel = size == s
        n, g = int(sel.sum()), int(good[sel].sum())
        rows.append({"size_atoms": s, "size_si": s / 2 if s % 2 == 0 else np.nan, "n_rings": n, "n_good": g,
                     "good_fraction": g / n if n else np.nan, "fraction": n / total if total else np.nan})
    df = pd.DataFrame(rows)
    df.attrs.update({"n_atoms": int(len(x)), "n_bonds": int(len(idx) // 2),
                     "bond_window_A": tuple(float(v) for v in _check_window(bond_window_A)),
                     "bond_pairs": bond_pairs, "shell_A": float(shell_A)})
    return df


def compare_rings(truth, traced, **kw) -> pd.DataFrame:
    """Ring statistics of a ground truth and a traced model side by side.

    Keyword arguments go to :func:`ring_statistics` (same for both models).

    Returns
    -------
    DataFrame
        Per size: ``size_atoms``, ``size_si``, ``n_rings_truth``, ``n_good_truth``,
        ``good_fraction_truth``, ``n_rings_traced``, ``n_good_traced``,
        ``good_fraction_traced`` and ``good_recovered`` (n_good_traced /
        n_good_truth; NaN where the truth has no good ring of that size).
    """
    a = ring_statistics(truth, **kw)
    b = ring_statistics(traced, **kw)
    out = pd.DataFrame({"size_atoms": a["size_atoms"], "size_si": a["size_si"],
                        "n_rings_truth": a["n_rings"], "n_good_truth": a["n_good"],
                        "good_fraction_truth": a["good_fraction"],
                        "n_rings_traced": b["n_rings"], "n_good_traced": b["n_good"],
                        "good_fraction_traced": b["good_fraction"]})
    out["good_recovered"] = np.where(out["n_good_truth"] > 0,
                                     out["n_good_traced"] / out["n_good_truth"].where(out["n_good_truth"] > 0),
                                     np.nan)
    out.attrs.update({"truth": dict(a.attrs), "traced": dict(b.attrs)})
    return out
