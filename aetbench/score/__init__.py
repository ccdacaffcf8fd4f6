"""Scoring a traced model against its ground truth.

>>> import numpy as np
>>> from aetbench.types import AtomicModel
>>> truth = AtomicModel([[0, 0, 0], [2.4, 0, 0], [0, 2.4, 0]], ["Si", "Si", "Si"])
>>> traced = truth.translated([5.0, 0.0, 0.0])            # a pure offset costs nothing
>>> score(traced, truth, cutoff=0.9)[["element", "identified", "rate_pct"]].to_dict("records")
[{'element': 'Si', 'identified': 3, 'rate_pct': 100.0}]

Protocols (see :mod:`aetbench.score.metrics`): ``"paper"`` (the authors' per-element,
many-to-one nearest neighbour) and ``"strict"`` (one shift, one-to-one assignment).
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from ..errors import AetbenchError
from ..types import NON_ATOM, AtomicModel

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from .metrics import ScoreDetails

__all__ = ["score", "score_details", "ScoreDetails", "PROTOCOLS", "ROW_COLUMNS", "spread_warning"]


def _protocols() -> dict:
    from .metrics import paper_protocol, strict_protocol

    return {"paper": paper_protocol, "strict": strict_protocol}


def __getattr__(name):
    # PEP 562: .metrics (pandas, scipy) loads on first use, so `aetbench --help` does not pay for it
    if name == "PROTOCOLS":
        return _protocols()
    if name in ("ROW_COLUMNS", "ScoreDetails"):
        from . import metrics

        return getattr(metrics, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _prepare(model, truth, cutoff, protocol):
    if protocol not in ("paper", "strict"):
        raise AetbenchError(f"protocol: {protocol!r} is unknown; expected one of paper, strict")
    try:
        c = float(cutoff)
    except (TypeError, ValueError):
        c = float("nan")
    if not (math.isfinite(c) and c > 0):
        raise AetbenchError(f"cutoff: expected a positive distance in Å, got {cutoff!r}")
    for what, m in (("model", model), ("truth", truth)):
        if not isinstance(m, AtomicModel):
            raise AetbenchError(f"{what}: expected an AtomicModel, got {type(m).__name__}")
        if not np.all(np.isfinite(m.positions)):
            raise AetbenchError(f"{what}: positions contain NaN or infinite values")
    model = model.select(model.elements != NON_ATOM)
    truth = truth.select(truth.elements != NON_ATOM)
    if len(truth) == 0:
        raise AetbenchError("truth: the ground truth holds no atoms")
    if len(model):
        model = model.centred()
    return model, truth.centred(), c


def score_details(model: AtomicModel, truth: AtomicModel, *, cutoff: float, protocol: str = "strict") -> ScoreDetails:
    """Score and keep the pairs, residuals, shift, confusion matrix and F1.

    Parameters
    ----------
    model : AtomicModel
        Traced atoms [Å]; entries labelled ``"x"`` (non-atoms) are dropped.
    truth : AtomicModel
        Ground truth [Å].
    cutoff : float
        Acceptance distance [Å], > 0.
    protocol : {"strict", "paper"}

    Returns
    -------
    ScoreDetails
    """
    model, truth, c = _prepare(model, truth, cutoff, protocol)
    return _protocols()[protocol](model, truth, c)


def score(model: AtomicModel, truth: AtomicModel, *, cutoff: float, protocol: str = "paper") -> pd.DataFrame:
    """Per-element score table.

    Parameters
    ----------
    model, truth : AtomicModel
        Traced atoms and ground truth [Å]; each is centred on its own centroid first.
    cutoff : float
        Acceptance distance [Å], > 0.
    protocol : {"paper", "strict"}

    Returns
    -------
    pandas.DataFrame
        One row per truth element (by atomic number), columns :data:`ROW_COLUMNS`:
        element, protocol, cutoff [Å], n_truth, n_traced, identified, rate_pct [%],
        precision_pm [pm], false_positives, wrong_element.
    """
    return score_details(model, truth, cutoff=cutoff, protocol=protocol).table


def spread_warning(model: AtomicModel, truth: AtomicModel, cutoff: float, *, max_fraction: float = 0.01) -> str | None:
    """A one-line warning when the traced atoms spread beyond the ground truth's extent, else ``None``.

    Both models are taken about their own centroids (as the scorers take them).  The truth's extent is the distance
    of its outermost atom; a traced atom lies *beyond* it when it is farther than that plus ``cutoff`` [Å].  More
    than ``max_fraction`` of the traced atoms (and at least 3) beyond it is the signature of a particle that left
    the field of view, of a wrong rotation centre, or of a wrong axis convention: the tracer then fills the field
    with peaks of noise.

    Examples
    --------
    >>> t = AtomicModel(np.random.default_rng(0).normal(0, 5, (200, 3)), ["Si"] * 200)
    >>> spread_warning(t, t, 0.9) is None
    True
    >>> m = AtomicModel(np.random.default_rng(1).uniform(-50, 50, (200, 3)), ["Si"] * 200)
    >>> spread_warning(m, t, 0.9).split(":")[0]
    'traced atoms spread beyond the ground truth'
    """
    atoms = model.select(model.elements != NON_ATOM) if len(model) else model
    if len(atoms) == 0 or len(truth) == 0:
        return None
    t = truth.positions - truth.positions.mean(axis=0)
    m = atoms.positions - atoms.positions.mean(axis=0)
    extent = float(np.linalg.norm(t, axis=1).max())
    r = np.linalg.norm(m, axis=1)
    beyond = int(np.count_nonzero(r > extent + float(cutoff)))
    if beyond < 3 or beyond <= max_fraction * len(atoms):
        return None
    return (f"traced atoms spread beyond the ground truth: {beyond} of {len(atoms)} lie farther than "
            f"{extent + float(cutoff):.1f} Å from their centroid (truth extent {extent:.1f} Å + cutoff {float(cutoff):g} Å, "
            f"farthest {float(r.max()):.1f} Å); check the rotation centre, the field of view and the axis convention")
