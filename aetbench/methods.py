"""Registry of named reconstruction methods.

A *method* is a named composition of stage functions and their parameters:
preprocess steps (TiltSeries → TiltSeries), one reconstruction
(TiltSeries → Volume), tracing (Volume → TracedModel), classification and
optional refinement (TracedModel, Volume → TracedModel).  Competing methods
plug into the same slots; scenario files choose them by name and override
parameters with ``[method_options.NAME]`` (``param = value`` when the name is
unique across steps, else ``"stage.param" = value``).

Examples
--------
>>> sorted(METHODS)[:3]
['busch2026', 'fbp', 'liao2026']
>>> METHODS['resire'].with_options({'iterations': 10}).step('reconstruct').params['iterations']
10
"""
from __future__ import annotations

import importlib
import time
from dataclasses import dataclass, field, replace
from typing import Any, Callable

import numpy as np

from .errors import AetbenchError
from .types import AtomicModel, TiltSeries, TracedModel, Volume

__all__ = ["Step", "Method", "METHODS", "get_method", "MethodResult", "run_method", "to_object_frame"]

STAGES = ("preprocess", "reconstruct", "trace", "classify", "refine")


@dataclass(frozen=True)
class Step:
    """One stage function: ``func`` is ``"module:function"``; ``params`` its keyword arguments."""

    stage: str
    func: str
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.func.rsplit(":", 1)[-1]

    def load(self) -> Callable:
        mod, fn = self.func.split(":")
        return getattr(importlib.import_module(mod), fn)


@dataclass(frozen=True)
class Method:
    name: str
    description: str
    steps: tuple[Step, ...]

    def step(self, stage: str) -> Step:
        for s in self.steps:
            if s.stage == stage:
                return s
        raise KeyError(stage)

    def with_options(self, options: dict[str, Any]) -> "Method":
        """Copy with parameters overridden (``param`` or ``"stage.param"`` keys)."""
        steps = [replace(s, params=dict(s.params)) for s in self.steps]
        for key, value in options.items():
            if "." in key:
                stage, param = key.split(".", 1)
                targets = [s for s in steps if s.stage == stage or s.name == stage]
                targets = [s for s in targets if param in s.params]
            else:
                param = key
                targets = [s for s in steps if param in s.params]
            if not targets:
                known = sorted(f"{s.stage}.{p}" for s in steps for p in s.params)
                raise AetbenchError(f"method_options.{self.name}.{key}: unknown parameter (known: {', '.join(known)})")
            if len(targets) > 1 and "." not in key:
                raise AetbenchError(f"method_options.{self.name}.{key}: ambiguous; write it as "
                                    + " or ".join(f'"{s.stage}.{param}"' for s in targets))
            old = targets[0].params[param]
            if old is not None and not isinstance(value, type(old)) and not (isinstance(old, float) and isinstance(value, int)):
                raise AetbenchError(f"method_options.{self.name}.{key}: expected {type(old).__name__}, got {value!r}")
            targets[0].params[param] = value
        return replace(self, steps=tuple(steps))

    def config(self) -> dict:
        """JSON-able description (for cache keys and reports)."""
        return {"name": self.name, "steps": [{"stage": s.stage, "func": s.func, "params": s.params} for s in self.steps]}


_PRE = "aetbench.preprocess"
_REC = "aetbench.reconstruct"
_TR = "aetbench.trace"

_simple_trace = Step("trace", f"{_TR}.peaks:trace_atoms", {"method": "com", "min_distance_A": 1.9, "oversampling": 1})
_classify = Step("classify", f"{_TR}.classify:classify", {"radius_A": 0.8})

METHODS: dict[str, Method] = {
    "resire": Method(
        "resire", "background subtraction, RESIRE (positivity), local-maximum tracing, k-means classification, "
                  "position refinement against the projections",
        (Step("preprocess", f"{_PRE}.background:subtract_background", {}),
         Step("reconstruct", f"{_REC}.resire:resire", {"iterations": 150, "step": 1.0}),
         _simple_trace, _classify,
         Step("refine", f"{_TR}.refine:refine_positions", {"data": "raw", "iterations": 60}))),
    "sirt": Method(
        "sirt", "background subtraction, SIRT (positivity), local-maximum tracing, k-means classification "
                "(no refinement: the plain SIRT baseline)",
        (Step("preprocess", f"{_PRE}.background:subtract_background", {}),
         Step("reconstruct", f"{_REC}.sirt:sirt", {"iterations": 150}),
         _simple_trace, _classify)),
    "fbp": Method(
        "fbp", "background subtraction, filtered back-projection (ramp), local-maximum tracing, k-means",
        (Step("preprocess", f"{_PRE}.background:subtract_background", {}),
         Step("reconstruct", f"{_REC}.fbp:fbp", {"filter": "hann"}),
         _simple_trace, _classify)),
    "liao2026": Method(
        "liao2026", "Liao et al. 2026: GAT + block-matching denoising, background, normalisation, RESIRE, "
                    "sub-voxel peak tracing, multi-step k-means, position refinement against the projections",
        (Step("preprocess", f"{_PRE}.denoise:denoise", {"method": "bm3d-like"}),
         Step("preprocess", f"{_PRE}.background:subtract_background", {}),
         Step("preprocess", f"{_PRE}.normalise:normalise_intensity", {"window": "image"}),
         Step("reconstruct", f"{_REC}.resire:resire", {"iterations": 200, "step": 1.0}),
         Step("trace", f"{_TR}.peaks:trace_atoms", {"method": "com", "min_distance_A": 1.9, "oversampling": 1}),
         Step("classify", f"{_TR}.classify:classify", {"radius_A": 0.8}),
         Step("refine", f"{_TR}.refine:refine_positions", {"data": "raw", "iterations": 60}))),
    # Alignment, angle refinement and the beam-current normalisation are NOT in liao2026's defaults: on the
    # paper's own error-free aSi208 data they lowered the low-dose results (8.0e3: 96.63 % / 26.42 pm,
    # 1.6e4: 99.52 % / 10.27 pm against 98.08 % / 25.88 pm and 100 % / 9.75 pm without; the windowed /
    # raw-scaled normalisation alone moved them by ±0.5 pm), while on simulated data with drift, angle and
    # current errors they recover 100 % / 2.22 pm at 1.6e5 (errors scenario, issue 14).
    "liao2026-robust": Method(
        "liao2026-robust", "liao2026 for data with experimental errors: denoising, background, normalisation, "
                           "alignment (centre of mass + projection matching), RESIRE with per-projection "
                           "angle and shift refinement, tracing, k-means, position refinement",
        (Step("preprocess", f"{_PRE}.denoise:denoise", {"method": "bm3d-like"}),
         Step("preprocess", f"{_PRE}.background:subtract_background", {}),
         Step("preprocess", f"{_PRE}.normalise:normalise_intensity", {"window": "support", "beam_current": True}),
         Step("preprocess", f"{_PRE}.align:align_projections", {"rounds": 5, "iterations": 10}),
         Step("reconstruct", f"{_REC}.angles:resire_refine_angles",
              {"iterations": 200, "step": 1.0, "refine_after": 60, "refine_every": 20, "rounds": 3,
               "half_set_rounds": 2}),
         Step("trace", f"{_TR}.peaks:trace_atoms", {"method": "com", "min_distance_A": 1.9, "oversampling": 1}),
         Step("classify", f"{_TR}.classify:classify", {"radius_A": 0.8}),
         Step("refine", f"{_TR}.refine:refine_positions", {"data": "raw", "iterations": 60}))),
    "liao2026-pty": Method(
        "liao2026-pty", "Liao et al. 2026 on ptychographic phase projections (pAET): normalisation, RESIRE, "
                        "sub-voxel peak tracing at oxide bond lengths (≥ 1.2 Å apart), multi-step k-means, position "
                        "refinement against the phase projections (no Poisson denoising: phases are not counts; no "
                        "background step: the ptychography puts the vacuum phase at 0)",
        (Step("preprocess", f"{_PRE}.normalise:normalise_intensity", {}),
         Step("reconstruct", f"{_REC}.resire:resire", {"iterations": 200, "step": 1.0}),
         Step("trace", f"{_TR}.peaks:trace_atoms", {"method": "com", "min_distance_A": 1.2, "oversampling": 1}),
         Step("classify", f"{_TR}.classify:classify", {"radius_A": 0.6}),
         Step("refine", f"{_TR}.refine:refine_positions", {"data": "raw", "iterations": 60}))),
    "yuan2022": Method(
        "yuan2022", "Yuan et al. 2022 (amorphous films, measured data): RESIRE 500 iterations, step 1, positivity, "
                    "local-maximum tracing at the authors' 2.0 Å minimum distance, k-means; no refinement against "
                    "the projections (an extended object's projections hold atoms outside the kept box)",
        (Step("reconstruct", f"{_REC}.resire:resire", {"iterations": 500, "step": 1.0}),
         Step("trace", f"{_TR}.peaks:trace_atoms", {"method": "com", "min_distance_A": 2.0, "oversampling": 1}),
         Step("classify", f"{_TR}.classify:classify", {"radius_A": 0.8}))),
    "busch2026": Method(
        "busch2026", "Busch et al. 2026 style: Gaussian pre-filter, no alignment, SIRT 200 iterations, same tracing",
        (Step("preprocess", f"{_PRE}.denoise:denoise", {"method": "gaussian"}),
         Step("preprocess", f"{_PRE}.background:subtract_background", {}),
         Step("reconstruct", f"{_REC}.sirt:sirt", {"iterations": 200}),
         Step("trace", f"{_TR}.peaks:trace_atoms", {"method": "com", "min_distance_A": 1.9, "oversampling": 1}),
         Step("classify", f"{_TR}.classify:classify", {"radius_A": 0.8}))),
}


def get_method(name: str, options: dict | None = None) -> Method:
    try:
        m = METHODS[name]
    except KeyError:
        raise AetbenchError(f"unknown method {name!r} (known: {', '.join(sorted(METHODS))})") from None
    return m.with_options(options or {})


@dataclass
class MethodResult:
    traced: TracedModel
    volume: Volume
    seconds: dict[str, float]
    preprocessed: TiltSeries


def _with_refined_geometry(ts: TiltSeries, volume: Volume) -> TiltSeries:
    """``ts`` with the angles [deg] and extra shifts [pixels] a reconstruction refined (``refined_angles``,
    ``refined_shifts_px`` in its metadata), so that later stages use the geometry the volume was built with."""
    meta = volume.metadata
    if "refined_angles" in meta:
        ts = replace(ts, angles=np.asarray(meta["refined_angles"], dtype=float))
    if "refined_shifts_px" in meta:
        from .preprocess.align import shift_images

        extra = np.asarray(meta["refined_shifts_px"], dtype=float)
        total = extra + np.asarray(ts.metadata.get("align_shifts_px", np.zeros_like(extra)), dtype=float)
        ts = ts.with_images(shift_images(ts.images, extra), align_shifts_px=total.tolist())
    return ts


def _scaled_raw(raw: TiltSeries, ts: TiltSeries) -> TiltSeries:
    """The measured series with the beam-current factors a normalisation found (``normalise_scale``, when
    it declared them beam-current corrections: ``normalise_beam_current``) applied, so that fits to the raw counts see the same per-projection intensity as the volume."""
    scale = ts.metadata.get("normalise_scale")
    if scale is None or not ts.metadata.get("normalise_beam_current", False):
        return raw
    return raw.with_images(np.asarray(raw.images, dtype=float) * np.asarray(scale, dtype=float)[:, None, None])


def run_method(method: Method, ts: TiltSeries, *, elements: list[str], seed: int = 0,
               progress: bool = False) -> MethodResult:
    """Run every step of ``method`` on ``ts``; returns the traced model, the volume and seconds per stage."""
    from .reconstruct.extended import reconstruct_step

    seconds: dict[str, float] = {}
    volume = traced = None
    raw = ts
    for step in method.steps:
        fn = step.load()
        t0 = time.perf_counter()
        if step.stage == "preprocess":
            ts = fn(ts, **step.params)
        elif step.stage == "reconstruct":  # widened and cropped for extended objects (reconstruct.extended)
            volume = reconstruct_step(fn, ts, progress=progress, **step.params)
            ts = _with_refined_geometry(ts, volume)
        elif step.stage == "trace":
            traced = fn(volume, **step.params)
        elif step.stage == "classify":
            traced = fn(traced, volume, elements=list(elements), seed=seed, **step.params)
        elif step.stage == "refine":
            traced = fn(traced, volume, ts, raw=_scaled_raw(raw, ts), **step.params)
        else:  # pragma: no cover - guarded by construction
            raise AetbenchError(f"method {method.name}: unknown stage {step.stage!r}")
        seconds[step.stage] = seconds.get(step.stage, 0.0) + time.perf_counter() - t0
    centre = raw.metadata.get("centre_A") if isinstance(raw.metadata, dict) else None
    if volume is not None and centre is not None:  # the volume in the object frame, like the traced atoms
        volume = replace(volume, origin=np.asarray(centre, dtype=float).reshape(3))
    return MethodResult(traced=to_object_frame(traced, raw), volume=volume, seconds=seconds, preprocessed=ts)


def to_object_frame(traced: TracedModel, ts: TiltSeries) -> TracedModel:
    """``traced`` moved from the reconstruction frame into the tilt series' object frame.

    Every stage works in the reconstruction frame, whose origin (index ``n // 2`` of the volume, pixel
    ``n // 2`` of the images) is the rotation centre; ``ts.metadata["centre_A"]`` [Å] (written by every simulator,
    :func:`aetbench.geometry.rotation_centre`) says where that centre lies in the object frame, so the traced
    atoms land in the ground truth's frame.  A series without it (measured data) keeps the reconstruction frame.
    """
    centre = ts.metadata.get("centre_A") if isinstance(ts.metadata, dict) else None
    if traced is None or centre is None:
        return traced
    c = np.asarray(centre, dtype=float).reshape(3)
    if not np.any(c):
        return traced
    m = traced.model
    return replace(traced, model=AtomicModel(m.positions + c, m.elements, name=m.name))
