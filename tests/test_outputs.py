"""What a report carries besides the scores (issue 16): provenance, file modes, strict-protocol recall and F1,
timings split from the series and the compilation, published numbers only beside the method they belong to."""
from __future__ import annotations

import hashlib
import json
import os
import stat

import numpy as np
import pandas as pd
import pytest

from aetbench.io.files import atomic_write_text
from aetbench.pipeline import run_scenario
from aetbench.report.markdown import with_published
from aetbench.score import score
from aetbench.types import AtomicModel
from conftest import tiny_scenario

SCENARIO = tiny_scenario("outputs", ["fbp", "sirt"], seed=3, image_size=28, doses=[1e6],
                         extra="[method_options.sirt]\niterations = 20")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """One tiny run (two methods, one dose), then the same again from the cache."""
    d = tmp_path_factory.mktemp("outputs")
    sc = d / "outputs.toml"
    sc.write_text(SCENARIO)
    first = run_scenario(sc, reports_root=d / "reports", cache_dir=d / "cache", quiet=True)
    second = run_scenario(sc, reports_root=d / "reports", cache_dir=d / "cache", quiet=True)
    return sc, first, second


def test_provenance_names_code_inputs_settings_and_run(run):
    sc, first, second = run
    p = json.loads((first / "provenance.json").read_text())
    import aetbench

    assert p["aetbench"]["version"] == aetbench.__version__
    assert {"git_commit", "git_dirty"} <= set(p["aetbench"])
    if p["aetbench"]["git_commit"] is not None:  # a checkout: a full commit hash and a boolean dirty flag
        assert len(p["aetbench"]["git_commit"]) == 40 and isinstance(p["aetbench"]["git_dirty"], bool)
    assert {"numpy", "numba", "scipy", "abtem", "ase"} <= set(p["packages"])
    assert p["packages"]["numpy"] == np.__version__
    text = sc.read_text()
    assert p["scenario"]["content"] == text
    assert p["scenario"]["sha256"] == hashlib.sha256(text.encode()).hexdigest()
    assert p["scenario"]["seed"] == 3
    steps = {s["stage"]: s["params"] for s in p["methods"]["sirt"]["steps"]}
    assert steps["reconstruct"]["iterations"] == 20  # resolved parameters, the override applied
    assert p["run"]["host"] and p["run"]["started_utc"] <= p["run"]["finished_utc"]
    assert isinstance(p["run"]["command"], list)
    assert p["run"]["cache"] == {"hits": {"results": 0}, "misses": {"results": 2}}
    p2 = json.loads((second / "provenance.json").read_text())
    assert p2["run"]["cache"] == {"hits": {"results": 2}, "misses": {"results": 0}}


def test_every_output_file_is_0644_under_umask_022(run, tmp_path):
    old = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / "x.txt", "x")
        assert stat.S_IMODE((tmp_path / "x.txt").stat().st_mode) == 0o644
    finally:
        os.umask(old)
    _, first, _ = run
    modes = {p.relative_to(first).as_posix(): stat.S_IMODE(p.stat().st_mode) for p in first.rglob("*") if p.is_file()}
    assert {"scores.csv", "report.md", "report.html", "provenance.json", "stage_seconds.csv"} <= set(modes)
    want = 0o666 & ~old
    assert all(m == want for m in modes.values()), modes


def test_timings_are_split_and_cached_rows_flagged(run):
    _, first, second = run
    a, b = pd.read_csv(first / "scores.csv"), pd.read_csv(second / "scores.csv")
    for col in ("seconds", "compile_s", "series_s", "cached"):
        assert col in a
    assert not a["cached"].any() and b["cached"].all()
    # the cached rerun repeats the method timings of the run that computed them, flagged
    assert np.array_equal(a["seconds"].to_numpy(), b["seconds"].to_numpy())
    assert (a["series_s"] > 0).all() and (a["compile_s"] >= 0).all() and (a["seconds"] >= 0).all()
    st = pd.read_csv(first / "stage_seconds.csv")
    total = st[[c for c in st if c.endswith("_s") and c not in ("load_s", "compile_s", "method_s")]].sum(axis=1)
    assert np.allclose(st["method_s"], np.maximum(total - st["compile_s"], 0), atol=2e-3)


def test_strict_rows_carry_recall_and_f1():
    truth = AtomicModel(np.arange(30, dtype=float).reshape(10, 3) * 3.0, ["Si"] * 10)
    c = truth.positions.mean(axis=0)  # both ends missed and four false atoms placed symmetrically: same centroid
    extra = c + np.array([[1.5, 0, 0], [-1.5, 0, 0], [0, 1.5, 0], [0, -1.5, 0]])
    model = AtomicModel(np.vstack([truth.positions[1:9], extra]), ["Si"] * 12)
    strict = score(model, truth, cutoff=0.9, protocol="strict").iloc[0]
    # 8 of 10 found, 8 of 12 traced are right: recall 80 %, detection precision 66.7 %, F1 = 2·80·66.7/146.7
    assert strict["recall_pct"] == pytest.approx(80.0)
    assert strict["f1_pct"] == pytest.approx(2 * 80 * (800 / 12) / (80 + 800 / 12))
    paper = score(model, truth, cutoff=0.9, protocol="paper").iloc[0]
    assert np.isnan(paper["recall_pct"]) and np.isnan(paper["f1_pct"])  # many-to-one: no detection precision


def test_published_numbers_stand_only_beside_their_method():
    rows = [{"structure": "aSi208", "dose": 1.6e4, "method": m, "element": "Si", "protocol": "paper",
             "rate_pct": 99.0, "precision_pm": 10.0, "reference": "liao2026/aSi208"}
            for m in ("liao2026", "sirt", "liao2026-robust", "busch2026")]
    out = with_published(pd.DataFrame(rows))
    assert out["method"].tolist() == ["liao2026", "liao2026-robust"]
    assert out["paper_precision_pm"].tolist() == [17.31, 17.31]


def test_report_html_is_self_contained(run):
    _, first, _ = run
    page = (first / "report.html").read_text()
    assert page.startswith("<!DOCTYPE html>") and "<table>" in page
    assert page.count("data:image/png;base64,") == len(list(first.glob("*.png")))  # every figure, inlined
    assert 'src="' not in page.replace('src="data:image/png;base64,', "")       # nothing read from beside it
    titles = (first / "report.md").read_text().count("\n## ")
    assert page.count("<h2>") == titles


def test_recipe_structures_are_cached_in_the_runs_cache_folder(tmp_path):
    """``--cache-dir`` holds everything a run caches, the built particle included (not the working directory's)."""
    sc = tmp_path / "st.toml"
    sc.write_text('name = "st"\nmethods = ["fbp"]\n[structure]\nsource = "recipe"\nrecipe = "asi208"\n'
                  '[simulation]\npixel_size = 0.5\nimage_size = 48\ntilt = { start = -60.0, stop = 60.0, step = 12.0 }\n'
                  'doses = [1e6]\n')
    run_scenario(sc, reports_root=tmp_path / "r", cache_dir=tmp_path / "c", quiet=True)
    built = sorted(p.suffix for p in (tmp_path / "c" / "structures").iterdir())
    assert built == [".extxyz", ".json"]


def test_the_report_shows_the_reconstruction_convergence(run):
    """sirt records its R-factor per iteration; fbp (one step) records none: the report's convergence table, the
    CSV and the curves hold sirt's 20 iterations, the same from the cache."""
    _, first, second = run
    for folder in (first, second):
        conv = pd.read_csv(folder / "convergence.csv")
        assert set(conv["method"]) == {"sirt"} and conv["iteration"].tolist() == list(range(1, 21))
        assert (conv["r_factor"] > 0).all() and conv["r_factor"].iloc[-1] < conv["r_factor"].iloc[0]
        text = (folder / "report.md").read_text()
        assert "## Reconstruction convergence" in text and "![r_factor.png](r_factor.png)" in text
        assert (folder / "r_factor.png").stat().st_size > 0
    a, b = (pd.read_csv(f / "convergence.csv") for f in (first, second))
    assert np.array_equal(a["r_factor"].to_numpy(), b["r_factor"].to_numpy())
