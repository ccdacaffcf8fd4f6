"""The open method API (issue 15): one stage contract, methods from outside aetbench, variants, cache keys from code.

The outside package ``tests/outside_methods/aetbench_outside`` defines a reconstruction (FBP with unsharp
masking) and is registered three ways: :func:`register_method`, a scenario ``[methods.NAME]`` table and an entry
point of the group ``aetbench.methods`` (a ``*.dist-info`` written into a folder on ``sys.path``, as ``pip install``
would).  Every run is the smallest whole pipeline: 12 random Si atoms, 24×24 pixels, 11 tilts, one dose.
"""
from __future__ import annotations

import importlib
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from aetbench.io.files import AetbenchError
from aetbench.methods import (
    METHODS,
    STAGE_KINDS,
    Method,
    StageKind,
    Step,
    get_method,
    register_method,
    register_stage_kind,
    run_method,
)
from aetbench.pipeline import run_scenario

OUTSIDE = Path(__file__).resolve().parent / "outside_methods"

TINY = """
name = "{name}"
seed = 4
{methods}
structure = {{ source = "random", n_atoms = 12 }}
simulation = {{ pixel_size = 0.4, image_size = 24, doses = [1e7], background = 0.0, tilt = {{ start = -60.0, stop = 60.0, step = 12.0 }} }}
scoring = {{ protocol = ["strict"] }}
{tables}
"""


@pytest.fixture(autouse=True)
def fast_plots(monkeypatch):
    """Skip rendering the report's PNGs (written as placeholders): the numbers are the point here."""
    from aetbench.io.files import atomic_write_path
    from aetbench.report import plots

    def placeholder(fig, path):
        import matplotlib.pyplot as plt

        with atomic_write_path(path) as tmp:
            tmp.write_bytes(b"\x89PNG placeholder")
        plt.close(fig)

    monkeypatch.setattr(plots, "_save", placeholder)


@pytest.fixture
def outside(tmp_path, monkeypatch):
    """The outside package importable and its entry point installed (a dist-info in a sys.path folder)."""
    site = tmp_path / "site"
    info = site / "aetbench_outside-0.1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: aetbench-outside\nVersion: 0.1.0\n")
    (info / "entry_points.txt").write_text("[aetbench.methods]\noutside-ep = aetbench_outside.methods:METHOD\n")
    monkeypatch.syspath_prepend(str(OUTSIDE))
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setenv("AETBENCH_OUTSIDE_CALLS", str(tmp_path / "calls.txt"))
    before = set(METHODS)
    yield tmp_path
    for name in set(METHODS) - before:
        del METHODS[name]


def _scenario(tmp_path: Path, name: str, methods: str, tables: str = "") -> Path:
    p = tmp_path / f"{name}.toml"
    p.write_text(TINY.format(name=name, methods=methods, tables=tables))
    return p


def _calls(tmp_path: Path) -> int:
    f = tmp_path / "calls.txt"
    return len(f.read_text().splitlines()) if f.exists() else 0


def _rows(out: Path) -> pd.DataFrame:
    return pd.read_csv(out / "scores.csv").set_index("method")


def test_outside_method_three_ways_end_to_end(outside, capsys):
    """register_method, a [methods.X] table and an entry point: each runs through run_scenario and is scored."""
    from aetbench_outside.recon import sharpened_fbp

    from aetbench.cli import main

    assert main(["list"]) == 0   # the entry point is found without registering anything
    assert any(line.split()[:1] == ["outside-ep"] for line in capsys.readouterr().out.splitlines())

    register_method("outside-reg", [
        Step("preprocess", "aetbench.preprocess.background:subtract_background"),
        Step("reconstruct", sharpened_fbp, {"filter": "hann", "sharpen": 0.0}),   # a callable, plain signature
        Step("trace", "aetbench.trace.peaks:trace_atoms", {"method": "com", "min_distance_A": 1.9, "oversampling": 1}),
        Step("classify", "aetbench.trace.classify:classify", {"radius_A": 0.8})], description="outside, registered")
    table = """
[methods.fbp]
[methods.outside-reg]
[methods.outside-toml]
description = "sharpened FBP on the stage contract, defined in the scenario"
steps = [
  { stage = "preprocess", func = "aetbench.preprocess.background:subtract_background" },
  { stage = "reconstruct", func = "aetbench_outside.recon:sharpened_fbp_stage", params = { sharpen = 0.3 } },
  { stage = "trace", func = "aetbench.trace.peaks:trace_atoms", params = { min_distance_A = 1.9 } },
  { stage = "classify", func = "aetbench.trace.classify:classify" },
]
[methods.outside-ep]
"""
    p = _scenario(outside, "outside", "", table)
    out = run_scenario(p, quiet=True, cache_dir=outside / "cache", out_dir=outside / "report")
    rows = _rows(out)
    assert set(rows.index) == {"fbp", "outside-reg", "outside-toml", "outside-ep"}
    assert _calls(outside) == 3   # the outside function ran once per outside method
    for m in ("outside-reg", "outside-toml", "outside-ep"):
        r = rows.loc[m]
        assert r["n_truth"] == 12 and r["rate_pct"] >= 90.0, (m, r["rate_pct"])
        assert 0.0 < r["precision_pm"] < 40.0, (m, r["precision_pm"])
    # sharpen = 0 is aetbench's FBP with the same steps: the registered callable reproduces it exactly
    for col in ("identified", "rate_pct", "precision_pm"):
        assert rows.loc["outside-reg", col] == rows.loc["fbp", col]
    # the table and the entry point run the same function (sharpen 0.3) through the two calling forms
    for col in ("identified", "precision_pm"):
        assert rows.loc["outside-toml", col] == pytest.approx(rows.loc["outside-ep", col], rel=1e-6)


def test_editing_an_outside_function_invalidates_its_cached_result(tmp_path, monkeypatch):
    """Same scenario twice: cache hit; after editing the function's source file: recomputed, not reused."""
    src = (OUTSIDE / "aetbench_outside" / "recon.py").read_text()
    mod = tmp_path / "outside_edit_mod.py"
    mod.write_text(src)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(sys, "dont_write_bytecode", True)
    monkeypatch.setenv("AETBENCH_OUTSIDE_CALLS", str(tmp_path / "calls.txt"))
    sys.modules.pop("outside_edit_mod", None)
    table = """
[methods.mine]
steps = [
  { stage = "reconstruct", func = "outside_edit_mod:sharpened_fbp", params = { sharpen = 0.2 } },
  { stage = "trace", func = "aetbench.trace.peaks:trace_atoms" },
  { stage = "classify", func = "aetbench.trace.classify:classify" },
]
"""
    p = _scenario(tmp_path, "edit", "", table)

    def run(tag):
        return _rows(run_scenario(p, quiet=True, cache_dir=tmp_path / "cache", out_dir=tmp_path / tag))

    try:
        first = run("r1")
        assert _calls(tmp_path) == 1
        run("r2")
        assert _calls(tmp_path) == 1, "unchanged code and parameters: the cached result is reused"
        # edit the function: a stronger default blur (same parameters in the scenario)
        mod.write_text(src.replace("blur_A: float = 0.6,", "blur_A: float = 0.9,"))
        importlib.reload(sys.modules["outside_edit_mod"])
        third = run("r3")
        assert _calls(tmp_path) == 2, "edited function: its cached result must not be reused"
        assert len(list((tmp_path / "cache" / "results").glob("*.npz"))) == 2
        assert third.loc["mine", "n_truth"] == first.loc["mine", "n_truth"] == 12
    finally:
        sys.modules.pop("outside_edit_mod", None)


VARIANTS = """
[methods.liao-com]
base = "liao2026"
"trace.method" = "com"
"reconstruct.iterations" = 40
"refine.iterations" = 10
[methods.liao-poly]
base = "liao2026"
"trace.method" = "poly"
"reconstruct.iterations" = 40
"refine.iterations" = 10
"""


def test_two_variants_of_one_method_in_one_run(tmp_path):
    """liao2026 with trace.method com vs poly side by side: both rows, each with its own tracer."""
    p = _scenario(tmp_path, "variants", "", VARIANTS)
    from aetbench.methods import scenario_methods
    from aetbench.scenario import load_scenario

    ms = scenario_methods(load_scenario(p, known_methods=METHODS))
    assert [m.step("trace").params["method"] for m in ms.values()] == ["com", "poly"]
    assert ms["liao-com"].fingerprint() != ms["liao-poly"].fingerprint()
    assert [s.ref for s in ms["liao-poly"].steps] == [s.ref for s in METHODS["liao2026"].steps]
    rows = _rows(run_scenario(p, quiet=True, cache_dir=tmp_path / "cache", out_dir=tmp_path / "report"))
    assert list(rows.index) == ["liao-com", "liao-poly"]
    assert (rows["rate_pct"] >= 90.0).all() and (rows["precision_pm"] < 40.0).all()


def test_shipped_variants_scenario_defines_both_tracers():
    from aetbench.methods import scenario_methods
    from aetbench.scenario import load_scenario

    sc = load_scenario(Path(__file__).resolve().parents[1] / "aetbench" / "data" / "scenarios" / "variants.toml", known_methods=METHODS)
    ms = scenario_methods(sc)
    assert {m.step("trace").params["method"] for m in ms.values()} == {"com", "poly"}
    assert sc.simulation.model == "linear"


def _series(seed=4):
    from aetbench.simulate.linear import simulate_linear
    from aetbench.structures.random import random_sphere

    truth = random_sphere(12, element="Si", min_distance=2.2, density=0.05, seed=seed)
    th = np.arange(-60.0, 61.0, 12.0)
    angles = np.stack([np.zeros_like(th), th, np.zeros_like(th)], axis=1)
    return truth, simulate_linear(truth, angles, pixel_size=0.4, shape=(24, 24),
                                  centre=truth.positions.mean(axis=0))


def test_a_new_stage_kind_needs_no_runner_code():
    """Register an ``align`` kind (series → series) whose contract function records its shifts in ctx.records;
    a later refine-kind contract function reads them: the runner passes both through without knowing them."""
    seen = {}

    def shift_nothing(ts, ctx, *, shift_px: float = 0.0):
        ctx.records["align_shifts_px"] = [[shift_px, 0.0]] * len(ts.images)
        return ts

    def look(traced, ctx):
        seen.update(records=dict(ctx.records), elements=ctx.elements, seed=ctx.seed, has_volume=ctx.volume is not None)
        return traced

    register_stage_kind(StageKind("align", takes="series", gives="series"))
    try:
        m = Method("aligned-fbp", "test", (
            Step("align", shift_nothing, {"shift_px": 0.0}),
            Step("reconstruct", "aetbench.reconstruct.fbp:fbp", {"filter": "hann"}),
            Step("trace", "aetbench.trace.peaks:trace_atoms", {}),
            Step("classify", "aetbench.trace.classify:classify", {}),
            Step("refine", look)))
        truth, ts = _series()
        res = run_method(m, ts, elements=["Si"], seed=5)
        plain = run_method(get_method("fbp"), ts, elements=["Si"], seed=5)
    finally:
        del STAGE_KINDS["align"]
    assert seen["records"]["align_shifts_px"] == [[0.0, 0.0]] * len(ts.images)
    assert seen["elements"] == ["Si"] and seen["seed"] == 5 and seen["has_volume"]
    assert set(res.seconds) == {"align", "reconstruct", "trace", "classify", "refine"}
    # fbp's own preprocessing (background) differs; both land on the truth's 12 atoms in its frame
    for r in (res, plain):
        d = np.linalg.norm(r.traced.model.positions[:, None] - truth.positions[None], axis=2).min(axis=0)
        assert (d < 0.9).sum() >= 11


@pytest.mark.parametrize("table, field, words", [
    ('[methods.x]\nbase = "fbp"\n"trace.nonsense" = 1\n', "methods.x.trace.nonsense", "unknown parameter"),
    ('[methods.x]\nbase = "fbp"\n"trace.min_distance_A" = "far"\n', "methods.x.trace.min_distance_A",
     "expected a finite number [Å]"),
    ('[methods.x]\nsteps = [{ stage = "polish", func = "aetbench.trace.peaks:trace_atoms" }]\n',
     "methods.x.steps[0].stage", "unknown stage 'polish'"),
    ('[methods.x]\nsteps = [{ stage = "trace", func = "aetbench.trace.peaks:no_such" }]\n',
     "methods.x.steps[0].func", "no function 'no_such'"),
    ('[methods.x]\nsteps = [{ stage = "trace", func = "no_such_pkg.mod:f" }]\n',
     "methods.x.steps[0].func", "cannot import module 'no_such_pkg.mod'"),
    ('[methods.x]\nsteps = [{ stage = "trace", func = "aetbench.trace.peaks:trace_atoms", params = { sigma = 1 } }]\n',
     "methods.x.steps[0].params.sigma", "unknown parameter"),
    ('[methods.x]\nbase = "nope"\n', "methods.x.base", "unknown method 'nope'"),
])
def test_bad_method_tables_are_refused_in_one_line(tmp_path, table, field, words):
    p = _scenario(tmp_path, "bad", "", table)
    with pytest.raises(AetbenchError) as e:
        run_scenario(p, quiet=True, cache_dir=tmp_path / "cache", out_dir=tmp_path / "report")
    msg = str(e.value)
    assert "\n" not in msg and str(p) in msg and field in msg and words in msg, msg
    assert not (tmp_path / "report").exists()


def test_method_options_still_apply_and_are_checked(tmp_path):
    p = _scenario(tmp_path, "opts", 'methods = ["fbp"]', '[method_options.fbp]\n"reconstruct.filter" = 3\n')
    with pytest.raises(AetbenchError, match=r"method_options\.fbp\.reconstruct\.filter: expected str, got 3"):
        run_scenario(p, quiet=True, cache_dir=tmp_path / "cache", out_dir=tmp_path / "report")
    # a qualified key may set any parameter the function takes, not only those the method lists
    m = get_method("fbp", {"trace.threshold_fraction": 0.2})
    assert m.step("trace").params["threshold_fraction"] == 0.2
    with pytest.raises(AetbenchError, match="ambiguous"):
        get_method("resire", {"iterations": 3})


def test_register_method_refuses_duplicates_and_bad_steps():
    with pytest.raises(AetbenchError, match="already registered"):
        register_method(METHODS["fbp"])
    with pytest.raises(AetbenchError, match=r"method y\.steps\[0\]\.params\.bogus: unknown parameter"):
        register_method("y", [("reconstruct", "aetbench.reconstruct.fbp:fbp", {"bogus": 1})])
    assert "y" not in METHODS
