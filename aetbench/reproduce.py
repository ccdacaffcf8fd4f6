"""``aetbench reproduce``: the paper's tables regenerated into one report, ours beside the published numbers.

Each table is one shipped scenario (``aetbench/data/scenarios/paper``) run on a *tier*:

``paper data``
    the authors' own projections (aSi208) — the same on every tier;
``linear``
    the fast linear ADF tier (:mod:`aetbench.simulate.linear`): an abTEM scenario run with
    ``simulation.model = "linear"`` and everything else unchanged (structure, geometry, doses, methods);
``abtem``
    the abTEM scenario as shipped (PRISM/multislice ADF or 4D-STEM ptychography).

The tier-gap tables (``gap-sigesn``, ``gap-copdpt``; not part of the default run) put one small particle through
both tiers, whatever ``--tier`` says, and show the two side by side: how much easier the linear tier is than abTEM.

A table that needs physics the linear tier does not model (random defocus per projection, ptychography) is
listed as not available on that tier instead of being run with the wrong physics.  Where the authors' traced
models are in the paper data, they are scored by our scorer as *sanity rows* beside ours.

Before anything runs, the cost of every table is estimated (:func:`aetbench.estimate.estimate_scenario`) and
printed; a total beyond :data:`aetbench.estimate.MAX_HOURS` on this machine needs ``--yes``, a ``--scheduler``
or ``--device gpu``.
"""
from __future__ import annotations

import os
import sys
import time
import traceback
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path

import pandas as pd

from .io.files import AetbenchError, atomic_write_path, atomic_write_text, safe_join

__all__ = ["TABLES", "Table", "plan", "run_reproduce", "sanity_rows"]

TIERS = ("linear", "abtem")


@dataclass(frozen=True)
class Table:
    """One table of the paper: what it shows, its scenario per tier (``None``: not available, with ``why``)."""

    title: str
    scenarios: dict[str, str | None]
    why: dict[str, str] = field(default_factory=dict)
    derive_linear: bool = False  # the linear tier runs the abTEM scenario with simulation.model = "linear"
    tiers: tuple[str, ...] = ()  # run on exactly these tiers, whatever --tier says (the tier-gap tables)
    default: bool = True  # part of ``aetbench reproduce`` with no table named
    methods: tuple[str, ...] = ()  # the methods the table reports (default: the scenario's)
    sanity: tuple[tuple[str, str, str, float, float, str, float], ...] = ()  # (model, truth, elements, cutoff Å,
    #                                                                            pixel Å, reference, dose e/Å²)


_SI = "aSi208/aSi_208atoms_GT.txt"
_SGS = "aSiGeSn/aSiGeSn_8nm_GT.mat"

TABLES: dict[str, Table] = {
    "asi208": Table("aSi208: the paper's own projections, three doses", {"linear": "paper/asi208",
                                                                         "abtem": "paper/asi208"},
                    sanity=tuple((f"aSi208/Model_aSi2nm_FoscCenter_Dose{tok}_cov35pm_BM3D.mat", _SI, "Si", 0.9, 0.195,
                                  "liao2026/aSi208", dose) for tok, dose in (("8p0e3", 8.0e3), ("1p6e4", 1.6e4),
                                                                             ("1p6e5", 1.6e5))),
                    methods=("liao2026",)),
    "asi20k": Table("a-Si, 19,993 atoms, three doses", {"linear": "paper/asi20k-abtem", "abtem": "paper/asi20k-abtem"},
                    derive_linear=True, methods=("liao2026",)),
    "sigesn": Table("a-SiGeSn, the paper's ground truth, two doses", {"linear": "paper/sigesn",
                                                                      "abtem": "paper/sigesn-abtem"},
                    sanity=tuple((f"aSiGeSn/Model_aSiGeSn8nm_FoscCenter_Dose{tok}_cov35pm_BM3D.mat", _SGS,
                                  "Si,Ge,Sn", 1.5, 0.347, "liao2026/aSiGeSn", dose)
                                 for tok, dose in (("1p6e4", 1.6e4), ("1p6e5", 1.6e5)))),
    "copdpt": Table("CoPdPt metallic glass", {"linear": "paper/copdpt-abtem", "abtem": "paper/copdpt-abtem"},
                    derive_linear=True, methods=("liao2026",)),
    "copdpt-defocus": Table("CoPdPt with a random defocus per projection", {"linear": None,
                                                                             "abtem": "paper/copdpt-abtem-defocus"},
                            why={"linear": "the linear tier has no defocus (probe) model"}),
    "angles": Table("angle refinement: measured (liao2026) vs refined (liao2026-robust) angles, CoPdPt",
                    {"linear": "paper/copdpt-angles", "abtem": "paper/copdpt-angles"},
                    methods=("liao2026", "liao2026-robust")),
    "busch": Table("the Busch comparison: busch2026 vs liao2026 on the same CoPdPt data",
                   {"linear": "paper/copdpt-sirt-abtem", "abtem": "paper/copdpt-sirt-abtem"}, derive_linear=True),
    "gap-sigesn": Table("the tier gap, SiGeSn: one 300-atom particle through abTEM and the linear tier",
                        {"linear": "paper/tiergap-sigesn-abtem", "abtem": "paper/tiergap-sigesn-abtem"},
                        derive_linear=True, tiers=("abtem", "linear"), default=False),
    "gap-copdpt": Table("the tier gap, CoPdPt: one 400-atom particle through abTEM and the linear tier",
                        {"linear": "paper/tiergap-copdpt-abtem", "abtem": "paper/tiergap-copdpt-abtem"},
                        derive_linear=True, tiers=("abtem", "linear"), default=False),
    "sio2": Table("SiO2 pAET: single- vs multislice ptychography, 1.6e3 / 1.6e4, ring statistics",
                  {"linear": None, "abtem": "paper/sio2-pty"},
                  why={"linear": "ptychographic phase projections need the 4D-STEM (abTEM) tier"}),
}


def _load(name: str, tier: str, derive_linear: bool, methods: tuple[str, ...] = ()):
    from .data import find_toml, scenario_dirs
    from .methods import METHODS
    from .scenario import load_scenario

    path = find_toml(name, scenario_dirs(), "scenarios")
    if path is None:
        raise AetbenchError(f"reproduce: the shipped scenario {name!r} is missing from this installation")
    sc = load_scenario(path, known_methods=METHODS)
    if tier == "linear" and derive_linear and sc.simulation is not None and sc.simulation.model != "linear":
        sc = replace(sc, name=sc.name.removesuffix("-abtem") + "-linear",
                     simulation=replace(sc.simulation, model="linear"))
    if methods:
        sc = replace(sc, methods=list(methods))
    return sc


def _tier_of(sc, tier: str) -> str:
    if sc.input:
        return "paper data"
    return sc.simulation.model if sc.simulation is not None else tier


def plan(names: list[str], tier: str) -> list[dict]:
    """One entry per table: name, title, scenario (or None), tier label, estimate (or the reason it is skipped)."""
    from .estimate import estimate_scenario

    if tier not in TIERS:
        raise AetbenchError(f"--tier: expected one of {', '.join(TIERS)}, got {tier!r}")
    unknown = [n for n in names if n not in TABLES]
    if unknown:
        raise AetbenchError(f"reproduce: unknown table {unknown[0]!r} (known: {', '.join(TABLES)})")
    out = []
    for n in names or [k for k, t in TABLES.items() if t.default]:
        t = TABLES[n]
        for tr in t.tiers or (tier,):
            name = t.scenarios.get(tr)
            folder = f"{n}-{tr}" if t.tiers else n
            if name is None:
                out.append({"table": n, "title": t.title, "scenario": None, "tier": tr, "skip": t.why.get(tr, ""),
                            "folder": folder})
                continue
            sc = _load(name, tr, t.derive_linear, t.methods)
            out.append({"table": n, "title": t.title, "scenario": sc, "tier": _tier_of(sc, tr),
                        "estimate": estimate_scenario(sc), "folder": folder})
    return out


def sanity_rows(table: str, paper_data: Path) -> pd.DataFrame:
    """The authors' traced models of ``table`` scored by our scorer (paper protocol), one row per element."""
    from .io.models import read_model
    from .score import score

    rows = []
    for model, truth, elements, cutoff, pixel, reference, dose in TABLES[table].sanity:
        m = read_model(paper_data / model, elements=elements, pixel_size=pixel)
        t = read_model(paper_data / truth, elements=elements, axes="yxz", pixel_size=pixel)
        for r in score(m, t, cutoff=cutoff, protocol="paper").to_dict("records"):
            rows.append({"table": table, "tier": "authors' model", "structure": Path(model).stem, "dose": dose,
                         "method": "liao2026 (authors' model)", "reference": reference, **r})
    return pd.DataFrame(rows)


def run_reproduce(names: list[str], *, tier: str = "linear", reports_root="reports", cache_dir=None,
                  scheduler=None, device: str = "cpu", yes: bool = False, quiet: bool = False) -> Path:
    """Run the tables and write ``reproduce.md`` / ``reproduce.csv``; returns the folder."""
    from .estimate import MAX_HOURS, _REF_CORES, _fmt_seconds
    from .pipeline import run_scenario
    from .report.markdown import markdown_table, with_published
    from .scenario import paper_data_dir

    entries = plan(list(names), tier)
    cores = os.cpu_count() or 1
    total = sum(e["estimate"].seconds for e in entries if e.get("estimate")) * _REF_CORES / cores
    for e in entries:
        cost = e["estimate"].describe(cores) if e.get("estimate") else f"not available: {e['skip']}"
        print(f"reproduce: {e['table']:15s} {e['tier']:10s} {cost}", file=sys.stderr)
    print(f"reproduce: total about {_fmt_seconds(total)} on {cores} cores", file=sys.stderr)
    if total / 3600 > MAX_HOURS and not (yes or scheduler or device == "gpu"):
        raise AetbenchError(f"reproduce: about {_fmt_seconds(total)} on {cores} cores is beyond this machine "
                            f"(> {MAX_HOURS:g} h); choose tables, or run with --yes, --scheduler ADDRESS or --device gpu")
    folder = safe_join(reports_root, "reproduce") / f"{datetime.now():%Y%m%d-%H%M%S}-{os.urandom(3).hex()}"
    folder.mkdir(parents=True)
    frames, notes, failed, costs, tracebacks, sane = [], [], [], [], [], set()
    for e in entries:
        if e["scenario"] is None:
            notes.append(f"- **{e['table']}** ({e['title']}): not on the {e['tier']} tier — {e['skip']}.")
            continue
        sc = e["scenario"]
        t0 = time.perf_counter()
        try:
            out = run_scenario(sc, out_dir=folder / e.get("folder", e["table"]), cache_dir=cache_dir,
                               scheduler=scheduler, device=device, quiet=quiet, force=True)
        except Exception as exc:  # noqa: BLE001 - one table's failure must not cost the others (hours of work)
            msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            failed.append(f"{e['table']}: {msg}")
            print(f"reproduce: {e['table']} failed: {msg}", file=sys.stderr)
            tracebacks.append(f"## {e['table']}\n{''.join(traceback.format_exception(exc))}\n")
            atomic_write_text(folder / "errors.log", "".join(tracebacks))  # the whole traceback, for a bug report
            notes.append(f"- **{e['table']}** ({e['title']}): failed — {msg} (see errors.log).")
            continue
        costs.append({"table": e["table"], "tier": e["tier"],
                      "estimated_s": e["estimate"].seconds * _REF_CORES / cores, "wall_s": time.perf_counter() - t0})
        print(f"reproduce: {e['table']} done in {_fmt_seconds(costs[-1]['wall_s'])}", file=sys.stderr)
        if (out / "scores.csv").is_file():
            frames.append(pd.read_csv(out / "scores.csv").assign(table=e["table"], tier=e["tier"]))
        if TABLES[e["table"]].sanity and e["table"] not in sane:
            sane.add(e["table"])
            try:
                frames.append(sanity_rows(e["table"], paper_data_dir()))
            except (AetbenchError, OSError) as exc:
                notes.append(f"- {e['table']}: the authors' models were not scored ({exc}).")
    df = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    with atomic_write_path(folder / "reproduce.csv") as tmp:
        df.to_csv(tmp, index=False, float_format="%.6g")
    parts = [f"# aetbench reproduce — {tier} tier\n",
             "Every table of Liao et al. (Nature 2026) that this tier can make, our numbers beside the published "
             "ones (paper protocol). The tier is named on every row: `paper data` = the authors' projections, "
             "`linear` / `abtem` = our simulation, `authors' model` = the authors' traced model scored by our "
             "scorer (sanity rows). Each table's full report is in its own folder.\n"]
    for table in dict.fromkeys(e["table"] for e in entries if e["scenario"] is not None):
        if df.empty or "table" not in df or not (df["table"] == table).any():
            continue
        e = next(x for x in entries if x["table"] == table)
        sub = df[(df["table"] == e["table"]) & (df["protocol"] == "paper")]
        pub = with_published(sub)
        view = sub[["tier", "structure", "dose", "method", "element", "rate_pct", "precision_pm"]].copy()
        if not pub.empty:
            keyed = pub.set_index(["structure", "dose", "method", "element"])
            idx = list(zip(view["structure"], view["dose"], view["method"], view["element"]))
            for c in ("paper_rate_pct", "paper_precision_pm"):
                view[c] = [keyed[c].get(k, float("nan")) if k in keyed.index else float("nan") for k in idx]
        sanity = sub[sub["tier"] == "authors' model"]
        if not sanity.empty:
            from .report.published import published

            for i in sanity.index:
                p = published(str(sub.at[i, "reference"]), float(sub.at[i, "dose"]), str(sub.at[i, "element"]))
                view.loc[i, "paper_rate_pct"] = p[0] if p else float("nan")
                view.loc[i, "paper_precision_pm"] = p[1] if p and p[1] is not None else float("nan")
        links = ", ".join(f"[{x.get('folder', table)}]({x.get('folder', table)}/report.md)" for x in entries
                          if x["table"] == table and x["scenario"] is not None)
        parts.append(f"\n## {e['table']}: {e['title']}\n\nFull report: {links}\n\n" + markdown_table(view))
        if TABLES[table].tiers:  # the tier gap: one row per cell, one column pair per tier
            wide = sub.pivot_table(index=["structure", "dose", "method", "element"], columns="tier",
                                   values=["rate_pct", "precision_pm"])
            wide.columns = [f"{m}_{t}" for m, t in wide.columns]
            parts.append("\nSide by side (the same particle, geometry, doses and method; only the physics differs):"
                         "\n\n" + markdown_table(wide.reset_index()))
    if notes:
        parts.append("\n## Not run, or failed\n\n" + "\n".join(notes) + "\n")
    if costs:
        cost = pd.DataFrame(costs)
        parts.append(f"\n## Cost on this machine ({cores} cores)\n\nWall time of each table (simulation, "
                     "reconstruction, scoring and report; cached work is not redone) beside the estimate printed "
                     "before the run.\n\n"
                     + markdown_table(cost.assign(estimated_min=cost["estimated_s"] / 60, wall_min=cost["wall_s"] / 60)
                                      [["table", "tier", "estimated_min", "wall_min"]])
                     + f"\nTotal wall time: {_fmt_seconds(float(cost['wall_s'].sum()))}.\n")
        with atomic_write_path(folder / "reproduce_cost.csv") as tmp:
            cost.to_csv(tmp, index=False, float_format="%.6g")
    atomic_write_text(folder / "reproduce.md", "".join(parts))
    if failed:
        raise AetbenchError(f"reproduce: {len(failed)} table(s) failed ({'; '.join(failed)}); the others are in "
                            f"{folder / 'reproduce.md'}")
    return folder


def cmd_reproduce(args) -> int:
    folder = run_reproduce(args.tables, tier=args.tier, reports_root=args.reports, cache_dir=args.cache_dir,
                           scheduler=args.scheduler, device=args.device, yes=args.yes, quiet=args.quiet)
    print(f"reproduce: {folder / 'reproduce.md'}")
    return 0
