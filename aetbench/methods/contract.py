"""The stage contract: every stage is ``fn(data, ctx, **params) -> data``.

A *method* is an ordered list of :class:`Step` s.  Each step names a *stage kind* (``preprocess``,
``reconstruct``, ``trace``, ``classify``, ``refine`` or any kind registered with :func:`register_stage_kind`), a
function and its parameters.  The runner (:func:`run_method`) knows no stage by name: for every step it takes the
data from the context slot its kind declares (``takes``), calls the function in contract form, stores the result
in the slot the kind declares (``gives``) and lets the kind derive what later stages need (``settle``)::

    data = getattr(ctx, kind.takes)            # TiltSeries, Volume or TracedModel
    out = stage_fn(data, ctx, **step.params)   # the contract
    setattr(ctx, kind.gives, out)
    kind.settle(ctx)                           # e.g. the geometry a reconstruction refined

:class:`StageContext` (``ctx``) carries the seed, progress flag, device, elements, the raw (measured) series, the
current (preprocessed) series, the volume, the traced model and ``records``, a dict of what earlier stages
recorded (alignment shifts [pixels], refined angles [deg], beam-current factors ...).

Plain functions keep their plain signatures (``resire(ts, *, iterations=200, ...)``,
``classify(traced, volume, *, elements, seed, ...)``): a step adapts them by their *declared signature*
(:func:`by_signature`): the first parameter gets the data, every other parameter whose name is a context field
(``seed``, ``progress``, ``device``, ``elements``, ``raw``, ``series`` or its alias ``ts``, ``volume``, ``traced``,
``records``) and that the step's parameters do not set gets that field.  A stage kind may add its own adapter (the
reconstruction is called through :func:`aetbench.reconstruct.extended.reconstruct_step`, the refinement gets the
raw series scaled by the normalisation's beam-current factors).  A function written for the contract itself (its
second parameter is named ``ctx``, or it is decorated with :func:`contract_stage`) is called as is; a contract
reconstruction that should handle extended objects calls :func:`~aetbench.reconstruct.extended.reconstruct_step`
itself.  The kind's ``settle`` applies to both forms.

Adding a stage kind touches no runner code::

    register_stage_kind(StageKind("align", takes="series", gives="series"))
"""
from __future__ import annotations

import importlib
import inspect
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from ..errors import AetbenchError
from ..types import AtomicModel, TiltSeries, TracedModel, Volume

__all__ = ["CONTEXT_FIELDS", "STAGE_KINDS", "Method", "MethodResult", "StageContext", "StageKind", "Step",
           "accepted_params", "by_signature", "contract_stage", "register_stage_kind", "run_method", "stage_kind",
           "to_object_frame"]


# --------------------------------------------------------------------------- context

@dataclass
class StageContext:
    """What every stage may read besides its data (``fn(data, ctx, **params)``).

    Attributes
    ----------
    seed : int
        Seed of every random choice (k-means starts ...).
    progress : bool
        Show progress bars.
    device : str or None
        ``"cpu"`` or ``"gpu"``; ``None`` = the process default (:func:`aetbench.reconstruct.gpu.default_device`).
    elements : list of str
        Elements present, ascending Z (classification).
    raw : TiltSeries
        The series as given to the method (measured counts, nominal angles [deg]).
    series : TiltSeries
        The current series: after the preprocessing steps, with the geometry a reconstruction refined.
    volume : Volume or None
        The reconstruction, once a stage gave one.
    traced : TracedModel or None
        The traced atoms, once a stage gave them.
    records : dict
        What earlier stages recorded: ``align_shifts_px`` [pixels], ``normalise_scale`` (relative),
        ``refined_angles`` [deg], ``refined_shifts_px`` [pixels] ...; contract functions may add their own.
    method, stage : str
        Names of the running method and stage kind (for messages).
    """

    seed: int = 0
    progress: bool = False
    device: str | None = None
    elements: list[str] = field(default_factory=list)
    raw: TiltSeries | None = None
    series: TiltSeries | None = None
    volume: Volume | None = None
    traced: TracedModel | None = None
    records: dict[str, Any] = field(default_factory=dict)
    method: str = ""
    stage: str = ""

    @property
    def ts(self) -> TiltSeries | None:
        """Alias of :attr:`series` (the name plain stage functions use)."""
        return self.series

    def scaled_raw(self) -> TiltSeries:
        """:attr:`raw` with the beam-current factors a normalisation found applied (:func:`_scaled_raw`)."""
        return _scaled_raw(self.raw, self.series)

    def measured(self) -> TiltSeries:
        """The measured series a refinement fits: :meth:`scaled_raw`, background-subtracted, on the scale and
        alignment of :attr:`series` (:func:`aetbench.preprocess.raw.measured_projections`), prepared here once so
        the refinement does not redo preprocessing."""
        from ..preprocess.raw import measured_projections

        return measured_projections(self.scaled_raw(), self.series, beam_current=False)


#: context fields a plain function receives when it declares a parameter of that name
CONTEXT_FIELDS = ("seed", "progress", "device", "elements", "raw", "series", "ts", "volume", "traced", "records")


# --------------------------------------------------------------------------- adapters

def contract_stage(fn: Callable) -> Callable:
    """Mark ``fn`` as written for the contract ``fn(data, ctx, **params)`` (called as is)."""
    fn.__aetbench_contract__ = True
    return fn


def _is_contract(fn: Callable) -> bool:
    if getattr(fn, "__aetbench_contract__", False):
        return True
    try:
        ps = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        return False
    return len(ps) >= 2 and ps[1].name == "ctx" and ps[1].kind in (ps[1].POSITIONAL_ONLY, ps[1].POSITIONAL_OR_KEYWORD)


def _injector(fn: Callable, extra: dict[str, Callable[[StageContext], Any]] | None = None):
    """``fill(ctx, kw)``: adds to ``kw`` the context values of the parameters ``fn`` declares (after its first)."""
    extra = extra or {}
    try:
        params = list(inspect.signature(fn).parameters.values())[1:]
    except (TypeError, ValueError):
        params = []
    wanted = [(p.name, p.default is not p.empty) for p in params
              if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and (p.name in extra or p.name in CONTEXT_FIELDS)]

    def fill(ctx: StageContext, kw: dict) -> dict:
        for name, has_default in wanted:
            if name in kw:
                continue
            value = extra[name](ctx) if name in extra else getattr(ctx, name)
            if value is None and has_default:
                continue
            kw[name] = value
        return kw

    return fill


def by_signature(fn: Callable, extra: dict[str, Callable[[StageContext], Any]] | None = None) -> Callable:
    """``fn(data, **params)`` in contract form: declared parameters named like context fields are filled from ctx.

    The step's own parameters win; a context value ``None`` leaves the parameter's default.  ``extra`` maps
    parameter names to functions of ctx that override the plain field (e.g. ``raw`` → the scaled raw series).
    """
    fill = _injector(fn, extra)

    def stage(data, ctx: StageContext, /, **params):
        return fn(data, **fill(ctx, params))

    stage.__wrapped__ = fn
    return stage


def accepted_params(fn: Callable, kind: StageKind | None = None) -> set[str] | None:
    """Parameter names a step with function ``fn`` may set (``None``: any, the function takes ``**kwargs``)."""
    try:
        ps = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        return None
    skip = 2 if _is_contract(fn) else 1
    if any(p.kind is p.VAR_KEYWORD for p in ps):
        return None
    names = {p.name for p in ps[skip:] if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    return names | set(kind.extra_params if kind else ())


def param_default(fn: Callable, name: str):
    """Default of parameter ``name`` of ``fn`` (``None`` when it has none or it is unknown)."""
    try:
        p = inspect.signature(fn).parameters.get(name)
    except (TypeError, ValueError):
        return None
    return None if p is None or p.default is p.empty else p.default


# --------------------------------------------------------------------------- stage kinds

@dataclass(frozen=True)
class StageKind:
    """A kind of stage: where its data comes from and goes to in the context.

    Parameters
    ----------
    name : str
        ``stage`` of the steps of this kind.
    takes, gives : str
        Context fields (``series``, ``volume``, ``traced``) of the stage's input and output.
    adapt : callable
        Turns a plain function into the contract form; default :func:`by_signature`.
    settle : callable, optional
        ``settle(ctx)`` after the output is stored (e.g. the geometry a reconstruction refined).
    extra_params : tuple of str
        Parameters the adapter takes besides the function's own (e.g. ``extended`` for reconstructions).
    """

    name: str
    takes: str
    gives: str
    adapt: Callable[[Callable], Callable] = by_signature
    settle: Callable[[StageContext], None] | None = None
    extra_params: tuple[str, ...] = ()


STAGE_KINDS: dict[str, StageKind] = {}


def register_stage_kind(kind: StageKind, *, replace: bool = False) -> StageKind:
    """Add a stage kind (no runner code changes); ``replace`` to redefine an existing one."""
    slots = ("series", "volume", "traced")
    if kind.takes not in slots or kind.gives not in slots:
        raise AetbenchError(f"stage kind {kind.name!r}: takes/gives must be one of {', '.join(slots)}, "
                            f"got {kind.takes!r} → {kind.gives!r}")
    if kind.name in STAGE_KINDS and not replace:
        raise AetbenchError(f"stage kind {kind.name!r} is already registered; pass replace=True to redefine it")
    STAGE_KINDS[kind.name] = kind
    return kind


def stage_kind(name: str) -> StageKind:
    try:
        return STAGE_KINDS[name]
    except KeyError:
        raise AetbenchError(f"unknown stage {name!r} (known: {', '.join(STAGE_KINDS)})") from None


def _record_series(ctx: StageContext) -> None:
    """Record what a preprocessing step wrote into the series' metadata (shifts, beam-current factors)."""
    meta = ctx.series.metadata if isinstance(ctx.series.metadata, dict) else {}
    for key in ("align_shifts_px", "normalise_scale"):
        if key in meta:
            ctx.records[key] = meta[key]


def _adapt_reconstruct(fn: Callable) -> Callable:
    """Reconstructions go through :func:`~aetbench.reconstruct.extended.reconstruct_step` (extended objects)."""
    from ..reconstruct.extended import reconstruct_step

    fill = _injector(fn)

    def stage(ts, ctx: StageContext, /, **params):
        return reconstruct_step(fn, ts, **fill(ctx, params))

    stage.__wrapped__ = fn
    return stage


def _take_refined_geometry(ctx: StageContext, meta: dict, shift_images: bool) -> None:
    """Record the angles [deg] and further image shifts [pixels] a stage refined (``refined_angles``,
    ``refined_shifts_px`` in ``meta``; the shifts add to those recorded before) and hand later stages the
    series with that geometry (:func:`_with_refined_geometry`)."""
    if "refined_angles" in meta:
        ctx.records["refined_angles"] = meta["refined_angles"]
    if "refined_shifts_px" in meta:
        extra = np.asarray(meta["refined_shifts_px"], dtype=float)
        before = np.asarray(ctx.records.get("refined_shifts_px", np.zeros_like(extra)), dtype=float)
        ctx.records["refined_shifts_px"] = (before + extra).tolist()
    ctx.series = _with_refined_geometry(ctx.series, meta, shift_images)


def _settle_reconstruct(ctx: StageContext) -> None:
    """Later stages use the geometry the volume was built with."""
    _take_refined_geometry(ctx, ctx.volume.metadata, shift_images=True)


def _adapt_refine(fn: Callable) -> Callable:
    """Refinements fit the raw counts, scaled by the beam-current factors a normalisation found (``raw``), or the
    measured series prepared from them (``measured``), whichever the function declares."""
    return by_signature(fn, {"raw": StageContext.scaled_raw, "measured": StageContext.measured})


def _settle_refine(ctx: StageContext) -> None:
    """A refinement that also fitted the projection geometry (in its traced model's metadata) hands it on as a
    reconstruction does; the images are not shifted again (no later stage reads them)."""
    _take_refined_geometry(ctx, getattr(ctx.traced, "metadata", None) or {}, shift_images=False)


for _k in (StageKind("preprocess", "series", "series", settle=_record_series),
           StageKind("reconstruct", "series", "volume", adapt=_adapt_reconstruct, settle=_settle_reconstruct,
                     extra_params=("extended",)),
           StageKind("trace", "volume", "traced"),
           StageKind("classify", "traced", "traced"),
           StageKind("refine", "traced", "traced", adapt=_adapt_refine, settle=_settle_refine)):
    register_stage_kind(_k)


# --------------------------------------------------------------------------- steps and methods

def func_ref(func: str | Callable) -> str:
    """``"package.module:function"`` of a step function (a string is returned as is)."""
    if isinstance(func, str):
        return func
    return f"{getattr(func, '__module__', '?')}:{getattr(func, '__qualname__', getattr(func, '__name__', repr(func)))}"


def load_func(ref: str) -> Callable:
    """The function ``"package.module:function"`` names (one-line :class:`AetbenchError` if it cannot)."""
    if not isinstance(ref, str) or ref.count(":") != 1 or not all(ref.split(":")):
        raise AetbenchError(f"expected 'package.module:function', got {ref!r}")
    mod, name = ref.split(":")
    try:
        obj = importlib.import_module(mod)
    except ImportError as e:
        raise AetbenchError(f"cannot import module {mod!r} of {ref!r} ({e})") from None
    try:
        for part in name.split("."):
            obj = getattr(obj, part)
    except AttributeError:
        raise AetbenchError(f"module {mod!r} has no function {name!r}") from None
    if not callable(obj):
        raise AetbenchError(f"{ref!r} is not a function")
    return obj


@dataclass(frozen=True)
class Step:
    """One stage: ``stage`` a stage kind, ``func`` a callable or ``"package.module:function"``, ``params`` its keyword
    arguments (plain values: they go into cache keys and reports)."""

    stage: str
    func: str | Callable
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return func_ref(self.func).rsplit(":", 1)[-1].rsplit(".", 1)[-1]

    @property
    def ref(self) -> str:
        return func_ref(self.func)

    def load(self) -> Callable:
        """The function itself, as its author wrote it."""
        return self.func if callable(self.func) else load_func(self.func)

    def stage_function(self) -> Callable:
        """The function in contract form ``fn(data, ctx, **params)``."""
        fn = self.load()
        return fn if _is_contract(fn) else stage_kind(self.stage).adapt(fn)

    def check(self, where: str) -> None:
        """Refuse an unknown stage, a function that cannot be loaded, or a parameter it does not take."""
        try:
            kind = stage_kind(self.stage)
        except AetbenchError as e:
            raise AetbenchError(f"{where}.stage: {e}") from None
        try:
            fn = self.load()
        except AetbenchError as e:
            raise AetbenchError(f"{where}.func: {e}") from None
        ok = accepted_params(fn, kind)
        if ok is not None:
            for p in self.params:
                if p not in ok:
                    raise AetbenchError(f"{where}.params.{p}: unknown parameter of {self.ref} "
                                        f"(known: {', '.join(sorted(ok))})")


@dataclass(frozen=True)
class Method:
    """A named composition of steps; ``with_options`` overrides parameters, ``fingerprint`` keys caches."""

    name: str
    description: str
    steps: tuple[Step, ...]

    def step(self, stage: str) -> Step:
        for s in self.steps:
            if s.stage == stage:
                return s
        raise KeyError(stage)

    def with_options(self, options: dict[str, Any], where: str | None = None) -> Method:
        """Copy with parameters overridden.

        ``param`` sets the one step that already has ``param``; ``"stage.param"`` (or ``"function.param"``) sets
        the first matching step that has it, else the one whose function takes it.  Values are checked against
        the current value or the function's default and the unit-suffix rule (:func:`aetbench.config.check_option`).
        """
        from ..config import check_option

        where = where or f"method_options.{self.name}"
        steps = [replace(s, params=dict(s.params)) for s in self.steps]
        for key, value in options.items():
            default = None
            if "." in key:
                stage, param = key.split(".", 1)
                cands = [s for s in steps if s.stage == stage or s.name == stage]
                targets = [s for s in cands if param in s.params]
                if not targets:
                    targets = [s for s in cands if (ok := accepted_params(s.load(), STAGE_KINDS.get(s.stage))) is None
                               or param in ok]
                    if len(targets) > 1:
                        raise AetbenchError(f"{where}.{key}: ambiguous; write it as "
                                            + " or ".join(f'"{s.name}.{param}"' for s in targets))
                    if targets:
                        default = param_default(targets[0].load(), param)
            else:
                param = key
                targets = [s for s in steps if param in s.params]
            if not targets:
                known = sorted(f"{s.stage}.{p}" for s in steps for p in s.params)
                raise AetbenchError(f"{where}.{key}: unknown parameter (known: {', '.join(known)})")
            if len(targets) > 1 and "." not in key:
                raise AetbenchError(f"{where}.{key}: ambiguous; write it as "
                                    + " or ".join(f'"{s.stage}.{param}"' for s in targets))
            old = targets[0].params.get(param, default)
            targets[0].params[param] = check_option(value, old, f"{where}.{key}")
        return replace(self, steps=tuple(steps))

    def config(self) -> dict:
        """JSON-able description (reports, cache keys)."""
        return {"name": self.name, "steps": [{"stage": s.stage, "func": s.ref, "params": s.params} for s in self.steps]}

    def fingerprint(self) -> str:
        """Hash of :meth:`config` and the code of every function called (:mod:`aetbench.methods.fingerprint`)."""
        from .fingerprint import method_fingerprint

        return method_fingerprint(self)

    def check(self, where: str) -> Method:
        for i, s in enumerate(self.steps):
            s.check(f"{where}.steps[{i}]")
        return self


# --------------------------------------------------------------------------- runner

@dataclass
class MethodResult:
    traced: TracedModel
    volume: Volume
    seconds: dict[str, float]
    preprocessed: TiltSeries
    records: dict[str, Any] = field(default_factory=dict)


def _with_refined_geometry(ts: TiltSeries, meta: dict, shift_images: bool = True) -> TiltSeries:
    """``ts`` with the angles [deg] and extra shifts [pixels] a stage refined (``refined_angles``,
    ``refined_shifts_px`` in ``meta``): the shifts are added to ``align_shifts_px`` and, with ``shift_images``,
    applied to the images, so that later stages use the geometry the volume was built with."""
    if "refined_angles" in meta:
        ts = replace(ts, angles=np.asarray(meta["refined_angles"], dtype=float))
    if "refined_shifts_px" in meta:
        extra = np.asarray(meta["refined_shifts_px"], dtype=float)
        total = extra + np.asarray(ts.metadata.get("align_shifts_px", np.zeros_like(extra)), dtype=float)
        if shift_images:
            from ..preprocess.align import shift_images as shift

            ts = ts.with_images(shift(ts.images, extra), align_shifts_px=total.tolist())
        else:
            ts = replace(ts, metadata={**ts.metadata, "align_shifts_px": total.tolist()})
    return ts


def _scaled_raw(raw: TiltSeries, ts: TiltSeries) -> TiltSeries:
    """The measured series with the beam-current factors a normalisation found (``normalise_scale``, when
    it declared them beam-current corrections: ``normalise_beam_current``) applied, so that fits to the raw counts
    see the same per-projection intensity as the volume (:func:`aetbench.preprocess.raw.beam_current_scaled`)."""
    from ..preprocess.raw import beam_current_scaled

    return beam_current_scaled(raw, ts)


def run_method(method: Method, ts: TiltSeries, *, elements: list[str], seed: int = 0,
               progress: bool = False, device: str | None = None) -> MethodResult:
    """Run every step of ``method`` on ``ts``; returns the traced model, the volume and seconds per stage kind.

    Each step is called as ``fn(data, ctx, **params)`` (module docstring); the traced atoms and the volume are
    returned in the series' object frame (:func:`to_object_frame`).
    """
    ctx = StageContext(seed=seed, progress=progress, device=device, elements=list(elements), raw=ts, series=ts,
                       method=method.name)
    seconds: dict[str, float] = {}
    for step in method.steps:
        kind = stage_kind(step.stage)
        fn = step.stage_function()
        ctx.stage = step.stage
        t0 = time.perf_counter()
        out = fn(getattr(ctx, kind.takes), ctx, **step.params)
        setattr(ctx, kind.gives, out)
        if kind.settle is not None:
            kind.settle(ctx)
        seconds[step.stage] = seconds.get(step.stage, 0.0) + time.perf_counter() - t0
    volume = ctx.volume
    centre = ts.metadata.get("centre_A") if isinstance(ts.metadata, dict) else None
    if volume is not None and centre is not None:  # the volume in the object frame, like the traced atoms
        volume = replace(volume, origin=np.asarray(centre, dtype=float).reshape(3))
    return MethodResult(traced=to_object_frame(ctx.traced, ts), volume=volume, seconds=seconds,
                        preprocessed=ctx.series, records=ctx.records)


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
