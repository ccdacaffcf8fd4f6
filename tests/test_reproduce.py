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
    assert [e["table"] for e in entries] == list(TABLES)
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
