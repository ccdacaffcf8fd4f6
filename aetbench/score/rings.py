"""Ring statistics of network models (silica): ground truth vs traced.

A *bond* is an atom pair whose distance lies in ``bond_window_A`` (default
1.61 ± 0.30 Å around the Si–O bond of silica), between a Si and an O atom
(``bond_pairs="Si-O"``) or between any two atoms (``bond_pairs="any"``: a
traced model with wrong element labels keeps its geometry-defined network, and
the damage shows as rings whose atom types do not alternate).

Rings are *shortest-path rings* (Franzblau, PRB 44, 4925 (1991)), counted as
matscipy's ``ring_statistics`` counts them: a closed path through distinct atoms
is a ring when no two of its atoms are closer on the whole bond graph than along
the ring (no shortcut across it; also called primitive rings).  Each ring is
counted once.  This is the one ring counter of the package: the structure
analysis (:func:`aetbench.structures.analysis.analyse`) and the report use it
too.  Ring size is the number of atoms; a ring whose atom types alternate Si, O,
Si, O … (*good ring*) has size/2 Si ("n-membered" in the silica literature,
where the ring distribution of vitreous silica peaks at 6 Si = 12 atoms).

Units: Å.  The search (numba) walks out and back from every atom along
shortest paths, up to half the largest ring size; distances between ring atoms
come from per-atom balls of graph distances computed once.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from numba import njit

from ..errors import AetbenchError

__all__ = ["bond_graph", "find_rings", "ring_size_counts", "good_rings", "ring_statistics", "compare_rings",
           "compare_rings_by_cell", "ring_table_kind", "ring_totals", "SIO2_WINDOW_A"]

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
def _bfs(off, idx, root, depth, dist, queue):
    """Breadth-first search from ``root`` to at most ``depth`` bonds: fills ``dist`` (-1 = not reached, must be
    -1 on entry) and ``queue[:tail]`` (the reached atoms, root first); returns ``tail``."""
    dist[root] = 0
    queue[0] = root
    head = 0
    tail = 1
    while head < tail:
        u = queue[head]
        head += 1
        if dist[u] >= depth:
            continue
        for q in range(off[u], off[u + 1]):
            w = idx[q]
            if dist[w] < 0:
                dist[w] = dist[u] + 1
                queue[tail] = w
                tail += 1
    return tail


@njit(cache=True)
def _balls(off, idx, depth):
    """Graph distances up to ``depth`` bonds from every atom, as CSR rows sorted by atom.

    Row p is ``bnb[boff[p]:boff[p + 1]]`` (atoms q ≠ p with d(p, q) ≤ depth, ascending) with the
    distances ``bd`` alongside.
    """
    n = off.shape[0] - 1
    dist = -np.ones(n, np.int64)
    queue = np.empty(max(n, 1), np.int64)
    boff = np.zeros(n + 1, np.int64)
    for p in range(n):
        tail = _bfs(off, idx, p, depth, dist, queue)
        boff[p + 1] = boff[p] + tail - 1
        for k in range(tail):
            dist[queue[k]] = -1
    bnb = np.empty(boff[n], np.int32)
    bd = np.empty(boff[n], np.int16)
    for p in range(n):
        tail = _bfs(off, idx, p, depth, dist, queue)
        row = np.sort(queue[1:tail])
        for k in range(row.shape[0]):
            bnb[boff[p] + k] = row[k]
            bd[boff[p] + k] = dist[row[k]]
        for k in range(tail):
            dist[queue[k]] = -1
    return boff, bnb, bd


@njit(cache=True)
def _shortcut(boff, bnb, bd, p, q, ring_dist):
    """True when atoms p and q are closer on the graph than ``ring_dist`` bonds (a shortcut across a ring)."""
    lo = boff[p]
    hi = boff[p + 1]
    while lo < hi:  # binary search for q in p's sorted ball
        mid = (lo + hi) // 2
        if bnb[mid] < q:
            lo = mid + 1
        else:
            hi = mid
    return lo < boff[p + 1] and bnb[lo] == q and bd[lo] < ring_dist


@njit(cache=True)
def _no_shortcut(w, pos, L, apex, path, boff, bnb, bd):
    """True when atom ``w`` at ring position ``pos`` (ring of ``L`` atoms) is as far on the graph from every
    outgoing-path atom ``path[1..apex]`` as along the ring."""
    for r in range(1, apex + 1):
        k = pos - r
        ring_dist = min(k, L - k)
        if ring_dist >= 2 and _shortcut(boff, bnb, bd, w, path[r], ring_dist):
            return False
    return True


@njit(cache=True)
def _rings_kernel(off, idx, max_size, boff, bnb, bd, max_steps):
    """All rings of at most ``max_size`` atoms in which every two atoms are as far apart on the graph as
    along the ring, each once, as rows of atoms in ring order (padded with -1), smallest atom first.

    From each root a (the smallest atom of the rings it finds) a depth-first walk goes out along a shortest
    path (graph distance from a rising by one per bond, atoms > a only), turns once (to an atom at the same
    distance: odd ring; or one closer: even ring, the apex then being the farthest atom) and comes back along
    a shortest path to a.  Atoms of the way back are tested against the way out for shortcuts as they are
    added (pairs on one shortest path from a never have one).  Each ring is walked in both directions; the
    direction whose second atom is smaller is kept.  Returns (rows, steps); steps = -1 when the walk took
    more than ``max_steps`` steps.
    """
    n = off.shape[0] - 1
    K = max_size // 2  # the farthest atom of a ring of L atoms is L // 2 bonds from any other
    dist = -np.ones(n, np.int64)
    queue = np.empty(max(n, 1), np.int64)
    out = np.full((1024, max_size), -1, np.int64)
    m = 0
    path = np.empty(max_size + 1, np.int64)
    ptr = np.empty(max_size + 2, np.int64)
    steps = 0
    for a in range(n):
        tail = _bfs(off, idx, a, K, dist, queue)
        path[0] = a
        s = 1
        ptr[1] = off[a]
        T = -1      # ring position of the turn atom, -1 while going out
        L = 0       # ring size once turned
        apex = 0    # ring position of the last atom of the way out
        while s >= 1:
            u = path[s - 1]
            moved = False
            while ptr[s] < off[u + 1]:
                w = idx[ptr[s]]
                ptr[s] += 1
                steps += 1
                dw = dist[w]
                if w < a or dw < 0:
                    continue
                if T < 0:  # going out: u is at distance s - 1 from a
                    t = s - 1
                    if w == a or (s >= 2 and w == path[s - 2]):
                        continue
                    if dw == t + 1:
                        if 2 * (t + 1) <= max_size:
                            path[s] = w
                            moved = True
                            break
                    elif dw == t and 2 * t + 1 <= max_size:
                        if _no_shortcut(w, t + 1, 2 * t + 1, t, path, boff, bnb, bd):
                            L = 2 * t + 1
                            apex = t
                            T = s
                            path[s] = w
                            moved = True
                            break
                    elif dw == t - 1 and t >= 2 and 2 * t <= max_size:
                        if _no_shortcut(w, t + 1, 2 * t, t, path, boff, bnb, bd):
                            L = 2 * t
                            apex = t
                            T = s
                            path[s] = w
                            moved = True
                            break
                else:  # coming back: distance falls by one per bond
                    if dw != dist[u] - 1:
                        continue
                    if dw == 0:  # w == a: the ring closes
                        if path[1] < u:
                            if m == out.shape[0]:
                                bigger = np.full((2 * m, max_size), -1, np.int64)
                                bigger[:m] = out
                                out = bigger
                            for p in range(s):
                                out[m, p] = path[p]
                            m += 1
                        continue
                    if w == path[dw]:  # the atom of the way out at this distance: not a simple ring
                        continue
                    if _no_shortcut(w, s, L, apex, path, boff, bnb, bd):
                        path[s] = w
                        moved = True
                        break
            if steps > max_steps:
                return out[:m], -1
            if moved:
                s += 1
                ptr[s] = off[path[s - 1]]
            else:
                s -= 1
                if s == T:
                    T = -1
        for p in range(tail):
            dist[queue[p]] = -1
    return out[:m], steps


def find_rings(off, idx, *, max_size: int = 18, centres=None, max_steps: int = 2_000_000_000) -> list[np.ndarray]:
    """Shortest-path rings of a bond graph: every ring of at most ``max_size`` atoms with no shortcut.

    A ring (a closed path through distinct atoms) is counted when any two of its atoms are as far apart
    on the whole graph as along the ring (the shorter way round), i.e. no path across it is shorter:
    the *shortest-path rings* of Franzblau, PRB 44, 4925 (1991), in the form counted by matscipy's
    ``matscipy.rings.ring_statistics`` (also called primitive rings; Yuan & Cormack, Comput. Mater. Sci.
    24, 343 (2002)).  Each ring is counted once, whichever atom it is found from.  Ring size is the number
    of atoms (= bonds).  The graph is taken as it is: on a periodic graph, a loop that winds around the
    cell counts as a ring; use cells more than twice as wide as the largest ring.

    Parameters
    ----------
    off, idx : CSR adjacency (:func:`bond_graph`), symmetric
    max_size : int
        Largest ring searched [atoms]; every ring up to it is found (the count of a size does not
        depend on ``max_size``).
    centres : array of int or bool mask, optional
        Keep only rings with at least one of these atoms (default all rings).
    max_steps : int
        Bound on the search (bond steps walked, ~1 ns each); a graph so dense that it needs more raises
        an :class:`AetbenchError` instead of running for hours.

    Returns
    -------
    list of int arrays
        Atom indices of each ring in ring order (smallest atom first), sorted by (size, atoms).
    """
    if not 3 <= int(max_size) <= 64:
        raise AetbenchError(f"max_size: expected 3-64 atoms, got {max_size}")
    off = np.ascontiguousarray(off, np.int64)
    idx = np.ascontiguousarray(idx, np.int64)
    n = len(off) - 1
    if n < 3:
        return []
    boff, bnb, bd = _balls(off, idx, max(int(max_size) // 2 - 1, 0))
    rows, steps = _rings_kernel(off, idx, int(max_size), boff, bnb, bd, int(max_steps))
    if steps < 0:
        raise AetbenchError(f"ring search: more than {max_steps:.3g} bond steps for {n} atoms with "
                            f"{len(idx) / max(n, 1):.1f} bonds each on average; narrow bond_window_A or "
                            f"lower the largest ring size (now {max_size} atoms)")
    if centres is not None:
        c = np.asarray(centres)
        mask = c.astype(bool) if c.dtype == bool else np.isin(np.arange(n), c.astype(np.int64))
        if mask.shape != (n,):
            raise AetbenchError(f"centres: expected a mask of {n} atoms or atom indices, got shape {c.shape}")
        mask = np.append(mask, False)  # padding (-1) → False
        rows = rows[mask[rows].any(axis=1)]
    rings = [r[r >= 0] for r in rows]
    rings.sort(key=lambda r: (len(r), tuple(np.sort(r))))
    return rings


def ring_size_counts(off, idx, *, max_size: int = 18, centres=None) -> dict[int, int]:
    """Number of shortest-path rings per size [atoms] (:func:`find_rings`), sizes with rings only, ascending."""
    sizes, counts = np.unique([len(r) for r in find_rings(off, idx, max_size=max_size, centres=centres)],
                              return_counts=True)
    return {int(k): int(v) for k, v in zip(sizes, counts)}


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
                    pair=("Si", "O"), shell_A: float = 0.0) -> pd.DataFrame:
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
    rings = find_rings(off, idx, max_size=sizes[-1], centres=centres)
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


def compare_rings_by_cell(details: dict, **kw) -> dict[str, pd.DataFrame]:
    """:func:`compare_rings` of every scored cell whose ground truth is an Si–O network (holds Si and O).

    ``details`` maps a cell tag to ``(case, score details)`` (the run's details: ``.truth`` and ``.model``);
    keyword arguments go to :func:`ring_statistics`.  Returns tag → table, in the order of ``details``.
    """
    out = {}
    for tag, (_case, d) in details.items():
        if {"Si", "O"} <= set(map(str, d.truth.elements)):
            out[tag] = compare_rings(d.truth, d.model, **kw)
    return out


_COMPARE = ("n_rings_truth", "n_rings_traced")
_SINGLE = ("n_rings",)


def ring_table_kind(df: pd.DataFrame) -> str:
    """``"compare"`` for a :func:`compare_rings` table, ``"single"`` for a :func:`ring_statistics` table."""
    if "size_atoms" not in df.columns:
        raise AetbenchError("ring table: expected a 'size_atoms' column (from compare_rings or ring_statistics)")
    if all(c in df.columns for c in _COMPARE):
        return "compare"
    if all(c in df.columns for c in _SINGLE):
        return "single"
    raise AetbenchError("ring table: expected n_rings_truth/n_rings_traced (compare_rings) or n_rings "
                        "(ring_statistics) columns")


def ring_totals(df: pd.DataFrame) -> dict:
    """Totals over all ring sizes of a :func:`compare_rings` or :func:`ring_statistics` table.

    Counts are summed; fractions are recomputed from the summed counts (NaN where the denominator is 0):
    compare tables give ``n_rings_truth``, ``good_fraction_truth``, ``n_rings_traced``, ``n_good_traced``,
    ``good_fraction_traced`` and ``good_recovered``; single tables ``n_rings``, ``n_good``,
    ``good_fraction`` and ``fraction`` (1, the whole).
    """
    if ring_table_kind(df) == "compare":
        nt, gt = int(df["n_rings_truth"].sum()), int(df["n_good_truth"].sum())
        nr, gr = int(df["n_rings_traced"].sum()), int(df["n_good_traced"].sum())
        return {"n_rings_truth": nt, "good_fraction_truth": gt / nt if nt else np.nan, "n_rings_traced": nr,
                "n_good_traced": gr, "good_fraction_traced": gr / nr if nr else np.nan,
                "good_recovered": gr / gt if gt else np.nan}
    n, g = int(df["n_rings"].sum()), int(df["n_good"].sum())
    return {"n_rings": n, "n_good": g, "good_fraction": g / n if n else np.nan, "fraction": 1.0 if n else np.nan}
