"""A ptychography scenario through the runner: 4D-STEM → dose → both engines → phase tilt series per engine."""
from __future__ import annotations

import numpy as np
import pytest

from aetbench import geometry, pipeline
from aetbench.methods import METHODS
from aetbench.scenario import ScenarioError, load_scenario

pytest.importorskip("abtem")

SCENARIO = """
name = "pty-tiny"
methods = ["liao2026-pty"]
seed = 1
[structure]
source = "file"
path = "{model}"
[simulation]
model = "ptycho"
pixel_size = 0.3
image_size = 28
tilt = {{ start = 0.0, stop = 60.0, step = 60.0 }}
doses = [1e6]
background = 0.0
[simulation.ptycho]
potential_sampling_A = 0.1
max_angle_mrad = 50.0
window_A = 8.0
defocus_A = 40.0
scan_step_A = 0.5
phonon_configs = 0
margin_A = 2.0
slice_thickness_A = 2.0
[simulation.ptycho_recon]
engines = ["single-slice", "multislice"]
iterations = 8
slice_thickness_A = 4.0
"""


@pytest.fixture()
def scenario(tmp_path):
    model = tmp_path / "atoms.xyz"
    model.write_text("2\nProperties=species:S:1:pos:R:3\nPt -1.5 0.9 0.3\nSi 1.8 -1.2 -0.4\n")
    p = tmp_path / "pty.toml"
    p.write_text(SCENARIO.format(model=model))
    return load_scenario(p, known_methods=METHODS)


def test_ptycho_cases_give_phase_projections_where_the_atoms_are(scenario, tmp_path):
    cases = pipeline.cases(scenario, tmp_path / "cache")
    assert [c.structure for c in cases] == ["atoms-single-slice", "atoms-multislice"]
    truth = cases[0].truth
    for case in cases:
        ts = case.make()
        assert ts.images.shape == (2, 28, 28) and ts.dose is None
        assert ts.metadata["ptycho_engine"] == case.structure.split("-", 1)[1]
        assert ts.metadata["dose_per_A2"] == 1e6 and "truth" not in ts.metadata
        assert np.allclose(ts.angles[:, 1], [0.0, 60.0])
        for k in range(2):
            beam = geometry.object_to_beam(truth.positions, ts.angles[k], truth.positions.mean(0))
            pix = beam[:, :2] / 0.3 + 14
            img = ts.images[k]
            pt = np.round(pix[0]).astype(int)                        # Pt: the strongest phase in the field
            peak = np.unravel_index(img.argmax(), img.shape)
            assert np.hypot(*(np.array(peak) - pix[0])) <= 1.5, (peak, pix[0])
            assert img[tuple(pt)] > 5 * np.median(np.abs(img))
            si = np.round(pix[1]).astype(int)
            assert img[si[0] - 1:si[0] + 2, si[1] - 1:si[1] + 2].max() > 0.1 * img.max()   # Si visible too
    # the multislice engine records its slices, a second call reads the cache
    ms = cases[1].make()
    assert ms.metadata["ptycho_slices"] >= 2 and np.array_equal(ms.images, cases[1].make().images)


def test_ptycho_scenario_errors_are_one_line(tmp_path):
    model = tmp_path / "atoms.xyz"
    model.write_text("1\nProperties=species:S:1:pos:R:3\nSi 0 0 0\n")
    p = tmp_path / "bad.toml"
    p.write_text(SCENARIO.format(model=model).replace('engines = ["single-slice", "multislice"]', 'engines = ["ePIE"]'))
    with pytest.raises(ScenarioError, match="simulation.ptycho_recon: ptycho_recon.engines: expected entries"):
        load_scenario(p, known_methods=METHODS)
