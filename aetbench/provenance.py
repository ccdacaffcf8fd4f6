"""Provenance of a run: what produced a report, written beside it as ``provenance.json``.

A report is citable only when a reader can tell which code, which inputs and which
settings made it.  :func:`collect` gathers, without importing the packages it names:

- ``aetbench``: version, git commit and dirty flag of the checkout it runs from (``null``
  outside a git checkout, e.g. an installed wheel);
- ``packages``: versions of numpy, numba, scipy, abtem, ase (and pandas, h5py);
- ``scenario``: the file, its full text and SHA-256, name and seed;
- ``methods``: every method's resolved steps and parameters (:meth:`Method.config`);
- ``run``: command line, host, platform, Python, start and end time (UTC, ISO 8601),
  cache hits and misses per kind.

Examples
--------
>>> p = collect(argv=["aetbench", "run", "x.toml"])
>>> sorted(p)[:3], "numpy" in p["packages"]
(['aetbench', 'methods', 'packages'], True)
"""
from __future__ import annotations

import hashlib
import json
import platform
import socket
import subprocess
import sys
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

__all__ = ["collect", "write", "now_utc", "PACKAGES"]

PACKAGES = ("numpy", "numba", "scipy", "abtem", "ase", "pandas", "h5py")


def now_utc() -> str:
    """The current time in UTC, ISO 8601 to the second."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def _git(root: Path) -> dict:
    """Commit and dirty flag of the checkout holding ``root``; ``None`` values outside git."""
    def git(*args: str) -> str | None:
        try:
            r = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.SubprocessError):
            return None
        return r.stdout.strip() if r.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    if commit is None:
        return {"git_commit": None, "git_dirty": None}
    status = git("status", "--porcelain", "--untracked-files=no")
    return {"git_commit": commit, "git_dirty": None if status is None else bool(status)}


def _aetbench() -> dict:
    from ._version import __version__

    return {"version": __version__, "path": str(Path(__file__).resolve().parent), **_git(Path(__file__).resolve().parent)}


def _scenario(sc) -> dict | None:
    if sc is None:
        return None
    path = getattr(sc, "path", "") or ""
    text = None
    if path and Path(path).is_file():
        text = Path(path).read_text()
    return {"path": path, "name": getattr(sc, "name", None), "seed": getattr(sc, "seed", None),
            "noise_seed": getattr(sc, "draw_seed", None),
            "sha256": hashlib.sha256(text.encode()).hexdigest() if text is not None else None, "content": text}


def collect(scenario=None, methods: dict | None = None, *, argv: list[str] | None = None, started: str | None = None,
            finished: str | None = None, cache: dict | None = None, device: str | None = None,
            scheduler: str | None = None) -> dict:
    """The provenance record of one run (JSON-able).

    Parameters
    ----------
    scenario : Scenario, optional
        The validated scenario; its file is read again for the content and hash.
    methods : dict, optional
        ``name -> Method.config()`` of every method run, parameters resolved.
    argv : list of str, optional
        The command line (default ``sys.argv``).
    started, finished : str, optional
        UTC times (:func:`now_utc`); ``finished`` defaults to now.
    cache : dict, optional
        ``{"hits": {...}, "misses": {...}}`` counts per cache kind.
    """
    return {
        "aetbench": _aetbench(),
        "methods": methods or {},
        "packages": {p: _version(p) for p in PACKAGES},
        "run": {"command": list(sys.argv if argv is None else argv), "host": socket.gethostname(),
                "platform": platform.platform(), "python": platform.python_version(),
                "started_utc": started, "finished_utc": finished or now_utc(),
                "device": device, "scheduler": scheduler, "cache": cache or {}},
        "scenario": _scenario(scenario),
    }


def write(path, record: dict) -> None:
    """Write ``record`` as indented JSON at ``path`` (atomically)."""
    from .io.files import atomic_write_text

    atomic_write_text(path, json.dumps(record, indent=2, sort_keys=True, default=str) + "\n")
