"""Measured data: extended objects, frames (Volume origin), support masks, the reference protocol, packing analysis,
bad inputs, and the real Ta-film sub-area (skipped without ``AETBENCH_REAL_DATA``)."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import scipy.io

from aetbench.io.files import AetbenchError
from aetbench.reconstruct.extended import crop_centre, extended_shape, reconstruct_extended, reconstruct_step
from aetbench.reconstruct.projector import Projector
from aetbench.reconstruct.resire import resire
from aetbench.reconstruct.sirt import sirt
from aetbench.score.reference import Region, parse_box, reference_agreement
from aetbench.types import AtomicModel, TiltSeries, Volume

REAL = Path(os.environ.get("AETBENCH_REAL_DATA", "../shared/real-data")) / "ta-film"


# ----------------------------------------------------------------------------------------- extended geometry
def test_extended_shape_holds_every_ray():
    """Single axis: NX = 2 (h / cos θ + (nz // 2) |tan θ|) + 1 rounded up; a zero tilt keeps the image size."""
    nx, ny = 33, 5
    shape = extended_shape([[0, -60.0, 0], [0, 0, 0], [0, 45.0, 0]], (nx, ny))
    reach = 16 / np.cos(np.radians(60)) + 16 * np.tan(np.radians(60))
    assert shape == (2 * int(np.ceil(reach - 1e-6)) + 1, ny, nx)
    assert extended_shape([[0, 0, 0]], (32, 8)) == (32, 8, 32)
    # every ray through a corner pixel at the largest tilt, followed through the slab, stays inside
    R = np.array([[np.cos(np.radians(60)), 0, np.sin(np.radians(60))], [0, 1, 0],
                  [-np.sin(np.radians(60)), 0, np.cos(np.radians(60))]]).T  # object -> beam for theta = -60 about y
    for z in (-16.0, 16.0):
        t = (z - 16 * R[0, 2]) / R[2, 2]
        x = 16 * R[0, 0] + t * R[2, 0]
        assert abs(x) <= shape[0] // 2 + 1e-9


def test_extended_adjoint_holds():
    """The projector pair on the widened, non-cubic volume (general Euler angles) stays an exact transpose."""
    rng = np.random.default_rng(0)
    ang = np.array([[0.2, -50.0, 0.4], [0.0, 0.0, 0.1], [-0.1, 40.0, 0.3]])
    vs = extended_shape(ang, (20, 9))
    assert vs[0] > 20 and vs[1] >= 9
    p = Projector(vs, ang, image_shape=(20, 9))
    x = rng.random(vs).astype(np.float32)
    y = rng.random((3, 20, 9)).astype(np.float32)
    lhs = float(np.vdot(p.forward(x).astype(np.float64), y))
    rhs = float(np.vdot(x.astype(np.float64), p.back(y)))
    assert abs(lhs - rhs) <= 1e-4 * abs(lhs)


def _slab_series(nx=24, ny=3, thetas=np.arange(-60, 61, 6.0)):
    """A slab (uniform + blobs) three fields wide, projected through its whole width: an extended object."""
    rng = np.random.default_rng(1)
    nz = nx
    wide = (3 * extended_shape(np.c_[0 * thetas, thetas, 0 * thetas], (nx, ny))[0]) | 1
    obj = np.zeros((wide, ny, nz), np.float32)
    obj[:, :, nz // 2 - 6: nz // 2 + 6] = 1.0
    for _ in range(wide // 3):
        i, k = rng.integers(2, wide - 2), rng.integers(nz // 2 - 5, nz // 2 + 5)
        obj[i - 1:i + 2, :, k - 1:k + 2] += 2.0
    ang = np.c_[0 * thetas, thetas, 0 * thetas]
    proj = Projector(obj.shape, ang, image_shape=(nx, ny)).forward(obj)
    return TiltSeries(proj, ang, pixel_size=1.0), crop_centre(obj, (nx, ny, nz))


def test_extended_slab_recovered_without_edge_artefacts():
    """A slab wider than the field: the widened reconstruction matches it up to the box's edges, the plain one not."""
    ts, truth = _slab_series()
    plain = sirt(ts, iterations=60)
    ext = reconstruct_step(sirt, ts, extended=True, iterations=60)
    assert ext.shape == truth.shape and ext.metadata["extended_shape"][0] > truth.shape[0]
    # mass per x column (sum over y, z): the plain box piles the outer film's mass into its columns, worst at the edges
    truth_mass = truth.sum(axis=(1, 2))
    r_ext = ext.data.sum(axis=(1, 2)) / truth_mass
    r_plain = plain.data.sum(axis=(1, 2)) / truth_mass
    assert np.all(np.abs(r_ext - 1) < 0.06), r_ext.round(2)
    assert r_plain[[0, -1]].min() > 1.15, r_plain.round(2)
    # the same through ts.metadata (what the measured input kind sets)
    ts2 = ts.with_images(ts.images, extended_object=True)
    v2 = reconstruct_step(sirt, ts2, iterations=2)
    assert v2.metadata["extended_shape"] == ext.metadata["extended_shape"]


def test_resire_step_normalised_by_projection_length():
    """First RESIRE step from zeros is step / (n_proj · n_x) · Aᵀb, also for a volume deeper than the images."""
    rng = np.random.default_rng(2)
    ang = np.c_[np.zeros(4), [-30.0, -10, 10, 30], np.zeros(4)]
    ts = TiltSeries(rng.random((4, 12, 3)).astype(np.float32), ang, pixel_size=1.0)
    shape = (12, 3, 30)  # nz = 30 ≠ nx = 12
    v = resire(ts, iterations=1, step=1.0, volume_shape=shape, positivity=False)
    atb = Projector(shape, ang, image_shape=(12, 3)).back(ts.images)
    np.testing.assert_allclose(v.data, atb / (4 * 12), rtol=1e-5, atol=1e-7)
    ve = reconstruct_extended(resire, ts, iterations=1, positivity=False)
    assert ve.shape == (12, 3, 12)


# ----------------------------------------------------------------------------------------- frames and masks
def _gauss_volume(pos_A, shape, voxel, origin, sigma=0.5):
    g = [np.arange(n) for n in shape]
    X, Y, Z = np.meshgrid(*g, indexing="ij")
    vol = Volume(np.zeros(shape, np.float32), voxel, {}, origin)
    idx = vol.position_to_index(pos_A)
    d = np.zeros(shape)
    for p in idx:
        d += np.exp(-((X - p[0]) ** 2 + (Y - p[1]) ** 2 + (Z - p[2]) ** 2) * voxel**2 / (2 * sigma**2))
    return Volume(d.astype(np.float32), voxel, {}, origin)


def test_subvolume_atoms_land_in_global_frame(tmp_path):
    from aetbench.trace.peaks import trace_atoms

    origin = np.array([-26.0, -46.6, -5.1])
    rng = np.random.default_rng(3)
    atoms = origin + rng.uniform(-6, 6, (12, 3))
    atoms = atoms[np.all(np.linalg.norm(atoms[:, None] - atoms[None], axis=2) + 9 * np.eye(12) > 2.2, axis=1)]
    big = _gauss_volume(atoms, (56, 56, 56), 0.3, origin)
    start = np.array([5, 9, 3])
    sub = big.crop(start, (45, 41, 47))
    np.testing.assert_allclose(sub.index_to_position([0, 0, 0]), big.index_to_position(start), atol=1e-12)
    inside = np.all((sub.position_to_index(atoms) > 1.5) & (sub.position_to_index(atoms) < np.array(sub.shape) - 2.5), 1)
    t = trace_atoms(sub, min_distance_A=1.5)
    d = np.linalg.norm(t.model.positions[:, None] - atoms[None, inside], axis=2).min(axis=0)
    assert len(t) == inside.sum() and d.max() < 0.05
    sub.write(tmp_path / "v.h5")
    np.testing.assert_allclose(Volume.read(tmp_path / "v.h5").origin, sub.origin)


def test_traced_models_move_by_the_series_centre():
    from aetbench.methods import get_method, run_method

    atoms = np.array([[0.0, 0, 0], [2.6, 0, 0], [0, 2.6, 0], [0, 0, 2.6], [-2.4, -1.0, 0.5]])
    vol = _gauss_volume(atoms, (32, 32, 32), 0.4, np.zeros(3))
    ang = np.c_[np.zeros(31), np.linspace(-75, 75, 31), np.zeros(31)]
    proj = Projector(vol.shape, ang).forward(vol.data)
    centre = [10.0, -20.0, 5.0]
    ts = TiltSeries(proj, ang, pixel_size=0.4, metadata={"centre_A": centre})
    m = get_method("fbp")
    res = run_method(m, ts, elements=["Ta"])
    got = res.traced.atoms().positions
    d = np.linalg.norm(got[:, None] - (atoms + centre)[None], axis=2).min(axis=0)
    assert d.max() < 0.3
    np.testing.assert_allclose(res.volume.origin, centre)


def test_support_computed_and_mask_errors():
    from aetbench.trace.peaks import trace_atoms
    from aetbench.trace.support import compute_support

    rng = np.random.default_rng(4)
    d = rng.normal(0, 0.02, (30, 30, 30))
    d[:, :, 10:20] += 1.0
    sup = compute_support(Volume(d, 0.5), smooth_A=1.0)
    assert sup[:, :, 12:18].all() and not sup[:, :, :8].any() and not sup[:, :, 22:].any()
    eroded = compute_support(Volume(d, 0.5), smooth_A=1.0, erosion_A=1.0)
    assert eroded.sum() < sup.sum() and not eroded[:, :, 10].any()
    with pytest.raises(AetbenchError, match=r"trace mask: expected a mask of the volume's shape \(30, 30, 30\)") as e:
        trace_atoms(Volume(d, 0.5), min_distance_A=1.5, mask=np.ones((30, 30, 29), bool))
    assert "\n" not in str(e.value)


# ------------------------------------------------------------------------------------------- reference protocol
def _points(n, seed, box=30.0, dmin=2.5):
    rng = np.random.default_rng(seed)
    pts = []
    while len(pts) < n:
        p = rng.uniform(-box / 2, box / 2, 3)
        if all(np.linalg.norm(p - q) >= dmin for q in pts):
            pts.append(p)
    return np.array(pts)


def test_reference_protocol_known_case(tmp_path):
    from aetbench.score.reference import plot_reference

    rng = np.random.default_rng(5)
    ref = _points(300, 5)
    region = Region(lo=(-10, -10, -10), hi=(10, 10, 10))
    inside = region.contains(ref)
    ours = ref + rng.normal(0, 0.15, ref.shape)
    drop = np.flatnonzero(inside)[:12]
    keep = np.ones(len(ref), bool)
    keep[drop] = False
    extra = np.array([[0.0, 0.0, 30.0]]) + 0  # outside the region: not counted
    ours_m = np.r_[ours[keep], extra]
    # 4 extra atoms inside the region, far (> 1.2 Å) from every reference atom
    cand = _points(400, 6, box=20.0, dmin=0.0)
    far = cand[np.linalg.norm(cand[:, None] - ref[None], axis=2).min(axis=1) > 1.2][:4]
    ours_m = np.r_[ours_m, far]
    r = reference_agreement(AtomicModel(ours_m, "Ta"), AtomicModel(ref, "Ta"), cutoff=1.0, region=region)
    n_in = int(inside.sum())
    assert (r.n_reference, r.matched, r.missing, r.extra) == (n_in, n_in - 12, 12, 4)
    assert r.n_ours == int(region.contains(ours_m).sum())  # ours counted where ours lie (jitter may cross the border)
    assert abs(r.frac_reference - (n_in - 12) / n_in) < 1e-12
    assert 0.2 < r.rms_A < 0.32  # σ √3 = 0.26 Å
    # a small offset is found by the shift fit and nothing else changes
    r2 = reference_agreement(AtomicModel(ours_m + [0.4, -0.3, 0.2], "Ta"), AtomicModel(ref, "Ta"), cutoff=1.0,
                             region=region, fit_shift=True)
    np.testing.assert_allclose(r2.shift_A, [-0.4, 0.3, -0.2], atol=0.05)
    assert r2.matched == r.matched
    plot_reference(r, tmp_path / "ref.png")
    assert (tmp_path / "ref.png").stat().st_size > 1000
    assert parse_box("-10,10,-10,10,-10,10").hi == (10.0, 10.0, 10.0)


def test_reference_outside_region_and_bad_box_are_one_line_errors():
    ref = AtomicModel(_points(20, 7, box=10.0), "Ta")
    with pytest.raises(AetbenchError, match="no reference atom lies in the region") as e:
        reference_agreement(ref, ref, cutoff=1.0, region=Region(lo=(100, 100, 100), hi=(110, 110, 110)))
    assert "\n" not in str(e.value)
    with pytest.raises(AetbenchError, match="--region"):
        parse_box("1,2,3")


def test_score_command_reference(tmp_path, capsys):
    from aetbench.cli import main

    ref = AtomicModel(_points(60, 8, box=14.0), "Ta")
    ref.write(tmp_path / "ref.xyz")
    ref.select(np.arange(50)).write(tmp_path / "ours.xyz")
    rc = main(["score", str(tmp_path / "ours.xyz"), str(tmp_path / "ref.xyz"), "--cutoff", "1.0", "--protocol",
               "reference", "--region=-20,20,-20,20,-20,20", "--json"])
    import json

    out = json.loads(capsys.readouterr().out)
    assert rc == 0 and out["matched"] == 50 and out["missing"] == 10 and out["extra"] == 0


# ----------------------------------------------------------------------------------------------- bad inputs
def test_angles_of_wrong_shape_one_line(tmp_path):
    from aetbench.io.paper import read_paper_tilt_series

    scipy.io.savemat(tmp_path / "p.mat", {"Proj": np.ones((8, 6, 5), np.float32)})
    scipy.io.savemat(tmp_path / "a.mat", {"angle": np.zeros((5, 2))})
    with pytest.raises(AetbenchError, match="angle array has shape") as e:
        read_paper_tilt_series(tmp_path / "p.mat", tmp_path / "a.mat", pixel_size=0.3)
    assert "\n" not in str(e.value)
    scipy.io.savemat(tmp_path / "a.mat", {"angle": np.zeros((4, 3))})
    with pytest.raises(AetbenchError, match="4 tilt angles but the projection file holds 5"):
        read_paper_tilt_series(tmp_path / "p.mat", tmp_path / "a.mat", pixel_size=0.3)


def test_measured_scenario_validation(tmp_path):
    from aetbench.scenario import ScenarioError, load_scenario

    scipy.io.savemat(tmp_path / "p.mat", {"Proj": np.ones((8, 6, 5), np.float32)})
    scipy.io.savemat(tmp_path / "a.mat", {"angle": np.zeros((5, 3))})
    base = ('name = "m"\nmethods = ["fbp"]\n[[input]]\nkind = "measured"\nprojections = "p.mat"\nangles = "a.mat"\n'
            'pixel_size = 0.3\nelements = ["Ta"]\n')
    (tmp_path / "s.toml").write_text(base + "origin = [1.0, 2.0]\n")
    with pytest.raises(ScenarioError, match=r"input\[0\].origin: expected 3 finite coordinates"):
        load_scenario(tmp_path / "s.toml")
    (tmp_path / "s.toml").write_text(base + "region_erosion_A = 1.0\n")
    with pytest.raises(ScenarioError, match="needs input"):
        load_scenario(tmp_path / "s.toml")
    scipy.io.savemat(tmp_path / "align.mat", {"CropCen": np.ones((2, 3)), "CropHalf": np.ones((2, 3))})
    (tmp_path / "s.toml").write_text(base + 'origin = [1.0, 2.0, 3.0]\nsub_area = "align.mat"\nsub_area_index = 1\n')
    with pytest.raises(ScenarioError, match="give origin or sub_area"):
        load_scenario(tmp_path / "s.toml")
    (tmp_path / "s.toml").write_text(base + 'sub_area = "align.mat"\nsub_area_index = 1\n')
    with pytest.raises(ScenarioError, match=r"input\[0\].sub_area: needs input\[0\].support"):
        load_scenario(tmp_path / "s.toml")
    (tmp_path / "s.toml").write_text(base + "extended = true\norigin = [1.0, 2.0, 3.0]\n")
    sc = load_scenario(tmp_path / "s.toml")
    from aetbench.pipeline import cases

    ts = cases(sc, tmp_path)[0].make()
    assert ts.metadata["extended_object"] is True and ts.metadata["centre_A"] == [1.0, 2.0, 3.0]
    assert ts.dose is None and ts.images.shape == (5, 8, 6)


def test_sub_area_origin_and_own_patch(tmp_path):
    """The scanning-AET bookkeeping on a written alignment file: two rows of three sub-areas 18 voxels apart.  A
    middle sub-area keeps x = [1 + dx, 2h + 1 − dx] with dx = round(h − 9) − 2, the first of a row its low side,
    the last its high side; the first row keeps its low y side, the last row its high side (dy = 4).  The origin
    puts the film volume's centre voxel at the support's origin."""
    from aetbench.measured import read_sub_area

    cen = np.array([[66, 31, 155], [84, 31, 155], [102, 31, 155], [66, 88, 155], [84, 88, 155], [102, 88, 155]])
    half = np.tile([65, 30, 65], (6, 1))
    scipy.io.savemat(tmp_path / "align.mat", {"CropCen": cen.astype(float), "CropHalf": half.astype(float)})
    dx = 54
    expect = {1: [[1, 131 - dx], [1, 57]], 2: [[1 + dx, 131 - dx], [1, 57]], 3: [[1 + dx, 131], [1, 57]],
              5: [[1 + dx, 131 - dx], [5, 61]]}
    for k, patch in expect.items():
        np.testing.assert_array_equal(read_sub_area(tmp_path / "align.mat", k).patch, patch)
    sub = read_sub_area(tmp_path / "align.mat", 2)
    origin = sub.origin_A((201, 121, 311), 0.5, film_origin=(1.0, 0.0, 0.0))
    np.testing.assert_allclose(origin, [(84 - 101) * 0.5 + 1.0, (31 - 61) * 0.5, (155 - 156) * 0.5])
    lo, hi = sub.patch_box_A(origin, 0.5)  # x: centre ± 11 voxels; y: rows 1 … 57 of 61 (centre at row 31)
    np.testing.assert_allclose(lo[:2], origin[:2] + [-11 * 0.5, -30 * 0.5])
    np.testing.assert_allclose(hi[:2], origin[:2] + [11 * 0.5, 26 * 0.5])
    assert lo[2] == -np.inf and hi[2] == np.inf
    for bad in (0, 7):
        with pytest.raises(AetbenchError, match=r"sub_area_index .*: expected 1 … 6"):
            read_sub_area(tmp_path / "align.mat", bad)
    scipy.io.savemat(tmp_path / "other.mat", {"x": np.ones((3, 3))})
    with pytest.raises(AetbenchError, match="expected CropCen and CropHalf"):
        read_sub_area(tmp_path / "other.mat", 1)


def test_volume_ncc_over_the_own_patch(tmp_path):
    """The reference reconstruction agrees with ours inside the own patch only: NCC 1 there, not over the box."""
    from aetbench.measured import MeasuredInfo, read_sub_area

    scipy.io.savemat(tmp_path / "align.mat", {"CropCen": np.array([[30.0, 11, 6], [40, 11, 6], [50, 11, 6]]),
                                              "CropHalf": np.tile([20.0, 10, 5], (3, 1))})
    sub = read_sub_area(tmp_path / "align.mat", 2)
    np.testing.assert_array_equal(sub.patch, [[14, 28], [1, 21]])  # dx = round(20 − 5) − 2 = 13; one row: all y
    rng = np.random.default_rng(3)
    ours = rng.random((41, 21, 11)).astype(np.float32)
    ref = rng.random(ours.shape).astype(np.float32)
    ref[13:28] = ours[13:28]
    scipy.io.savemat(tmp_path / "ref.mat", {"reconstruction": ref})
    info = MeasuredInfo(None, np.zeros(3), None, 0.0, 0.0, 1.0, tmp_path / "ref.mat", sub_area=sub)
    vol = Volume(ours, 0.4)
    assert info.volume_ncc(vol, own_patch=True) == pytest.approx(1.0)
    assert info.volume_ncc(vol) < 0.6
    assert MeasuredInfo(None, np.zeros(3), None, 0.0, 0.0, 1.0, tmp_path / "ref.mat").volume_ncc(
        vol, own_patch=True) is None


# ------------------------------------------------------------------------------------------------ packing
def test_packing_icosahedron():
    """The centre of a 13-atom icosahedron (in a shell of further atoms) has Voronoi index <0,0,12,0>, CN 12, Q6 0.663."""
    from aetbench.score.packing import coordination, steinhardt, voronoi_indices

    g = (1 + 5**0.5) / 2
    v = np.array([[0, s1, s2 * g] for s1 in (-1, 1) for s2 in (-1, 1)], float)
    ico = np.r_[v, v[:, [1, 2, 0]], v[:, [2, 0, 1]]]
    ico *= 2.8 / np.linalg.norm(ico[0])
    shell = ico * 2.0
    pos = np.r_[[[0.0, 0, 0]], ico, shell]
    centre = np.zeros(len(pos), bool)
    centre[0] = True
    vi = voronoi_indices(pos, centre)
    assert vi[0] == (0, 0, 12, 0)
    assert coordination(pos, centre, 3.6)[0] == 12
    q = steinhardt(pos, centre, 3.6)
    assert abs(q[6][0] - 0.6633) < 1e-3 and q[4][0] < 1e-6


# ------------------------------------------------------------------------------------------ MCOS reader
def test_mcos_reader_on_written_fixture(tmp_path):
    from aetbench.io.matlab import read_mcos_objects, write_mcos_fixture

    rec = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    props = {"reconstruction": rec, "Dim1": np.array([[131.0]]), "errR": np.linspace(0.5, 0.1, 5)[None]}
    write_mcos_fixture(tmp_path / "obj.mat", "RESIRE", "RESIRE_reconstructor", props)
    loaded = scipy.io.loadmat(tmp_path / "obj.mat")  # scipy sees an opaque object and the subsystem, no properties
    assert any(type(v).__name__ == "MatlabOpaque" for v in loaded.values()) and "__function_workspace__" in loaded
    objs = read_mcos_objects(tmp_path / "obj.mat")
    o = objs["RESIRE"]
    assert o["__class__"] == "RESIRE_reconstructor"
    np.testing.assert_array_equal(o["reconstruction"], rec)
    assert float(o["Dim1"].ravel()[0]) == 131.0
    np.testing.assert_allclose(o["errR"].ravel(), np.linspace(0.5, 0.1, 5))
    from aetbench.io.paper import read_mat_arrays

    arrays = read_mat_arrays(tmp_path / "obj.mat")
    np.testing.assert_array_equal(arrays["RESIRE.reconstruction"], rec)


# ------------------------------------------------------------------------------------------------ real data
@pytest.mark.skipif(not (REAL / "Projections_area4.mat").exists(), reason="real data (AETBENCH_REAL_DATA) missing")
def test_ta_film_scenario_geometry_and_region():
    """The shipped scenario: widened volume 543 × 65 × 131, the sub-area's origin from alignPara.mat, and the
    published atoms in the region."""
    from aetbench.measured import region
    from aetbench.pipeline import cases
    from aetbench.scenario import load_scenario

    sc = load_scenario(Path(__file__).parents[1] / "aetbench" / "data" / "scenarios" / "real" / "ta-film.toml")
    case = cases(sc, None)[0]
    ts = case.make()
    assert extended_shape(ts.angles, ts.shape) == (543, 65, 131)
    para = scipy.io.loadmat(REAL / "alignPara.mat")
    expect = (para["CropCen"][3].astype(float) - [201, 176, 171]) * 0.3216
    np.testing.assert_allclose(ts.metadata["centre_A"], expect, atol=1e-9)
    reg = region(case.measured, ts)
    n = int(reg.contains(case.measured.reference.positions).sum())
    assert 300 <= n <= 330, n


# ------------------------------------------------------------------------------- measured pipeline end to end
def test_measured_film_pipeline_end_to_end(tmp_path):
    """A synthetic film wider than the field, in a larger frame: `aetbench run` with kind = "measured" traces its
    atoms in the global frame and scores them against the reference model in the region, and in the region ∩ the
    sub-area's own patch (the middle of three sub-areas 10 voxels apart: x within ±7 voxels of its centre)."""
    import json

    from aetbench.pipeline import run_scenario
    from aetbench.trace.refine import render_atoms

    rng = np.random.default_rng(11)
    origin = np.array([4.8, -3.2, 0.8])  # = (CropCen − 1 − film_shape // 2) × 0.4 Å below
    pts = []
    while len(pts) < 110:
        p = rng.uniform([-24, -4.5, -3.0], [24, 4.5, 3.0])
        if all(np.linalg.norm(p - q) >= 2.6 for q in pts):
            pts.append(p)
    rel = np.array(pts)
    thetas = np.arange(-60.0, 61.0, 4.0)
    ang = np.c_[0 * thetas, thetas, 0 * thetas]
    img = render_atoms(rel, np.full(len(rel), 50.0), np.full(len(rel), 0.45), ang, pixel_size=0.4, shape=(41, 21))
    scipy.io.savemat(tmp_path / "proj.mat", {"Proj": np.transpose(img, (1, 2, 0)).astype(np.float32)})
    scipy.io.savemat(tmp_path / "ang.mat", {"angle": ang})
    AtomicModel(rel + origin, "Ta").write(tmp_path / "ref.xyz")
    scipy.io.savemat(tmp_path / "film.mat", {"support": np.ones((101, 51, 41), np.uint8)})
    scipy.io.savemat(tmp_path / "align.mat", {"CropCen": np.array([[53.0, 18, 23], [63, 18, 23], [73, 18, 23]]),
                                              "CropHalf": np.tile([20.0, 10, 20], (3, 1))})
    (tmp_path / "film.toml").write_text(
        'name = "film"\nmethods = ["fbp"]\n[[input]]\nkind = "measured"\nprojections = "proj.mat"\n'
        'angles = "ang.mat"\npixel_size = 0.4\nelements = ["Ta"]\nextended = true\n'
        'sub_area = "align.mat"\nsub_area_index = 2\nsupport = "film.mat"\n'
        'reference_model = "ref.xyz"\nregion_margin_A = 1.5\n')
    out = run_scenario(tmp_path / "film.toml", out_dir=tmp_path / "rep", cache_dir=tmp_path / "cache", quiet=True)
    row, own = json.loads((out / "reference.json").read_text())
    assert row["n_reference"] >= 15
    assert row["frac_reference_pct"] >= 90 and row["frac_ours_pct"] >= 90 and row["rms_A"] < 0.3, row
    assert own["tag"] == row["tag"] + "_own-patch" and 3 <= own["n_reference"] < row["n_reference"]
    # region: the 41 × 21 × 41 box shrunk by 1.5 Å; patch: x within ±7 voxels, y rows 1 … 17 (first row, dy = 4)
    lo, hi = np.array([-2.8, -2.5, -6.5]), np.array([2.8, 2.4, 6.5])
    assert own["n_reference"] == int(np.all((rel >= lo - 1e-9) & (rel <= hi + 1e-9), axis=1).sum())
    assert own["frac_reference_pct"] >= 90, own
    assert "Agreement with the reference model" in (out / "report.md").read_text()
    assert len(list((out / "figures").glob("reference_*_fbp*.png"))) == 2
