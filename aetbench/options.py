"""Validation of option tables: moved to :mod:`aetbench.config` (the one config engine); kept for imports."""
from __future__ import annotations

from .config import Checker, from_table

__all__ = ["Checker", "from_table"]
