"""Ring statistics in the report: markdown table and bar chart of truth vs traced.

Input is the DataFrame of :func:`aetbench.score.rings.compare_rings` (or of
:func:`aetbench.score.rings.ring_statistics` for one model).  Ring sizes are
in atoms; for alternating Si–O rings the Si count is half of it.  The counts
come from the package's one ring counter, :func:`aetbench.score.rings.find_rings`, and
the totals from :func:`aetbench.score.rings.ring_totals`: this module only renders.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..io.files import atomic_write_path
from ..score.rings import ring_table_kind, ring_totals

__all__ = ["rings_markdown", "plot_rings"]

def _cell(v, fmt="{:.2f}") -> str:
    if isinstance(v, (float, np.floating)):
        if np.isnan(v):
            return "–"
        return str(int(v)) if float(v).is_integer() and fmt == "{:d}" else fmt.format(v)
    return str(v)


def rings_markdown(df: pd.DataFrame, *, title: str | None = None) -> str:
    """Markdown table of ring counts per size (atoms and Si) with good (alternating Si/O) fractions.

    Parameters
    ----------
    df : DataFrame
        From :func:`~aetbench.score.rings.compare_rings` (truth and traced
        side by side) or :func:`~aetbench.score.rings.ring_statistics`.
    title : str, optional
        A ``###`` heading put above the table.

    Returns
    -------
    str
        The table, a totals row, and one line naming the bond window.
    """
    kind = ring_table_kind(df)
    if kind == "compare":
        cols = [("size_atoms", "ring size (atoms)"), ("size_si", "Si"), ("n_rings_truth", "rings truth"),
                ("good_fraction_truth", "good truth"), ("n_rings_traced", "rings traced"),
                ("n_good_traced", "good rings traced"), ("good_fraction_traced", "good traced"),
                ("good_recovered", "good traced / good truth")]
        count_cols = {"n_rings_truth", "n_rings_traced", "n_good_traced", "size_atoms"}
    else:
        cols = [("size_atoms", "ring size (atoms)"), ("size_si", "Si"), ("n_rings", "rings"),
                ("n_good", "good rings"), ("good_fraction", "good fraction"), ("fraction", "fraction of rings")]
        count_cols = {"n_rings", "n_good", "size_atoms"}
    lines = []
    if title:
        lines += [f"### {title}", ""]
    lines.append("| " + " | ".join(h for _, h in cols) + " |")
    lines.append("|" + "|".join(" ---: " for _ in cols) + "|")
    for _, row in df.iterrows():
        cells = []
        for c, _h in cols:
            v = row[c]
            if c == "size_si":
                cells.append("–" if pd.isna(v) else f"{v:g}")
            elif c in count_cols:
                cells.append(str(int(v)))
            else:
                cells.append(_cell(float(v)))
        lines.append("| " + " | ".join(cells) + " |")
    tot = ring_totals(df)  # computed in aetbench.score.rings; rendered here
    cells = ["all", ""] + [str(tot[c]) if c in count_cols else _cell(tot[c]) for c, _h in cols[2:]]
    lines.append("| " + " | ".join(f"**{t}**" if t else "" for t in cells) + " |")
    attrs = df.attrs.get("truth", df.attrs) if kind == "compare" else df.attrs
    if "bond_window_A" in attrs:
        lo, hi = attrs["bond_window_A"]
        lines += ["", f"Bonds: {attrs.get('bond_pairs', '')} pairs at {lo:.2f}–{hi:.2f} Å; shortest-path rings "
                      f"(no shortcut across a ring; Franzblau 1991, as matscipy counts them); "
                      f"good = atom types alternate Si/O."]
    return "\n".join(lines) + "\n"


def plot_rings(df: pd.DataFrame, path, *, title: str | None = None) -> None:
    """Bar chart of ring counts per size (truth vs traced) with the good fraction overlaid; PNG, atomic write.

    Parameters
    ----------
    df : DataFrame
        From :func:`~aetbench.score.rings.compare_rings` or
        :func:`~aetbench.score.rings.ring_statistics`.
    path : path-like
        Output PNG.
    title : str, optional
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    kind = ring_table_kind(df)
    s = df["size_atoms"].to_numpy()
    fig, ax = plt.subplots(figsize=(7, 4))
    ax2 = ax.twinx()
    if kind == "compare":
        w = 0.4
        ax.bar(s - w / 2, df["n_rings_truth"], w, color="0.55", label="rings, truth")
        ax.bar(s + w / 2, df["n_rings_traced"], w, color="tab:blue", label="rings, traced")
        ax2.plot(s, df["good_fraction_truth"], "o--", color="0.25", label="good fraction, truth")
        ax2.plot(s, df["good_fraction_traced"], "s-", color="tab:red", label="good fraction, traced")
    else:
        ax.bar(s, df["n_rings"], 0.6, color="tab:blue", label="rings")
        ax2.plot(s, df["good_fraction"], "s-", color="tab:red", label="good fraction")
    ax.set_xlabel("ring size (atoms; Si = atoms / 2)")
    ax.set_ylabel("number of rings")
    ax2.set_ylabel("good (alternating Si/O) fraction")
    ax2.set_ylim(0, 1.05)
    ax.set_xticks(s)
    h1, l1 = ax.get_legend_handles_labels()
    h2, l2 = ax2.get_legend_handles_labels()
    ax.legend(h1 + h2, l1 + l2, fontsize=8, loc="upper right")
    if title:
        ax.set_title(title)
    fig.tight_layout()
    with atomic_write_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
