"""Reliability matrix (issue 17), inputs half: every bad input through the CLI gives exit 2 and ONE line
``aetbench: error: …`` (or an explicit warning), and leaves no partial output behind.

Covers ``aetbench score`` (labels, axes, duplicates, XYZ counts, 3×3 arrays, empty files), the sanity checks
before work (memory/time estimate, absurd doses, unknown elements, binary scenario files) and the data checks
before reconstruction (negated counts, hot pixels, blank projections, a single projection, angle count,
particle larger than the field of view, narrow tilt range).
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from aetbench.cli import main
from aetbench.types import AtomicModel, TiltSeries

# ---------------------------------------------------------------------------------------------- helpers


def _cli(argv, capsys):
    """Run the CLI in-process; any exception other than SystemExit fails the test (no tracebacks)."""
    rc = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


def _one_error(rc, err, match):
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert rc == 2, (rc, err)
    assert len(lines) == 1, err
    assert lines[0].startswith("aetbench: error: "), err
    assert re.search(match, lines[0]), lines[0]
    return lines[0]


def _warnings(err):
    return [ln for ln in err.splitlines() if ln.startswith("aetbench: warning: ")]


def _no_output(root: Path):
    """Nothing under ``root`` (the reports folder): no report folder, no part files."""
    left = [p for p in root.rglob("*")] if root.exists() else []
    assert left == [], left


def _no_part_files(*roots: Path):
    for r in roots:
        if r.exists():
            assert not [p for p in r.rglob("*.part*")], list(r.rglob("*.part*"))


# ---------------------------------------------------------------------------------------------- score

TRUTH_XYZ = np.array([[0.0, 0.0, 0.0], [2.4, 0.0, 0.0], [0.0, 2.5, 0.0], [1.0, 1.0, 2.6], [3.0, 2.0, 1.0]])


def _random_truth(n=150, seed=0):
    from aetbench.structures.random import random_sphere

    return random_sphere(n, seed=seed)


def _write_table(path, labels, pos):
    path.write_text("".join(f"{lab} {x:.5f} {y:.5f} {z:.5f}\n" for lab, (x, y, z) in zip(labels, pos)))
    return path


def test_score_integer_labels_need_a_list(tmp_path, capsys):
    truth = _random_truth(60)
    _write_table(tmp_path / "t.txt", ["1"] * len(truth), truth.positions)
    _write_table(tmp_path / "m.txt", ["Si"] * len(truth), truth.positions + 0.05)
    rc, out, err = _cli(["score", tmp_path / "m.txt", tmp_path / "t.txt", "--cutoff", 0.9], capsys)
    _one_error(rc, err, r"t\.txt: integer labels \(1\) and no element list.*--labels Z")
    assert out == ""
    # asked for: atomic numbers (1 = H), and then the scorer says the elements share nothing
    rc, out, err = _cli(["score", tmp_path / "m.txt", tmp_path / "t.txt", "--cutoff", 0.9, "--labels", "Z"], capsys)
    assert rc == 0 and " H " in out
    assert any("none in common" in w for w in _warnings(err)), err
    rc, out, err = _cli(["score", tmp_path / "m.txt", tmp_path / "t.txt", "--cutoff", 0.9, "--truth-elements", "Si"],
                        capsys)
    assert rc == 0 and "100.00" in out and not _warnings(err)


def test_score_names_a_far_better_axes_convention(tmp_path, capsys):
    truth = _random_truth(150)
    rng = np.random.default_rng(1)
    model = truth.positions[:, [1, 0, 2]] + rng.normal(0, 0.1, truth.positions.shape)  # x and y swapped
    _write_table(tmp_path / "t.txt", ["Si"] * len(truth), truth.positions)
    _write_table(tmp_path / "m.txt", ["Si"] * len(truth), model)
    rc, out, err = _cli(["score", tmp_path / "m.txt", tmp_path / "t.txt", "--cutoff", 0.9], capsys)
    assert rc == 0
    (w,) = _warnings(err)
    m = re.search(r"only ([\d.]+) % identified; --truth-axes (\S+) would give ([\d.]+) %", w)
    assert m, w
    assert float(m.group(1)) < 50 and float(m.group(3)) == 100.0
    assert m.group(2) == "yxz"
    # the hint is right: following it gives 100 % and no warning
    rc, out, err = _cli(["score", tmp_path / "m.txt", tmp_path / "t.txt", "--cutoff", 0.9, "--truth-axes", "yxz"],
                        capsys)
    assert rc == 0 and "100.00" in out and not _warnings(err)


def test_score_paper_aSi208_labels_and_axes(paper_data, capsys):
    d = paper_data / "aSi208"
    model, truth = d / "Model_aSi2nm_FoscCenter_Dose1p6e4_cov35pm_BM3D.mat", d / "aSi_208atoms_GT.txt"
    rc, out, err = _cli(["score", model, truth, "--cutoff", 0.9, "--pixel-size", 0.195], capsys)
    _one_error(rc, err, "integer labels")
    rc, out, err = _cli(["score", model, truth, "--cutoff", 0.9, "--pixel-size", 0.195, "--model-elements", "Si",
                         "--truth-elements", "Si"], capsys)
    assert rc == 0
    assert any("--truth-axes yxz would give 100.00 %" in w for w in _warnings(err)), err
    rc, out, err = _cli(["score", model, truth, "--cutoff", 0.9, "--pixel-size", 0.195, "--model-elements", "Si",
                         "--truth-elements", "Si", "--truth-axes", "yxz"], capsys)
    assert rc == 0 and not _warnings(err)
    row = out.splitlines()[-1].split()
    assert row[:5] == ["Si", "208", "208", "208", "100.00"] and row[5] == "17.31"
    # 8.0e3: the "20.67 % instead of 95.67 %"
    m8 = d / "Model_aSi2nm_FoscCenter_Dose8p0e3_cov35pm_BM3D.mat"
    rc, out, err = _cli(["score", m8, truth, "--cutoff", 0.9, "--pixel-size", 0.195, "--model-elements", "Si",
                         "--truth-elements", "Si"], capsys)
    assert rc == 0 and "20.67" in out
    assert any("only 20.67 % identified; --truth-axes yxz would give 95.67 %" in w for w in _warnings(err)), err


def test_score_duplicated_truth_atoms_warn(tmp_path, capsys):
    truth = _random_truth(60)
    pos = np.vstack([truth.positions, truth.positions[:3]])          # three atoms twice
    _write_table(tmp_path / "t.txt", ["Si"] * len(pos), pos)
    _write_table(tmp_path / "m.txt", ["Si"] * len(truth), truth.positions)
    rc, out, err = _cli(["score", tmp_path / "m.txt", tmp_path / "t.txt", "--cutoff", 0.9], capsys)
    assert rc == 0
    (w,) = _warnings(err)
    assert "truth" in w and "3 pairs of atoms closer than 0.5 Å" in w and "duplicated" in w


def test_score_xyz_header_count_mismatch(tmp_path, capsys):
    body = "".join(f"Si {x} {y} {z}\n" for x, y, z in TRUTH_XYZ)
    (tmp_path / "few.xyz").write_text("3\ncomment\n" + body)                 # announces 3, holds 5
    (tmp_path / "many.xyz").write_text("7\ncomment\n" + body)                # announces 7, holds 5
    _write_table(tmp_path / "m.txt", ["Si"] * 5, TRUTH_XYZ)
    rc, _, err = _cli(["score", tmp_path / "m.txt", tmp_path / "few.xyz", "--cutoff", 0.5], capsys)
    _one_error(rc, err, r"announces 3 atoms but the file holds 5")
    rc, _, err = _cli(["score", tmp_path / "m.txt", tmp_path / "many.xyz", "--cutoff", 0.5], capsys)
    _one_error(rc, err, r"announces 7 atoms but the file holds 5")


def test_score_ambiguous_3x3_array(tmp_path, capsys):
    import scipy.io

    scipy.io.savemat(tmp_path / "t.mat", {"xyz": TRUTH_XYZ[:3].T.copy(), "types": np.array([[1, 1, 1]])})
    _write_table(tmp_path / "m.txt", ["Si"] * 3, TRUTH_XYZ[:3])
    rc, _, err = _cli(["score", tmp_path / "m.txt", tmp_path / "t.mat", "--cutoff", 0.5, "--truth-elements", "Si"],
                      capsys)
    _one_error(rc, err, r"t\.mat: coordinate array xyz is 3×3: cannot tell")


@pytest.mark.parametrize("name", ["empty.xyz", "empty.txt", "empty.mat"])
def test_score_empty_file_is_empty_not_missing(tmp_path, capsys, name):
    (tmp_path / name).write_bytes(b"")
    _write_table(tmp_path / "m.txt", ["Si"] * 5, TRUTH_XYZ)
    rc, _, err = _cli(["score", tmp_path / "m.txt", tmp_path / name, "--cutoff", 0.5], capsys)
    msg = _one_error(rc, err, r"empty file \(0 bytes\)")
    assert "not found" not in msg
    rc, _, err = _cli(["score", tmp_path / "m.txt", tmp_path / "nope.xyz", "--cutoff", 0.5], capsys)
    _one_error(rc, err, "file not found")


# ---------------------------------------------------------------------------------------------- scenarios

TINY = """
name = "tiny"
methods = ["fbp"]
seed = 3
[structure]
source = "random"
n_atoms = {n_atoms}
element = "{element}"
[simulation]
pixel_size = 0.4
image_size = {image_size}
tilt = {{ start = -60.0, stop = 60.0, step = {step} }}
doses = [{dose}]
background = 0.0
"""


def _tiny(tmp_path, **kw):
    args = {"n_atoms": 12, "element": "Si", "image_size": 24, "step": 20.0, "dose": "1e7", **kw}
    p = tmp_path / "tiny.toml"
    p.write_text(TINY.format(**args))
    return p


def _run(tmp_path, scenario, capsys, *extra):
    reports, cache = tmp_path / "reports", tmp_path / "cache"
    rc, out, err = _cli(["run", scenario, "--quiet", "--reports", reports, "--cache-dir", cache, *extra], capsys)
    return rc, out, err, reports, cache


@pytest.mark.parametrize("kw,match", [
    ({"step": 1e-7}, r"needs about .*[GT]iB.*1,200,000,001 projections.*this machine has .* of memory.*--force"),
    ({"image_size": 2048}, r"needs about .*[GT]iB.*2048×2048×2048.*--force"),
    ({"n_atoms": 2000000}, r"needs about .* days .*2,000,000 atoms.*> 24 h.*--force"),
    ({"dose": "1e30"},
     r"simulation\.doses\[0\]: 1e\+30 e/Å² per projection is beyond any experiment; expected ≤ 1e\+12"),
    ({"element": "Qq"}, r"structure\.element: 'Qq' is not a chemical symbol"),
    ({"element": "x"}, r"structure\.element: expected one chemical symbol"),
    ({"n_atoms": 400}, r"the particle leaves the field of view by .* Å at tilt .*field 24×24 px × 0\.4 Å.*image_size ≥"),
])
def test_scenario_refused_before_work(tmp_path, capsys, kw, match):
    import time

    t0 = time.perf_counter()
    rc, out, err, reports, cache = _run(tmp_path, _tiny(tmp_path, **kw), capsys)
    _one_error(rc, err, match)
    assert time.perf_counter() - t0 < 20       # refused up front, not after allocating or simulating
    _no_output(reports)
    assert not cache.exists() or not any(cache.rglob("*.h5"))


def test_force_and_remote_skip_the_estimate(tmp_path):
    from aetbench.estimate import check_resources, estimate_scenario
    from aetbench.io.files import AetbenchError
    from aetbench.methods import METHODS
    from aetbench.scenario import load_scenario

    sc = load_scenario(_tiny(tmp_path, image_size=2048), known_methods=METHODS)
    est = estimate_scenario(sc)
    assert est.memory_bytes > 2048**3 * 4            # at least one float32 volume of 2048³ voxels (32 GiB)
    with pytest.raises(AetbenchError):
        check_resources(sc, force=False)
    for kw in ({"force": True}, {"scheduler": "tcp://host:8786"}, {"device": "gpu"}):
        assert check_resources(sc, **kw) == est
    (tmp_path / "s").mkdir()
    e = check_resources(load_scenario(_tiny(tmp_path / "s"), known_methods=METHODS))
    assert e.memory_bytes < 2**30 and e.seconds < 60


def test_binary_scenario_file(tmp_path, capsys):
    p = tmp_path / "bin.toml"
    p.write_bytes(bytes(range(256)) * 4)
    rc, out, err, reports, _ = _run(tmp_path, p, capsys)
    _one_error(rc, err, r"bin\.toml: not a text file")
    _no_output(reports)


# ---------------------------------------------------------------------------------------------- data checks

INPUT = """
name = "data"
methods = ["fbp"]
seed = 0
[[input]]
kind = "hdf5"
projections = "{proj}"
truth = "{truth}"
truth_elements = "Si"
label = "bad"
"""


@pytest.fixture(scope="module")
def clean_series(tmp_path_factory):
    """A noise-free linear series of a 12-atom particle (13 tilts over ±60°, 24 px of 0.4 Å) and its truth."""
    from aetbench.simulate.linear import simulate_linear
    from aetbench.structures.random import random_sphere

    d = tmp_path_factory.mktemp("series")
    truth = random_sphere(12, seed=2)
    thetas = np.arange(-60.0, 61.0, 10.0)
    ts = simulate_linear(truth, np.c_[np.zeros_like(thetas), thetas, np.zeros_like(thetas)], pixel_size=0.4,
                         shape=(24, 24))
    ts = ts.with_images(ts.images * 50.0 + 1.0)          # counts-like scale and a background
    truth.write(d / "truth.xyz")
    return ts, truth, d


def _input_run(tmp_path, capsys, ts=None, truth_path=None, proj_path=None, *, base):
    clean, truth, d = base
    tmp_path.mkdir(parents=True, exist_ok=True)
    if proj_path is None:
        proj_path = tmp_path / "series.h5"
        ts.write(proj_path)
    p = tmp_path / "data.toml"
    p.write_text(INPUT.format(proj=proj_path, truth=truth_path or d / "truth.xyz"))
    return _run(tmp_path, p, capsys)


def _bad(ts: TiltSeries, kind: str) -> TiltSeries:
    img = ts.images.copy()
    if kind == "negated":
        return ts.with_images(-img)
    if kind == "hot":
        img[3, 5, 7] = 1e30
        return ts.with_images(img)
    if kind == "zero":
        return ts.with_images(np.zeros_like(img))
    if kind == "one-zero":
        img[2] = 0.0
        return ts.with_images(img)
    if kind == "single":
        return TiltSeries(img[3:4], ts.angles[3:4], ts.pixel_size, ts.dose, dict(ts.metadata))
    raise KeyError(kind)


@pytest.mark.parametrize("kind,match", [
    ("negated", r"13 of 13 projections have a total ≤ 0 .*negated"),
    ("hot", r"1 hot pixel above 100 × the 99\.9th percentile .*1e\+30, in projection 3 at pixel \(5, 7\)"),
    ("zero", r"13 of 13 projections are all zero"),
    ("one-zero", r"1 of 13 projections are all zero \(projections 2\)"),
    ("single", r"a single projection holds no 3D information"),
])
def test_bad_data_is_refused(tmp_path, capsys, clean_series, kind, match):
    rc, out, err, reports, cache = _input_run(tmp_path, capsys, _bad(clean_series[0], kind), base=clean_series)
    _one_error(rc, err, match)
    _no_output(reports)
    _no_part_files(cache)
    assert not list(cache.glob("results/*"))           # no method ran


def test_angle_count_mismatch(tmp_path, capsys, clean_series):
    import h5py

    ts = clean_series[0]
    path = tmp_path / "series.h5"
    ts.write(path)
    with h5py.File(path, "r+") as f:          # one angle row too many
        ang = f["angles"][()]
        del f["angles"]
        f.create_dataset("angles", data=np.vstack([ang, ang[-1:]]))
    rc, out, err, reports, cache = _input_run(tmp_path, capsys, proj_path=path, base=clean_series)
    _one_error(rc, err, r"series\.h5: .*angles must be \(13, 3\).*got \(14, 3\)")
    _no_output(reports)


def test_particle_larger_than_field(tmp_path, capsys, clean_series):
    ts, truth, _ = clean_series
    big = AtomicModel(truth.positions * 4.0, truth.elements)       # spans ~4× the 9.6 Å field
    big.write(tmp_path / "big.xyz")
    rc, out, err, reports, cache = _input_run(tmp_path, capsys, ts, truth_path=tmp_path / "big.xyz",
                                              base=clean_series)
    _one_error(rc, err, r"ground truth spans .* but the field of view is 9\.6 × 9\.6 Å .*does not fit")
    _no_output(reports)


def test_clean_series_runs_and_narrow_tilts_warn(tmp_path, capsys, clean_series):
    ts, truth, _ = clean_series
    rc, out, err, reports, _ = _input_run(tmp_path / "ok", capsys, ts, base=clean_series)
    assert rc == 0 and not _warnings(err), err
    (run,) = list((reports / "data").iterdir())
    assert "## Warnings" not in (run / "report.md").read_text()
    # ±10°: the tilt range warning, on stderr and in the report; a mild hot pixel (30×) warns too
    img = ts.images[5:8].copy()                                     # -10°, 0°, 10°
    img[1, 4, 4] = 30 * np.percentile(np.abs(img), 99.9)
    narrow = TiltSeries(img, ts.angles[5:8], ts.pixel_size, ts.dose, dict(ts.metadata))
    rc, out, err, reports, _ = _input_run(tmp_path / "narrow", capsys, narrow, base=clean_series)
    assert rc == 0, err
    w = _warnings(err)
    assert any("tilt range 20.0° (< 60°)" in x for x in w), err
    assert any("only 3 projections" in x for x in w), err
    assert any("1 hot pixel above 10 × the 99.9th percentile" in x for x in w), err
    (run,) = list((reports / "data").iterdir())
    text = (run / "report.md").read_text()
    assert "## Warnings" in text and "tilt range 20.0°" in text and "hot pixel" in text
    # a rerun from the cache says the same
    rc, out, err = _cli(["run", tmp_path / "narrow" / "data.toml", "--quiet", "--reports", tmp_path / "narrow" / "r2",
                         "--cache-dir", tmp_path / "narrow" / "cache"], capsys)
    assert rc == 0 and _warnings(err) == w
    (run2,) = list((tmp_path / "narrow" / "r2" / "data").iterdir())
    assert "## Warnings" in (run2 / "report.md").read_text()


def test_input_truth_with_swapped_axes_is_named(tmp_path, capsys, clean_series):
    from aetbench.simulate.linear import simulate_linear
    from aetbench.structures.random import random_sphere

    truth = random_sphere(40, seed=5)           # 40 atoms: a wrong convention cannot still pair half of them
    th = np.arange(-60.0, 61.0, 10.0)
    ts = simulate_linear(truth, np.c_[np.zeros_like(th), th, np.zeros_like(th)], pixel_size=0.5, shape=(32, 32))
    swapped = AtomicModel(truth.positions[:, [1, 0, 2]], truth.elements)
    swapped.write(tmp_path / "swapped.xyz")
    rc, out, err, reports, _ = _input_run(tmp_path, capsys, ts, truth_path=tmp_path / "swapped.xyz",
                                          base=clean_series)
    assert rc == 0, err
    (w,) = [x for x in _warnings(err) if "would give" in x]
    m = re.search(r"only ([\d.]+) % identified; truth_axes = \"(\S+)\" would give ([\d.]+) %", w)
    assert m and float(m.group(1)) < 50 and float(m.group(3)) >= 90, w
    assert m.group(2) == "yxz"
    (run,) = list((reports / "data").iterdir())
    assert "truth_axes = \"yxz\" would give" in (run / "report.md").read_text()


def test_shipped_scenario_estimates():
    """The estimate agrees in order of magnitude with what the shipped scenarios say of themselves."""
    from aetbench.estimate import estimate_scenario
    from aetbench.methods import METHODS
    from aetbench.scenario import load_scenario

    root = Path(__file__).resolve().parents[2] / "aetbench" / "data" / "scenarios"
    est = {name: estimate_scenario(load_scenario(root / f"{name}.toml", known_methods=METHODS))
           for name in ("quick", "smoke-abtem", "smoke-pty", "paper/asi20k-abtem", "paper/sio2-pty")}
    assert est["quick"].seconds < 600 and est["quick"].memory_bytes < 2**30        # "a minute or two"
    assert est["smoke-abtem"].seconds < 1800                                          # "a few minutes"
    assert 3 * 60 < est["smoke-pty"].seconds < 30 * 60                                # measured 8.6 min
    assert 10 * 86400 < est["paper/asi20k-abtem"].seconds < 200 * 86400               # notes: ~43 days on 2 cores
    assert est["paper/sio2-pty"].memory_bytes > 49 * 2**30                            # ~2 GB of patterns × 49 tilts


def test_simulated_single_projection_refused_before_simulating(tmp_path, capsys):
    p = _tiny(tmp_path)
    p.write_text(p.read_text().replace("tilt = { start = -60.0, stop = 60.0, step = 20.0 }",
                                       "tilt = { angles = [0.0] }"))
    rc, out, err, reports, cache = _run(tmp_path, p, capsys)
    _one_error(rc, err, r"simulation\.tilt: a single projection holds no 3D information")
    _no_output(reports)
    assert not list(cache.rglob("*.h5"))
