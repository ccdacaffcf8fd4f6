"""The per-run report: ``report.md`` with tables, next to ``scores.csv`` and PNG figures.

This module only renders: the numbers it shows come from :mod:`aetbench.score` (the comparison tables of
:mod:`aetbench.score.tables`, the ring statistics of :mod:`aetbench.score.rings`).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ..io.files import atomic_write_path, atomic_write_text
from ..score.tables import convergence_table, physical_limit, with_published  # computed in score/; rendered here

__all__ = ["write_report", "markdown_table", "with_published", "physical_limit"]


def markdown_table(df: pd.DataFrame, floatfmt: str = "{:.2f}") -> str:
    """Render a DataFrame as a GitHub-flavoured markdown table."""
    if df.empty:
        return "_(no rows)_\n"
    cols = list(df.columns)

    def fmt(v):
        if isinstance(v, (float, np.floating)):
            if np.isnan(v):
                return "–"
            if abs(v) >= 1e3 and float(v).is_integer():
                return f"{v:.3g}" if abs(v) >= 1e4 else f"{v:.0f}"
            return floatfmt.format(v)
        return str(v)

    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join(" --- " for _ in cols) + "|"]
    for row in df.itertuples(index=False):
        lines.append("| " + " | ".join(fmt(v) for v in row) + " |")
    return "\n".join(lines) + "\n"


def write_report(out: Path, scenario, scores: pd.DataFrame, stages: pd.DataFrame, details: dict,
                 warnings: list[str] | None = None, geometry: pd.DataFrame | None = None,
                 convergence: dict | None = None) -> Path:
    """Write ``report.md`` and the figures into ``out``; returns the report path.

    ``warnings`` (one line each, e.g. from :func:`aetbench.preprocess.checks.check_tilt_series_data` or
    :func:`aetbench.score.spread_warning`) head the report under a "Warnings" heading, above every table, so they
    cannot be missed.  ``geometry`` (:func:`aetbench.score.geometry.geometry_rows`) adds the projection
    geometry each method recovered against the simulated truth.
    """
    from .plots import plot_error_histogram, plot_model_vs_truth, plot_rate_precision

    out = Path(out)
    parts = [f"# aetbench report — {scenario.name}\n"]
    if scenario.description:
        parts.append(scenario.description + "\n")
    parts.append(f"Scenario file: `{scenario.path}`; methods: {', '.join(scenario.methods)}; "
                 f"cutoff {scenario.scoring.cutoff:g} Å; seed {scenario.seed}.\n")
    if warnings:
        parts.append("\n## Warnings\n\n" + "".join(f"- ⚠ **{w}**\n" for w in dict.fromkeys(warnings)))
    figures = []
    if not scores.empty:
        base = ["structure", "dose", "method", "element", "n_truth", "n_traced", "identified", "rate_pct",
                "precision_pm", "false_positives", "wrong_element"]
        if "bound_pm" in scores:
            base[base.index("precision_pm") + 1:base.index("precision_pm") + 1] = ["bound_pm", "precision_over_bound"]
        for protocol in scenario.scoring.protocol:
            extra = ["recall_pct", "f1_pct"] if protocol == "strict" else []  # one-to-one only
            cols = [c for c in base + extra + ["seconds", "compile_s", "cached"] if c in scores]
            sub = scores[scores["protocol"] == protocol][cols]
            title = {"paper": "Paper protocol (per-element nearest neighbour, not one-to-one; Liao et al. 2026)",
                     "strict": "Strict protocol (one translation, one-to-one assignment, same element required)"}
            parts.append(f"\n## {title.get(protocol, protocol)}\n\n" + markdown_table(sub))
        limit = physical_limit(scores)
        if not limit.empty:
            parts.append("\n## Physical limit (joint Cramér–Rao bound on 3D positions at the truth)\n\n"
                         "RMS over the atoms of each element of sqrt(trace of the atom's 3×3 block of the inverse "
                         "Fisher information), pm; the tier's atom profile on the linear tier, else a profile fitted "
                         "to the tilt series (aetbench.score.bound). Ratios: precision / limit (1 = at the limit). "
                         "`model z-std`: the spread of per-projection atom localisations at the truth against the "
                         "counting noise (1 = the bound's atom-sum model explains the data; aetbench.score.model_check); "
                         "above 1 the data hold displacements or profile errors no atom-sum model removes, and "
                         "`limit ⊕ model floor` is what such an estimator can reach.\n\n"
                         + markdown_table(limit))
        pub = with_published(scores)
        if not pub.empty:
            parts.append("\n## Beside the published numbers (paper protocol)\n\n" + markdown_table(pub))
        for protocol in scenario.scoring.protocol:
            if scores["dose"].nunique() >= 1:
                png = f"rate_precision_{protocol}.png"
                plot_rate_precision(scores, out / png, protocol=protocol)
                figures.append(png)
    if geometry is not None and not geometry.empty:
        parts.append("\n## Projection geometry against the simulated truth\n\nRMS error of the Euler angles "
                     "[deg] and of the drift [Å, per axis] over the projections: `nominal` is what the method was "
                     "given (the measured angles, no drift correction), `found` what it used after alignment and "
                     "angle refinement. Common phi and theta offsets (a turned object) and shifts a 3-D "
                     "translation explains are gauges, removed first (aetbench.score.geometry). `rotation_rms_deg` is the "
                     "rms angle between found and true orientation, defined also at theta = ±90°, where phi and "
                     "psi turn about one axis and only their sum or difference can be found.\n\n"
                     + markdown_table(geometry, "{:.3f}"))
    if convergence:
        parts.append(_convergence_section(out, convergence))
        figures.append("r_factor.png")
    if not stages.empty:
        parts.append("\n## Seconds per stage\n\n`seconds` / `method_s` is the method alone; `load_s` the tilt series "
                     "(simulated or read from the cache) and `compile_s` numba's compilation are apart from it. "
                     "`cached` rows repeat the timings of the run that computed them.\n\n"
                     + markdown_table(stages.fillna(0.0), "{:.2f}"))
    if details:
        res = {tag: d.residuals for tag, (case, d) in details.items()}
        plot_error_histogram(res, out / "position_errors.png")
        figures.append("position_errors.png")
        for tag, (case, d) in details.items():  # every cell, named by its method and dose
            png = f"model_vs_truth_{_safe(tag)}.png"
            method = tag.split(f"_dose{case.dose:g}_", 1)[-1]  # tags are <structure>_dose<dose>_<method>
            plot_model_vs_truth(d, out / png, title=f"{case.structure}, {method}, dose {case.dose:g} e/Å²")
            figures.append(png)
    ring_parts, ring_figs = _ring_sections(out, details)
    if ring_parts:
        parts.append("\n## Ring statistics (silica: Si–O bonds, shortest-path rings; ground truth vs traced)\n\n"
                     + "".join(ring_parts))
        figures.extend(ring_figs)
    if figures:
        parts.append("\n## Figures\n\n" + "\n".join(f"![{f}]({f})" for f in dict.fromkeys(figures)) + "\n")
    parts.append("\nFiles: `scores.csv` (all rows), `stage_seconds.csv`, `models/*.xyz` (traced models, extxyz)"
                 + (", `geometry.csv` (projection geometry against the truth)"
                    if geometry is not None and not geometry.empty else "")
                 + (", `rings.csv` (ring statistics per cell)" if ring_parts else "")
                 + (", `convergence.csv` (R-factor per iteration)" if convergence else "") + ".\n")
    path = out / "report.md"
    atomic_write_text(path, "".join(parts))
    return path


def _convergence_section(out: Path, convergence: dict) -> str:
    """The reconstruction's R-factor ``Σ|A x − b| / Σ|b|``: ``convergence.csv`` (every iteration), the curves
    ``r_factor.png`` and a table of the last value and the first iteration within 1 % of it, per cell."""
    from .plots import plot_convergence

    long = pd.DataFrame([{"structure": k[0], "dose": k[1], "method": k[2], "iteration": i + 1, "r_factor": r}
                         for k, hist in convergence.items() for i, r in enumerate(hist)])
    with atomic_write_path(out / "convergence.csv") as tmp:
        long.to_csv(tmp, index=False, float_format="%.6g")
    plot_convergence(convergence, out / "r_factor.png")
    return ("\n## Reconstruction convergence\n\nR-factor Σ|A x − b| / Σ|b| of the reconstruction against the "
            "images it was given (after the method's preprocessing), after the last iteration; "
            "`iterations_to_1pct`: the first iteration within 1 % of that value. Curves: `r_factor.png`, every "
            "iteration: `convergence.csv`.\n\n" + markdown_table(convergence_table(convergence), "{:.5f}"))


def _ring_sections(out: Path, details: dict):
    """Ring tables/PNGs for every scored cell whose ground truth is an Si–O network; writes ``rings.csv``."""
    from ..io.files import atomic_write_path
    from ..score.rings import compare_rings_by_cell
    from .rings import plot_rings, rings_markdown

    parts, figs, frames = [], [], []
    for tag, df in compare_rings_by_cell(details).items():
        parts.append(rings_markdown(df, title=tag) + "\n")
        png = f"rings_{_safe(tag)}.png"
        plot_rings(df, out / png, title=tag)
        figs.append(png)
        frames.append(df.assign(cell=tag))
    if frames:
        with atomic_write_path(out / "rings.csv") as tmp:
            pd.concat(frames).to_csv(tmp, index=False, float_format="%.6g")
    return parts, figs


def _safe(s: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in s)
