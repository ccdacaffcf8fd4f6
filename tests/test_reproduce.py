"""``aetbench reproduce`` (issue 16): every table resolves on both tiers with a cost printed before anything runs,
physics a tier lacks is refused by name, a cost beyond the machine needs --yes, and the authors' traced models
score as the paper published them (sanity rows)."""
from __future__ import annotations

import pytest

from aetbench.cli import main
from aetbench.reproduce import TABLES, plan, sanity_rows


@pytest.mark.parametrize("tier", ["linear", "abtem"])
def test_every_table_has_a_scenario_or_a_reason(tier):
    entries = plan([], tier)
    assert [e["table"] for e in entries] == [n for n, t in TABLES.items() if t.default]
    for e in entries:
        if e["scenario"] is None:
            assert e["skip"], e
        else:
            assert e["estimate"].seconds > 0 and e["estimate"].memory_bytes > 0
            if e["table"] != "asi208" and tier == "linear":
                assert e["tier"] == "linear" and e["scenario"].simulation.model == "linear"
    assert {e["table"] for e in entries if e["scenario"] is None} == (
        {"copdpt-defocus", "sio2"} if tier == "linear" else set())


def test_linear_tier_changes_only_the_physics():
    a = plan(["copdpt"], "abtem")[0]["scenario"]
    b = plan(["copdpt"], "linear")[0]["scenario"]
    assert a.simulation.model == "abtem" and b.simulation.model == "linear"
    assert (a.structure, a.simulation.doses, a.simulation.tilt, a.scoring) == (
        b.structure, b.simulation.doses, b.simulation.tilt, b.scoring)


def test_cost_beyond_the_machine_needs_yes(tmp_path, capsys):
    rc = main(["reproduce", "asi20k", "--tier", "abtem", "--reports", str(tmp_path), "--quiet"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2
    assert err[0].startswith("reproduce: asi20k") and "days" in err[0]       # the estimate comes first
    assert err[-1].startswith("aetbench: error: reproduce: about ") and "--yes" in err[-1]
    assert not any(tmp_path.iterdir())                                       # nothing started
    assert main(["reproduce", "nope"]) == 2
    assert "unknown table 'nope'" in capsys.readouterr().err


def test_sanity_rows_are_the_published_numbers(paper_data):
    df = sanity_rows("sigesn", paper_data)
    got = {(r.dose, r.element): (round(r.rate_pct, 2), round(r.precision_pm, 2)) for r in df.itertuples()}
    assert got[(1.6e4, "Si")] == (61.28, 67.92) and got[(1.6e5, "Sn")] == (100.0, 5.13)
    assert set(df["tier"]) == {"authors' model"}


def test_estimate_counts_what_drives_the_cost(paper_data):
    """A file structure is counted from its file (the SiGeSn ground truth: 13,982 atoms), and off-axis Euler
    angles (the angle study) cost the general projector's factor per iteration, not the single-axis rate."""
    from dataclasses import replace

    from aetbench.estimate import _EULER_FACTOR, estimate_scenario

    (sig,) = plan(["sigesn"], "linear")
    assert "13,982 atoms" in sig["estimate"].detail
    (ang,) = plan(["angles"], "linear")
    sc = replace(ang["scenario"], methods=["liao2026"])   # keeps the measured angles: general path only with φ/ψ
    level = replace(sc, simulation=replace(sc.simulation, errors=replace(sc.simulation.errors, euler_sigma_deg=0.0)))
    ratio = estimate_scenario(sc).seconds / estimate_scenario(level).seconds
    assert 0.5 * _EULER_FACTOR < ratio < _EULER_FACTOR   # the reconstruction dominates; simulation is unchanged


def test_a_failed_table_costs_only_itself(tmp_path, monkeypatch, capsys):
    """Hours of tables are not lost to one failure: the others run and are reported, the failure is one line
    (its traceback in errors.log), the exit status is 2, and the report gives each table's wall time beside its
    estimate."""
    import pandas as pd
    from conftest import tiny_scenario

    from aetbench import pipeline, reproduce
    from aetbench.estimate import estimate_scenario
    from aetbench.methods import METHODS
    from aetbench.scenario import load_scenario

    entries = []
    for name in ("broken", "fine"):
        path = tmp_path / f"{name}.toml"
        path.write_text(tiny_scenario(name, image_size=32))
        sc = load_scenario(path, known_methods=METHODS)
        entries.append({"table": name, "title": name, "scenario": sc, "tier": "linear",
                        "estimate": estimate_scenario(sc)})
        monkeypatch.setitem(reproduce.TABLES, name, reproduce.Table(name, {"linear": name}))
    monkeypatch.setattr(reproduce, "plan", lambda names, tier: entries)
    real = pipeline.run_scenario

    def run(sc, **kw):
        if sc.name == "broken":
            raise RuntimeError("the projector fell over")
        return real(sc, **kw)

    monkeypatch.setattr(pipeline, "run_scenario", run)
    rc = main(["reproduce", "--reports", str(tmp_path / "r"), "--cache-dir", str(tmp_path / "c"), "--quiet"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2
    assert "reproduce: broken failed: the projector fell over" in err
    assert err[-1].startswith("aetbench: error: reproduce: 1 table(s) failed (broken: the projector fell over)")
    (folder,) = (tmp_path / "r" / "reproduce").iterdir()
    md = (folder / "reproduce.md").read_text()
    assert "## fine" in md and "failed — the projector fell over" in md and "Total wall time" in md
    assert "RuntimeError: the projector fell over" in (folder / "errors.log").read_text()
    cost = pd.read_csv(folder / "reproduce_cost.csv")
    assert list(cost["table"]) == ["fine"] and (cost["wall_s"] > 0).all() and (cost["estimated_s"] > 0).all()
    assert set(pd.read_csv(folder / "reproduce.csv")["table"]) == {"fine"}


def test_tier_gap_tables_run_one_particle_on_both_tiers():
    for table in ("gap-sigesn", "gap-copdpt"):
        for tier in ("linear", "abtem"):
            a, b = plan([table], tier)
            assert (a["tier"], b["tier"]) == ("abtem", "linear") and a["folder"] != b["folder"]
            sa, sb = a["scenario"], b["scenario"]
            assert (sa.simulation.model, sb.simulation.model) == ("abtem", "linear")
            assert (sa.structure, sa.simulation.doses, sa.simulation.tilt, sa.scoring, sa.methods) == (
                sb.structure, sb.simulation.doses, sb.simulation.tilt, sb.scoring, sb.methods)
            assert not sa.structure.reference     # a small particle: the paper's numbers are not its numbers
    assert "gap-sigesn" not in [e["table"] for e in plan([], "linear")]   # not in the default run


def test_two_tier_table_is_shown_side_by_side(tmp_path, monkeypatch, capsys):
    import pandas as pd
    from conftest import tiny_scenario

    from aetbench import reproduce
    from aetbench.estimate import estimate_scenario
    from aetbench.methods import METHODS
    from aetbench.scenario import load_scenario

    path = tmp_path / "gap.toml"
    path.write_text(tiny_scenario("gap", image_size=32, doses=(1e6,)))
    sc = load_scenario(path, known_methods=METHODS)
    entries = [{"table": "gap", "title": "gap", "scenario": sc, "tier": tier, "estimate": estimate_scenario(sc),
                "folder": f"gap-{tier}"} for tier in ("abtem", "linear")]   # (both linear here: the bookkeeping)
    monkeypatch.setattr(reproduce, "plan", lambda names, tier: entries)
    monkeypatch.setitem(reproduce.TABLES, "gap", reproduce.Table("gap", {"linear": "gap"}, tiers=("abtem", "linear")))
    assert main(["reproduce", "--reports", str(tmp_path / "r"), "--cache-dir", str(tmp_path / "c"), "--quiet"]) == 0
    (folder,) = (tmp_path / "r" / "reproduce").iterdir()
    md = (folder / "reproduce.md").read_text()
    assert md.count("## gap: gap") == 1 and "[gap-abtem](gap-abtem/report.md)" in md and "Side by side" in md
    assert "rate_pct_abtem" in md and "rate_pct_linear" in md
    assert (folder / "gap-abtem" / "scores.csv").is_file() and (folder / "gap-linear" / "scores.csv").is_file()
    assert set(pd.read_csv(folder / "reproduce.csv")["tier"]) == {"abtem", "linear"}


def test_angle_study_shows_each_methods_own_published_number():
    """The paper's angle study gives Co 87.1 % with the measured angles and 94.8 % refined: each beside its own
    method, never the error-free table's 95.1 %."""
    import pandas as pd

    from aetbench.score.tables import with_published

    (e,) = plan(["angles"], "linear")
    ref = e["scenario"].structure.reference
    rows = pd.DataFrame([{"structure": "copdpt18k", "dose": 1.7e4, "method": m, "element": el, "protocol": "paper",
                          "rate_pct": 50.0, "precision_pm": 50.0, "reference": ref}
                         for m in ("liao2026", "liao2026-robust", "busch2026") for el in ("Co", "Pd")])
    got = with_published(rows).set_index(["method", "element"])["paper_rate_pct"]
    assert got[("liao2026", "Co")] == 87.1 and got[("liao2026-robust", "Co")] == 94.8
    assert got[["liao2026", "liao2026-robust"]].xs("Pd", level="element").isna().all()   # not published
    assert "busch2026" not in got.index.get_level_values("method")
