"""Cache keys from the code a method actually calls.

Rule: the fingerprint of a step function is the hash of the source files of its module and of every module of
the same top-level package that it imports, directly or through those modules (imports read statically with
:mod:`ast`, including imports inside functions), plus the package version for aetbench's own functions.  Editing
the function, or any helper of its package it imports, changes the fingerprint; files are re-read when their
size or modification time changes, so an edit within one process counts too.  A function whose module has no
source file falls back to its own source (:func:`inspect.getsource`), then to the version of the distribution
that provides it.

:func:`method_fingerprint` combines the method's configuration (names, functions, parameters), the fingerprint of
every step function and that of the runner (:mod:`aetbench.methods.contract` and what it imports).
"""
from __future__ import annotations

import ast
import hashlib
import importlib.util
import inspect
import os
import sys
from collections.abc import Callable
from pathlib import Path

__all__ = ["function_fingerprint", "method_fingerprint", "module_fingerprint"]

_parsed: dict[tuple[str, int, int], tuple[str, list[tuple[int, str | None, list[str]]]]] = {}


def _package_root(top: str) -> Path | None:
    """Folder holding package ``top`` (its ``__init__.py``), or the single-file module's folder."""
    mod = sys.modules.get(top)
    origin = getattr(mod, "__file__", None) if mod is not None else None
    if origin is None:
        try:
            spec = importlib.util.find_spec(top)
        except (ImportError, ValueError):
            return None
        origin = spec.origin if spec is not None else None
    if not origin or not os.path.exists(origin):
        return None
    return Path(origin).resolve().parent


def _module_file(name: str) -> Path | None:
    """Source file of module ``name`` (``a.b.c`` → ``<root of a>/b/c.py`` or ``…/c/__init__.py``)."""
    mod = sys.modules.get(name)
    f = getattr(mod, "__file__", None) if mod is not None else None
    if f and f.endswith(".py") and os.path.exists(f):
        return Path(f).resolve()
    parts = name.split(".")
    root = _package_root(parts[0])
    if root is None:
        return None
    if len(parts) == 1:
        cands = [root / "__init__.py", root / f"{parts[0]}.py"]
    else:
        base = root.joinpath(*parts[1:])
        cands = [base.with_suffix(".py"), base / "__init__.py"]
    return next((c for c in cands if c.is_file()), None)


def _read(path: Path) -> tuple[str, list[tuple[int, str | None, list[str]]]]:
    """``(sha256 of the bytes, imports)`` of a source file, cached by (path, mtime, size)."""
    st = path.stat()
    key = (str(path), st.st_mtime_ns, st.st_size)
    if key not in _parsed:
        data = path.read_bytes()
        imports: list[tuple[int, str | None, list[str]]] = []
        try:
            tree = ast.parse(data)
        except SyntaxError:
            tree = None
        for node in ast.walk(tree) if tree is not None else ():
            if isinstance(node, ast.Import):
                imports += [(0, a.name, []) for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                imports.append((node.level, node.module, [a.name for a in node.names]))
        _parsed[key] = (hashlib.sha256(data).hexdigest(), imports)
    return _parsed[key]


def _imported(name: str, is_pkg: bool, imports) -> set[str]:
    """Absolute names of the modules (or candidate submodules) an import list names."""
    out = set()
    for level, module, names in imports:
        if level:
            base = name.split(".") if is_pkg else name.split(".")[:-1]
            base = base[: len(base) - (level - 1)] if level > 1 else base
            target = ".".join(base + ([module] if module else []))
        else:
            target = module
        if not target:
            continue
        out.add(target)
        out.update(f"{target}.{n}" for n in names if n != "*")
    return out


def module_fingerprint(name: str) -> str | None:
    """Hash of module ``name`` and the modules of its top-level package it imports (``None``: no source file)."""
    top = name.split(".")[0]
    todo, seen, files = [name], set(), {}
    while todo:
        m = todo.pop()
        if m in seen:
            continue
        seen.add(m)
        path = _module_file(m)
        if path is None:
            continue
        digest, imports = _read(path)
        files[m] = digest
        parent = m.rsplit(".", 1)[0] if "." in m else None
        if parent:
            todo.append(parent)          # importing a.b.c runs a/b/__init__.py
        for dep in _imported(m, path.name == "__init__.py", imports):
            if dep == top or dep.startswith(top + "."):
                todo.append(dep)
    if name not in files:
        return None
    h = hashlib.sha256()
    for m in sorted(files):
        h.update(m.encode() + b"\0" + files[m].encode())
    return h.hexdigest()[:20]


def _distribution_version(top: str) -> str | None:
    try:
        from importlib.metadata import packages_distributions, version

        for dist in packages_distributions().get(top, []):
            return f"{dist} {version(dist)}"
    except Exception:  # noqa: BLE001 - metadata of a broken install: no version
        return None
    return None


def function_fingerprint(fn: Callable) -> str:
    """Fingerprint of the code ``fn`` runs (module docstring)."""
    fn = inspect.unwrap(fn) if callable(fn) else fn
    name = getattr(fn, "__module__", None) or ""
    top = name.split(".")[0]
    if top == "aetbench":
        from .._version import __version__

        return f"aetbench {__version__} {module_fingerprint(name)}"
    fp = module_fingerprint(name) if name and name != "__main__" else None
    if fp is not None:
        return f"source {fp}"
    try:
        return "function " + hashlib.sha256(inspect.getsource(fn).encode()).hexdigest()[:20]
    except (OSError, TypeError):
        pass
    v = _distribution_version(top) or getattr(sys.modules.get(top), "__version__", None)
    if v is not None:
        return f"version {v}"
    code = getattr(fn, "__code__", None)   # last resort: the compiled body (changes with any edit of its code)
    return "code " + hashlib.sha256(repr((code.co_code, code.co_consts)).encode()).hexdigest()[:20] if code else \
        f"unversioned {name}:{getattr(fn, '__qualname__', '')}"


def method_fingerprint(method) -> str:
    """Hash of ``method.config()``, the fingerprint of every step function and of the runner."""
    from ..cache import content_hash

    return content_hash(method.config(), [function_fingerprint(s.load()) for s in method.steps],
                        function_fingerprint(method_fingerprint), module_fingerprint("aetbench.methods.contract"))
