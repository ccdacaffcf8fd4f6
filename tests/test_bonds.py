"""The minimum-distance rule from the elements (aetbench.trace.bonds) and its use by tracing and refinement."""
from __future__ import annotations

import numpy as np
import pytest

from aetbench.errors import AetbenchError
from aetbench.trace.bonds import BOND_FRACTION, bond_distance_A, resolve_distance
from aetbench.trace.peaks import trace_atoms
from aetbench.types import Volume


@pytest.mark.parametrize("elements,nn", [(["Si"], 5.43 * np.sqrt(3) / 4), (["Pd"], 3.89 / np.sqrt(2)),
                                         (["Ta"], 3.31 * np.sqrt(3) / 2), (["Co"], 2.51),
                                         (["Si", "Ge", "Sn"], 5.43 * np.sqrt(3) / 4), (["Co", "Pd", "Pt"], 2.51)])
def test_bond_distance_is_a_fraction_of_the_shortest_nearest_neighbour(elements, nn):
    assert bond_distance_A(elements) == pytest.approx(BOND_FRACTION * nn, rel=1e-6)


def test_the_paper_particles_keep_their_shortest_pairs():
    """The paper's 20k-atom a-Si and its SiGeSn have no pair under 1.89 Å: the rule stays below that."""
    assert bond_distance_A(["Si"]) < 1.89 and bond_distance_A(["Si", "Ge", "Sn"]) < 1.89


def test_resolve_and_bad_input():
    assert resolve_distance(1.5, None, "x") == 1.5
    assert resolve_distance("bond", ["Si", "x"], "x") == pytest.approx(bond_distance_A(["Si"]))
    with pytest.raises(AetbenchError, match="needs the scenario's elements"):
        resolve_distance("bond", None, "x")
    with pytest.raises(AetbenchError, match="expected a distance in Å or 'bond'"):
        resolve_distance("bonds", ["Si"], "trace: min_distance_A")
    with pytest.raises(AetbenchError, match="≥ 0 Å"):
        resolve_distance(-1.0, ["Si"], "x")
    with pytest.raises(AetbenchError, match="unknown element"):
        bond_distance_A(["Qq"])


def test_trace_with_the_bond_rule():
    """Two peaks 2.0 Å apart: kept apart for Si (1.88 Å), merged for Ta (2.29 Å)."""
    data = np.zeros((40, 40, 40), np.float32)
    data[20, 20, 20] = 1.0
    data[20, 20, 30] = 0.9  # 10 voxels of 0.2 Å
    vol = Volume(data, 0.2)
    assert len(trace_atoms(vol, min_distance_A="bond", elements=["Si"])) == 2
    assert len(trace_atoms(vol, min_distance_A="bond", elements=["Ta"])) == 1
