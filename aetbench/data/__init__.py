"""Files shipped inside the package: scenarios (``scenarios/**.toml``) and structure recipes (``structures/*.toml``).

They are found with :mod:`importlib.resources`, so a wheel (``pip install .``) has them as well as a source
checkout.  A name is looked up in the user's folders first, then here:

* scenarios: ``./scenarios/`` under the working directory, then the shipped ``scenarios/``;
* recipes: the folders in ``$AETBENCH_STRUCTURES`` (``os.pathsep``-separated), then the shipped ``structures/``.

A name is the file's path below its folder without ``.toml`` (``quick``, ``paper/asi208``); a bare stem
(``asi208``) also finds a file in a subfolder when it is the only one of that stem.  An existing path is always
taken as it is (the caller checks that first).  Nothing here imports the rest of aetbench.
"""
from __future__ import annotations

import os
from importlib.resources import files
from pathlib import Path

__all__ = ["shipped_dir", "scenario_dirs", "recipe_dirs", "find_toml", "list_toml"]


def shipped_dir(kind: str) -> Path:
    """Folder of the shipped files of ``kind`` (``"scenarios"`` or ``"structures"``) inside the installed package.

    pip installs a wheel unpacked, so the resource is a plain folder; a zipped install is not supported.
    """
    if kind not in ("scenarios", "structures"):
        raise ValueError(f"kind: expected 'scenarios' or 'structures', got {kind!r}")
    return Path(str(files(__name__) / kind))


def scenario_dirs() -> list[Path]:
    """Folders searched for a scenario name: ``./scenarios`` (if it exists), then the shipped one."""
    dirs = [Path.cwd() / "scenarios", shipped_dir("scenarios")]
    return [d for d in dict.fromkeys(dirs) if d.is_dir()]


def recipe_dirs() -> list[Path]:
    """Folders searched for a recipe name: ``$AETBENCH_STRUCTURES`` (``os.pathsep``-separated), then the shipped one."""
    env = [Path(p) for p in os.environ.get("AETBENCH_STRUCTURES", "").split(os.pathsep) if p]
    return [d for d in dict.fromkeys([*env, shipped_dir("structures")]) if d.is_dir()]


def _key(name: str, folder: str) -> str:
    """``scenarios/paper/asi208.toml`` → ``paper/asi208`` (a leading ``<folder>/`` and ``.toml`` dropped)."""
    key = name.replace("\\", "/")
    key = key[2:] if key.startswith("./") else key
    key = key[len(folder) + 1:] if key.startswith(folder + "/") else key
    return key[:-5] if key.endswith(".toml") else key


def list_toml(dirs: list[Path]) -> list[tuple[str, Path]]:
    """``(name, path)`` of every ``.toml`` below ``dirs``; a name of an earlier folder hides a later one."""
    out: dict[str, Path] = {}
    for d in dirs:
        for p in sorted(d.rglob("*.toml")):
            out.setdefault(p.relative_to(d).with_suffix("").as_posix(), p)
    return sorted(out.items())


def find_toml(name: str, dirs: list[Path], folder: str) -> Path | None:
    """Path of the ``.toml`` named ``name`` in the first of ``dirs`` that has it, or ``None``.

    Parameters
    ----------
    name : str
        ``quick``, ``paper/asi208``, ``asi208`` (a stem found in one subfolder), also ``scenarios/quick.toml``
        (the form of a source checkout: ``<folder>/`` and ``.toml`` are dropped).
    dirs : list of Path
        Folders in search order (:func:`scenario_dirs`, :func:`recipe_dirs`).
    folder : str
        ``"scenarios"`` or ``"structures"``: the prefix dropped from ``name``.

    Raises
    ------
    LookupError
        When a bare stem matches more than one file in one folder (the message names them).
    """
    key = _key(name, folder)
    if not key or key.startswith("/") or ".." in key.split("/"):
        return None
    for d in dirs:
        exact = d / f"{key}.toml"
        if exact.is_file():
            return exact
        if "/" not in key:
            hits = sorted(d.rglob(f"{key}.toml"))
            if len(hits) > 1:
                raise LookupError(f"{name!r} is ambiguous in {d}: "
                                  + ", ".join(h.relative_to(d).with_suffix("").as_posix() for h in hits))
            if hits:
                return hits[0]
    return None
