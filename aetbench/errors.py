"""Exceptions shared by every layer of aetbench (the ground floor: imports nothing of aetbench)."""
from __future__ import annotations

__all__ = ["AetbenchError"]


class AetbenchError(Exception):
    """A user-facing error: the CLI prints its message as one line and exits non-zero."""
