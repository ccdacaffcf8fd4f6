"""Issue 3: the liao2026 workflow on the paper's own aSi208 projections must reach the paper's numbers.

Mandatory in CI (``paper_data`` fixture).  No step uses the ground truth except scoring.
"""
from __future__ import annotations

import pandas as pd
import pytest

from aetbench.cli import main

# Liao et al. 2026, aSi208, paper protocol, cutoff 0.9 Å: (rate %, precision pm)
PAPER = {8.0e3: (95.67, 28.91), 1.6e4: (100.0, 17.31), 1.6e5: (100.0, 4.24)}


@pytest.fixture(scope="module")
def asi208_run(paper_data, tmp_path_factory):
    from pathlib import Path

    base = tmp_path_factory.mktemp("asi208")
    scen = Path(__file__).resolve().parents[1] / "aetbench" / "data" / "scenarios" / "paper" / "asi208.toml"
    text = scen.read_text().replace('methods = ["liao2026", "sirt"]', 'methods = ["liao2026"]')
    (base / "asi208.toml").write_text(text)
    import os

    os.environ["AETBENCH_PAPER_DATA"] = str(paper_data)
    rc = main(["run", str(base / "asi208.toml"), "--quiet", "--reports", str(base / "reports"),
               "--cache-dir", str(base / "cache")])
    assert rc == 0
    (run,) = list((base / "reports" / "asi208").iterdir())
    return pd.read_csv(run / "scores.csv"), run


@pytest.mark.parametrize("dose", sorted(PAPER))
def test_liao2026_at_least_paper(asi208_run, dose):
    df, _ = asi208_run
    row = df[(df.protocol == "paper") & (df.dose == dose) & (df.method == "liao2026")].iloc[0]
    rate, prec = PAPER[dose]
    assert row.n_truth == 208
    assert row.rate_pct >= rate, row.to_dict()
    assert row.precision_pm <= prec, row.to_dict()


def test_report_has_published_numbers_and_figures(asi208_run):
    _, run = asi208_run
    text = (run / "report.md").read_text()
    assert "Beside the published numbers" in text and "28.91" in text
    assert (run / "position_errors.png").exists()
    assert any(run.glob("model_vs_truth_*.png"))


def test_regression_gate_against_the_committed_baseline(asi208_run, capsys):
    """CI's regression gate: liao2026 on the paper's aSi208 data against baselines/asi208.json (issue 16).
    A deliberate change is let through only by an entry in baselines/accepted-changes.toml."""
    from pathlib import Path

    _, run = asi208_run
    root = Path(__file__).resolve().parents[1] / "baselines"
    rc = main(["validate", str(run), "--baseline", str(root / "asi208.json"),
               "--accepted", str(root / "accepted-changes.toml")])
    out = capsys.readouterr()
    assert rc == 0, out.err
    assert "15 metrics compared" in out.out


def test_reproduce_asi208_table(asi208_run, capsys):
    """``aetbench reproduce asi208``: the table with the tier on every row, the published numbers beside ours and
    the authors' own traced models scored as sanity rows (the cache of the run above makes it quick)."""
    _, run = asi208_run
    base = run.parents[2]
    rc = main(["reproduce", "asi208", "--reports", str(base / "rep"), "--cache-dir", str(base / "cache"), "--quiet"])
    assert rc == 0
    (folder,) = (base / "rep" / "reproduce").iterdir()
    df = pd.read_csv(folder / "reproduce.csv")
    paper = df[df.protocol == "paper"]
    assert set(paper["tier"]) == {"paper data", "authors' model"}
    ours = paper[paper.tier == "paper data"].set_index("dose")
    assert ours.loc[1.6e4, "rate_pct"] == 100.0 and ours.loc[1.6e4, "precision_pm"] <= PAPER[1.6e4][1]
    authors = paper[paper.tier == "authors' model"].set_index("dose")
    for dose, (rate, prec) in PAPER.items():
        assert abs(authors.loc[dose, "rate_pct"] - rate) <= 0.01 and abs(authors.loc[dose, "precision_pm"] - prec) <= 0.01
    text = (folder / "reproduce.md").read_text()
    assert "## asi208" in text and "paper_precision_pm" in text and "28.91" in text
