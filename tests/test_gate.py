"""The regression gate (issue 16): ``aetbench validate`` fails on a worse method, passes an unchanged one, and lets a
named change through an accepted-changes entry; tolerances from the seed-to-seed spread or stated per metric."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from aetbench.cli import main
from aetbench.report import gate
from conftest import tiny_scenario

ROW = {"structure": "p", "dose": 1.6e4, "method": "m", "element": "Si", "protocol": "paper", "n_truth": 200,
       "n_traced": 200, "identified": 200, "rate_pct": 100.0, "precision_pm": 10.0}


def _df(**changes) -> pd.DataFrame:
    return pd.DataFrame([{**ROW, **changes}])


def test_unchanged_passes_and_each_bad_direction_fails():
    base = gate.baseline_from_scores(_df())
    assert not gate.compare_runs(_df(), base).failed
    assert not gate.compare_runs(_df(precision_pm=10.19), base).failed         # inside 2 % (0.2 pm)
    r = gate.compare_runs(_df(precision_pm=10.5), base)
    assert r.failed and [c.metric for c in r.regressions] == ["precision_pm"]
    assert r.regressions[0].line() == "precision_pm of p dose 16000 m Si (paper): 10 → 10.5 pm (+0.5 pm, tolerance 0.2 pm)"
    r = gate.compare_runs(_df(identified=199, rate_pct=99.5), base)           # one atom lost of 200
    assert r.failed and r.regressions[0].metric == "rate_pct"
    r = gate.compare_runs(_df(precision_pm=8.0, rate_pct=100.0), base)        # better is never a regression
    assert not r.failed and [c.metric for c in r.improved] == ["precision_pm"]
    r = gate.compare_runs(_df(structure="q"), base)                           # a row that vanished fails
    assert r.failed and r.missing == [("p", 1.6e4, "m", "Si", "paper")]


def test_strict_f1_is_compared():
    base = gate.baseline_from_scores(_df(protocol="strict"))
    assert base["rows"][0]["f1_pct"] == pytest.approx(100.0)
    r = gate.compare_runs(_df(protocol="strict", n_traced=220), base)           # 20 false atoms: F1 95.2 %
    assert [c.metric for c in r.regressions] == ["f1_pct"]


def test_tolerance_from_seed_spread_of_a_known_distribution():
    """Precision over 20 seeds drawn from N(10, 0.5) pm: the tolerance is 2 sd ≈ 1 pm, so a candidate 0.6 pm worse
    passes and one 1.5 pm worse fails; with the stated floor alone (one seed) both would fail."""
    rng = np.random.default_rng(7)
    seeds = pd.DataFrame([{**ROW, "seed": s, "precision_pm": 10 + 0.5 * rng.standard_normal()} for s in range(20)])
    base = gate.baseline_from_scores(seeds)
    tol = base["rows"][0]["tolerance"]["precision_pm"]
    assert 0.7 < tol < 1.3
    mean = base["rows"][0]["precision_pm"]
    assert not gate.compare_runs(_df(precision_pm=mean + 0.6), base).failed
    assert gate.compare_runs(_df(precision_pm=mean + 1.5), base).failed
    assert gate.compare_runs(_df(precision_pm=mean + 0.6), gate.baseline_from_scores(_df(precision_pm=mean))).failed


def test_accepted_changes_let_a_named_change_through(tmp_path):
    acc = tmp_path / "accepted.toml"
    acc.write_text('[[accepted]]\nmetric = "precision_pm"\nmethod = "m"\ndose = 1.6e4\nreason = "issue 99"\n')
    entries = gate.read_accepted(acc)
    r = gate.compare_runs(_df(precision_pm=11.0), gate.baseline_from_scores(_df()), accepted=entries)
    assert not r.failed and r.accepted[0].accepted_reason == "issue 99"
    r = gate.compare_runs(_df(precision_pm=11.0, method="other"), gate.baseline_from_scores(_df(method="other")),
                          accepted=entries)
    assert r.failed  # the entry names method m only
    acc.write_text('[[accepted]]\nmetric = "precision_pm"\n')
    with pytest.raises(gate.AetbenchError, match=r"accepted\[0\]: needs metric .* and a reason"):
        gate.read_accepted(acc)




def test_worsened_method_fails_the_gate_end_to_end(tmp_path, capsys):
    """liao2026 tracing with a 4 Å minimum distance (neighbours merged) and no residual additions (which would find
    the merged atoms again), same data: exit 1 with one line per regressed metric; the unchanged method passes; an
    accepted-changes entry lets the named change through."""
    good = tmp_path / "good.toml"
    good.write_text(tiny_scenario("gate", ["liao2026"], seed=5, n_atoms=30, image_size=36, step_deg=6.0,
                                  doses=[2e4], background=1.0))
    worse = tmp_path / "worse.toml"
    worse.write_text(good.read_text() + '[method_options.liao2026]\n"trace.min_distance_A" = 4.0\n'
                                        '"refine.add_distance_A" = 0.0\n')
    common = ["--quiet", "--cache-dir", str(tmp_path / "cache")]
    assert main(["run", str(good), "--reports", str(tmp_path / "a"), *common]) == 0
    assert main(["run", str(good), "--reports", str(tmp_path / "b"), *common]) == 0   # rerun, from the cache
    assert main(["run", str(worse), "--reports", str(tmp_path / "c"), *common]) == 0
    (a,), (b,), (c,) = (list((tmp_path / x / "gate").iterdir()) for x in "abc")
    assert main(["validate", str(a), "--write-baseline", str(tmp_path / "base.json")]) == 0
    capsys.readouterr()
    assert main(["validate", str(b), "--baseline", str(tmp_path / "base.json")]) == 0
    assert main(["validate", str(c), "--baseline", str(tmp_path / "base.json")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err and all(line.startswith("aetbench: validate: regression: ") and "random-Si30 dose 20000 liao2026 Si"
                       in line and "→" in line for line in err), err
    metrics = {line.split("regression: ")[1].split(" of ")[0] for line in err}
    acc = tmp_path / "accepted.toml"
    acc.write_text("".join(f'[[accepted]]\nmetric = "{m}"\nmethod = "liao2026"\n'
                           f'reason = "a larger minimum distance"\n' for m in metrics))
    assert main(["validate", str(c), "--baseline", str(a), "--accepted", str(acc)]) == 0
    assert "accepted: " in capsys.readouterr().out


def test_bad_gate_input_is_one_line(tmp_path, capsys):
    (tmp_path / "scores.csv").write_text("a,b\n1,2\n")
    assert main(["validate", str(tmp_path), "--baseline", str(tmp_path)]) == 2
    assert capsys.readouterr().err.strip() == f"aetbench: error: {tmp_path / 'scores.csv'}: not a scores table " \
                                              "(missing columns: structure, dose, method, element, protocol)"
    _df().to_csv(tmp_path / "scores.csv", index=False)
    assert main(["validate", str(tmp_path), "--baseline", str(tmp_path), "--tolerance", "speed=1"]) == 2
    assert "--tolerance 'speed=1': expected METRIC=VALUE" in capsys.readouterr().err
    assert main(["validate", str(tmp_path), "--baseline", str(tmp_path / "nope.json")]) == 2
