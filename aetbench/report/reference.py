"""Report section for measured data: agreement with the reference model and the packing analysis side by side."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from ..io.files import atomic_write_text
from ..score.reference import OWN_PATCH_SUFFIX
from .markdown import markdown_table

__all__ = ["append_reference_section"]


def _packing_table(rows: list[dict]) -> pd.DataFrame:
    recs = []
    for r in rows:
        pk = r.get("packing")
        if not pk:
            continue
        for who in ("ours", "reference"):
            p = pk[who]
            recs.append({"model": f"{r['tag']} ({who})" if who == "ours" else f"reference ({r['tag']})",
                         "atoms": p["n_atoms"], "g(r) 1st peak Å": p["first_peak_A"],
                         "CN": p["cn_mean"], "CN sd": p["cn_sd"], "Q4": p["q4_mean"], "Q6": p["q6_mean"],
                         "<0,0,12,0> %": 100 * p["icosahedral_fraction"],
                         "polytetrahedral %": 100 * p["polytetrahedral_fraction"],
                         "top Voronoi indices": ", ".join(f"{k} {100 * v:.1f}%" for k, v in p["voronoi_top"][:4])})
    return pd.DataFrame(recs)


def _region_line(region: str, tag: str) -> str:
    if tag.endswith(OWN_PATCH_SUFFIX):
        return (f"Own patch (`*_own-patch` rows: the region ∩ the part of the published model that was traced in this "
                f"sub-area's own reconstruction; aetbench.measured.read_sub_area): {region}.\n\n")
    return f"Region: {region}.\n\n"


def append_reference_section(out: Path, rows: list[dict]) -> None:
    """Append the agreement table, figures and packing table to ``out/report.md``; write ``reference.json``."""
    out = Path(out)
    atomic_write_text(out / "reference.json", json.dumps(rows, indent=1, default=str))
    cols = ["tag", "volume_ncc", "n_reference", "n_ours", "matched", "frac_reference_pct", "frac_ours_pct", "rms_A",
            "missing", "extra", "cutoff_A"]
    df = pd.DataFrame([{k: r.get(k) for k in cols} for r in rows])
    parts = ["\n## Agreement with the reference model (protocol `reference`: one-to-one within the cutoff, "
             "absolute frame, region only; volume_ncc: the reconstruction against the reference reconstruction)\n\n",
             *[_region_line(reg, tag) for reg, tag in dict((r["region"], r["tag"]) for r in rows).items()],
             markdown_table(df, floatfmt="{:.4g}")]
    parts += [f"\n![{r['tag']}](figures/reference_{r['tag']}.png)\n" for r in rows]
    pk = _packing_table(rows)
    if not pk.empty:
        parts.append("\n## Packing analysis in the region (ours beside the reference; aetbench.score.packing)\n\n")
        parts.append(markdown_table(pk))
    report = out / "report.md"
    text = report.read_text() if report.exists() else ""
    atomic_write_text(report, text + "".join(parts))
