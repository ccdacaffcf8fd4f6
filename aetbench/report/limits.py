"""``aetbench limits``: the physical limit of a scenario per dose, and limit maps (dose × number of tilts).

For every case of a scenario the joint Cramér–Rao bound at the true positions
(:mod:`aetbench.score.bound`) with the tier's profile (linear) or the profile
fitted to the case's tilt series (everything else).  With a dose and tilt grid,
the bound of the first structure is evaluated on the grid, each grid dose with
the profile fitted at the nearest case dose (counts scale with dose, the
background in counts/px is kept, tilts single-axis about y evenly spaced over
the range), and drawn as a
map with the measured precisions of a finished report overlaid.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import AetbenchError
from ..io.files import atomic_write_path, atomic_write_text

__all__ = ["case_limits", "scenario_limits", "plot_limit_map", "format_limits", "measured_points"]


def case_limits(case, ts=None, *, method: str = "auto") -> dict:
    """Bound and profile of one pipeline case (needs its truth); returns a JSON-ready dict."""
    from ..score.bound import bound_for_case, rotation_centre
    from ..score.model_check import model_check

    if case.truth is None:
        raise AetbenchError(f"{case.structure} dose {case.dose:g}: no ground truth, no bound at the true positions")
    ts = ts if ts is not None else case.make()
    if not np.isfinite(case.dose):
        return {"structure": case.structure, "dose": case.dose, "n_atoms": len(case.truth), "bound": None,
                "profile": None, "note": "noise-free series: no bound"}
    res, prof = bound_for_case(ts, case.truth, method=method)
    try:
        check = model_check(ts, case.truth, prof)
    except AetbenchError as exc:
        check = {"error": str(exc)}
    return {"structure": case.structure, "dose": case.dose, "n_atoms": len(case.truth), "n_tilts": len(ts),
            "model_check": check,
            "tilt_range_deg": [float(ts.angles[:, 1].min()), float(ts.angles[:, 1].max())],
            "shape": list(ts.shape), "pixel_size_A": ts.pixel_size,
            "centre_A": rotation_centre(ts, case.truth).tolist(),
            "bound": res.summary(), "per_atom_pm": res.per_atom_pm.tolist(), "profile": prof.to_dict()}


def measured_points(report_dir, protocol: str = "paper") -> pd.DataFrame:
    """Precisions of a finished report folder (``scores.csv``): method, element, dose, precision_pm."""
    path = Path(report_dir) / "scores.csv"
    if not path.is_file():
        raise AetbenchError(f"{path}: not found (--report must be a finished report folder)")
    df = pd.read_csv(path)
    if protocol not in set(df["protocol"]):
        protocol = str(df["protocol"].iloc[0])
    df = df[(df["protocol"] == protocol) & np.isfinite(df["precision_pm"])]
    return df[["structure", "method", "element", "dose", "precision_pm"]].reset_index(drop=True)


def scenario_limits(scenario, *, doses=None, tilt_counts=None, tilt_range=None, cache_dir=None,
                    method: str = "auto") -> dict:
    """Per-case bounds of a scenario and, when ``doses`` or ``tilt_counts`` are given, the grid."""
    from .. import cache
    from ..methods import METHODS
    from ..pipeline import cases
    from ..scenario import load_scenario
    from ..score.bound import Profile, bound_grid

    sc = load_scenario(scenario, known_methods=METHODS)
    cache_dir = Path(cache_dir) if cache_dir else cache.default_cache_dir()
    out = {"scenario": sc.name, "cases": []}
    held = {}
    for case in cases(sc, cache_dir):
        ts = case.make()
        row = case_limits(case, ts, method=method)
        out["cases"].append(row)
        if row["bound"] is not None:
            held.setdefault(case.structure, []).append((case, ts, row))
    if (doses or tilt_counts) and held:
        structure = next(iter(held))
        case, ts, row = held[structure][0]
        profiles = [(c.dose, Profile(**r["profile"])) for c, _, r in held[structure]]
        doses = list(doses or [c.dose for c, _, _ in held[structure]])
        tilt_counts = list(tilt_counts or [len(ts)])
        rng = tilt_range or row["tilt_range_deg"]
        out["grid"] = {"structure": structure, "profile_doses": [d for d, _ in profiles], "tilt_range_deg": list(rng),
                       "case_n_tilts": len(ts),
                       "cells": bound_grid(case.truth, profiles, shape=ts.shape, pixel_size=ts.pixel_size,
                                           centre=row["centre_A"], doses=doses, tilt_counts=tilt_counts,
                                           tilt_range_deg=rng, method=method)}
    return out


def plot_limit_map(grid: dict, path, *, measured: pd.DataFrame | None = None, case_bounds: dict | None = None,
                   title: str = "") -> None:
    """Map of the RMS joint bound [pm] over dose × number of tilts, with measured precisions overlaid.

    ``case_bounds`` maps dose → the bound at the case's own geometry (for the ratio printed beside each point).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import LogNorm

    cells = pd.DataFrame(grid["cells"])
    doses = np.sort(cells["dose"].unique())
    tilts = np.sort(cells["n_tilts"].unique())
    Z = cells.pivot(index="n_tilts", columns="dose", values="rms_pm").loc[tilts, doses].to_numpy()
    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    im = ax.pcolormesh(np.arange(doses.size + 1) - 0.5, np.arange(tilts.size + 1) - 0.5, Z, cmap="viridis_r",
                       norm=LogNorm(vmin=np.nanmin(Z), vmax=np.nanmax(Z)), shading="flat")
    for i in range(tilts.size):
        for j in range(doses.size):
            ax.text(j, i, f"{Z[i, j]:.1f}", ha="center", va="center", fontsize=8,
                    color="white" if Z[i, j] > np.sqrt(np.nanmin(Z) * np.nanmax(Z)) else "black")
    ax.set_xticks(range(doses.size), [f"{d:.2g}" for d in doses], rotation=30)
    ax.set_yticks(range(tilts.size), [str(int(t)) for t in tilts])
    ax.set_xlabel("dose per projection [e/Å²]")
    ax.set_ylabel(f"number of tilts ({grid['tilt_range_deg'][0]:g}…{grid['tilt_range_deg'][1]:g}°)")
    fig.colorbar(im, ax=ax, label="joint Cramér–Rao bound, RMS 3D [pm]")
    if measured is not None and len(measured):
        # measured points sit at the case's own tilt count, placed on the log-dose axis by interpolation
        yi = np.interp(grid["case_n_tilts"], tilts, np.arange(tilts.size)) if tilts.size > 1 else 0.0
        methods = sorted(measured["method"].unique())
        markers = dict(zip(methods, "o^sDvP*"))
        for k, (meth, g) in enumerate(measured.groupby("method")):
            # one row of points per method, stacked across the case's cell so labels do not collide
            y = yi + (0.0 if len(methods) == 1 else -0.3 + 0.6 * methods.index(meth) / (len(methods) - 1))
            for _, r in g.iterrows():
                xj = np.interp(np.log(r["dose"]), np.log(doses), np.arange(doses.size)) if doses.size > 1 else 0.0
                ratio = ""
                if case_bounds:
                    b = next((v for d, v in case_bounds.items() if abs(d - r["dose"]) <= 0.01 * d), None)
                    ratio = f" ({r['precision_pm'] / b:.2f}×)" if b else ""
                ax.plot(xj - 0.35, y, markers[meth], color="red", mec="white", ms=5)
                el = f" {r['element']}" if measured["element"].nunique() > 1 else ""
                ax.text(xj - 0.28, y, f"{meth}{el}\n{r['precision_pm']:.1f} pm{ratio}", fontsize=5.5, color="red",
                        va="center", ha="left", bbox=dict(fc="white", ec="none", alpha=0.7, pad=0.5))
    ax.set_title(title or f"physical limit: {grid['structure']}", fontsize=10)
    with atomic_write_path(path) as tmp:
        fig.savefig(tmp, dpi=120, bbox_inches="tight", format="png")
    plt.close(fig)


def format_limits(result: dict) -> str:
    """Plain-text table of :func:`scenario_limits`."""
    lines = [f"{result['scenario']}: joint Cramér–Rao bound on 3D positions (per atom sqrt(trace F⁻¹), pm)",
             f"{'structure':16s} {'dose e/Å²':>10s} {'RMS':>7s} {'median':>7s} {'max':>7s}  profile"]
    for c in result["cases"]:
        if c["bound"] is None:
            lines.append(f"{c['structure']:16s} {c['dose']:10.3g}  {c.get('note', 'no bound')}")
            continue
        b, p = c["bound"], c["profile"]
        els = "; ".join(f"{e} A={p['amplitude_A2'][e]:.3e} Å² w={p['width_A'][e]:.3f} Å" for e in p["amplitude_A2"])
        unit = "counts/px" if p["noise"] == "poisson" else "(image units)"
        fit = f"chi2/px={p['chi2_per_pixel']:.3f}" if p["noise"] == "poisson" else f"sigma={p['sigma']:.3g}"
        lines.append(f"{c['structure']:16s} {c['dose']:10.3g} {b['rms_pm']:7.2f} {b['median_pm']:7.2f} "
                     f"{b['max_pm']:7.2f}  {els}; b={p['background']:.3f} {unit}; {fit} ({p['source']}, "
                     f"{b['method']})")
        mc = c.get("model_check") or {}
        if "z_std" in mc:
            sig = "significant" if mc["excess_significant"] else f"not significant, < {mc['excess_upper_pm']:.1f} pm"
            lines.append(f"{'':16s} {'':10s}  model check: localisation z-std {mc['z_std']:.3f} (1 = model holds); "
                         f"excess {mc['excess_pm']:.1f} pm per projection ({sig}), displacement {mc['displacement_pm']:.1f} pm; "
                         f"floor {mc['floor_pm']:.2f} pm; "
                         f"bound ⊕ floor {np.hypot(b['rms_pm'], mc['floor_pm']):.2f} pm; "
                         f"lag-1 correlation {mc['lag1_corr']:.2f}")
        elif mc:
            lines.append(f"{'':16s} {'':10s}  model check: {mc.get('error', 'not available')}")
    if "grid" in result:
        g = result["grid"]
        cells = pd.DataFrame(g["cells"]).pivot(index="n_tilts", columns="dose", values="rms_pm")
        lines.append(f"\ngrid ({g['structure']}, profiles fitted at doses "
                     f"{', '.join(f'{d:g}' for d in g['profile_doses'])} (nearest used), "
                     f"tilts {g['tilt_range_deg'][0]:g}…{g['tilt_range_deg'][1]:g}°): RMS bound [pm]")
        lines.append("tilts \\ dose " + " ".join(f"{d:>9.3g}" for d in cells.columns))
        for n, row in cells.iterrows():
            lines.append(f"{int(n):12d} " + " ".join(f"{v:9.2f}" for v in row))
    return "\n".join(lines)


def _finite(o):
    """NaN/inf → None, so that the JSON is strict."""
    if isinstance(o, dict):
        return {k: _finite(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_finite(v) for v in o]
    if isinstance(o, (float, np.floating)):
        return float(o) if np.isfinite(o) else None
    if isinstance(o, np.integer):
        return int(o)
    return o


def run_limits(scenario, *, doses=None, tilt_counts=None, tilt_range=None, report=None, out=None, as_json=False,
               cache_dir=None) -> str:
    """The ``aetbench limits`` command: compute, draw the map when a grid is asked, return the text to print."""
    res = scenario_limits(scenario, doses=doses, tilt_counts=tilt_counts, tilt_range=tilt_range,
                          cache_dir=cache_dir)
    if "grid" in res:
        png = Path(out) if out else (Path(report) / "limits.png" if report else Path(f"limits_{res['scenario']}.png"))
        measured = measured_points(report) if report else None
        structure = res["grid"]["structure"]
        if measured is not None:
            measured = measured[measured["structure"] == structure]
        case_bounds = {c["dose"]: c["bound"]["rms_pm"] for c in res["cases"]
                       if c["bound"] is not None and c["structure"] == structure}
        plot_limit_map(res["grid"], png, measured=measured, case_bounds=case_bounds,
                       title=f"{res['scenario']}: physical limit (joint Cramér–Rao bound)")
        res["map"] = str(png)
        if report:
            atomic_write_text(Path(report) / "limits.json", json.dumps(_finite(res), indent=1))
    if as_json:
        slim = {**res, "cases": [{k: v for k, v in c.items() if k != "per_atom_pm"} for c in res["cases"]]}
        return json.dumps(_finite(slim), indent=1)
    text = format_limits(res)
    return text + (f"\nmap: {res['map']}" if "map" in res else "")
