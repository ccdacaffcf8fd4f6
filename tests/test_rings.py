"""Ring statistics (issues 6, 17): the one shortest-path ring counter, checked against matscipy's
``ring_statistics`` and against crystals counted by hand; good (alternating Si/O) rings, truth vs traced, report."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from aetbench.io.files import AetbenchError
from aetbench.score.rings import bond_graph, compare_rings, find_rings, good_rings, ring_statistics
from aetbench.structures.analysis import shortest_path_rings
from aetbench.types import AtomicModel, TracedModel

B = 1.61  # Si–O [Å]


def _ring(n_atoms, bond=B):
    """Planar ring of n atoms with equal bonds [Å], alternating Si/O."""
    r = bond / (2 * np.sin(np.pi / n_atoms))
    t = 2 * np.pi * np.arange(n_atoms) / n_atoms
    x = np.stack([r * np.cos(t), r * np.sin(t), np.zeros(n_atoms)], 1)
    return x, np.array(["Si", "O"] * (n_atoms // 2) + ["Si"] * (n_atoms % 2))


def _honeycomb_patch():
    """Coronene-like patch of 7 hexagons: Si on the honeycomb sites (Si···Si 3.09 Å), O on every Si–Si
    bond midpoint pushed 0.3 Å out of plane; returns (model, number of hexagons = 7)."""
    a = 3.09
    # hexagon centres: one plus six around it (distance √3 a)
    cs = [np.zeros(2)] + [np.sqrt(3) * a * np.array([np.cos(t), np.sin(t)])
                          for t in np.pi / 6 + np.pi / 3 * np.arange(6)]
    corners = a * np.stack([np.cos(np.pi / 3 * np.arange(6)), np.sin(np.pi / 3 * np.arange(6))], 1)
    si = []
    for c in cs:
        for p in c + corners:
            if not any(np.linalg.norm(p - q) < 0.1 for q in si):
                si.append(p)
    si = np.array(si)
    d = np.linalg.norm(si[:, None] - si[None], axis=2)
    i, j = np.nonzero(np.triu((d > 3.0) & (d < 3.2)))
    mid = 0.5 * (si[i] + si[j])
    # O slightly out of plane keeps Si–O at 1.573 Å (inside the window) and O–O > 2.5 Å
    o = np.column_stack([mid, np.full(len(mid), 0.3)])
    x = np.vstack([np.column_stack([si, np.zeros(len(si))]), o])
    el = np.array(["Si"] * len(si) + ["O"] * len(o))
    return AtomicModel(x, el), i, j, len(si)


# ------------------------------------------------------------------ rings on hand-made graphs


def test_single_alternating_ring_exact():
    x, el = _ring(12)
    df = ring_statistics(AtomicModel(x, el))
    assert list(df.columns[:6]) == ["size_atoms", "size_si", "n_rings", "n_good", "good_fraction", "fraction"]
    assert list(df["size_atoms"]) == list(range(6, 19))
    row = df.set_index("size_atoms").loc[12]
    assert row["n_rings"] == 1 and row["n_good"] == 1 and row["good_fraction"] == 1.0 and row["size_si"] == 6
    assert df["n_rings"].sum() == 1
    assert df.attrs["n_bonds"] == 12 and df.attrs["bond_window_A"] == (1.31, 1.91)


def test_wrong_element_breaks_or_spoils_the_ring():
    x, el = _ring(12)
    el[3] = "Si"  # an O labelled Si: two Si–Si "bonds" at 1.61 Å
    any_pairs = ring_statistics(AtomicModel(x, el), bond_pairs="any").set_index("size_atoms")
    assert any_pairs.loc[12, "n_rings"] == 1 and any_pairs.loc[12, "n_good"] == 0
    assert any_pairs.loc[12, "good_fraction"] == 0.0
    # Si–O bonds only: the mislabelled atom has no bonds, the ring is gone
    assert ring_statistics(AtomicModel(x, el))["n_rings"].sum() == 0


def test_bond_window_decides_what_is_a_bond():
    x, el = _ring(12, bond=2.0)  # outside 1.61 ± 0.3
    assert ring_statistics(AtomicModel(x, el))["n_rings"].sum() == 0
    assert ring_statistics(AtomicModel(x, el), bond_window_A=(1.8, 2.2))["n_rings"].sum() == 1
    off, idx = bond_graph(x, el, bond_window_A=(1.8, 2.2))
    assert np.all(np.diff(off) == 2)


def test_odd_ring_is_never_good():
    x, el = _ring(7)  # Si O Si O Si O Si: two Si meet
    df = ring_statistics(AtomicModel(x, el), bond_pairs="any", sizes=range(3, 10)).set_index("size_atoms")
    assert df.loc[7, "n_rings"] == 1 and df.loc[7, "n_good"] == 0 and np.isnan(df.loc[7, "size_si"])


def test_honeycomb_patch_counts_each_cell_once():
    m, _, _, n_si = _honeycomb_patch()
    assert n_si == 24 and (m.elements == "O").sum() == 30
    df = ring_statistics(m).set_index("size_atoms")
    # 7 hexagonal cells of 6 Si + 6 O; the perimeter and the two-cell loops are not shortest-path rings
    assert df.loc[12, "n_rings"] == 7 and df.loc[12, "n_good"] == 7
    assert df["n_rings"].sum() == 7
    # the structure analysis counts with the same counter
    off, idx = bond_graph(m.positions, m.elements)
    adj = [list(idx[off[i]:off[i + 1]]) for i in range(len(m))]
    assert shortest_path_rings(adj, max_size=18) == {12: 7}


def test_relabelled_shared_oxygen_spoils_two_cells():
    m, i, j, n_si = _honeycomb_patch()
    # an O on a bond shared by the centre cell and an outer cell (both Si have three Si neighbours)
    deg = np.bincount(np.concatenate([i, j]), minlength=n_si)
    k = int(np.nonzero((deg[i] == 3) & (deg[j] == 3))[0][0])
    el = m.elements.copy()
    el[n_si + k] = "Si"
    df = ring_statistics(AtomicModel(m.positions, el), bond_pairs="any").set_index("size_atoms")
    assert df.loc[12, "n_rings"] == 7 and df.loc[12, "n_good"] == 5
    assert df.loc[12, "good_fraction"] == pytest.approx(5 / 7)


def test_find_rings_returns_ordered_rings_and_all_equal_paths():
    # a square with both diagonals' midpoints absent: 4-cycle 0-1-2-3 plus a second path 0-4-2
    adj = {0: [1, 3, 4], 1: [0, 2], 2: [1, 3, 4], 3: [0, 2], 4: [0, 2]}
    n = 5
    off = np.zeros(n + 1, np.int64)
    off[1:] = np.cumsum([len(adj[i]) for i in range(n)])
    idx = np.concatenate([sorted(adj[i]) for i in range(n)]).astype(np.int64)
    rings = find_rings(off, idx, max_size=8)
    # three 4-rings (0-1-2-3, 0-1-2-4, 0-3-2-4), each consecutive pair bonded
    assert sorted(tuple(sorted(r)) for r in rings) == [(0, 1, 2, 3), (0, 1, 2, 4), (0, 2, 3, 4)]
    for r in rings:
        for p in range(len(r)):
            assert r[(p + 1) % len(r)] in adj[int(r[p])]
    assert list(good_rings(rings, np.array(["Si", "O", "Si", "O", "O"]))) == [True, True, True]


def _csr(i, j, n):
    """CSR adjacency from a full (both directions) pair list."""
    order = np.lexsort((j, i))
    off = np.zeros(n + 1, np.int64)
    np.cumsum(np.bincount(i, minlength=n), out=off[1:])
    return off, np.asarray(j, np.int64)[order]


def _sizes(rings) -> dict[int, int]:
    sizes, counts = np.unique([len(r) for r in rings], return_counts=True)
    return dict(zip(sizes.tolist(), counts.tolist()))


def _matscipy_counts(atoms, cutoff, max_size=None) -> dict[int, int]:
    """matscipy's shortest-path ring counts {size [atoms]: n} (its index is the ring size in atoms = bonds).

    Its ``maxlength`` m finds every even ring up to 2⌊(m−1)/2⌋ and odd one up to that + 1 (and its padding
    breaks when an odd ring of m atoms exists), so m = max_size + 1 (odd max_size) or + 2 (even), and sizes
    above ``max_size`` are dropped; None: no limit.
    """
    from matscipy.rings import ring_statistics as ms_ring_statistics

    m = -1 if max_size is None else max_size + 1 if max_size % 2 else max_size + 2
    rs = ms_ring_statistics(atoms, cutoff, maxlength=m)
    return {k: int(v) for k, v in enumerate(rs) if v and (max_size is None or k <= max_size)}


@pytest.mark.parametrize("seed", [1, 2, 8, 12, 19, 36])
def test_rings_match_matscipy_on_random_networks(seed):
    """Random point clouds bonded within a cutoff: dense, irregular graphs with odd and even rings, shortcuts
    and many equally short paths; every ring size up to 12 atoms agrees with matscipy's count."""
    import ase

    rng = np.random.default_rng(seed)
    n = int(rng.integers(20, 300))
    side = (n / rng.uniform(0.03, 0.09)) ** (1 / 3)
    cut = rng.uniform(2.0, 2.7)
    atoms = ase.Atoms(f"Si{n}", rng.uniform(0, side, (n, 3)))
    atoms.center(vacuum=10.0)  # matscipy needs a cell; no periodic boundaries
    ref = _matscipy_counts(atoms, cut, 12)
    off, idx = bond_graph(atoms.positions, bond_window_A=(0.0, cut), bond_pairs="any")
    assert _sizes(find_rings(off, idx, max_size=12)) == ref
    assert sum(ref.values()) >= 5


def test_random_networks_include_odd_rings():
    # the matscipy comparison above covers odd rings (turns at equal distance) as well as even ones
    import ase

    rng = np.random.default_rng(8)
    n = int(rng.integers(20, 300))
    side = (n / rng.uniform(0.03, 0.09)) ** (1 / 3)
    cut = rng.uniform(2.0, 2.7)
    atoms = ase.Atoms(f"Si{n}", rng.uniform(0, side, (n, 3)))
    off, idx = bond_graph(atoms.positions, bond_window_A=(0.0, cut), bond_pairs="any")
    counts = _sizes(find_rings(off, idx, max_size=12))
    assert any(k % 2 for k in counts) and any(k % 2 == 0 for k in counts)


def _periodic_graph(atoms, cutoff):
    from ase.neighborlist import neighbor_list

    i, j = neighbor_list("ij", atoms, cutoff)
    return _csr(i, j, len(atoms))


def _beta_cristobalite(a=7.16):
    """Ideal beta-cristobalite (Fd-3m) conventional cell: Si on diamond sites, O at every Si–Si bond midpoint
    (Si–O = a√3/8 = 1.55 Å, Si–O–Si 180°); 8 Si + 16 O."""
    from ase import Atoms
    from ase.build import bulk
    from ase.neighborlist import neighbor_list

    si = bulk("Si", "diamond", a=a, cubic=True)
    i, j, d = neighbor_list("ijD", si, 0.45 * a)
    half = i < j
    o = si.positions[i[half]] + 0.5 * d[half]
    cell = Atoms(["Si"] * len(si) + ["O"] * len(o), np.vstack([si.positions, o]), cell=si.cell, pbc=True)
    cell.wrap()
    return cell


def test_diamond_rings_by_hand():
    """Diamond: every bond angle lies in 2 six-rings, 6 angles per atom → 12 six-rings per atom, each shared
    by 6 atoms: 2 N six-rings and no other ring (3×3×3 cells, 216 Si; loops winding round the periodic cell
    are ≥ 12 bonds long, beyond the 10 searched)."""
    from ase.build import bulk

    si = bulk("Si", "diamond", a=5.431, cubic=True).repeat(3)
    off, idx = _periodic_graph(si, 2.6)
    assert np.all(np.diff(off) == 4)
    rings = find_rings(off, idx, max_size=10)
    assert _sizes(rings) == {6: 2 * len(si)} == {6: 432}
    # each bond in 6 rings (12 N ring-bond incidences over 2 N bonds)
    bonds = {}
    for r in rings:
        for p in range(6):
            e = tuple(sorted((int(r[p]), int(r[(p + 1) % 6]))))
            bonds[e] = bonds.get(e, 0) + 1
    assert len(bonds) == 2 * len(si) and set(bonds.values()) == {6}
    assert _matscipy_counts(si, 2.6, 10) == {6: 432}


def test_beta_cristobalite_rings_by_hand():
    """beta-cristobalite: the Si–O graph is diamond with an O on every bond, so its rings are the diamond
    six-rings with 6 O inserted: 2 N_Si rings of 12 atoms (6 Si), all alternating, no other ring up to 20
    atoms (3×3×3 cells, 216 Si + 432 O; winding loops ≥ 24 atoms)."""
    cr = _beta_cristobalite().repeat(3)
    el = np.array(cr.get_chemical_symbols())
    off, idx = _periodic_graph(cr, {("Si", "O"): 1.8})
    assert np.all(np.diff(off)[el == "Si"] == 4) and np.all(np.diff(off)[el == "O"] == 2)
    rings = find_rings(off, idx, max_size=20)
    n_si = int((el == "Si").sum())
    assert _sizes(rings) == {12: 2 * n_si} == {12: 432}
    assert good_rings(rings, el).all()
    assert _matscipy_counts(cr, {("Si", "O"): 1.8}, 20) == {12: 432}


def test_cristobalite_particle_one_counter_everywhere():
    """A spherical beta-cristobalite particle (finite, as the package's models are): ring_statistics, the
    structure analysis and matscipy give the same counts; only six-Si rings."""
    import ase

    from aetbench.structures.analysis import analyse

    cr = _beta_cristobalite().repeat(4)
    x = cr.positions - cr.positions.mean(0)
    keep = np.linalg.norm(x, axis=1) < 11.0
    rng = np.random.default_rng(3)
    m = AtomicModel(x[keep] + rng.normal(0, 0.05, (keep.sum(), 3)), np.array(cr.get_chemical_symbols())[keep])
    df = ring_statistics(m, sizes=range(3, 25)).set_index("size_atoms")
    ours = {int(k): int(v) for k, v in df["n_rings"].items() if v}
    atoms = ase.Atoms(m.elements, m.positions)
    atoms.center(vacuum=10.0)
    assert ours == _matscipy_counts(atoms, {("Si", "O"): 1.91}, 24)
    assert set(ours) == {12} and ours[12] > 20 and df.loc[12, "n_good"] == ours[12]
    # rings through interior atoms (deeper than 3 Å below the surface): same rule in both modules
    a = analyse(m, cutoffs={"O-Si": 1.91, "Si-Si": 0.0, "O-O": 0.0}, shell=3.0, max_ring=24)
    interior = ring_statistics(m, sizes=range(3, 25), shell_A=3.0)
    assert a["rings"] == {int(k): int(v) for k, v in zip(interior["size_atoms"], interior["n_rings"]) if v}
    assert 0 < a["rings"][12] < ours[12]


def test_find_rings_centres_and_limits():
    x, el = _ring(12)
    off, idx = bond_graph(x, el)
    assert len(find_rings(off, idx, max_size=12)) == 1
    assert find_rings(off, idx, max_size=11) == []  # a 12-ring is not searched for
    assert len(find_rings(off, idx, max_size=12, centres=[3])) == 1
    assert find_rings(off, idx, max_size=12, centres=np.zeros(12, bool)) == []
    with pytest.raises(AetbenchError, match="ring search"):
        find_rings(off, idx, max_size=12, max_steps=5)
    with pytest.raises(AetbenchError, match="max_size"):
        find_rings(off, idx, max_size=2)


def test_bad_input_raises():
    x, el = _ring(12)
    with pytest.raises(AetbenchError, match="bond_window_A"):
        ring_statistics(AtomicModel(x, el), bond_window_A=(2.0, 1.0))
    with pytest.raises(AetbenchError, match="sizes"):
        ring_statistics(AtomicModel(x, el), sizes=[2, 3])
    with pytest.raises(AetbenchError, match="bond_pairs"):
        ring_statistics(AtomicModel(x, el), bond_pairs="SiO")


# ------------------------------------------------------------------ truth vs traced on a 3-D network


@pytest.fixture(scope="module")
def silica_network():
    """A small a-SiO2 network (WWW route, 60 Si) for truth-vs-traced checks."""
    from aetbench.structures.silica import build_silica

    return build_silica(60, seed=7)


def test_compare_rings_traced_copy_with_damage(silica_network):
    truth = silica_network
    rng = np.random.default_rng(0)
    ref = ring_statistics(truth)
    assert ref["n_rings"].sum() > 10 and ref["n_good"].sum() == ref["n_rings"].sum()
    # traced copy: 5 % of the atoms dropped, 5 % of the rest relabelled, 5 pm noise
    keep = rng.random(len(truth)) > 0.05
    el = truth.elements[keep].copy()
    flip = rng.random(len(el)) < 0.05
    el[flip] = np.where(el[flip] == "Si", "O", "Si")
    traced = TracedModel(AtomicModel(truth.positions[keep] + rng.normal(0, 0.05, (keep.sum(), 3)), el),
                         intensity=np.ones(keep.sum()))
    cmp = compare_rings(truth, traced, bond_pairs="any")
    assert list(cmp.columns) == ["size_atoms", "size_si", "n_rings_truth", "n_good_truth", "good_fraction_truth",
                                 "n_rings_traced", "n_good_traced", "good_fraction_traced", "good_recovered"]
    assert (cmp["n_rings_truth"] == ring_statistics(truth, bond_pairs="any")["n_rings"]).all()
    assert cmp["n_good_traced"].sum() < cmp["n_good_truth"].sum()
    tot_truth = cmp["n_good_truth"].sum() / cmp["n_rings_truth"].sum()
    tot_traced = cmp["n_good_traced"].sum() / max(cmp["n_rings_traced"].sum(), 1)
    assert tot_traced < tot_truth == 1.0
    # an undamaged copy recovers every ring
    same = compare_rings(truth, truth.translated([1.0, 2.0, 3.0]))
    sel = same["n_good_truth"] > 0
    assert np.all(same.loc[sel, "good_recovered"] == 1.0)


def test_ring_report_markdown_and_png(silica_network, tmp_path):
    from aetbench.report.rings import plot_rings, rings_markdown

    truth = silica_network
    el = truth.elements.copy()
    el[:3] = "O"
    cmp = compare_rings(truth, AtomicModel(truth.positions, el), bond_pairs="any")
    md = rings_markdown(cmp, title="SiO2 rings")
    lines = md.splitlines()
    assert lines[0] == "### SiO2 rings"
    assert "ring size (atoms)" in lines[2] and "good traced" in lines[2]
    assert len([ln for ln in lines if ln.startswith("| ") and "---" not in ln]) == 1 + 13 + 1  # header, 6-18, all
    row12 = next(ln for ln in lines if ln.startswith("| 12 |"))
    assert f"| {int(cmp.set_index('size_atoms').loc[12, 'n_rings_truth'])} |" in row12
    assert "1.31–1.91 Å" in md
    p = tmp_path / "rings.png"
    plot_rings(cmp, p, title="SiO2")
    assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and p.stat().st_size > 5000
    one = ring_statistics(truth)
    assert "good fraction" in rings_markdown(one)
    plot_rings(one, tmp_path / "one.png")
    with pytest.raises(AetbenchError, match="ring table"):
        rings_markdown(pd.DataFrame({"a": [1]}))
