"""Scenario validation: every bad file gives one line naming file and key, and a non-zero exit."""
from __future__ import annotations

import pytest

from aetbench.cli import main
from aetbench.methods import METHODS
from aetbench.scenario import ScenarioError, load_scenario

GOOD = """
name = "tiny"
methods = ["resire"]
[structure]
source = "random"
n_atoms = 20
[simulation]
pixel_size = 0.2
image_size = 32
tilt = { start = 0.0, stop = 90.0, step = 10.0 }
doses = [1e4]
"""

BAD = {
    "missing key": (GOOD.replace('name = "tiny"\n', ""), "name: missing required key"),
    "wrong type": (GOOD.replace("n_atoms = 20", 'n_atoms = "20"'), "structure.n_atoms: expected an integer"),
    "negative dose": (GOOD.replace("doses = [1e4]", "doses = [-1e4]"), "simulation.doses[0]: expected > 0"),
    "unknown method": (GOOD.replace('"resire"', '"magic"'), "unknown method 'magic'"),
    "unknown key": (GOOD.replace("[structure]", "[structure]\ncolour = 1"), "structure.colour: unknown key"),
    "missing file": ('name = "p"\nmethods = ["resire"]\n[[input]]\nkind = "paper-mat"\nprojections = "nope.mat"\n'
                     'angles = "nope2.mat"\npixel_size = 0.2\nelements = ["Si"]\n', "input[0].projections: file not found"),
    "bad toml": ("name = \n", "invalid TOML"),
    "out of range": (GOOD.replace("pixel_size = 0.2", "pixel_size = 0.0"), "simulation.pixel_size: expected ≥ 0.01 [Å]"),
    "defocus error on the linear model": (GOOD + "[simulation.errors]\ndefocus_sigma_A = 30.0\n",
                                          "simulation.errors.defocus_sigma_A: the linear model has no defocus"),
    "negative shift error": (GOOD + "[simulation.errors]\nshift_sigma_A = -1.0\n",
                             "simulation.errors.shift_sigma_A: expected ≥ 0.0 [Å]"),
}


def test_good_scenario_loads(tmp_path):
    p = tmp_path / "tiny.toml"
    p.write_text(GOOD)
    sc = load_scenario(p, known_methods=METHODS)
    assert sc.name == "tiny" and sc.structure.n_atoms == 20
    assert sc.simulation.doses == [1e4]
    with pytest.raises(Exception):
        sc.name = "other"  # frozen


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_scenario_one_line_error(case, tmp_path, capsys, monkeypatch):
    text, expected = BAD[case]
    p = tmp_path / "bad.toml"
    p.write_text(text)
    monkeypatch.setenv("AETBENCH_PAPER_DATA", str(tmp_path / "nowhere"))
    rc = main(["run", str(p), "--quiet", "--reports", str(tmp_path / "reports"), "--cache-dir", str(tmp_path / "c")])
    err = capsys.readouterr().err.strip()
    assert rc != 0
    assert len(err.splitlines()) == 1, err
    assert err.startswith("aetbench: error: ") and str(p) in err and expected in err, err
    assert not (tmp_path / "reports").exists() or not any((tmp_path / "reports").rglob("scores.csv"))


def test_missing_scenario_file(tmp_path, capsys):
    rc = main(["run", str(tmp_path / "nope.toml"), "--quiet"])
    assert rc != 0 and "nope.toml" in capsys.readouterr().err


def test_shipped_scenarios_validate():
    from pathlib import Path

    root = Path(__file__).resolve().parents[1] / "aetbench" / "data" / "scenarios"
    files = sorted(root.rglob("*.toml"))
    assert any(f.name == "quick.toml" for f in files)
    for f in files:
        sc = load_scenario(f, known_methods=METHODS)
        assert sc.methods, f


def test_scenario_error_is_aetbench_error():
    from aetbench.io.files import AetbenchError

    assert issubclass(ScenarioError, AetbenchError)


def test_shipped_abtem_scenarios_plan_a_valid_cell(paper_data):
    """Every shipped abTEM scenario gives a cell whose grid simulates its detector (no abTEM run)."""
    import math
    from pathlib import Path

    from aetbench.simulate.abtem_adf import ADFConfig, plan_cell
    from aetbench.structures.recipe import load_recipe

    root = Path(__file__).resolve().parents[1] / "aetbench" / "data" / "scenarios"
    seen = 0
    for f in sorted(root.rglob("*.toml")):
        sc = load_scenario(f, known_methods=METHODS)
        if sc.simulation is None or sc.simulation.model != "abtem":
            continue
        cfg = ADFConfig.from_dict(sc.simulation.abtem)
        st = sc.structure
        if st.source == "recipe":
            r = load_recipe(st.recipe)
            radius = (3 * r.n_atoms / (4 * math.pi * r.density)) ** (1 / 3)
        elif st.source == "random":
            radius = (3 * st.n_atoms / (4 * math.pi * st.density)) ** (1 / 3)
        else:
            from aetbench.io.models import read_model

            m = read_model(paper_data / st.path, elements=st.elements or None, axes=st.axes or None)
            radius = float(((m.positions - m.positions.mean(0)) ** 2).sum(1).max() ** 0.5)
        fov = max(sc.simulation.image_size) * sc.simulation.pixel_size
        plan = plan_cell(radius, cfg, fov_A=fov)
        assert plan.outer_mrad > cfg.detector_inner_mrad and plan.extent_A >= fov, f
        assert plan.extent_A >= 2 * radius, f
        seen += 1
    assert seen >= 6
