"""Figures of a run (matplotlib, Agg backend, written atomically as PNG)."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from ..io.files import atomic_write_path  # noqa: E402

__all__ = ["plot_rate_precision", "plot_error_histogram", "plot_model_vs_truth", "plot_compare", "plot_convergence"]


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


def plot_model_vs_truth(details, path, *, title: str = "", slab_A: float = 4.0) -> None:
    """A slab of the ground truth (x–y view) with the traced atoms in it, coloured by what the scorer decided.

    ``details`` is a :class:`aetbench.score.metrics.ScoreDetails` (its model already shifted onto the truth).
    The slab, ``slab_A`` [Å] thick, is chosen on the truth alone (about its median z) and the same z window
    cuts the traced model, so both show the same atoms.  Matched truth atoms are black rings with their traced
    partner as a green dot; missed truth atoms are red rings; traced atoms without a partner (false positives,
    or wrong element) are orange crosses.
    """
    fig, ax = plt.subplots(figsize=(5.5, 5.5))
    t, m = details.truth.positions, details.model.positions
    pairs = np.asarray(details.pairs, dtype=int).reshape(-1, 2)
    z0 = float(np.median(t[:, 2])) if len(t) else 0.0
    in_t = np.abs(t[:, 2] - z0) < slab_A / 2
    in_m = np.abs(m[:, 2] - z0) < slab_A / 2 if len(m) else np.zeros(0, bool)
    t_hit = np.zeros(len(t), bool)
    t_hit[pairs[:, 1]] = True
    m_hit = np.zeros(len(m), bool)
    m_hit[pairs[:, 0]] = True
    ax.scatter(t[in_t & t_hit, 0], t[in_t & t_hit, 1], s=70, facecolors="none", edgecolors="k",
               label=f"truth, matched ({int(np.sum(in_t & t_hit))})")
    ax.scatter(t[in_t & ~t_hit, 0], t[in_t & ~t_hit, 1], s=70, facecolors="none", edgecolors="tab:red", linewidths=1.6,
               label=f"truth, missed ({int(np.sum(in_t & ~t_hit))})")
    if len(m):
        ax.scatter(m[in_m & m_hit, 0], m[in_m & m_hit, 1], s=14, color="tab:green",
                   label=f"traced, matched ({int(np.sum(in_m & m_hit))})")
        ax.scatter(m[in_m & ~m_hit, 0], m[in_m & ~m_hit, 1], s=30, marker="x", color="tab:orange",
                   label=f"traced, no partner ({int(np.sum(in_m & ~m_hit))})")
    ax.set_aspect("equal")
    ax.set_xlabel("x [Å]")
    ax.set_ylabel("y [Å]")
    ax.set_title((title + "\n" if title else "") + f"slab {slab_A:g} Å thick about the truth's median z "
                 f"({details.protocol} protocol)", fontsize=9)
    ax.legend(fontsize=7, loc="upper right")
    _save(fig, path)


def plot_convergence(convergence: dict, path) -> None:
    """R-factor vs iteration (log-log), one panel per dose [e/Å²], one line per method (and structure).

    ``convergence`` maps ``(structure, dose, method)`` to the R-factor after each iteration.
    """
    doses = sorted({k[1] for k in convergence})
    structures = {k[0] for k in convergence}
    fig, axes = plt.subplots(1, len(doses), figsize=(4.2 * len(doses), 3.6), squeeze=False, sharey=True)
    for ax, dose in zip(axes[0], doses):
        for (structure, d, method), hist in convergence.items():
            if d != dose:
                continue
            h = np.asarray(hist, float)
            label = method + (f" ({structure})" if len(structures) > 1 else "")
            ax.plot(np.arange(1, h.size + 1), h, "-", label=label)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("iteration")
        ax.set_title(f"dose {dose:g} e/Å²")
        ax.grid(alpha=0.3, which="both")
    axes[0][0].set_ylabel("R-factor Σ|Ax − b| / Σ|b|")
    axes[0][-1].legend(fontsize=8)
    _save(fig, path)
