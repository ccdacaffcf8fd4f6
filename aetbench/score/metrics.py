"""The two scoring protocols and their per-element metrics.

``paper`` (Liao et al. 2026)
    Both models centred on their own centroid.  Per element e: every traced atom
    labelled e is paired with its nearest ground-truth atom of e, accepted within
    the cutoff (not one-to-one); a translation per element is iterated
    (shift ← shift − mean residual, until the update is < 1e-4 Å).  Rate =
    accepted traced atoms / ground-truth atoms of e (may exceed 100 %).  Of the
    traced atoms of e that are not accepted, those within the cutoff of a truth
    atom of another element count as ``wrong_element``, the rest as
    ``false_positives`` (the paper does not penalise either).
``strict``
    Both models centred; one translation for all atoms (same iteration, all
    elements pooled, element-blind nearest neighbours); optimal one-to-one
    assignment within the cutoff, element-blind (minimum total distance plus
    cutoff/2 per unpaired atom, see :func:`aetbench.score.match.assign_one_to_one`).
    A truth atom is identified when its partner carries its element.
    ``false_positives`` = traced atoms of e without a partner, ``wrong_element`` =
    traced atoms of e whose partner is another element.

Precision [pm] = 100 × sqrt(Σ_xyz var(residual, ddof=1)) of the identified pairs,
residual = traced + shift − truth [Å].
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd
from scipy.spatial import cKDTree

from ..types import AtomicModel
from .match import assign_one_to_one, fit_shift, nearest_pairs

__all__ = ["ScoreDetails", "ROW_COLUMNS", "precision_pm", "f1_pct", "paper_protocol", "strict_protocol",
           "sort_elements", "NONE"]

#: columns of the table returned by :func:`aetbench.score.score`
ROW_COLUMNS = ["element", "protocol", "cutoff", "n_truth", "n_traced", "identified", "rate_pct", "precision_pm",
               "false_positives", "wrong_element", "recall_pct", "f1_pct"]

#: row/column label of the confusion matrix for "no partner"
NONE = "(none)"


@dataclass(frozen=True, eq=False)
class ScoreDetails:
    """Everything behind a score table.

    Attributes
    ----------
    protocol : str
        ``"paper"`` or ``"strict"``.
    cutoff : float
        Acceptance distance [Å].
    table : pandas.DataFrame
        The per-element rows (:data:`ROW_COLUMNS`), as returned by ``score``.
    model, truth : AtomicModel
        Traced model (centred, shift applied; per element for ``paper``) and centred truth [Å].
    pairs : ndarray of int, shape (M, 2)
        Identified pairs (index into ``model``, index into ``truth``).
    residuals : ndarray, shape (M, 3)
        ``model − truth`` of the identified pairs [Å], after the shift.
    shift : dict of str → ndarray (paper) or ndarray, shape (3,) (strict)
        Fitted translation [Å] added to the centred model.
    confusion : pandas.DataFrame
        Counts, rows = partner's truth element, columns = traced element, with a
        ``"(none)"`` row (traced atoms without partner) and column (truth atoms never paired).
    recall, precision, f1 : dict of str → float
        Per truth element, in percent: identified / n_truth, identified / n_traced, harmonic mean.
    """

    protocol: str
    cutoff: float
    table: pd.DataFrame
    model: AtomicModel
    truth: AtomicModel
    pairs: np.ndarray
    residuals: np.ndarray
    shift: object
    confusion: pd.DataFrame
    recall: dict = field(default_factory=dict)
    precision: dict = field(default_factory=dict)
    f1: dict = field(default_factory=dict)


def sort_elements(symbols) -> list[str]:
    """Distinct symbols sorted by atomic number (unknown symbols last, alphabetically)."""
    from ase.data import atomic_numbers

    return sorted(set(symbols), key=lambda s: (atomic_numbers.get(s, 10_000), s))


def precision_pm(residuals) -> float:
    """Precision [pm] = 100 × sqrt(Σ_xyz sample variance (ddof 1)) of residuals (M, 3) [Å]; NaN for M < 2."""
    r = np.asarray(residuals, dtype=float).reshape(-1, 3)
    if r.shape[0] < 2:
        return float("nan")
    return float(100.0 * np.sqrt(r.var(axis=0, ddof=1).sum()))


def f1_pct(identified: int, n_truth: int, n_traced: int) -> tuple[float, float, float]:
    """(recall, precision, F1) in percent; 0 where undefined."""
    rec = 100.0 * identified / n_truth if n_truth else 0.0
    pre = 100.0 * identified / n_traced if n_traced else 0.0
    f1 = 2 * rec * pre / (rec + pre) if rec + pre > 0 else 0.0
    return rec, pre, f1


def _row(e, protocol, cutoff, n_truth, n_traced, identified, prec, fp, wrong) -> dict:
    """One score row; ``recall_pct`` and ``f1_pct`` only for the one-to-one (strict) protocol, where identified
    atoms are at most min(n_truth, n_traced): the paper's many-to-one count has no detection precision (NaN)."""
    if protocol == "strict":
        rec, _, f1 = f1_pct(identified, n_truth, n_traced)
    else:
        rec = f1 = float("nan")
    return {"element": e, "protocol": protocol, "cutoff": float(cutoff), "n_truth": int(n_truth),
            "n_traced": int(n_traced), "identified": int(identified),
            "rate_pct": 100.0 * identified / n_truth if n_truth else float("nan"),
            "precision_pm": prec, "false_positives": int(fp), "wrong_element": int(wrong),
            "recall_pct": rec, "f1_pct": f1}


def _confusion(truth_el_of_pair, model_el_of_pair, unmatched_model_el, unmatched_truth_el, rows, cols):
    conf = pd.DataFrame(0, index=pd.Index(rows + [NONE], name="truth"),
                        columns=pd.Index(cols + [NONE], name="traced"), dtype=int)
    for (te, me), n in Counter(zip(np.asarray(truth_el_of_pair, dtype=str).tolist(),
                                   np.asarray(model_el_of_pair, dtype=str).tolist())).items():
        conf.loc[te, me] += n
    for me, n in zip(*np.unique(np.asarray(unmatched_model_el, dtype=str), return_counts=True)):
        conf.loc[NONE, me] += int(n)
    for te, n in zip(*np.unique(np.asarray(unmatched_truth_el, dtype=str), return_counts=True)):
        conf.loc[te, NONE] += int(n)
    return conf


def _finish(protocol, cutoff, rows, model, truth, pairs, residuals, shift, conf) -> ScoreDetails:
    table = pd.DataFrame(rows, columns=ROW_COLUMNS)
    rec, pre, f1 = {}, {}, {}
    for r in rows:
        rec[r["element"]], pre[r["element"]], f1[r["element"]] = f1_pct(r["identified"], r["n_truth"], r["n_traced"])
    return ScoreDetails(protocol=protocol, cutoff=float(cutoff), table=table, model=model, truth=truth,
                        pairs=np.asarray(pairs, dtype=np.intp).reshape(-1, 2),
                        residuals=np.asarray(residuals, dtype=float).reshape(-1, 3), shift=shift,
                        confusion=conf, recall=rec, precision=pre, f1=f1)


def paper_protocol(model: AtomicModel, truth: AtomicModel, cutoff: float, *, tol: float = 1e-4) -> ScoreDetails:
    """Score with the paper's per-element, many-to-one protocol (inputs already centred, non-atoms dropped)."""
    elements = sort_elements(truth.elements.tolist())
    mpos = model.positions.copy()
    rows, pairs, resid, shifts = [], [], [], {}
    pair_t_el, pair_m_el, lost_m_el = [], [], []
    truth_hit = np.zeros(len(truth), dtype=bool)
    for e in elements:
        a = np.flatnonzero(model.elements == e)
        b = np.flatnonzero(truth.elements == e)
        tree = cKDTree(truth.positions[b])
        shift = fit_shift(model.positions[a], truth.positions[b], cutoff, tol=tol, truth_tree=tree)
        shifts[e] = shift
        mpos[a] += shift
        i, j = nearest_pairs(model.positions[a], tree, cutoff, shift)
        r = model.positions[a[i]] + shift - truth.positions[b[j]]
        pairs.append(np.stack([a[i], b[j]], axis=1))
        resid.append(r)
        truth_hit[b[j]] = True
        pair_t_el += [e] * i.size
        pair_m_el += [e] * i.size
        # not accepted: near a truth atom of another element (wrong element) or nothing (false positive)
        rest = np.setdiff1d(np.arange(a.size), i)
        other = np.flatnonzero(truth.elements != e)
        wrong = 0
        if rest.size and other.size:
            wi, wj = nearest_pairs(model.positions[a[rest]], cKDTree(truth.positions[other]), cutoff, shift)
            wrong = wi.size
            truth_hit[other[wj]] = True
            pair_t_el += truth.elements[other[wj]].tolist()
            pair_m_el += [e] * wi.size
            lost_m_el += [e] * (rest.size - wi.size)
        else:
            lost_m_el += [e] * rest.size
        rows.append(_row(e, "paper", cutoff, b.size, a.size, i.size, precision_pm(r), rest.size - wrong, wrong))
    extra = [e for e in sort_elements(model.elements.tolist()) if e not in elements]
    lost_m_el += [e for e in model.elements.tolist() if e in extra]
    conf = _confusion(pair_t_el, pair_m_el, lost_m_el, truth.elements[~truth_hit], elements, elements + extra)
    shifted = replace(model, positions=mpos)
    P = np.concatenate(pairs) if pairs else np.zeros((0, 2), dtype=np.intp)
    R = np.concatenate(resid) if resid else np.zeros((0, 3))
    return _finish("paper", cutoff, rows, shifted, truth, P, R, shifts, conf)


def strict_protocol(model: AtomicModel, truth: AtomicModel, cutoff: float, *, tol: float = 1e-4) -> ScoreDetails:
    """Score with one shared shift and a one-to-one assignment (inputs already centred, non-atoms dropped)."""
    elements = sort_elements(truth.elements.tolist())
    shift = fit_shift(model.positions, truth.positions, cutoff, tol=tol)
    shifted = model.translated(shift)
    mi, tj = assign_one_to_one(shifted.positions, truth.positions, cutoff)
    me, te = model.elements[mi], truth.elements[tj]
    same = me == te
    rows = []
    for e in elements:
        n_truth = int(np.sum(truth.elements == e))
        n_traced = int(np.sum(model.elements == e))
        ident = same & (te == e)
        matched_e = me == e
        r = shifted.positions[mi[ident]] - truth.positions[tj[ident]]
        rows.append(_row(e, "strict", cutoff, n_truth, n_traced, int(ident.sum()), precision_pm(r),
                         n_traced - int(matched_e.sum()), int(np.sum(matched_e & ~same))))
    P = np.stack([mi[same], tj[same]], axis=1)
    R = shifted.positions[mi[same]] - truth.positions[tj[same]]
    m_free = np.ones(len(model), dtype=bool)
    m_free[mi] = False
    t_free = np.ones(len(truth), dtype=bool)
    t_free[tj] = False
    extra = [e for e in sort_elements(model.elements.tolist()) if e not in elements]
    conf = _confusion(te, me, model.elements[m_free], truth.elements[t_free], elements, elements + extra)
    return _finish("strict", cutoff, rows, shifted, truth, P, R, np.asarray(shift), conf)
