"""Experimental errors from a scenario: applied, recorded as truth, and hidden from the reconstruction."""
from __future__ import annotations

import numpy as np

from aetbench import pipeline
from aetbench.methods import METHODS
from aetbench.scenario import load_scenario
from aetbench.types import TiltSeries

SCENARIO = """
name = "errs"
methods = ["fbp"]
seed = 4
[structure]
source = "random"
n_atoms = 12
[simulation]
pixel_size = 0.4
image_size = 24
tilt = { start = -60.0, stop = 60.0, step = 20.0 }
doses = [1e7]
background = 0.0
[simulation.errors]
shift_sigma_A = 0.5
angle_sigma_deg = 0.4
intensity_sigma_rel = 0.05
"""


def _cases(tmp_path, text):
    tmp_path.mkdir(parents=True, exist_ok=True)
    p = tmp_path / "errs.toml"
    p.write_text(text)
    sc = load_scenario(p, known_methods=METHODS)
    return sc, pipeline.cases(sc, tmp_path / "cache")


def test_errors_are_applied_and_recorded(tmp_path):
    _, (case,) = _cases(tmp_path, SCENARIO)
    ts = case.make()
    truth = ts.metadata["truth"]
    true = np.asarray(truth["angles_deg"])
    assert np.allclose(true[:, 1], np.arange(-60.0, 61.0, 20.0))
    err = ts.angles - true
    assert np.allclose(err, np.asarray(truth["angle_errors_deg"]))
    assert np.all(err[:, 1] != 0) and np.allclose(err[:, [0, 2]], 0.0)   # only theta by default
    assert np.asarray(truth["shifts_A"]).shape == (7, 2) and 0.1 < np.std(truth["shifts_A"]) < 1.5
    s = np.asarray(truth["intensity_scale"])
    assert s.shape == (7,) and np.all(np.abs(s - 1) < 0.3) and np.std(s) > 0
    # the same seed gives the same errors; the clean series without errors differs only by them
    _, (again,) = _cases(tmp_path / "b", SCENARIO)
    assert np.array_equal(again.make().images, ts.images)
    _, (plain,) = _cases(tmp_path / "c", SCENARIO.split("[simulation.errors]")[0])
    p = plain.make()
    assert "truth" not in p.metadata and np.allclose(p.angles[:, 1], true[:, 1])
    # the counts scale with the recorded beam-current factor (1e7 e/Å²: shot noise ≈ 0.2 %)
    ratio = ts.images.sum(axis=(1, 2)) / p.images.sum(axis=(1, 2))
    assert np.allclose(ratio, s, rtol=0.01)


def test_pipeline_hides_truth_from_the_method(tmp_path, monkeypatch):
    seen: list[TiltSeries] = []
    real = pipeline.run_method

    def spy(method, ts, **kw):
        seen.append(ts)
        return real(method, ts, **kw)

    monkeypatch.setattr(pipeline, "run_method", spy)
    p = tmp_path / "errs.toml"
    p.write_text(SCENARIO)
    out = pipeline.run_scenario(p, quiet=True, cache_dir=tmp_path / "cache", out_dir=tmp_path / "report")
    assert (out / "scores.csv").exists()
    (ts,) = seen
    assert "truth" not in ts.metadata
    _, (case,) = _cases(tmp_path, SCENARIO)
    assert np.array_equal(ts.angles, case.make().angles)       # nominal angles, not the true ones
    # the report compares the geometry the method used with the truth: fbp neither aligns nor refines, so its
    # "found" row equals the "nominal" one, and the theta error is the simulated one (0.4° sd, 7 draws)
    import pandas as pd

    geo = pd.read_csv(out / "geometry.csv")
    assert geo["geometry"].tolist() == ["nominal", "found"]
    nominal, found = geo.iloc[0], geo.iloc[1]
    assert np.isclose(nominal["theta_rms_deg"], found["theta_rms_deg"]) and 0.1 < nominal["theta_rms_deg"] < 1.0
    assert nominal["phi_rms_deg"] < 1e-9 and nominal["psi_rms_deg"] < 1e-9
    assert 0.1 < nominal["shift_rms_A"] < 1.0
    assert "Projection geometry against the simulated truth" in (out / "report.md").read_text()
