"""Figures of a run (matplotlib, Agg backend, written atomically as PNG)."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from ..io.files import atomic_write_path  # noqa: E402

__all__ = ["plot_rate_precision", "plot_error_histogram", "plot_model_vs_truth", "plot_compare"]


def _save(fig, path):
    with atomic_write_path(path) as tmp:
        fig.savefig(tmp, dpi=110, bbox_inches="tight", format="png")
    plt.close(fig)


def _dose_axis(ax, doses) -> None:
    """Log dose axis with one labelled tick per dose used (``1.6e4``), no minor labels: labels never collide."""
    from matplotlib.ticker import FixedLocator, NullFormatter, NullLocator

    d = np.unique(np.asarray(doses, dtype=float))
    d = d[np.isfinite(d) & (d > 0)]
    ax.set_xscale("log")
    ax.set_xlabel("dose per projection [e/Å²]")
    if d.size:
        ax.xaxis.set_major_locator(FixedLocator(d))
        ax.set_xticklabels([f"{v:.2g}".replace("e+0", "e").replace("e+", "e") for v in d])
        ax.xaxis.set_minor_locator(NullLocator())
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlim(d.min() / 1.6, d.max() * 1.6)


def _rate_axis(ax, rates) -> None:
    """Rates on the full 0–100 % axis (a 0.5 % difference must not look decisive); above 100 % (the paper's
    many-to-one count) the axis grows to show it."""
    r = np.asarray(rates, dtype=float)
    top = max(100.0, float(np.nanmax(r)) if np.isfinite(r).any() else 100.0)
    ax.set_ylim(0, top + 2)


def plot_compare(summary: pd.DataFrame, path, *, title: str = "") -> None:
    """Mean ± CI of rate [%] and precision [pm] vs dose, one line per method × element (``aetbench compare``).

    Fixed axes: rate 0–100 %, precision from 0.
    """
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    many = summary["structure"].nunique() > 1
    for (structure, method, element), g in summary.groupby(["structure", "method", "element"]):
        g = g.sort_values("dose")
        label = f"{method} {element}" + (f" ({structure})" if many else "")
        for ax, m in zip(axes, ("rate_pct", "precision_pm")):
            err = np.nan_to_num(g[f"{m}_ci"].to_numpy(float), nan=0.0)
            ax.errorbar(g["dose"], g[m], yerr=err, fmt="o-", capsize=3, label=label)
    for ax, yl in zip(axes, ["identified [%]", "precision [pm]"]):
        _dose_axis(ax, summary["dose"])
        ax.set_ylabel(yl)
        ax.grid(alpha=0.3)
    _rate_axis(axes[0], summary["rate_pct"] + np.nan_to_num(summary["rate_pct_ci"], nan=0.0))
    axes[1].set_ylim(bottom=0)
    axes[0].legend(fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    _save(fig, path)


def plot_rate_precision(scores: pd.DataFrame, path, *, protocol: str = "strict") -> None:
    """Identification rate [%] and precision [pm] vs dose [e/Å²], one line per method × element."""
    df = scores[scores["protocol"] == protocol]
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for (structure, method, element), g in df.groupby(["structure", "method", "element"]):
        g = g.sort_values("dose")
        label = f"{method} {element}" + (f" ({structure})" if df["structure"].nunique() > 1 else "")
        axes[0].plot(g["dose"], g["rate_pct"], "o-", label=label)
        axes[1].plot(g["dose"], g["precision_pm"], "o-", label=label)
    for ax, yl in zip(axes, ["identified [%]", "precision [pm]"]):
        _dose_axis(ax, df["dose"])
        ax.set_ylabel(yl)
        ax.grid(alpha=0.3)
    _rate_axis(axes[0], df["rate_pct"])
    axes[1].set_ylim(bottom=0)
    axes[0].set_title(f"identification ({protocol} protocol)")
    axes[1].set_title(f"3-D precision ({protocol} protocol)")
    axes[0].legend(fontsize=8)
    _save(fig, path)


def plot_error_histogram(residuals_by_label: dict[str, np.ndarray], path) -> None:
    """Histogram of 3-D position errors [pm] of matched atoms, one curve per label."""
    fig, ax = plt.subplots(figsize=(6, 4))
    dists = {label: np.linalg.norm(np.asarray(r).reshape(-1, 3), axis=1) * 100.0
             for label, r in residuals_by_label.items()}
    every = np.concatenate([d for d in dists.values() if d.size] or [np.zeros(0)])
    top = max(1.0, float(np.percentile(every, 99.5))) if every.size else 1.0
    edges = np.linspace(0.0, top, 41)  # one set of bins for every curve, so the curves compare bar for bar
    for label, d in dists.items():
        if d.size:
            ax.hist(d, bins=edges, histtype="step", label=label)
    ax.set_xlabel("3-D position error [pm]")
    ax.set_ylabel("atoms")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    _save(fig, path)


def plot_model_vs_truth(traced_xyz, traced_el, truth_xyz, truth_el, path, *, slab_A: float = 4.0) -> None:
    """Central slab (|z| < slab/2, Å) of the traced model over the ground truth, x–y view."""
    fig, ax = plt.subplots(figsize=(5.5, 5.5))
    t = np.asarray(truth_xyz)
    m = np.asarray(traced_xyz)
    zt, zm = np.median(t[:, 2]), np.median(m[:, 2]) if len(m) else 0.0
    st = np.abs(t[:, 2] - zt) < slab_A / 2
    sm = np.abs(m[:, 2] - zm) < slab_A / 2 if len(m) else np.zeros(0, bool)
    ax.scatter(t[st, 0], t[st, 1], s=60, facecolors="none", edgecolors="k", label="ground truth")
    for el in sorted(set(np.asarray(traced_el)[sm].tolist())) if len(m) else []:
        sel = sm & (np.asarray(traced_el) == el)
        ax.scatter(m[sel, 0], m[sel, 1], s=12, label=f"traced {el}")
    ax.set_aspect("equal")
    ax.set_xlabel("x [Å]")
    ax.set_ylabel("y [Å]")
    ax.set_title(f"central slab, {slab_A:g} Å thick")
    ax.legend(fontsize=8, loc="upper right")
    _save(fig, path)
