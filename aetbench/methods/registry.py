"""The open method registry: built-in methods, :func:`register_method`, entry points and scenario tables.

A method comes from one of four places, all equal to the runner:

1. aetbench's own (:mod:`aetbench.methods.builtin`);
2. ``register_method(Method(...))`` (or ``register_method("name", steps=[...])``) in Python;
3. an entry point in the group ``aetbench.methods`` of an installed package (``name = "pkg.module:obj"``, where
   ``obj`` is a :class:`Method` or a function returning one; the entry point's name is the method's name)::

       [project.entry-points."aetbench.methods"]
       mymethod = "mypkg.methods:MYMETHOD"

4. a ``[methods.NAME]`` table in a scenario (:func:`scenario_methods`): ``base = "liao2026"`` plus overrides
   (``"trace.method" = "poly"``), or a full ``steps = [{stage = …, func = "pkg.mod:fn", params = {…}}, …]``.
   An empty table ``[methods.resire]`` runs the registered method unchanged.
"""
from __future__ import annotations

from collections.abc import Iterable, MutableMapping
from dataclasses import replace
from typing import Any

from ..errors import AetbenchError
from .builtin import BUILTIN
from .contract import Method, Step

__all__ = ["ENTRY_POINT_GROUP", "METHODS", "MethodRegistry", "get_method", "method_from_table", "register_method",
           "scenario_methods"]

ENTRY_POINT_GROUP = "aetbench.methods"


class _Broken:
    def __init__(self, message: str):
        self.message = message


class MethodRegistry(MutableMapping):
    """name → :class:`Method`; entry points of the group ``aetbench.methods`` are read on first use and on a miss."""

    def __init__(self, methods: dict[str, Method]):
        self._m: dict[str, Any] = dict(methods)
        self._scanned = False

    def scan(self) -> None:
        """Read the entry points of :data:`ENTRY_POINT_GROUP` not yet known (a failing one raises on use)."""
        from importlib.metadata import entry_points

        self._scanned = True
        for ep in entry_points(group=ENTRY_POINT_GROUP):
            if ep.name in self._m:
                continue
            where = f"entry point {ep.name} = {ep.value!r} ({ENTRY_POINT_GROUP})"
            try:
                obj = ep.load()
                m = obj() if callable(obj) and not isinstance(obj, Method) else obj
                if not isinstance(m, Method):
                    raise AetbenchError(f"expected an aetbench Method (or a function returning one), "
                                        f"got {type(m).__name__}")
                self._m[ep.name] = replace(m, name=ep.name).check(f"{where}: method")
            except Exception as e:  # noqa: BLE001 - an outside package's failure names its entry point
                self._m[ep.name] = _Broken(f"{where}: {e}")

    def _first(self):
        if not self._scanned:
            self.scan()

    def __getitem__(self, name: str) -> Method:
        self._first()
        if name not in self._m:
            self.scan()
        m = self._m[name]
        if isinstance(m, _Broken):
            raise AetbenchError(m.message)
        return m

    def __contains__(self, name) -> bool:
        self._first()
        if name not in self._m:
            self.scan()
        return name in self._m

    def __setitem__(self, name: str, method: Method) -> None:
        self._m[name] = method

    def __delitem__(self, name: str) -> None:
        del self._m[name]

    def __iter__(self):
        self._first()
        return iter(list(self._m))

    def __len__(self) -> int:
        self._first()
        return len(self._m)


#: every method known: built-in, registered and from entry points
METHODS = MethodRegistry(BUILTIN)


def _steps(steps: Iterable, where: str) -> tuple[Step, ...]:
    """Steps from :class:`Step` s, ``(stage, func, params)`` tuples or ``{stage, func, params}`` tables."""
    if isinstance(steps, (str, bytes, dict)) or not isinstance(steps, Iterable):
        raise AetbenchError(f"{where}: expected a list of steps, got {steps!r}")
    out = []
    for i, s in enumerate(steps):
        at = f"{where}[{i}]"
        if isinstance(s, Step):
            out.append(s)
            continue
        if isinstance(s, (tuple, list)) and len(s) in (2, 3):
            s = dict(zip(("stage", "func", "params"), s))
        if not isinstance(s, dict):
            raise AetbenchError(f"{at}: expected a table {{stage = ..., func = ..., params = {{...}}}}, got {s!r}")
        for k in s:
            if k not in ("stage", "func", "params"):
                raise AetbenchError(f"{at}.{k}: unknown key (expected stage, func, params)")
        for k in ("stage", "func"):
            if k not in s:
                raise AetbenchError(f"{at}.{k}: missing required key")
        if not isinstance(s["stage"], str):
            raise AetbenchError(f"{at}.stage: expected a stage name, got {s['stage']!r}")
        if not (callable(s["func"]) or isinstance(s["func"], str)):
            raise AetbenchError(f"{at}.func: expected 'package.module:function' or a function, got {s['func']!r}")
        params = s.get("params", {})
        if not isinstance(params, dict):
            raise AetbenchError(f"{at}.params: expected a table, got {params!r}")
        out.append(Step(s["stage"], s["func"], dict(params)))
    if not out:
        raise AetbenchError(f"{where}: expected at least one step")
    return tuple(out)


def register_method(method: Method | str, steps: Iterable | None = None, *, description: str = "",
                    replace: bool = False) -> Method:
    """Add a method to :data:`METHODS` and return it.

    Parameters
    ----------
    method : Method or str
        A :class:`Method`, or its name when ``steps`` is given.
    steps : list, optional
        :class:`Step` s, ``(stage, func, params)`` tuples or ``{"stage", "func", "params"}`` dicts; ``func`` is a
        callable or ``"package.module:function"``.
    description : str
        One line for ``aetbench list`` and reports.
    replace : bool
        Redefine a registered method of the same name.

    Examples
    --------
    >>> from aetbench.methods import register_method, METHODS
    >>> m = register_method("fbp-ramp", [("reconstruct", "aetbench.reconstruct.fbp:fbp", {"filter": "ramp"}),
    ...                                 ("trace", "aetbench.trace.peaks:trace_atoms", {}),
    ...                                 ("classify", "aetbench.trace.classify:classify", {})])
    >>> m.step("reconstruct").params
    {'filter': 'ramp'}
    >>> del METHODS["fbp-ramp"]
    """
    if isinstance(method, Method):
        if steps is not None:
            raise AetbenchError(f"register_method({method.name!r}): give a Method or steps, not both")
        m = method
    else:
        if steps is None:
            raise AetbenchError(f"register_method({method!r}): steps required")
        m = Method(str(method), description, _steps(steps, f"method {method}: steps"))
    if not m.name or not isinstance(m.name, str):
        raise AetbenchError(f"register_method: expected a method name, got {m.name!r}")
    if m.name in METHODS and not replace:
        raise AetbenchError(f"method {m.name!r} is already registered; pass replace=True to redefine it")
    METHODS[m.name] = m.check(f"method {m.name}")
    return m


def get_method(name: str, options: dict | None = None, where: str | None = None) -> Method:
    """The registered method ``name`` with ``options`` (``param`` or ``"stage.param"`` keys) applied."""
    try:
        m = METHODS[name]
    except KeyError:
        raise AetbenchError(f"unknown method {name!r} (known: {', '.join(sorted(METHODS))})") from None
    return m.with_options(options or {}, where)


_TABLE_KEYS = ("base", "description", "steps")


def method_from_table(name: str, table: dict, where: str) -> Method:
    """A method from a scenario's ``[methods.NAME]`` table (``where`` prefixes errors, e.g. ``file: methods.x``).

    ``base`` names a registered method (default: ``NAME`` itself) and every other key but ``description`` and
    ``steps`` overrides one of its parameters (as in ``[method_options.NAME]``); or ``steps`` lists the steps.
    """
    if not isinstance(table, dict):
        raise AetbenchError(f"{where}: expected a table, got {table!r}")
    overrides = {k: v for k, v in table.items() if k not in _TABLE_KEYS}
    desc = table.get("description")
    if desc is not None and not isinstance(desc, str):
        raise AetbenchError(f"{where}.description: expected a string, got {desc!r}")
    if "steps" in table:
        if "base" in table:
            raise AetbenchError(f"{where}: give base (plus overrides) or steps, not both")
        m = Method(name, desc or f"{name} (scenario-defined steps)", _steps(table["steps"], f"{where}.steps"))
        m.check(where)
    else:
        base = table.get("base", name)
        if not isinstance(base, str):
            raise AetbenchError(f"{where}.base: expected a method name, got {base!r}")
        if base not in METHODS:
            raise AetbenchError(f"{where}.base: unknown method {base!r} (known: {', '.join(sorted(METHODS))})")
        b = METHODS[base]
        what = ", ".join(f"{k} = {v!r}" for k, v in overrides.items())
        m = replace(b, name=name, description=desc or (f"{base} with {what}" if what else b.description))
    return m.with_options(overrides, where) if overrides else m


def scenario_methods(sc) -> dict[str, Method]:
    """name → :class:`Method` for every method a scenario runs, in order, validated.

    Each name is a ``[methods.NAME]`` table of the scenario (:func:`method_from_table`) or a registered method;
    ``[method_options.NAME]`` applies on top.  Errors are one line naming the file and the field.
    """
    path = sc.path or sc.name
    tables = getattr(sc, "method_tables", {}) or {}
    out = {}
    for name in sc.methods:
        if name in tables:
            m = method_from_table(name, tables[name], f"{path}: methods.{name}")
        elif name in METHODS:
            m = METHODS[name]
        else:
            raise AetbenchError(f"{path}: methods: unknown method {name!r} (known: {', '.join(sorted(METHODS))})")
        opts = sc.method_options.get(name)
        out[name] = m.with_options(opts, f"{path}: method_options.{name}") if opts else m
    for name in sc.method_options:
        if name not in out and name not in METHODS:
            raise AetbenchError(f"{path}: method_options.{name}: unknown method (known: {', '.join(sorted(METHODS))})")
    return out
