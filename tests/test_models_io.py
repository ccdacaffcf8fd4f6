"""Model readers: extxyz, tables, the paper's .mat files, generic .mat arrays, v7.3, labels, axes, errors."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.io

from aetbench.io.files import AetbenchError
from aetbench.io.models import apply_axes, labels_to_elements, parse_axes, parse_elements, read_model
from aetbench.types import AtomicModel

XYZ = np.array([[0.5, -1.25, 2.0], [3.0, 0.0, -4.5], [-2.0, 1.5, 0.25], [7.0, 7.5, -8.0]])


def _one_line_error(fn, *args, match=None, **kwargs) -> str:
    with pytest.raises(AetbenchError, match=match) as e:
        fn(*args, **kwargs)
    msg = str(e.value)
    assert msg and "\n" not in msg
    return msg


# ---------------------------------------------------------------------------------------------- axes, labels
def test_axes_permute_and_flip():
    assert parse_axes("yx-z") == ((1, 0, 2), (1.0, 1.0, -1.0))
    np.testing.assert_array_equal(apply_axes([[1.0, 2.0, 3.0]], "yx-z"), [[2.0, 1.0, -3.0]])
    np.testing.assert_array_equal(apply_axes([[1.0, 2.0, 3.0]], "-zxy"), [[-3.0, 1.0, 2.0]])
    np.testing.assert_array_equal(apply_axes(XYZ, None), XYZ)
    np.testing.assert_array_equal(apply_axes(XYZ, "xyz"), XYZ)


@pytest.mark.parametrize("bad", ["xxz", "xy", "abc", "xyz-", "x-yz-", "xyzx", ""])
def test_bad_axes(bad):
    _one_line_error(parse_axes, bad, match="axes")


def test_element_lists_and_labels():
    assert parse_elements("x,O,Si") == ["x", "O", "Si"]
    assert parse_elements(["si", "GE"]) == ["Si", "Ge"]
    assert parse_elements("Si") == ["Si"]
    assert parse_elements(None) is None
    _one_line_error(parse_elements, "Si,Qq", match="Qq")
    assert labels_to_elements([1, 3, 2, 1], "x,O,Si").tolist() == ["x", "Si", "O", "x"]
    assert labels_to_elements(["14", "8", "14.0"], atomic_numbers=True).tolist() == ["Si", "O", "Si"]
    _one_line_error(labels_to_elements, ["14", "8"], match="no element list")  # never silently atomic numbers
    assert labels_to_elements(["Si", "o", "x"], "Ge").tolist() == ["Si", "O", "x"]  # symbols need no list
    msg = _one_line_error(labels_to_elements, [1, 4], ["x", "O", "Si"], source="m.mat", match="out of range")
    assert "m.mat" in msg and "4" in msg
    _one_line_error(labels_to_elements, [0], atomic_numbers=True, match="atomic number")
    _one_line_error(labels_to_elements, ["Zz"], match="Zz")


# ---------------------------------------------------------------------------------------------- text formats
def test_extxyz_through_ase(tmp_path):
    AtomicModel(XYZ, ["Si", "O", "O", "Ge"]).write(tmp_path / "m.xyz")
    m = read_model(tmp_path / "m.xyz", axes="yx-z")
    assert m.elements.tolist() == ["Si", "O", "O", "Ge"]
    np.testing.assert_allclose(m.positions, np.c_[XYZ[:, 1], XYZ[:, 0], -XYZ[:, 2]])


def test_paper_style_extxyz_with_integer_species(tmp_path):
    body = "".join(f"{lab}  {x:.6f} {y:.6f} {z:.6f}\n" for lab, (x, y, z) in zip([1, 2, 1, 1], XYZ))
    f = tmp_path / "gt.txt"
    f.write_text('% 4\n% Properties=species:S:1:pos:R:3 pbc="F F F"\n' + body)
    m = read_model(f, elements="Si,O")
    assert m.elements.tolist() == ["Si", "O", "Si", "Si"]
    np.testing.assert_allclose(m.positions, XYZ)
    assert read_model(f, atomic_numbers=True).elements.tolist() == ["H", "He", "H", "H"]  # asked for: Z
    _one_line_error(read_model, f, match="no element list")
    m = read_model(f, elements="x,Ge")  # class 1 is a non-atom: dropped
    assert m.elements.tolist() == ["Ge"] and np.allclose(m.positions, XYZ[[1]])
    # extra property columns before and after the positions
    f2 = tmp_path / "extra.xyz"
    f2.write_text("2\nProperties=id:I:1:species:S:1:pos:R:3:q:R:1\n7 x 1 2 3 0.5\n8 14 4 5 6 0.1\n")
    m = read_model(f2, atomic_numbers=True)
    assert m.elements.tolist() == ["Si"] and np.allclose(m.positions, [[4, 5, 6]])


def test_whitespace_table(tmp_path):
    f = tmp_path / "model.dat"
    f.write_text("# species x y z occupancy\n% another comment\n\n"
                 "Si 0.5 -1.25 2.0 1.0\n8 3.0 0.0 -4.5\nO -2.0 1.5 0.25 0.3 extra\nGe 7 7.5 -8\n")
    m = read_model(f, atomic_numbers=True)  # "8" is an atomic number: asked for
    assert m.elements.tolist() == ["Si", "O", "O", "Ge"]
    np.testing.assert_allclose(m.positions, XYZ)
    f.write_text("1 0 0 0\n2 1 1 1\n3 2 2 2\n")
    assert read_model(f, elements=["x", "O", "Si"]).elements.tolist() == ["O", "Si"]


def test_paper_data_truths(paper_data):
    m = read_model(paper_data / "aSi208" / "aSi_208atoms_GT.txt", elements="Si", axes="yxz")
    assert len(m) == 208 and m.species == ["Si"]
    d = np.linalg.norm(m.positions[:, None] - m.positions[None], axis=-1) + np.eye(208) * 99
    assert 2.0 < d.min() < 2.5  # a-Si bond length ~2.35 Å: the file is in Å
    t = read_model(paper_data / "aSi208" / "Model_aSi2nm_FoscCenter_Dose1p6e5_cov35pm_BM3D.mat",
                   elements="Si", pixel_size=0.195)
    assert len(t) == 208


# ---------------------------------------------------------------------------------------------- MATLAB
def test_paper_traced_model_mat(tmp_path):
    vox = np.array([[30.0, 45.0, 60.0, 90.0], [33.0, 36.0, 39.0, 42.0], [60.0, 63.0, 66.0, 69.0]])  # 3×N
    f = tmp_path / "Model.mat"
    scipy.io.savemat(f, {"temp_model": vox, "temp_atomtype": np.array([[1, 2, 3, 2]], dtype=np.uint8)})
    m = read_model(f, elements="Si,Ge,Sn", pixel_size=0.347)
    np.testing.assert_allclose(m.positions, (vox.T / 3 - 2) * 0.347)
    assert m.elements.tolist() == ["Si", "Ge", "Sn", "Ge"]
    msg = _one_line_error(read_model, f, elements="Si,Ge,Sn", match="pixel size")
    assert "Model.mat" in msg
    _one_line_error(read_model, f, elements="Si,Ge", pixel_size=0.347, match="out of range")


@pytest.mark.parametrize("transpose", [False, True])
def test_generic_mat_arrays(tmp_path, transpose):
    f = tmp_path / "gt.mat"
    xyz = XYZ.T if transpose else XYZ
    scipy.io.savemat(f, {"whatever_xyz": xyz, "kinds": np.array([[3], [2], [2], [1]], dtype=np.uint8)})
    m = read_model(f, elements="x,O,Si", axes="yxz")
    assert m.elements.tolist() == ["Si", "O", "O"]
    np.testing.assert_allclose(m.positions, XYZ[:3][:, [1, 0, 2]])


def test_separate_types_files(tmp_path):
    f = tmp_path / "coords.mat"
    scipy.io.savemat(f, {"c": XYZ})
    scipy.io.savemat(tmp_path / "types.mat", {"t": np.array([1, 1, 2, 2])})
    (tmp_path / "types.txt").write_text("% labels\nSi Si\nGe Ge\n")
    a = read_model(f, elements="Si,Ge", types_path=tmp_path / "types.mat")
    b = read_model(f, types_path=tmp_path / "types.txt")
    assert a.elements.tolist() == b.elements.tolist() == ["Si", "Si", "Ge", "Ge"]
    assert read_model(f, elements="Si").elements.tolist() == ["Si"] * 4  # no labels, one element
    _one_line_error(read_model, f, match="no atom labels")
    (tmp_path / "short.txt").write_text("Si Si\n")
    _one_line_error(read_model, f, types_path=tmp_path / "short.txt", match="2 labels but the model holds 4")


def _write_v73(path, arrays):
    """A MATLAB v7.3 file: HDF5 with a 512-byte MATLAB header; arrays stored with axes reversed."""
    import h5py

    with h5py.File(path, "w", userblock_size=512) as f:
        for k, v in arrays.items():
            f.create_dataset(k, data=np.asarray(v).T)
    header = b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: Tue Nov 24 12:00:00 2026 HDF5 schema 1.00 ."
    header = header.ljust(116) + b"\x00" * 8 + b"\x00\x02" + b"IM"
    with open(path, "r+b") as fh:
        fh.write(header)


def test_v73_mat(tmp_path):
    f = tmp_path / "v73.mat"
    _write_v73(f, {"pos": XYZ, "types": np.array([[14.0, 8.0, 8.0, 32.0]])})
    m = read_model(f, atomic_numbers=True)
    assert m.elements.tolist() == ["Si", "O", "O", "Ge"]
    np.testing.assert_allclose(m.positions, XYZ)


# ---------------------------------------------------------------------------------------------- bad input
def test_bad_files_are_one_line_errors(tmp_path):
    msg = _one_line_error(read_model, tmp_path / "missing.xyz", match="not found")
    assert "missing.xyz" in msg
    (tmp_path / "junk.bin").write_bytes(bytes(range(256)) * 4)
    _one_line_error(read_model, tmp_path / "junk.bin", match="unknown format")
    (tmp_path / "notmat.mat").write_text("hello")
    _one_line_error(read_model, tmp_path / "notmat.mat", match="notmat.mat")
    (tmp_path / "words.txt").write_text("hello world\n")
    _one_line_error(read_model, tmp_path / "words.txt", match="columns")
    (tmp_path / "nonnum.txt").write_text("Si a b c\n")
    _one_line_error(read_model, tmp_path / "nonnum.txt", match="numbers")
    (tmp_path / "short.xyz").write_text("5\ncomment\nSi 0 0 0\n")
    _one_line_error(read_model, tmp_path / "short.xyz", match="5 atoms")
    scipy.io.savemat(tmp_path / "shape.mat", {"a": np.zeros((4, 5))})
    _one_line_error(read_model, tmp_path / "shape.mat", match="coordinate array")
    scipy.io.savemat(tmp_path / "two.mat", {"a": XYZ, "b": XYZ + 1})
    _one_line_error(read_model, tmp_path / "two.mat", match="exactly one")
    scipy.io.savemat(tmp_path / "tm.mat", {"temp_model": np.zeros((4, 3)), "temp_atomtype": np.ones(3)})
    _one_line_error(read_model, tmp_path / "tm.mat", pixel_size=0.3, match="3×N")
    scipy.io.savemat(tmp_path / "tm2.mat", {"temp_model": np.zeros((3, 3)), "temp_atomtype": np.ones(2)})
    _one_line_error(read_model, tmp_path / "tm2.mat", pixel_size=0.3, match="2 labels")
    scipy.io.savemat(tmp_path / "frac.mat", {"c": XYZ, "t": np.array([1.5, 1, 1, 1])})
    _one_line_error(read_model, tmp_path / "frac.mat", match="label")
    (tmp_path / "ok.txt").write_text("Si 0 0 0\n")
    _one_line_error(read_model, tmp_path / "ok.txt", axes="xq", match="axes")
    _one_line_error(read_model, tmp_path / "ok.txt", types_path=tmp_path / "nope.txt", match="nope.txt")
