"""The regression gate: does a candidate run score worse than a baseline, beyond what noise explains?

``aetbench validate CANDIDATE --baseline BASELINE`` compares two runs metric by metric, row by row
(structure × dose × method × element × protocol).  Either side may be a report folder (its ``scores.csv``), a
``scores.csv`` file or a stored baseline (JSON written by :func:`write_baseline`).

Metrics and their good direction: ``rate_pct`` (higher), ``precision_pm`` (lower), ``f1_pct`` (higher, strict
protocol only).  A change in the bad direction larger than the row's tolerance is a *regression*.

Tolerances, by one rule:

- from the measured seed-to-seed spread when the baseline was made from several noise realisations (a
  ``seed`` column, as ``aetbench compare`` writes): 2 × the sample standard deviation of the metric over the
  seeds, never below the stated floor;
- else the stated per-metric floor (:data:`TOLERANCE`): half an atom of the element for the rates
  (50 / n_truth %: one atom lost fails), 2 % of the baseline precision (at least 0.1 pm);
- ``--tolerance METRIC=VALUE`` states a tolerance for every row of a metric instead (0 = any change).

An ``accepted-changes`` file (TOML, after abTEM's benchmark harness) records deliberate changes::

    [[accepted]]
    metric = "precision_pm"          # required
    reason = "RESIRE step per projection length (issue 19)"   # required
    structure = "aSi208"             # optional filters: dose, method, element, protocol
    method = "liao2026"

A regression matched by an entry is reported as accepted and does not fail the gate.

Examples
--------
>>> import pandas as pd
>>> base = pd.DataFrame([{"structure": "s", "dose": 1e4, "method": "m", "element": "Si", "protocol": "paper",
...                       "n_truth": 100, "rate_pct": 99.0, "precision_pm": 10.0}])
>>> cand = base.assign(precision_pm=12.0)
>>> r = compare_runs(cand, baseline_from_scores(base))
>>> r.failed, r.regressions[0].line()
(True, 'precision_pm of s dose 10000 m Si (paper): 10 → 12 pm (+2 pm, tolerance 0.2 pm)')
"""
from __future__ import annotations

import json
import math
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ..io.files import AetbenchError, atomic_write_text

__all__ = ["KEY", "METRICS", "TOLERANCE", "Change", "GateResult", "read_scores", "baseline_from_scores",
           "write_baseline", "read_baseline", "read_accepted", "compare_runs"]

KEY = ("structure", "dose", "method", "element", "protocol")
#: metric → (+1 when higher is better, −1 when lower is better, unit)
METRICS = {"rate_pct": (+1, "%"), "precision_pm": (-1, "pm"), "f1_pct": (+1, "%")}
#: the stated floors (see the module docstring): rates half an atom, precision 2 % relative with a 0.1 pm minimum
TOLERANCE = {"rate_atoms": 0.5, "precision_rel": 0.02, "precision_min_pm": 0.1}
FORMAT = "aetbench-baseline/1"


@dataclass(frozen=True)
class Change:
    """One metric of one row that moved in the bad direction beyond its tolerance."""

    key: tuple
    metric: str
    before: float
    after: float
    tolerance: float
    accepted_reason: str | None = None

    @property
    def delta(self) -> float:
        return self.after - self.before

    def line(self) -> str:
        s, d, m, e, p = self.key
        unit = METRICS[self.metric][1]
        after = "missing" if not math.isfinite(self.after) else f"{self.after:.4g}"
        delta = "" if not math.isfinite(self.after) else f"{self.delta:+.3g} {unit}, "
        return (f"{self.metric} of {s} dose {float(d):g} {m} {e} ({p}): {self.before:.4g} → {after} {unit} "
                f"({delta}tolerance {self.tolerance:.3g} {unit})")


@dataclass
class GateResult:
    compared: int = 0
    regressions: list[Change] = field(default_factory=list)
    accepted: list[Change] = field(default_factory=list)
    improved: list[Change] = field(default_factory=list)
    missing: list[tuple] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        return bool(self.regressions or self.missing)

    def summary(self) -> str:
        return (f"validate: {self.compared} metrics compared: {len(self.regressions)} regressions, "
                f"{len(self.missing)} rows missing, {len(self.accepted)} accepted changes, "
                f"{len(self.improved)} improved beyond tolerance")


def _with_derived(df: pd.DataFrame) -> pd.DataFrame:
    """Add strict-protocol recall/F1 to reports written before those columns existed."""
    df = df.copy()
    if "f1_pct" not in df and {"identified", "n_truth", "n_traced"} <= set(df):
        i, nt, nm = (df[c].astype(float) for c in ("identified", "n_truth", "n_traced"))
        rec = 100 * i / nt.where(nt > 0)
        pre = 100 * i / nm.where(nm > 0)
        f1 = (2 * rec * pre / (rec + pre)).where(rec + pre > 0, 0.0)
        df["f1_pct"] = f1.where(df["protocol"] == "strict")
    return df


def read_scores(path) -> pd.DataFrame:
    """The score rows of a report folder, a ``scores.csv`` or a baseline JSON (its rows)."""
    p = Path(path)
    if p.is_dir():
        p = p / "scores.csv"
        if not p.is_file():
            raise AetbenchError(f"{path}: not a report folder (no scores.csv)")
    if not p.is_file():
        raise AetbenchError(f"{path}: no such report folder, scores.csv or baseline file")
    if p.suffix == ".json":
        return pd.DataFrame(read_baseline(p)["rows"])
    try:
        df = pd.read_csv(p)
    except (OSError, ValueError, pd.errors.ParserError) as e:
        raise AetbenchError(f"{p}: cannot read the scores ({e.__class__.__name__}: {e})") from None
    missing = [c for c in KEY if c not in df]
    if missing:
        raise AetbenchError(f"{p}: not a scores table (missing columns: {', '.join(missing)})")
    return _with_derived(df)


def _floor(metric: str, value: float, n_truth: float) -> float:
    if metric in ("rate_pct", "f1_pct"):
        return 100.0 * TOLERANCE["rate_atoms"] / n_truth if n_truth and n_truth > 0 else 1.0
    return max(TOLERANCE["precision_rel"] * abs(value), TOLERANCE["precision_min_pm"])


def baseline_from_scores(df: pd.DataFrame, *, source: str = "") -> dict:
    """A baseline record from score rows: the mean of each metric over seeds, and its tolerance (module rule)."""
    df = _with_derived(df)
    rows = []
    for key, g in df.groupby(list(KEY), sort=True, dropna=False):
        row = dict(zip(KEY, key))
        row["dose"] = float(row["dose"])
        n_truth = float(g["n_truth"].iloc[0]) if "n_truth" in g else float("nan")
        row["n_truth"] = n_truth
        seeds = int(g["seed"].nunique()) if "seed" in g else 1
        row["seeds"] = seeds
        tol = {}
        for m in METRICS:
            if m not in g:
                continue
            vals = g[m].astype(float).to_numpy()
            vals = vals[np.isfinite(vals)]
            if vals.size == 0:
                continue
            row[m] = float(vals.mean())
            t = _floor(m, row[m], n_truth)
            if seeds > 1 and vals.size > 1:
                t = max(t, 2.0 * float(vals.std(ddof=1)))
            tol[m] = t
        row["tolerance"] = tol
        rows.append(row)
    return {"format": FORMAT, "source": source, "rule": "2 x seed-to-seed sd when seeds > 1, never below the floor: "
            "rates half an atom (50/n_truth %), precision max(2 %, 0.1 pm)", "rows": rows}


def write_baseline(path, baseline: dict) -> None:
    atomic_write_text(path, json.dumps(baseline, indent=1, sort_keys=True) + "\n")


def read_baseline(path) -> dict:
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError) as e:
        raise AetbenchError(f"{path}: cannot read the baseline ({e.__class__.__name__}: {e})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT or not isinstance(data.get("rows"), list):
        raise AetbenchError(f"{path}: not an aetbench baseline (expected format {FORMAT!r} with rows)")
    return data


def read_accepted(path) -> list[dict]:
    """Entries of an accepted-changes TOML file (``[[accepted]]`` tables with ``metric`` and ``reason``)."""
    try:
        data = tomllib.loads(Path(path).read_text())
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise AetbenchError(f"{path}: cannot read the accepted changes ({e.__class__.__name__}: {e})") from None
    entries = data.get("accepted", [])
    if not isinstance(entries, list):
        raise AetbenchError(f"{path}: accepted: expected a list of [[accepted]] tables")
    for i, e in enumerate(entries):
        if not isinstance(e, dict) or e.get("metric") not in METRICS or not str(e.get("reason", "")).strip():
            raise AetbenchError(f"{path}: accepted[{i}]: needs metric (one of {', '.join(METRICS)}) and a reason")
        unknown = set(e) - {"metric", "reason", *KEY}
        if unknown:
            raise AetbenchError(f"{path}: accepted[{i}]: unknown keys {', '.join(sorted(unknown))} "
                                f"(known: metric, reason, {', '.join(KEY)})")
    return entries


def _matches(entry: dict, key: tuple, metric: str) -> bool:
    if entry["metric"] != metric:
        return False
    for k, v in zip(KEY, key):
        if k in entry:
            if k == "dose":
                if not math.isclose(float(entry[k]), float(v), rel_tol=1e-6):
                    return False
            elif str(entry[k]) != str(v):
                return False
    return True


def compare_runs(candidate: pd.DataFrame, baseline: dict, *, accepted: list[dict] | None = None,
                 tolerances: dict[str, float] | None = None) -> GateResult:
    """Compare ``candidate`` score rows with a ``baseline`` record; see the module docstring for the rules.

    A candidate with several seeds is compared by its mean over seeds.
    """
    cand = baseline_from_scores(candidate)
    by_key = {tuple(r[k] for k in KEY): r for r in cand["rows"]}
    res = GateResult()
    for b in baseline["rows"]:
        key = tuple(b[k] for k in KEY)
        key = key[:1] + (float(key[1]),) + key[2:]
        c = by_key.get(key)
        if c is None:
            res.missing.append(key)
            continue
        for m, (sign, _) in METRICS.items():
            if m not in b or b[m] is None or not math.isfinite(float(b[m])):
                continue
            before = float(b[m])
            after = float(c.get(m, float("nan")))
            tol = float((tolerances or {}).get(m, b.get("tolerance", {}).get(m, _floor(m, before, b.get("n_truth")))))
            res.compared += 1
            worse = (before - after) * sign if math.isfinite(after) else math.inf
            if worse > tol + 1e-12:
                reason = next((e["reason"] for e in (accepted or []) if _matches(e, key, m)), None)
                ch = Change(key, m, before, after, tol, reason)
                (res.accepted if reason else res.regressions).append(ch)
            elif -worse > tol + 1e-12:
                res.improved.append(Change(key, m, before, after, tol))
    return res
