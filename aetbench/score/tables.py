"""Comparison tables computed from a run's score table, for the report to render: our rows beside the published
numbers (:func:`with_published`) and every method's precision against the physical limit (:func:`physical_limit`).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..published import published

__all__ = ["with_published", "physical_limit", "convergence_table"]


def with_published(scores: pd.DataFrame) -> pd.DataFrame:
    """Paper-protocol rows with the published rate/precision beside ours (where a reference exists)."""
    df = scores[scores["protocol"] == "paper"].copy()
    if "reference" not in df or df.empty:
        return pd.DataFrame()
    df = df[df["reference"].astype(object).fillna("").astype(str) != ""]
    if df.empty:
        return pd.DataFrame()
    df = df[[_belongs(r, m) for r, m in zip(df["reference"].astype(str), df["method"].astype(str))]]
    if df.empty:
        return pd.DataFrame()
    pub = [published(r, d, e, m) for r, d, e, m in zip(df["reference"], df["dose"], df["element"], df["method"])]
    df["paper_rate_pct"] = [p[0] if p else np.nan for p in pub]
    df["paper_precision_pm"] = [p[1] if p and p[1] is not None else np.nan for p in pub]
    cols = ["structure", "dose", "method", "element", "rate_pct", "paper_rate_pct", "precision_pm",
            "paper_precision_pm"]
    if "bound_pm" in df:  # the published precision against the same physical limit as ours
        df["paper_over_bound"] = df["paper_precision_pm"] / df["bound_pm"]
        cols += ["bound_pm", "precision_over_bound", "paper_over_bound"]
    return df[cols]


def _belongs(reference: str, method: str) -> bool:
    """Whether a published row (``"<method>/<dataset>"``) belongs beside our ``method``: the same method, or one of
    its named variants (``liao2026-robust``, ``liao2026-pty``).  SIRT, FBP or another group's method never gets the
    paper's numbers beside it.

    >>> _belongs("liao2026/aSi208", "liao2026"), _belongs("liao2026/aSi208", "liao2026-robust")
    (True, True)
    >>> _belongs("liao2026/aSi208", "sirt"), _belongs("busch2026/CoPdPt", "liao2026")
    (False, False)
    """
    owner = reference.split("/", 1)[0]
    return bool(owner) and (method == owner or method.startswith(owner + "-"))


def physical_limit(scores: pd.DataFrame) -> pd.DataFrame:
    """One row per structure × dose × element: the bound [pm] and every method's precision / bound (paper protocol
    when scored, else the first protocol), with the published precision's ratio where the paper has a row."""
    if "bound_pm" not in scores or scores["bound_pm"].isna().all():
        return pd.DataFrame()
    proto = "paper" if "paper" in set(scores["protocol"]) else scores["protocol"].iloc[0]
    df = scores[scores["protocol"] == proto]
    out = df.groupby(["structure", "dose", "element"], sort=True)["bound_pm"].first().reset_index()
    out = out.rename(columns={"bound_pm": "physical_limit_pm"})
    if "model_floor_pm" in df and np.isfinite(df["model_floor_pm"].to_numpy(float)).any():
        # the data's own model check: z-std of per-projection localisations (1 = the bound's model holds) and the
        # floor it implies; sqrt(limit² + floor²) is what an atom-sum estimator can reach on these data
        mc = df.groupby(["structure", "dose", "element"], sort=True)[["model_z_std", "model_floor_pm"]].first()
        keys = list(zip(out["structure"], out["dose"], out["element"]))
        out["model z-std"] = [mc["model_z_std"].get(k, np.nan) for k in keys]
        floor = np.array([mc["model_floor_pm"].get(k, np.nan) for k in keys], float)
        out["limit ⊕ model floor pm"] = np.hypot(out["physical_limit_pm"].to_numpy(float), floor)
    for m in dict.fromkeys(df["method"]):
        ratio = df[df["method"] == m].set_index(["structure", "dose", "element"])["precision_over_bound"]
        out[f"{m} / limit"] = [ratio.get(k, np.nan) for k in zip(out["structure"], out["dose"], out["element"])]
    if "reference" in df:
        refs = df.groupby(["structure", "dose", "element"])["reference"].first().astype(object).fillna("").astype(str)
        pub = [published(refs.get(k, ""), k[1], k[2]) if refs.get(k, "") else None
               for k in zip(out["structure"], out["dose"], out["element"])]
        vals = np.array([p[1] if p and p[1] is not None else np.nan for p in pub], float)
        if np.isfinite(vals).any():
            out["paper / limit"] = vals / out["physical_limit_pm"].to_numpy()
    return out


def convergence_table(convergence: dict) -> pd.DataFrame:
    """Per ``(structure, dose, method)`` key of ``convergence`` (its R-factor after each iteration): the number of
    iterations, the last R-factor and ``iterations_to_1pct``, the first iteration within 1 % of the last value.

    Examples
    --------
    >>> convergence_table({("p", 8e3, "m"): [0.5, 0.3, 0.201, 0.2]})[["iterations", "iterations_to_1pct"]].values.tolist()
    [[4, 3]]
    """
    rows = []
    for (structure, dose, method), hist in convergence.items():
        h = np.asarray(hist, float)
        last = float(h[-1])
        within = np.flatnonzero(h <= last * 1.01)
        rows.append({"structure": structure, "dose": dose, "method": method, "iterations": len(h),
                     "r_factor": last, "iterations_to_1pct": int(within[0]) + 1 if within.size else len(h)})
    return pd.DataFrame(rows)
