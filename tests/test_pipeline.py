"""End to end: the README's main command (quick scenario) and resuming from the cache."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from aetbench.cli import main

REPO = Path(__file__).resolve().parents[1]
QUICK = REPO / "aetbench" / "data" / "scenarios" / "quick.toml"


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    base = tmp_path_factory.mktemp("quick")
    rc = main(["run", str(QUICK), "--quiet", "--reports", str(base / "reports"),
               "--cache-dir", str(base / "cache")])
    assert rc == 0
    (run,) = list((base / "reports" / "quick").iterdir())
    return base, run


def test_quick_scenario_meets_targets(quick_run):
    _, run = quick_run
    df = pd.read_csv(run / "scores.csv")
    assert list(df.columns[:16]) == ["structure", "dose", "method", "element", "protocol", "cutoff", "n_truth",
                                     "n_traced", "identified", "rate_pct", "precision_pm", "false_positives",
                                     "wrong_element", "recall_pct", "f1_pct", "seconds"]
    row = df[(df.method == "resire") & (df.protocol == "strict") & (df.dose == 1.6e5)].iloc[0]
    assert row.n_truth == 208
    assert row.rate_pct >= 99.0, row
    assert row.precision_pm <= 15.0, row
    # every (dose, method, protocol) cell is present
    assert len(df) == 2 * 2 * 2


def test_quick_report_files(quick_run):
    _, run = quick_run
    text = (run / "report.md").read_text()
    assert "Strict protocol" in text and "Paper protocol" in text
    assert (run / "rate_precision_strict.png").stat().st_size > 1000
    assert (run / "position_errors.png").exists()
    import ase.io

    models = sorted((run / "models").glob("*.xyz"))
    assert len(models) == 4 and len(ase.io.read(models[0])) > 150


def test_rerun_reuses_cache(quick_run):
    import time

    base, first = quick_run
    t0 = time.perf_counter()
    rc = main(["run", str(QUICK), "--quiet", "--reports", str(base / "reports2"),
               "--cache-dir", str(base / "cache")])
    assert rc == 0
    (run,) = list((base / "reports2" / "quick").iterdir())
    a, b = pd.read_csv(first / "scores.csv"), pd.read_csv(run / "scores.csv")
    timing = ["seconds", "compile_s", "series_s", "cached"]  # the rerun flags its rows as cached, scores unchanged
    pd.testing.assert_frame_equal(a.drop(columns=timing), b.drop(columns=timing))
    assert not a["cached"].any() and b["cached"].all()
    assert (a["seconds"] == b["seconds"]).all()  # cached rows repeat the timings of the run that computed them
    assert time.perf_counter() - t0 < 60  # nothing is recomputed (generous bound: report plots only)
