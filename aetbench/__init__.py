"""aetbench — simulation-and-benchmark suite for atomic electron tomography of amorphous materials."""
from .types import SCORE_COLUMNS, AtomicModel, TiltSeries, TracedModel, Volume

__version__ = "0.1.0"
__all__ = ["AtomicModel", "TiltSeries", "Volume", "TracedModel", "SCORE_COLUMNS", "__version__"]
