"""One config engine: the unit-suffix rule, option checks and table → dataclass validation, with one-line errors.

Every user-facing setting is checked here, so messages read the same everywhere (``section.field: expected …,
got …``):

- scenario tables: dataclasses whose fields are declared with :func:`setting` (range, choices, unit, doc) and
  built from TOML tables by :func:`build` (:mod:`aetbench.scenario`);
- the tier configs (``[simulation.abtem]``, ``[simulation.ptycho]``, ``ptycho_recon``) through :class:`Checker` and
  :func:`from_table`;
- method parameters (``[method_options.NAME]``, ``[methods.NAME]`` overrides) through :func:`check_option`.

**Unit-suffix rule.** A parameter name that ends in a unit suffix (:data:`UNIT_SUFFIXES`: ``_A`` Å, ``_deg``
degrees, ``_px`` pixels, ``_e_per_A2`` e/Å², ``_pm`` pm, ``_s`` seconds, ``_kV``, ``_mrad``, ``_rel`` relative …)
holds a finite number in that unit (or nothing, where its default is nothing); messages name the unit.

Examples
--------
>>> unit_of("min_distance_A"), unit_of("angle_sigma_deg"), unit_of("iterations")
('Å', 'deg', None)
>>> check_option(2, 1.9, "method_options.x.min_distance_A")
2
>>> check_option("far", 1.9, "method_options.x.min_distance_A")
Traceback (most recent call last):
...
aetbench.io.files.AetbenchError: method_options.x.min_distance_A: expected a finite number [Å], got 'far'
>>> from dataclasses import dataclass
>>> @dataclass(frozen=True)
... class Probe:
...     energy_kV: float = 300.0
...     def __post_init__(self):
...         Checker(self, "probe").number("energy_kV", 10.0, 2000.0)
>>> from_table(Probe, {"energy_kV": 200.0}, "probe").energy_kV
200.0
>>> from_table(Probe, {"energy": 200.0}, "probe")
Traceback (most recent call last):
...
aetbench.io.files.AetbenchError: probe.energy: unknown option; expected one of energy_kV
"""
from __future__ import annotations

import math
import re
import typing
from dataclasses import MISSING, field, fields
from typing import Any

from .errors import AetbenchError

#: a distance [Å] given by the elements' rule: ``"bond"``, ``"nn"``, ``"f*bond"`` or ``"f*nn"``
#: (:mod:`aetbench.trace.bonds`)
DISTANCE_RULE = re.compile(r"^\s*(?:((?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)\s*\*\s*)?(bond|nn)\s*$")

__all__ = ["UNIT_SUFFIXES", "Checker", "ConfigError", "build", "check_option", "check_scalar", "from_table",
           "setting", "type_name", "unit_of"]


class ConfigError(AetbenchError):
    """A setting is invalid (one line: where, what was expected, what was given)."""

#: name suffix → unit (longest suffix first wins)
UNIT_SUFFIXES = {
    "_e_per_A2": "e/Å²", "_per_A3": "1/Å³", "_A2": "Å²", "_A": "Å", "_pm": "pm", "_nm": "nm", "_deg": "deg",
    "_mrad": "mrad", "_rad": "rad", "_px": "pixels", "_kV": "kV", "_eV": "eV", "_s": "s", "_rel": "relative",
    "_pct": "%",
}


def unit_of(name: str) -> str | None:
    """The unit a parameter name states by its suffix (``"shift_sigma_A"`` → ``"Å"``), else ``None``."""
    name = str(name).rsplit(".", 1)[-1]
    for suffix in sorted(UNIT_SUFFIXES, key=len, reverse=True):
        if name.endswith(suffix) and len(name) > len(suffix):
            return UNIT_SUFFIXES[suffix]
    return None


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def check_option(value, default, where: str):
    """``value`` for an option whose current value (or default) is ``default``; one-line error naming ``where``.

    A unit-suffixed name (:func:`unit_of` of the last part of ``where``) needs a finite number (``None`` allowed
    when ``default`` is ``None``); otherwise the value must have the default's type (an integer passes for a
    float; booleans only for booleans).  Returns the value unchanged.
    """
    unit = unit_of(where)
    u = f" [{unit}]" if unit else ""
    if unit is not None and not (value is None and default is None):
        if unit == "Å" and isinstance(value, str) and DISTANCE_RULE.match(value):
            return value  # "bond" / "f*bond": the stage resolves it from the elements (aetbench.trace.bonds)
        if not _is_number(value) or not math.isfinite(value):
            raise AetbenchError(f"{where}: expected a finite number{u}, got {value!r}")
        return value
    if default is None:
        return value
    if isinstance(default, bool):
        ok = isinstance(value, bool)
    elif isinstance(default, int):
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif isinstance(default, float):
        ok = _is_number(value)
    else:
        ok = isinstance(value, type(default))
    if not ok:
        raise AetbenchError(f"{where}: expected {type(default).__name__}{u}, got {value!r}")
    return value


class Checker:
    """Checks the fields of ``obj``; errors are prefixed with ``section``."""

    def __init__(self, obj: Any, section: str):
        self.obj = obj
        self.section = section

    def bad(self, name: str, expected: str, value) -> AetbenchError:
        return AetbenchError(f"{self.section}.{name}: expected {expected}, got {value!r}")

    def number(self, name: str, lo=None, hi=None, lo_open: bool = False, unit: str | None = None,
               optional: bool = False):
        """A finite number in [lo, hi] (``(lo, hi]`` when ``lo_open``); ``None`` passes when ``optional``.

        ``unit`` (e.g. ``" [kV]"``) defaults to the one the name's suffix states (:func:`unit_of`)."""
        if unit is None:
            unit = f" [{unit_of(name)}]" if unit_of(name) else ""
        v = getattr(self.obj, name)
        if v is None and optional:
            return
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise self.bad(name, f"a finite number{unit}", v)
        if lo is not None and (v < lo or (lo_open and v == lo)):
            raise self.bad(name, f"{'>' if lo_open else '≥'} {lo}{unit}", v)
        if hi is not None and v > hi:
            raise self.bad(name, f"≤ {hi}{unit}", v)

    def integer(self, name: str, lo: int, optional: bool = False):
        """An integer ≥ ``lo``; ``None`` passes when ``optional``."""
        v = getattr(self.obj, name)
        if v is None and optional:
            return
        if isinstance(v, bool) or not isinstance(v, int) or v < lo:
            raise self.bad(name, f"an integer ≥ {lo}", v)

    def choice(self, name: str, choices):
        v = getattr(self.obj, name)
        if v not in choices:
            raise self.bad(name, f"one of {tuple(choices)}", v)

    def per_element(self, name: str, lo: float, hi: float, unit: str):
        """A table element → number in [lo, hi] (e.g. rms displacements [Å])."""
        table = getattr(self.obj, name)
        if not isinstance(table, dict):
            raise self.bad(name, f"a table element → value{unit}", table)
        for el, s in table.items():
            if isinstance(s, bool) or not isinstance(s, (int, float)) or not lo <= s <= hi:
                raise self.bad(f"{name}.{el}", f"a number in [{lo}, {hi}]{unit}", s)


def from_table(cls, table: dict[str, Any], section: str):
    """Build the dataclass ``cls`` from a scenario table; an unknown key raises :class:`AetbenchError`."""
    known = set(cls.__dataclass_fields__)
    for k in table:
        if k not in known:
            raise AetbenchError(f"{section}.{k}: unknown option; expected one of {', '.join(sorted(known))}")
    return cls(**table)


# --------------------------------------------------------------------------- tables → dataclasses

def setting(default=MISSING, *, lo=None, hi=None, lo_open=False, choices=None, unit="", pair=False, doc=""):
    """A dataclass field checked by :func:`build`: range ``[lo, hi]`` (``(lo, hi]`` when ``lo_open``), ``choices``,
    ``unit`` (default: the one the field's name states, :func:`unit_of`), ``pair`` (one number stands for
    ``[v, v]``) and a one-line ``doc``."""
    meta = {"lo": lo, "hi": hi, "lo_open": lo_open, "choices": choices, "unit": unit, "pair": pair, "doc": doc}
    if default is MISSING:
        return field(metadata=meta)
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda d=default: type(d)(d), metadata=meta)
    return field(default=default, metadata=meta)


def _union(origin) -> bool:
    return origin in (typing.Union, getattr(__import__("types"), "UnionType", None))


def type_name(tp) -> str:
    """``"a list of a number"``-style name of a field type, for messages."""
    origin = typing.get_origin(tp)
    if origin is list:
        return f"a list of {type_name(typing.get_args(tp)[0])}"
    if origin is dict:
        return "a table"
    if _union(origin):
        return " or ".join(type_name(a) for a in typing.get_args(tp) if a is not type(None))
    return {int: "an integer", float: "a number", str: "a string", bool: "true/false"}.get(tp, tp.__name__)


def _unit(spec, where: str = "") -> str:
    """`` [unit]`` of a field: its stated unit, else the one its name's suffix states (:func:`unit_of`)."""
    unit = spec.get("unit") or unit_of(where.split("[")[0])
    return f" [{unit}]" if unit else ""


def check_scalar(value, tp, spec, where):
    """``value`` checked against type ``tp`` (int, float, str, bool) and ``spec`` (range, choices); floats as float."""
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: expected a number{_unit(spec, where)}, got {value!r}")
        value = float(value)
        if math.isnan(value):
            raise ConfigError(f"{where}: expected a number{_unit(spec, where)}, got nan")
    elif tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: expected an integer{_unit(spec, where)}, got {value!r}")
    elif tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
    elif tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true or false, got {value!r}")
    lo, hi = spec.get("lo"), spec.get("hi")
    if lo is not None and (value < lo or (spec.get("lo_open") and value == lo)):
        rel = ">" if spec.get("lo_open") else "≥"
        raise ConfigError(f"{where}: expected {rel} {lo}{_unit(spec, where)}, got {value!r}")
    if hi is not None and value > hi:
        raise ConfigError(f"{where}: expected ≤ {hi}{_unit(spec, where)}, got {value!r}")
    choices = spec.get("choices")
    if choices and value not in choices:
        raise ConfigError(f"{where}: expected one of {', '.join(map(repr, choices))}, got {value!r}")
    return value


def _dataclass_like(tp) -> bool:
    return isinstance(tp, type) and hasattr(tp, "__dataclass_fields__")


def _convert(value, tp, spec, where):
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if _union(origin):
        inner = [a for a in args if a is not type(None)][0]
        return _convert(value, inner, spec, where)
    if origin is list:
        (inner,) = args
        if spec.get("pair") and isinstance(value, int) and not isinstance(value, bool):
            value = [value, value]
        if isinstance(value, (str, int, float)) and not isinstance(value, bool) and inner in (str, float):
            value = [value]
        if not isinstance(value, list):
            raise ConfigError(f"{where}: expected {type_name(tp)}, got {value!r}")
        if _dataclass_like(inner):
            return [build(inner, v, f"{where}[{i}]") for i, v in enumerate(value)]
        return [check_scalar(v, inner, spec, f"{where}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a table, got {value!r}")
        vt = args[1] if len(args) == 2 else Any
        if vt in (float, int, str):
            return {k: check_scalar(v, vt, spec, f"{where}.{k}") for k, v in value.items()}
        return dict(value)
    if _dataclass_like(tp):
        return build(tp, value, where)
    return check_scalar(value, tp, spec, where)


def build(cls, table, where: str = "", internal=()):
    """The dataclass ``cls`` from a TOML ``table``: unknown keys, missing required keys, wrong types and
    out-of-range values raise :class:`ConfigError` naming ``where.key``; nested dataclasses and lists of them are
    built recursively.  ``internal`` fields are not the file's to set (e.g. the path a loader records)."""
    if not isinstance(table, dict):
        raise ConfigError(f"{where}: expected a table, got {table!r}")
    hints = typing.get_type_hints(cls)
    known = {f.name: f for f in fields(cls)}
    for key in table:
        if key not in known or key in internal:
            at = f"{where}.{key}" if where else key
            raise ConfigError(f"{at}: unknown key (expected one of: {', '.join(k for k in known if k not in internal)})")
    kwargs = {}
    for name, f in known.items():
        if name in internal:
            continue
        key_where = f"{where}.{name}" if where else name
        if name in table:
            kwargs[name] = _convert(table[name], hints[name], f.metadata or {}, key_where)
        elif f.default is MISSING and f.default_factory is MISSING:
            raise ConfigError(f"{key_where}: missing required key ({type_name(hints[name])})")
    return cls(**kwargs)
