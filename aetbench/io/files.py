"""Atomic file writes and small path helpers.

Every output of aetbench is written to a temporary file next to its target and
renamed into place, so a crash never leaves a half-written result and a rerun
can trust whatever exists.
"""
from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

__all__ = ["atomic_write_path", "atomic_write_text", "AetbenchError"]


class AetbenchError(Exception):
    """A user-facing error: the CLI prints its message as one line and exits non-zero."""


@contextlib.contextmanager
def atomic_write_path(path):
    """Yield a temporary path beside ``path``; on success rename it onto ``path``.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> with atomic_write_path(d / "a.txt") as tmp:
    ...     _ = tmp.write_text("hello")
    >>> (d / "a.txt").read_text()
    'hello'
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part" + path.suffix, dir=path.parent)
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def atomic_write_text(path, text: str) -> None:
    """Write ``text`` to ``path`` atomically."""
    with atomic_write_path(path) as tmp:
        tmp.write_text(text)
