"""The shortest distance two atoms may have, from the elements alone.

Rule (``"bond"`` wherever a stage takes a distance; ``"f*bond"`` for a multiple ``f`` of it; ``"nn"`` for the
shortest bond itself):
**:data:`BOND_FRACTION` (0.75) × the shortest bond the elements can form**.  Each element has a bond radius
ρ: half the nearest-neighbour distance of its own solid from ASE's reference states
(:data:`ase.data.reference_states`: diamond ``a√3/4``, fcc ``a/√2``, bcc ``a√3/2``, hcp and simple cubic ``a``;
other solids, e.g. β-Sn's bct, twice the covalent radius), or, for an element whose reference state is a
molecule (O, N, H, …), its covalent radius (:data:`ase.data.covalent_radii`).  A pair's bond is ``ρ_i + ρ_j``;
two molecular elements are not counted as a pair when a solid-forming element is present (in an oxide oxygen
bonds to the cation, O–O is a second-neighbour distance).  So Si 2.35 Å, Si–O 1.84 Å, Co 2.51 Å.

Why 0.75: in an amorphous solid the first peak of the pair distribution sits near the crystal's
nearest-neighbour distance and no pair comes much closer (the paper's 19,993-atom a-Si and its SiGeSn:
no pair under 1.89 Å = 0.80 × 2.35 Å; the CoPdPt glass recipe none under 0.91 × 2.51 Å), while two traced
peaks of one atom lie ~1 Å apart.  The margin below 0.8 is for the measurement: a refined light atom next to
heavy ones can sit a few tenths of an Å closer to them than it is (CoPdPt, 1.7e4 e/Å²: a limit of 0.8 ×
2.51 = 2.01 Å pruned 11 % of the Co and 9 % of the Pd as members of too-close pairs; 1.88 Å keeps them).
Si gives 1.76 Å, Si–Ge–Sn 1.76 Å, Co–Pd–Pt 1.88 Å, Ta 2.14 Å, SiO₂ 1.38 Å.

Examples
--------
>>> round(bond_distance_A(["Si"]), 2), round(bond_distance_A(["Co", "Pd", "Pt"]), 2)
(1.76, 1.88)
>>> round(resolve_distance("0.5*bond", ["Si"], "radius_A"), 2)
0.88
"""
from __future__ import annotations

import math

from ..config import DISTANCE_RULE as _RULE
from ..errors import AetbenchError
from ..types import NON_ATOM

__all__ = ["bond_distance_A", "shortest_bond_A", "resolve_distance", "BOND_FRACTION"]

#: the minimum distance as a fraction of the shortest bond: below the ~0.8 of an amorphous solid's closest pairs,
#: with a margin for light atoms fitted towards heavy neighbours (see the module)
BOND_FRACTION = 0.75

#: nearest-neighbour distance per lattice constant ``a`` of the solids whose reference state gives one
_NN_PER_A = {"diamond": math.sqrt(3.0) / 4.0, "fcc": 1.0 / math.sqrt(2.0), "bcc": math.sqrt(3.0) / 2.0,
             "hcp": 1.0, "sc": 1.0}

_EXPECTED = "expected a distance in Å, 'bond', 'nn', 'f*bond' or 'f*nn'"


def _bond_radius_A(symbol: str) -> tuple[float, bool]:
    """``(ρ, molecular)``: the element's bond radius [Å] (see the module) and whether its reference state is a
    molecule (or unknown)."""
    from ase.data import atomic_numbers, covalent_radii, reference_states

    z = atomic_numbers.get(symbol)
    if z is None or symbol == "X":
        raise AetbenchError(f"elements: unknown element {symbol!r}")
    ref = reference_states[z] or {}
    sym = ref.get("symmetry")
    if sym in _NN_PER_A:
        return 0.5 * _NN_PER_A[sym] * float(ref["a"]), False
    # another solid (β-Sn's bct, …) or a molecule / atom (O, N, H, noble gases): the covalent radius
    return float(covalent_radii[z]), sym in (None, "diatom", "atom")


def shortest_bond_A(elements) -> float:
    """The shortest bond ``ρ_i + ρ_j`` the ``elements`` can form [Å] (see the module)."""
    els = sorted({str(e) for e in (elements or []) if str(e) not in (NON_ATOM, "?")})
    if not els:
        raise AetbenchError("distance rule 'bond' / 'nn': needs the scenario's elements (none given)")
    radii = {e: _bond_radius_A(e) for e in els}
    solid = any(not mol for _, mol in radii.values())
    best = math.inf
    for i, ei in enumerate(els):
        for ej in els[i:]:
            (ri, mi), (rj, mj) = radii[ei], radii[ej]
            if solid and mi and mj:
                continue
            best = min(best, ri + rj)
    return best


def bond_distance_A(elements) -> float:
    """:data:`BOND_FRACTION` × :func:`shortest_bond_A` of ``elements`` [Å] (see the module)."""
    return BOND_FRACTION * shortest_bond_A(elements)


def resolve_distance(value, elements, name: str) -> float:
    """A distance parameter [Å]: a number as given, ``"bond"`` for :func:`bond_distance_A` of ``elements``,
    ``"nn"`` for :func:`shortest_bond_A`, or ``"f*bond"`` / ``"f*nn"`` for ``f`` times either."""
    if isinstance(value, str):
        m = _RULE.match(value)
        if m is None:
            raise AetbenchError(f"{name}: {_EXPECTED}, got {value!r}")
        base = bond_distance_A(elements) if m.group(2) == "bond" else shortest_bond_A(elements)
        return (float(m.group(1)) if m.group(1) else 1.0) * base
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise AetbenchError(f"{name}: {_EXPECTED}, got {value!r}") from None
    if not v >= 0:
        raise AetbenchError(f"{name}: expected a distance ≥ 0 Å, got {value!r}")
    return v

