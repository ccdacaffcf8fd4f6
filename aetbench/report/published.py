"""Re-export of :mod:`aetbench.published` (the paper's numbers live on the ground floor, so the scenario
schema can check reference names without importing the report)."""
from ..published import PUBLISHED, published  # noqa: F401

__all__ = ["PUBLISHED", "published"]
