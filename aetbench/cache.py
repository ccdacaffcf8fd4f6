"""Content-addressed cache for expensive intermediate results.

Keys are SHA-256 hashes of a JSON description (configuration, seed) plus a
fingerprint of the source code that produces the result, so a code change
invalidates exactly the results it could change.  Entries are written
atomically; a rerun after an interruption reuses every finished entry.
"""
from __future__ import annotations

import hashlib
import json
import os
from functools import lru_cache
from pathlib import Path

import numpy as np

__all__ = ["content_hash", "code_fingerprint", "default_cache_dir", "file_digest"]


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
    from . import __version__

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
