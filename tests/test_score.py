"""Scoring: the paper's numbers from the authors' models, both protocols on constructed cases, the CLI."""
from __future__ import annotations

import json

import numpy as np
import pytest

from aetbench.cli import main
from aetbench.io.files import AetbenchError
from aetbench.io.models import read_model
from aetbench.score import ROW_COLUMNS, score, score_details
from aetbench.score.match import assign_one_to_one, candidate_pairs
from aetbench.types import AtomicModel

# ------------------------------------------------------------------------------------------ the paper's table
# (dataset folder, model file, truth file, dose token, cutoff Å, pixel Å, elements, {element: (rate %, precision pm)})
PAPER_ROWS = [
    ("aSi208", "Model_aSi2nm_FoscCenter_Dose8p0e3_cov35pm_BM3D.mat", "aSi_208atoms_GT.txt", 0.9, 0.195, "Si",
     {"Si": (95.67, 28.91)}),
    ("aSi208", "Model_aSi2nm_FoscCenter_Dose1p6e4_cov35pm_BM3D.mat", "aSi_208atoms_GT.txt", 0.9, 0.195, "Si",
     {"Si": (100.0, 17.31)}),
    ("aSi208", "Model_aSi2nm_FoscCenter_Dose1p6e5_cov35pm_BM3D.mat", "aSi_208atoms_GT.txt", 0.9, 0.195, "Si",
     {"Si": (100.0, 4.24)}),
    ("aSiGeSn", "Model_aSiGeSn8nm_FoscCenter_Dose1p6e4_cov35pm_BM3D.mat", "aSiGeSn_8nm_GT.mat", 1.5, 0.347,
     "Si,Ge,Sn", {"Si": (61.28, 67.92), "Ge": (98.98, 18.27), "Sn": (99.96, 8.66)}),
    ("aSiGeSn", "Model_aSiGeSn8nm_FoscCenter_Dose1p6e5_cov35pm_BM3D.mat", "aSiGeSn_8nm_GT.mat", 1.5, 0.347,
     "Si,Ge,Sn", {"Si": (75.12, 50.18), "Ge": (99.92, 9.87), "Sn": (100.0, 5.13)}),
]


@pytest.mark.parametrize("folder,model,truth,cutoff,pixel,elements,expected", PAPER_ROWS,
                         ids=[r[1].split("_Dose")[1][:5] + "-" + r[0] for r in PAPER_ROWS])
def test_cli_reproduces_paper_table(paper_data, capsys, folder, model, truth, cutoff, pixel, elements, expected):
    d = paper_data / folder
    rc = main(["score", str(d / model), str(d / truth), "--cutoff", str(cutoff), "--protocol", "paper",
               "--pixel-size", str(pixel), "--model-elements", elements, "--truth-elements", elements,
               "--truth-axes", "yxz", "--json"])
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    assert out["protocol"] == "paper" and out["cutoff"] == cutoff
    assert [r["element"] for r in out["rows"]] == list(expected)
    for row in out["rows"]:
        rate, prec = expected[row["element"]]
        assert abs(row["rate_pct"] - rate) <= 0.01, row
        assert abs(row["precision_pm"] - prec) <= 0.01, row
        assert set(row) == {"element", "n_truth", "n_traced", "identified", "rate_pct", "precision_pm",
                            "false_positives", "wrong_element"}


def test_paper_counts_and_wrong_pixel_size(paper_data):
    """The README's atom counts; a wrong pixel size (scale) destroys the agreement, so 0.195 Å is verified."""
    d = paper_data / "aSiGeSn"
    truth = read_model(d / "aSiGeSn_8nm_GT.mat", elements="Si,Ge,Sn", axes="yxz")
    assert truth.counts() == {"Si": 4610, "Ge": 4709, "Sn": 4663}
    d = paper_data / "aSi208"
    truth = read_model(d / "aSi_208atoms_GT.txt", elements="Si", axes="yxz")
    f = d / "Model_aSi2nm_FoscCenter_Dose1p6e5_cov35pm_BM3D.mat"
    good = score(read_model(f, elements="Si", pixel_size=0.195), truth, cutoff=0.9)
    bad = score(read_model(f, elements="Si", pixel_size=0.205), truth, cutoff=0.9)
    assert good.loc[0, "precision_pm"] < 5 < bad.loc[0, "precision_pm"]
    # without the x/y swap of the truth the models do not match at all
    unswapped = read_model(d / "aSi_208atoms_GT.txt", elements="Si")
    assert score(read_model(f, elements="Si", pixel_size=0.195), unswapped, cutoff=0.9).loc[0, "rate_pct"] < 50


def test_strict_on_paper_model_is_at_most_paper(paper_data):
    d = paper_data / "aSiGeSn"
    truth = read_model(d / "aSiGeSn_8nm_GT.mat", elements="Si,Ge,Sn", axes="yxz")
    model = read_model(d / "Model_aSiGeSn8nm_FoscCenter_Dose1p6e4_cov35pm_BM3D.mat", elements="Si,Ge,Sn",
                       pixel_size=0.347)
    paper = score(model, truth, cutoff=1.5, protocol="paper").set_index("element")
    det = score_details(model, truth, cutoff=1.5, protocol="strict")
    strict = det.table.set_index("element")
    assert (strict["identified"] <= paper["identified"]).all()
    # bookkeeping: every traced atom of e is identified, wrong-element or a false positive
    assert (strict["identified"] + strict["wrong_element"] + strict["false_positives"] == strict["n_traced"]).all()
    assert det.confusion.loc["Si", "Si"] == strict.loc["Si", "identified"]
    assert len(np.unique(det.pairs[:, 1])) == len(det.pairs)  # one-to-one


# ------------------------------------------------------------------------------------------ constructed cases
def _lattice(n=12, a=2.5, jitter=0.3, seed=0):
    """Jittered simple-cubic points, spacing a [Å]: nearest neighbours ≥ a − 2·jitter·√3."""
    g = (np.arange(n) - (n - 1) / 2) * a
    p = np.stack(np.meshgrid(g, g, g, indexing="ij"), axis=-1).reshape(-1, 3)
    return p + np.random.default_rng(seed).uniform(-jitter, jitter, p.shape)


@pytest.mark.parametrize("protocol", ["paper", "strict"])
def test_precision_is_sqrt3_sigma(protocol):
    sigma = 0.08  # Å per axis
    rng = np.random.default_rng(1)
    truth_xyz = _lattice()
    el = np.where(rng.random(len(truth_xyz)) < 0.5, "Si", "Ge")
    truth = AtomicModel(truth_xyz, el)
    offset = np.array([3.7, -12.0, 0.4])  # arbitrary frame offset: centring + shift must remove it
    model = AtomicModel(truth_xyz + offset + rng.normal(0, sigma, truth_xyz.shape), el)
    det = score_details(model, truth, cutoff=0.9, protocol=protocol)
    df = det.table
    assert list(df.columns) == ROW_COLUMNS
    assert df["element"].tolist() == ["Si", "Ge"]  # by atomic number
    assert (df["rate_pct"] == 100.0).all()
    expected = 100 * np.sqrt(3) * sigma  # 13.86 pm
    n = df["identified"].to_numpy()
    # relative standard error of a sample std from 3n values is ~ 1/sqrt(6n): allow 5 of them
    np.testing.assert_allclose(df["precision_pm"], expected, rtol=5 / np.sqrt(6 * n.min()))
    assert np.abs(det.residuals.mean(axis=0)).max() < 0.01
    i, j = det.pairs.T
    np.testing.assert_allclose(det.residuals, det.model.positions[i] - det.truth.positions[j])


def test_paper_many_to_one_vs_strict_one_to_one():
    # two traced atoms 0.3 Å either side of the central truth atom (both centroids at the origin)
    truth = AtomicModel([[0, 0, 0], [10, 0, 0], [-10, 0, 0]], ["Si"])
    model = AtomicModel([[0, 0.3, 0], [0, -0.3, 0], [10, 0, 0], [-10, 0, 0]], ["Si"])
    p = score(model, truth, cutoff=0.9, protocol="paper").iloc[0]
    s = score(model, truth, cutoff=0.9, protocol="strict").iloc[0]
    assert p["identified"] == 4 and p["rate_pct"] == pytest.approx(400 / 3)  # the paper can exceed 100 %
    assert p["false_positives"] == 0
    assert p["precision_pm"] == pytest.approx(100 * np.sqrt(0.18 / 3))
    assert s["identified"] == 3 and s["rate_pct"] == pytest.approx(100.0) and s["false_positives"] == 1
    assert s["precision_pm"] == pytest.approx(100 * np.sqrt(0.03))


def test_one_to_one_beats_greedy():
    truth = np.array([[0.0, 0, 0], [1.0, 0, 0]])
    model = np.array([[0.45, 0, 0], [-0.5, 0, 0]])  # greedy would take (0, 0) and leave model 1 alone
    i, j = assign_one_to_one(model, truth, 0.8)
    assert sorted(zip(i.tolist(), j.tolist())) == [(0, 1), (1, 0)]


def _objective(model, truth, i, j, cutoff):
    return float(np.sum(np.linalg.norm(model[i] - truth[j], axis=1) - cutoff))


@pytest.mark.parametrize("cutoff", [1.2, 3.0])
def test_sparse_and_dense_assignment_agree(cutoff):
    rng = np.random.default_rng(3)
    truth = rng.uniform(0, 12, (300, 3))
    model = np.vstack([truth + rng.normal(0, 0.4, truth.shape), rng.uniform(0, 12, (20, 3))])
    i1, j1 = assign_one_to_one(model, truth, cutoff)
    i2, j2 = assign_one_to_one(model, truth, cutoff, dense_limit=0)  # forces the sparse solver
    for i, j in ((i1, j1), (i2, j2)):
        assert len(np.unique(j)) == len(j) and len(np.unique(i)) == len(i)
        assert np.linalg.norm(model[i] - truth[j], axis=1).max() <= cutoff
    o1, o2 = _objective(model, truth, i1, j1, cutoff), _objective(model, truth, i2, j2, cutoff)
    assert o1 == pytest.approx(o2, rel=1e-9)
    # no single extra pair or swap improves it: compare with greedy nearest-first assignment
    ci, cj, cd = candidate_pairs(model, truth, cutoff)
    used_i, used_j, gi, gj = set(), set(), [], []
    for k in np.argsort(cd):
        if ci[k] not in used_i and cj[k] not in used_j:
            used_i.add(ci[k]), used_j.add(cj[k]), gi.append(ci[k]), gj.append(cj[k])
    assert o1 <= _objective(model, truth, np.array(gi), np.array(gj), cutoff) + 1e-9
    assert len(ci) > len(i1)  # there was something to choose between


@pytest.mark.parametrize("protocol", ["paper", "strict"])
def test_wrong_element_and_false_positive_counts(protocol):
    rng = np.random.default_rng(5)
    xyz = _lattice(n=10, jitter=0.2, seed=5)
    el = np.where(rng.random(len(xyz)) < 0.6, "Si", "Ge")
    truth = AtomicModel(xyz, el)
    model_el = el.copy()
    ge = np.flatnonzero(el == "Ge")
    relabel = ge[:17]
    model_el[relabel] = "Si"  # 17 Ge atoms traced as Si
    drop = np.flatnonzero(el == "Si")[:9]  # 9 Si atoms missed
    keep = np.setdiff1d(np.arange(len(xyz)), drop)
    far = np.array([[40.0, 0, 0], [-40.0, 0, 0], [0, 40.0, 0], [0, -40.0, 0]])  # 4 spurious Si, centroid 0
    noise = np.array([[0.5, 0.5, 0.5], [0.5, 0.5, 0.5], [0.5, 0.5, 0.5]])  # 3 non-atoms: dropped
    model = AtomicModel(np.vstack([xyz[keep] + rng.normal(0, 0.05, (keep.size, 3)), far, noise]),
                        np.concatenate([model_el[keep], ["Si"] * 4, ["x"] * 3]))
    det = score_details(model, truth, cutoff=0.9, protocol=protocol)
    t = det.table.set_index("element")
    n_si, n_ge = int(np.sum(el == "Si")), int(np.sum(el == "Ge"))
    assert t.loc["Si", "n_truth"] == n_si and t.loc["Ge", "n_truth"] == n_ge
    assert t.loc["Si", "n_traced"] == n_si - 9 + 17 + 4
    assert t.loc["Si", "identified"] == n_si - 9
    assert t.loc["Si", "wrong_element"] == 17
    assert t.loc["Si", "false_positives"] == 4
    assert t.loc["Ge", "identified"] == n_ge - 17 and t.loc["Ge", "wrong_element"] == 0
    assert t.loc["Ge", "rate_pct"] == pytest.approx(100 * (n_ge - 17) / n_ge)
    assert det.confusion.loc["Ge", "Si"] == 17 and det.confusion.loc["(none)", "Si"] == 4
    assert det.confusion.loc["Si", "(none)"] == 9
    rec, pre = (n_si - 9) / n_si, (n_si - 9) / (n_si - 9 + 21)
    assert det.f1["Si"] == pytest.approx(100 * 2 * rec * pre / (rec + pre))
    assert "x" not in det.model.elements


def test_empty_model_and_missing_element():
    # checkerboard of Si and Ge on an odd lattice: the Si sub-lattice shares the centroid
    idx = np.stack(np.meshgrid(*[np.arange(5)] * 3, indexing="ij"), axis=-1).reshape(-1, 3)
    el = np.where(idx.sum(axis=1) % 2 == 0, "Si", "Ge")
    truth = AtomicModel(_lattice(n=5), el)
    model = truth.select(el == "Si")
    for protocol in ("paper", "strict"):
        t = score(model, truth, cutoff=0.9, protocol=protocol).set_index("element")
        assert t.loc["Ge", "identified"] == 0 and t.loc["Ge", "n_traced"] == 0
        assert np.isnan(t.loc["Ge", "precision_pm"])
        assert t.loc["Si", "rate_pct"] == 100.0
    empty = AtomicModel(np.zeros((0, 3)), np.zeros(0, dtype=str))
    t = score(empty, truth, cutoff=0.9, protocol="strict")
    assert (t["identified"] == 0).all() and (t["n_traced"] == 0).all()


@pytest.mark.parametrize("kwargs,match", [
    ({"cutoff": 0.0}, "cutoff"), ({"cutoff": float("nan")}, "cutoff"), ({"cutoff": -1}, "cutoff"),
    ({"cutoff": 1.0, "protocol": "greedy"}, "protocol"),
])
def test_bad_score_arguments_are_one_line_errors(kwargs, match):
    m = AtomicModel([[0, 0, 0], [2.5, 0, 0]], ["Si"])
    with pytest.raises(AetbenchError, match=match) as e:
        score(m, m, **kwargs)
    assert "\n" not in str(e.value)
    with pytest.raises(AetbenchError, match="truth"):
        score(m, AtomicModel(np.zeros((0, 3)), np.zeros(0, dtype=str)), cutoff=1.0)


def test_cli_table_and_errors(tmp_path, capsys):
    truth = AtomicModel(_lattice(n=5), ["Si"] * 60 + ["O"] * 65)
    truth.write(tmp_path / "truth.xyz")
    lines = [f"{'x' if k == 0 else e} {p[1]:.4f} {p[0]:.4f} {-p[2]:.4f}" for k, (p, e) in
             enumerate(zip(truth.positions, truth.elements))]
    (tmp_path / "model.txt").write_text("# label x y z\n" + "\n".join(lines) + "\n")
    rc = main(["score", str(tmp_path / "model.txt"), str(tmp_path / "truth.xyz"), "--cutoff", "0.5",
               "--model-axes", "yx-z", "--protocol", "strict"])
    out = capsys.readouterr().out
    assert rc == 0 and "strict" in out
    o_row = next(ln for ln in out.splitlines() if ln.strip().startswith("O "))
    si_row = next(ln for ln in out.splitlines() if ln.strip().startswith("Si "))
    assert o_row.split()[1:4] == ["65", "65", "65"] and si_row.split()[1:4] == ["60", "59", "59"]
    rc = main(["score", str(tmp_path / "nope.xyz"), str(tmp_path / "truth.xyz"), "--cutoff", "0.5"])
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("aetbench: error:") and "nope.xyz" in err and err.count("\n") == 1
    with pytest.raises(SystemExit) as e:
        main(["score", str(tmp_path / "model.txt"), str(tmp_path / "truth.xyz"), "--cutoff", "0"])
    assert e.value.code == 2
