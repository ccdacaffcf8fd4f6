"""Figures of a run (matplotlib, Agg backend, written atomically as PNG)."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from ..io.files import atomic_write_path  # noqa: E402

__all__ = ["plot_rate_precision", "plot_error_histogram", "plot_model_vs_truth"]


def _save(fig, path):
    with atomic_write_path(path) as tmp:
        fig.savefig(tmp, dpi=110, bbox_inches="tight", format="png")
    plt.close(fig)


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
        ax.set_xscale("log")
        ax.set_xlabel("dose per projection [e/Å²]")
        ax.set_ylabel(yl)
        ax.grid(alpha=0.3)
    axes[0].set_title(f"identification ({protocol} protocol)")
    axes[1].set_title(f"3-D precision ({protocol} protocol)")
    axes[0].legend(fontsize=8)
    _save(fig, path)


def plot_error_histogram(residuals_by_label: dict[str, np.ndarray], path) -> None:
    """Histogram of 3-D position errors [pm] of matched atoms, one curve per label."""
    fig, ax = plt.subplots(figsize=(6, 4))
    for label, r in residuals_by_label.items():
        d = np.linalg.norm(np.asarray(r).reshape(-1, 3), axis=1) * 100.0
        if d.size:
            ax.hist(d, bins=40, range=(0, max(1.0, float(np.percentile(d, 99.5)))), histtype="step", label=label)
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
