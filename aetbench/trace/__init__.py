"""aetbench.trace — atom tracing (Volume → TracedModel) and classification.

* :func:`trace_atoms` — ``method="com"`` (local maxima + 3-point fit) or
  ``"poly"`` (the paper's polynomial tracing), minimum-distance pruning.
* :func:`classify` — multi-step k-means into elements and non-atoms (``"x"``).
"""
from .classify import classify
from .peaks import UNCLASSIFIED, integrated_intensity, prune_min_distance, trace_atoms

__all__ = ["trace_atoms", "classify", "integrated_intensity", "prune_min_distance", "UNCLASSIFIED"]
