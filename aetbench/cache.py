"""Content-addressed cache for expensive intermediate results.

Keys are SHA-256 hashes of a JSON description (configuration, seed) plus a
fingerprint of the source code that produces the result, so a code change
invalidates exactly the results it could change.  Entries are written
atomically; a rerun after an interruption reuses every finished entry.

Every entry file (:func:`save_entry`) starts with a 512-byte header that holds
its cache key, the SHA-256 of the body and the body's length; :func:`load_entry`
checks all three.  A damaged entry (truncated, emptied, bit-flipped) or a
mismatched one (another key's file copied or swapped in, an edited value) is
reported in one line on stderr naming the file, moved aside to
``<name>.corrupt-<timestamp>`` and treated as missing, so the caller
recomputes it: the cache heals instead of serving wrong numbers or crashing.

numba's on-disk kernel cache goes to a user cache folder
(:func:`numba_cache_dir`), never into the installed package.
"""
from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from functools import lru_cache
from pathlib import Path
from typing import Callable, TypeVar

import numpy as np

__all__ = ["content_hash", "code_fingerprint", "default_cache_dir", "file_digest", "save_entry", "load_entry",
           "move_aside", "numba_cache_dir", "configure_numba_cache", "ENTRY_FORMAT"]

T = TypeVar("T")

#: Version of the entry layout; part of the keys that name entry files, so entries of another layout are never read.
ENTRY_FORMAT = "aetbench-entry-1"
_MAGIC = b"AETBENCH-CACHE-ENTRY 1\n"
_HEADER_BYTES = 512


def _default(o):
    if isinstance(o, np.ndarray):
        return {"__array__": hashlib.sha256(np.ascontiguousarray(o).tobytes()).hexdigest(),
                "shape": list(o.shape), "dtype": str(o.dtype)}
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, Path):
        return str(o)
    if hasattr(o, "__dataclass_fields__"):
        from dataclasses import asdict

        return asdict(o)
    raise TypeError(f"cannot hash {type(o).__name__}")


def content_hash(*parts) -> str:
    """Stable SHA-256 (first 20 hex digits) of JSON-able ``parts`` (arrays hashed by content).

    Examples
    --------
    >>> content_hash({"a": 1}) == content_hash({"a": 1})
    True
    >>> content_hash({"a": 1}) == content_hash({"a": 2})
    False
    """
    blob = json.dumps(parts, sort_keys=True, default=_default, allow_nan=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


@lru_cache(maxsize=None)
def code_fingerprint(*subpackages: str) -> str:
    """Hash of the package version and the source of ``subpackages`` (e.g. ``"simulate"``)."""
    from ._version import __version__

    root = Path(__file__).resolve().parent
    h = hashlib.sha256(__version__.encode())
    for sub in subpackages:
        p = root / sub
        files = sorted(p.rglob("*.py")) if p.is_dir() else [p.with_suffix(".py")]
        for f in files:
            h.update(f.relative_to(root).as_posix().encode())
            h.update(f.read_bytes())
    return h.hexdigest()[:16]


def file_digest(path) -> str:
    """SHA-256 of a file's bytes (first 20 hex digits)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:20]


def default_cache_dir() -> Path:
    """``AETBENCH_CACHE`` or ``.cache/aetbench`` under the working directory."""
    return Path(os.environ.get("AETBENCH_CACHE", Path.cwd() / ".cache" / "aetbench"))


# --------------------------------------------------------------------------- checked entries

def save_entry(path, key: str, body: bytes) -> None:
    """Write ``body`` to ``path`` atomically behind a header holding ``key`` and the body's SHA-256.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "k1.bin"
    >>> save_entry(p, "k1", b"payload")
    >>> load_entry(p, "k1")
    b'payload'
    """
    from .io.files import atomic_write_path

    meta = json.dumps({"key": key, "sha256": hashlib.sha256(body).hexdigest(), "bytes": len(body)}).encode()
    header = _MAGIC + meta + b"\n"
    if len(header) > _HEADER_BYTES:
        raise ValueError(f"cache key too long for the entry header: {key[:40]}…")
    with atomic_write_path(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(header.ljust(_HEADER_BYTES, b" "))
            f.write(body)


def _check(path: Path, key: str) -> tuple[bytes | None, str]:
    """``(body, "")`` for a sound entry, ``(None, reason)`` for a damaged or mismatched one."""
    with open(path, "rb") as f:
        data = f.read()
    if not data:
        return None, "empty file"
    if not data.startswith(_MAGIC):
        return None, "no aetbench cache header (damaged, or not written by aetbench)"
    try:
        meta = json.loads(data[len(_MAGIC):_HEADER_BYTES].split(b"\n", 1)[0])
        want_key, want_sha, want_len = str(meta["key"]), str(meta["sha256"]), int(meta["bytes"])
    except (ValueError, KeyError, TypeError):
        return None, "damaged header"
    body = data[_HEADER_BYTES:]
    if len(body) != want_len:
        return None, f"truncated or extended ({len(body)} of {want_len} bytes)"
    if hashlib.sha256(body).hexdigest() != want_sha:
        return None, "checksum mismatch (content changed since it was written)"
    if want_key != key:
        return None, f"holds the entry of another key ({want_key[:20]})"
    return body, ""


def move_aside(path, reason: str) -> Path | None:
    """Rename a bad cache file to ``<name>.corrupt-<timestamp>`` and say so in one line on stderr."""
    path = Path(path)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    aside = path.with_name(f"{path.name}.corrupt-{stamp}-{os.getpid()}")
    try:
        os.replace(path, aside)
    except OSError:  # another process moved or replaced it first
        aside = None
    where = f"moved aside to {aside.name}" if aside is not None else "already moved aside"
    print(f"aetbench: cache entry {path}: {reason}; {where}, recomputing", file=sys.stderr, flush=True)
    return aside


def load_entry(path, key: str, decode: Callable[[bytes], T] | None = None) -> T | bytes | None:
    """Body of the entry at ``path`` (decoded by ``decode``), or ``None`` when the caller must compute it.

    ``None`` is returned for a missing file and for a damaged or mismatched
    entry (wrong key, bad checksum, wrong length, or a body ``decode`` cannot
    read); such a file is moved aside with a one-line message on stderr
    (:func:`move_aside`).
    """
    path = Path(path)
    try:
        body, reason = _check(path, key)
    except FileNotFoundError:
        return None
    except OSError as e:
        body, reason = None, f"unreadable ({e.strerror or e})"
    if body is not None and decode is not None:
        try:
            return decode(body)
        except Exception as e:  # noqa: BLE001 - any failure to decode a checked body means a bad entry
            body, reason = None, f"cannot decode ({type(e).__name__}: {str(e)[:80]})"
    if body is None:
        move_aside(path, reason)
    return body


# --------------------------------------------------------------------------- numba kernels

def numba_cache_dir() -> Path:
    """Folder for numba's compiled-kernel cache: ``$NUMBA_CACHE_DIR`` if set, else ``$AETBENCH_CACHE/numba``
    if that is set, else ``${XDG_CACHE_HOME:-~/.cache}/aetbench/numba`` (a user folder, never the package)."""
    if os.environ.get("NUMBA_CACHE_DIR"):
        return Path(os.environ["NUMBA_CACHE_DIR"])
    if os.environ.get("AETBENCH_CACHE"):
        return Path(os.environ["AETBENCH_CACHE"]) / "numba"
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "aetbench" / "numba"


def configure_numba_cache() -> None:
    """Point numba's kernel cache at :func:`numba_cache_dir` (before any aetbench kernel is compiled).

    Sets ``NUMBA_CACHE_DIR`` unless the user set it, and numba's live config
    when numba was imported first.  An unwritable folder is left to numba's
    own fallbacks.
    """
    d = numba_cache_dir()
    try:
        d.mkdir(parents=True, exist_ok=True)
    except OSError:
        return
    os.environ.setdefault("NUMBA_CACHE_DIR", str(d))
    cfg = sys.modules.get("numba.core.config")
    if cfg is not None and not getattr(cfg, "CACHE_DIR", ""):
        cfg.CACHE_DIR = str(d)
