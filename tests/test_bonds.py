"""The distance rule from the elements (aetbench.trace.bonds) and its use by tracing, classification and refinement."""
from __future__ import annotations

import numpy as np
import pytest

from aetbench.errors import AetbenchError
from aetbench.config import check_option
from aetbench.trace.bonds import BOND_FRACTION, bond_distance_A, resolve_distance, shortest_bond_A
from aetbench.trace.peaks import trace_atoms
from aetbench.types import Volume


@pytest.mark.parametrize("elements,nn", [(["Si"], 5.43 * np.sqrt(3) / 4), (["Pd"], 3.89 / np.sqrt(2)),
                                         (["Ta"], 3.31 * np.sqrt(3) / 2), (["Co"], 2.51),
                                         (["Si", "Ge", "Sn"], 5.43 * np.sqrt(3) / 4), (["Co", "Pd", "Pt"], 2.51)])
def test_bond_distance_is_a_fraction_of_the_shortest_nearest_neighbour(elements, nn):
    assert shortest_bond_A(elements) == pytest.approx(nn, rel=1e-6)
    assert bond_distance_A(elements) == pytest.approx(BOND_FRACTION * nn, rel=1e-6)


def test_oxides_take_the_cation_oxygen_bond():
    """Si–O: the Si radius (half of 2.35 Å) plus O's covalent radius 0.66 Å; O–O is not a bond in an oxide, but a
    gas of one molecular element takes its own pair."""
    assert shortest_bond_A(["Si", "O"]) == pytest.approx(5.43 * np.sqrt(3) / 8 + 0.66, rel=1e-6)
    assert shortest_bond_A(["O"]) == pytest.approx(2 * 0.66)
    assert 1.2 < bond_distance_A(["Si", "O"]) < 1.61  # below the Si–O bond, above a split peak


def test_the_rule_keeps_the_shortest_pairs_of_the_shipped_and_paper_particles():
    """No pair of the paper's 20k-atom a-Si and SiGeSn comes closer than 1.89 Å, none of the CoPdPt glass recipe
    closer than 2.29 Å, none of a-SiO2 closer than ~1.5 Å (Si–O): the rule stays below each, and above the ~1 Å
    of a split peak."""
    assert 1.2 < bond_distance_A(["Si"]) < 1.89 and bond_distance_A(["Si", "Ge", "Sn"]) < 1.89
    assert 1.2 < bond_distance_A(["Co", "Pd", "Pt"]) < 2.29
    assert bond_distance_A(["Si", "O"]) < 1.5


def test_resolve_and_bad_input():
    assert resolve_distance(1.5, None, "x") == 1.5
    assert resolve_distance("bond", ["Si", "x"], "x") == pytest.approx(bond_distance_A(["Si"]))
    with pytest.raises(AetbenchError, match="needs the scenario's elements"):
        resolve_distance("bond", None, "x")
    assert resolve_distance("0.5*bond", ["Si"], "x") == pytest.approx(0.5 * bond_distance_A(["Si"]))
    assert resolve_distance(" 2 * bond ", ["Si"], "x") == pytest.approx(2 * bond_distance_A(["Si"]))
    for bad in ("bonds", "-1*bond", "bond*2", "x*bond"):
        with pytest.raises(AetbenchError, match="expected a distance in Å, 'bond', 'nn'"):
            resolve_distance(bad, ["Si"], "trace: min_distance_A")
    with pytest.raises(AetbenchError, match="≥ 0 Å"):
        resolve_distance(-1.0, ["Si"], "x")
    with pytest.raises(AetbenchError, match="unknown element"):
        bond_distance_A(["Qq"])


def test_scenario_options_take_the_rule_where_a_length_is_due():
    assert check_option("bond", 1.9, "trace.min_distance_A") == "bond"
    assert check_option("0.5*bond", 0.8, "classify.radius_A") == "0.5*bond"
    with pytest.raises(AetbenchError, match=r"classify.radius_A: expected a finite number \[Å\], got 'far'"):
        check_option("far", 0.8, "classify.radius_A")
    with pytest.raises(AetbenchError, match="expected int"):
        check_option("bond", 60, "refine.iterations")  # no unit: no rule


def test_trace_with_the_bond_rule():
    """Two peaks 2.0 Å apart: kept apart for Si (1.76 Å), merged for Ta (2.15 Å)."""
    data = np.zeros((40, 40, 40), np.float32)
    data[20, 20, 20] = 1.0
    data[20, 20, 30] = 0.9  # 10 voxels of 0.2 Å
    vol = Volume(data, 0.2)
    assert len(trace_atoms(vol, min_distance_A="bond", elements=["Si"])) == 2
    assert len(trace_atoms(vol, min_distance_A="bond", elements=["Ta"])) == 1


def test_tracing_and_classification_integrate_over_half_the_minimum_distance():
    """The intensity spheres default to half the minimum distance, so neighbours' spheres never overlap."""
    from aetbench.trace.classify import classify
    from aetbench.trace.peaks import integrated_intensity

    data = np.zeros((40, 40, 40), np.float32)
    data[20, 20, 20] = 1.0
    data[20, 20, 30] = 0.9
    vol = Volume(data, 0.2)
    tr = trace_atoms(vol, min_distance_A=1.5)
    assert np.allclose(tr.intensity, integrated_intensity(vol, tr.model.positions, 0.75))
    cl = classify(tr, vol, elements=["Ta"])
    assert np.allclose(cl.intensity, integrated_intensity(vol, tr.model.positions, 0.5 * bond_distance_A(["Ta"])))
