"""Backend of ``aetbench score MODEL TRUTH --cutoff C [--protocol paper|strict] …``.

Example (the paper's aSi208 model at 1.6e4 e/Å²)::

    aetbench score Model_aSi2nm_FoscCenter_Dose1p6e4_cov35pm_BM3D.mat aSi_208atoms_GT.txt \\
        --cutoff 0.9 --pixel-size 0.195 --model-elements Si --truth-elements Si --truth-axes yxz

The scorer does not guess silently: integer labels need an element list (or ``--labels Z``
for atomic numbers); duplicated atoms are reported; and when fewer than
:data:`POOR_RATE_PCT` % of the truth atoms are identified, it tries the 48 axis
permutations and sign flips of the truth about its centroid (:func:`axes_hint`) and,
when one identifies far more (:data:`FAR_BETTER_FACTOR` × and :data:`FAR_BETTER_POINTS`
points more), names it: ``--truth-axes yxz would give 100.00 %``.  Warnings go to stderr
as ``aetbench: warning: …`` lines (and under ``"warnings"`` in ``--json``).
"""
from __future__ import annotations

import argparse
import itertools
import json
import math
import sys
import warnings

import numpy as np

from ..errors import AetbenchError

__all__ = ["add_arguments", "run", "JSON_ROW_KEYS", "axes_hint", "POOR_RATE_PCT", "FAR_BETTER_FACTOR",
           "FAR_BETTER_POINTS"]

#: a score below this identification rate [%] (all elements together) triggers the axes search
POOR_RATE_PCT = 50.0
#: an alternative axes convention is named when its rate is at least this factor times the rate found …
FAR_BETTER_FACTOR = 1.5
#: … and at least this many percentage points above it
FAR_BETTER_POINTS = 25.0
#: the axes search scores at most this many model atoms per trial (a random, seeded subsample)
SEARCH_ATOMS = 1000

#: keys of one row of the ``--json`` output
JSON_ROW_KEYS = ["element", "n_truth", "n_traced", "identified", "rate_pct", "precision_pm", "false_positives",
                 "wrong_element"]


def _positive_float(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number of Å, got {text!r}") from None
    if not (math.isfinite(v) and v > 0):
        raise argparse.ArgumentTypeError(f"expected a positive number of Å, got {text!r}")
    return v


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``score`` options to ``parser`` (the ``score`` sub-parser)."""
    parser.add_argument("model", metavar="MODEL", help="traced model: .xyz/extxyz, table (species x y z Å) or .mat")
    parser.add_argument("truth", metavar="TRUTH", help="ground truth, same formats")
    parser.add_argument("--cutoff", metavar="C", type=_positive_float, required=True, help="acceptance distance in Å (> 0)")
    parser.add_argument("--protocol", choices=("paper", "strict", "reference"), default="paper",
                        help="paper: per-element nearest neighbour (the authors'); strict: one shift, one-to-one; "
                             "reference: agreement with a reference model in a region, absolute frame, one-to-one")
    parser.add_argument("--region", metavar="BOX", default=None,
                        help="reference protocol: box 'x0,x1,y0,y1,z0,z1' in Å (write --region=-5,5,... when it starts with '-')")
    parser.add_argument("--region-mask", metavar="H5", default=None,
                        help="reference protocol: mask volume (aetbench HDF5, global frame) intersected with the box")
    parser.add_argument("--fit-shift", action="store_true", help="reference protocol: fit a small shift (< cutoff)")
    parser.add_argument("--pixel-size", metavar="P", type=_positive_float, default=None,
                        help="pixel size in Å of the tracing volume (needed for the paper's temp_model files)")
    parser.add_argument("--model-axes", metavar="AX", default=None, help="axis permutation/flip of the model, e.g. 'yx-z'")
    parser.add_argument("--truth-axes", metavar="AX", default=None, help="axis permutation/flip of the truth, e.g. 'yxz'")
    parser.add_argument("--model-elements", metavar="L", default=None,
                        help="elements of integer labels 1,2,… of the model, e.g. 'x,O,Si' (x = non-atom)")
    parser.add_argument("--truth-elements", metavar="L", default=None, help="elements of integer labels 1,2,… of the truth")
    parser.add_argument("--model-types", metavar="F", default=None, help="separate label file for the model (.mat or text)")
    parser.add_argument("--truth-types", metavar="F", default=None, help="separate label file for the truth (.mat or text)")
    parser.add_argument("--labels", choices=("Z",), default=None,
                        help="Z: integer labels without an element list are atomic numbers (14 = Si); "
                             "otherwise they need --model-elements/--truth-elements")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")


def _num(v):
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if hasattr(v, "item"):
        v = v.item()
        if isinstance(v, float) and not math.isfinite(v):
            return None
    return v


def _format_table(df, protocol: str, cutoff: float) -> str:
    head = ["element", "n_truth", "n_traced", "identified", "rate %", "precision pm", "false pos.", "wrong el."]
    body = []
    for r in df.to_dict("records"):
        body.append([r["element"], str(r["n_truth"]), str(r["n_traced"]), str(r["identified"]),
                     f"{r['rate_pct']:.2f}",
                     f"{r['precision_pm']:.2f}" if math.isfinite(r["precision_pm"]) else "nan",
                     str(r["false_positives"]), str(r["wrong_element"])])
    widths = [max(len(h), *(len(b[k]) for b in body)) if body else len(h) for k, h in enumerate(head)]
    lines = [f"protocol: {protocol}   cutoff: {cutoff:g} Å",
             "  ".join(h.rjust(w) for h, w in zip(head, widths)),
             "  ".join("-" * w for w in widths)]
    lines += ["  ".join(c.rjust(w) for c, w in zip(b, widths)) for b in body]
    return "\n".join(lines)


def _overall_rate(df) -> float:
    """Identified truth atoms [%] over all elements."""
    n = float(df["n_truth"].sum())
    return 100.0 * float(df["identified"].sum()) / n if n > 0 else 0.0


def _signed_permutations() -> list[np.ndarray]:
    """The 48 signed 3×3 permutation matrices (24 rotations, 24 with a mirror); identity first."""
    out = []
    for perm in itertools.permutations(range(3)):
        for signs in itertools.product((1.0, -1.0), repeat=3):
            m = np.zeros((3, 3))
            m[range(3), perm] = signs
            out.append(m)
    return out


def axes_hint(model, truth, *, cutoff: float, protocol: str = "paper", truth_axes: str | None = None,
              seed: int = 0):
    """Search the 48 axis permutations/flips of the truth for a far better score.

    Each candidate transforms the truth about its centroid and is scored with the paper
    protocol on a random subsample of at most :data:`SEARCH_ATOMS` model atoms (rate scaled
    by the subsample fraction); the best is rescored in full with ``protocol``.

    Parameters
    ----------
    model, truth : AtomicModel
        Positions [Å] as read (``truth`` after ``truth_axes``).
    cutoff : float
        Acceptance distance [Å].
    protocol : str
        Protocol of the reported rate.
    truth_axes : str, optional
        Axes string already applied to the truth; the hint composes with it.

    Returns
    -------
    (str, float) or None
        The axes string to give as ``--truth-axes`` and its rate [%], when it identifies at
        least :data:`FAR_BETTER_FACTOR` × and :data:`FAR_BETTER_POINTS` points more than
        the current convention; else ``None``.
    """
    from ..io.models import axes_matrix, matrix_axes
    from ..types import AtomicModel
    from . import score

    if len(model) == 0 or len(truth) == 0:
        return None
    rng = np.random.default_rng(seed)
    sub = model if len(model) <= SEARCH_ATOMS else model.select(np.sort(rng.choice(len(model), SEARCH_ATOMS,
                                                                                     replace=False)))
    frac = len(sub) / len(model)
    c = truth.positions.mean(axis=0)
    centred = truth.positions - c

    def quick(m: np.ndarray) -> float:
        t = AtomicModel(centred @ m.T + c, truth.elements)
        return _overall_rate(score(sub, t, cutoff=cutoff, protocol="paper")) / frac

    mats = _signed_permutations()
    base = quick(mats[0])
    rates = [quick(m) for m in mats[1:]]
    k = int(np.argmax(rates))
    best = mats[1 + k]
    if not (rates[k] >= FAR_BETTER_FACTOR * base and rates[k] >= base + FAR_BETTER_POINTS):
        return None
    full = _overall_rate(score(model, AtomicModel(centred @ best.T + c, truth.elements), cutoff=cutoff,
                               protocol=protocol))
    return matrix_axes(best @ axes_matrix(truth_axes)), full


def _read(path, *, elements, axes, types_path, pixel_size, atomic_numbers, what, notes):
    from ..io.models import model_warnings, read_model

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        m = read_model(path, elements=elements, axes=axes, types_path=types_path, pixel_size=pixel_size,
                       atomic_numbers=atomic_numbers)
    notes += [str(w.message) for w in caught]
    if len(m) == 0:
        raise AetbenchError(f"{path}: the {what} holds no atoms (all labelled as non-atoms?)")
    notes += model_warnings(m, f"{what} {path}")
    return m


def _run_reference(args, model, reference) -> int:
    """``--protocol reference``: matched fractions, RMS, missing and extra atoms in the region."""
    from dataclasses import replace

    from ..types import Volume
    from .reference import REFERENCE_KEYS, Region, parse_box, reference_agreement

    region = parse_box(args.region) if args.region else Region()
    if getattr(args, "region_mask", None):
        m = Volume.read(args.region_mask)
        region = replace(region, mask=Volume(m.data > 0, m.voxel_size, {}, m.origin))
    res = reference_agreement(model, reference, cutoff=args.cutoff, region=region, fit_shift=args.fit_shift)
    row = res.row()
    if args.json:
        print(json.dumps({"protocol": "reference", **row}))
    else:
        print(f"protocol: reference   cutoff: {args.cutoff:g} Å   region: {res.region}")
        print("\n".join(f"{k:>20s}  {row[k]}" for k in REFERENCE_KEYS))
    return 0


def run(args) -> int:
    """Read both models, score them and print a table (or JSON with ``--json``); returns 0.

    Warnings (duplicated atoms, no common element, a far better axes convention) go to
    stderr, one line each, and into the JSON output.
    """
    from . import score

    if args.cutoff is None or not args.cutoff > 0:
        raise AetbenchError(f"--cutoff: expected a positive distance in Å, got {args.cutoff!r}")
    z = getattr(args, "labels", None) == "Z"
    notes: list[str] = []
    model = _read(args.model, elements=args.model_elements, axes=args.model_axes, types_path=args.model_types,
                  pixel_size=args.pixel_size, atomic_numbers=z, what="model", notes=notes)
    truth = _read(args.truth, elements=args.truth_elements, axes=args.truth_axes, types_path=args.truth_types,
                  pixel_size=args.pixel_size, atomic_numbers=z, what="truth", notes=notes)
    if not set(model.species) & set(truth.species):
        notes.append(f"model elements {','.join(model.species)} and truth elements {','.join(truth.species)} "
                     "have none in common: check --model-elements/--truth-elements")
    if args.protocol == "reference":
        for n in notes:
            print(f"aetbench: warning: {n}", file=sys.stderr)
        return _run_reference(args, model, truth)
    df = score(model, truth, cutoff=args.cutoff, protocol=args.protocol)
    rate = _overall_rate(df)
    if rate < POOR_RATE_PCT:
        hint = axes_hint(model, truth, cutoff=args.cutoff, protocol=args.protocol, truth_axes=args.truth_axes)
        if hint is not None:
            notes.append(f"only {rate:.2f} % identified; --truth-axes {hint[0]} would give {hint[1]:.2f} % "
                         f"({args.protocol} protocol): check the axis conventions")
    for n in notes:
        print(f"aetbench: warning: {n}", file=sys.stderr)
    if args.json:
        rows = [{k: _num(r[k]) for k in JSON_ROW_KEYS} for r in df.to_dict("records")]
        print(json.dumps({"protocol": args.protocol, "cutoff": float(args.cutoff), "rows": rows,
                          "warnings": notes}))
    else:
        print(_format_table(df, args.protocol, args.cutoff))
    return 0
