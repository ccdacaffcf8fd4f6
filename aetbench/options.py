"""Validation of option tables (``[simulation.abtem]``, ``[simulation.ptycho]`` …) with one-line errors.

Every config dataclass that a scenario table fills checks its fields through :class:`Checker`, so the
messages read the same everywhere: ``section.field: expected …, got …``.

Examples
--------
>>> from dataclasses import dataclass
>>> @dataclass(frozen=True)
... class Probe:
...     energy_kV: float = 300.0
...     def __post_init__(self):
...         Checker(self, "probe").number("energy_kV", 10.0, 2000.0, unit=" [kV]")
>>> from_table(Probe, {"energy_kV": 200.0}, "probe").energy_kV
200.0
>>> from_table(Probe, {"energy": 200.0}, "probe")
Traceback (most recent call last):
...
aetbench.io.files.AetbenchError: probe.energy: unknown option; expected one of energy_kV
"""
from __future__ import annotations

import math
from typing import Any

from .errors import AetbenchError

__all__ = ["Checker", "from_table"]


class Checker:
    """Checks the fields of ``obj``; errors are prefixed with ``section``."""

    def __init__(self, obj: Any, section: str):
        self.obj = obj
        self.section = section

    def bad(self, name: str, expected: str, value) -> AetbenchError:
        return AetbenchError(f"{self.section}.{name}: expected {expected}, got {value!r}")

    def number(self, name: str, lo=None, hi=None, lo_open: bool = False, unit: str = "", optional: bool = False):
        """A finite number in [lo, hi] (``(lo, hi]`` when ``lo_open``); ``None`` passes when ``optional``."""
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
