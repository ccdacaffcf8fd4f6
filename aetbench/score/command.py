"""Backend of ``aetbench score MODEL TRUTH --cutoff C [--protocol paper|strict] …``.

Example (the paper's aSi208 model at 1.6e4 e/Å²)::

    aetbench score Model_aSi2nm_FoscCenter_Dose1p6e4_cov35pm_BM3D.mat aSi_208atoms_GT.txt \\
        --cutoff 0.9 --pixel-size 0.195 --model-elements Si --truth-elements Si --truth-axes yxz
"""
from __future__ import annotations

import argparse
import json
import math

from ..io.files import AetbenchError

__all__ = ["add_arguments", "run", "JSON_ROW_KEYS"]

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
    """Read both models, score them and print a table (or JSON with ``--json``); returns 0."""
    from ..io.models import read_model
    from . import score

    if args.cutoff is None or not args.cutoff > 0:
        raise AetbenchError(f"--cutoff: expected a positive distance in Å, got {args.cutoff!r}")
    model = read_model(args.model, elements=args.model_elements, axes=args.model_axes,
                       types_path=args.model_types, pixel_size=args.pixel_size)
    truth = read_model(args.truth, elements=args.truth_elements, axes=args.truth_axes,
                       types_path=args.truth_types, pixel_size=args.pixel_size)
    if args.protocol == "reference":
        return _run_reference(args, model, truth)
    df = score(model, truth, cutoff=args.cutoff, protocol=args.protocol)
    if args.json:
        rows = [{k: _num(r[k]) for k in JSON_ROW_KEYS} for r in df.to_dict("records")]
        print(json.dumps({"protocol": args.protocol, "cutoff": float(args.cutoff), "rows": rows}))
    else:
        print(_format_table(df, args.protocol, args.cutoff))
    return 0
