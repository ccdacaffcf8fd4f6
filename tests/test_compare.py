"""``aetbench compare`` (issue 16): the confidence intervals hold their coverage on a known distribution, paired
differences find a known offset, and N realisations differ in their noise only."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd

from aetbench.cli import main
from aetbench.compare import mean_ci, paired_differences, summarise
from conftest import tiny_scenario


def test_ci_covers_the_true_mean_95_percent_of_the_time():
    """4000 experiments of 5 draws from N(3, 2): the 95 % Student-t interval covers 3 in 95 ± 1.5 % of them
    (4.4 binomial standard deviations)."""
    rng = np.random.default_rng(11)
    hits = 0
    for _ in range(4000):
        m, h, n = mean_ci(rng.normal(3.0, 2.0, 5))
        hits += abs(m - 3.0) <= h
    assert n == 5
    assert 0.935 <= hits / 4000 <= 0.965


def _fake(n_seeds: int, offset: float, rng) -> pd.DataFrame:
    """Two fake methods on the same realisations: a shared noise term per seed (the data) plus a small own term;
    method b is ``offset`` pm worse on average."""
    rows = []
    for s in range(n_seeds):
        shared = rng.normal(0, 3.0)
        for m, mu in (("a", 10.0), ("b", 10.0 + offset)):
            rows.append({"structure": "p", "dose": 1e4, "method": m, "element": "Si", "protocol": "paper",
                         "seed": s, "rate_pct": 100.0, "precision_pm": mu + shared + rng.normal(0, 0.2),
                         "f1_pct": np.nan})
    return pd.DataFrame(rows)


def test_paired_differences_see_through_the_shared_noise():
    """A 1 pm offset under 3 pm of realisation noise: the unpaired intervals overlap, the paired difference is
    −1 ± ~0.2 pm with p ≪ 0.01; with no offset the test is not significant."""
    rng = np.random.default_rng(5)
    df = _fake(8, 1.0, rng)
    s = summarise(df).set_index("method")
    assert s.loc["a", "precision_pm_ci"] > 1.0 and s.loc["b", "seeds"] == 8
    p = paired_differences(df)
    row = p[(p.metric == "precision_pm")].iloc[0]
    assert (row.a, row.b, row.n) == ("a", "b", 8)
    assert abs(row.mean_diff + 1.0) < row.ci < 0.5
    assert row.p_value < 0.01
    rate = p[(p.metric == "rate_pct")].iloc[0]
    assert rate.mean_diff == 0 and rate.p_value == 1.0
    null = paired_differences(_fake(8, 0.0, np.random.default_rng(6)))
    assert null[null.metric == "precision_pm"].iloc[0].p_value > 0.05


SCENARIO = tiny_scenario("cmp", ["fbp", "sirt"], seed=3, image_size=28, doses=[3e4],
                         extra="[method_options.sirt]\niterations = 20")


def test_compare_end_to_end(tmp_path, capsys):
    sc = tmp_path / "cmp.toml"
    sc.write_text(SCENARIO)
    common = ["--quiet", "--reports", str(tmp_path / "r"), "--cache-dir", str(tmp_path / "c")]
    assert main(["compare", str(sc), "--seeds", "3", "--jobs", "2", *common]) == 0
    out = capsys.readouterr().out
    assert "## Paired differences" in out and "fbp − sirt" in out and " ± " in out
    (folder,) = (tmp_path / "r" / "cmp").glob("compare-*")
    seeds = pd.read_csv(folder / "seeds.csv")
    assert sorted(seeds["seed"].unique()) == [3, 4, 5] and len(seeds) == 3 * 2 * 2
    assert (seeds["n_truth"] == 12).all()
    prec = seeds[(seeds.method == "fbp") & (seeds.protocol == "paper")]["precision_pm"]
    assert prec.nunique() == 3  # new noise in every realisation
    noise = [json.loads((folder / f"seed-{k}" / "provenance.json").read_text())["scenario"] for k in range(3)]
    assert [n["noise_seed"] for n in noise] == [3, 4, 5] and {n["seed"] for n in noise} == {3}
    for name in ("summary.csv", "paired.csv", "compare.md", "compare_paper.png", "compare_strict.png"):
        assert (folder / name).is_file(), name
    # realisation 0 is the plain run: same seeds, same numbers
    assert main(["run", str(sc), *common]) == 0
    (plain,) = [p for p in (tmp_path / "r" / "cmp").iterdir() if not p.name.startswith("compare-")]
    a = pd.read_csv(plain / "scores.csv")
    b = pd.read_csv(folder / "seed-0" / "scores.csv")
    pd.testing.assert_frame_equal(a[["method", "protocol", "rate_pct", "precision_pm"]],
                                  b[["method", "protocol", "rate_pct", "precision_pm"]])


def test_compare_runs_the_scenarios_own_methods(tmp_path, capsys):
    """A ``[methods.NAME]`` table of the scenario is a method ``compare`` knows, as ``run`` does."""
    sc = tmp_path / "own.toml"
    text = tiny_scenario("own", ["sirt"], seed=3, image_size=28, doses=[3e4],
                         extra='[methods.sirt20]\nbase = "sirt"\niterations = 20')
    sc.write_text(text.replace('methods = ["sirt"]\n', ""))  # the tables name the methods
    assert main(["compare", str(sc), "--seeds", "1", "--quiet", "--reports", str(tmp_path / "r"),
                 "--cache-dir", str(tmp_path / "c")]) == 0
    (folder,) = (tmp_path / "r" / "own").glob("compare-*")
    assert set(pd.read_csv(folder / "seeds.csv")["method"]) == {"sirt20"}
    capsys.readouterr()
    bad = tmp_path / "bad.toml"
    bad.write_text(tiny_scenario("bad", ["nosuch"], seed=3, image_size=28, doses=[3e4]))
    assert main(["compare", str(bad), "--seeds", "1", "--quiet", "--reports", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "unknown method 'nosuch'" in err


def test_compare_refuses_bad_seed_count(tmp_path, capsys):
    sc = tmp_path / "cmp.toml"
    sc.write_text(SCENARIO)
    assert main(["compare", str(sc), "--seeds", "0", "--quiet"]) == 2
    assert capsys.readouterr().err.strip() == "aetbench: error: --seeds: expected a whole number ≥ 1, got 0"


def test_compare_on_a_dask_cluster_gives_the_same_numbers(tmp_path, capsys):
    """--scheduler: the realisations (simulation, reconstruction, scoring) run as dask tasks, with the numbers of
    the local processes (separate caches, so nothing is reused)."""
    from distributed import LocalCluster

    sc = tmp_path / "cmp.toml"
    sc.write_text(SCENARIO)
    with LocalCluster(n_workers=1, threads_per_worker=2, processes=False, dashboard_address=None) as cluster:
        assert main(["compare", str(sc), "--seeds", "2", "--scheduler", cluster.scheduler_address, "--quiet",
                     "--reports", str(tmp_path / "d"), "--cache-dir", str(tmp_path / "dc")]) == 0
    assert main(["compare", str(sc), "--seeds", "2", "--jobs", "1", "--quiet",
                 "--reports", str(tmp_path / "l"), "--cache-dir", str(tmp_path / "lc")]) == 0
    capsys.readouterr()
    (d,), (loc,) = (tmp_path / "d" / "cmp").glob("compare-*"), (tmp_path / "l" / "cmp").glob("compare-*")
    cols = ["seed", "method", "protocol", "rate_pct", "precision_pm"]
    pd.testing.assert_frame_equal(pd.read_csv(d / "seeds.csv")[cols], pd.read_csv(loc / "seeds.csv")[cols])
