"""aetbench — simulation-and-benchmark suite for atomic electron tomography of amorphous materials."""
from .cache import configure_numba_cache as _configure_numba_cache

_configure_numba_cache()  # before any kernel is compiled: numba's cache in a user folder, not the package
from ._version import __version__  # noqa: E402
from .types import SCORE_COLUMNS, AtomicModel, TiltSeries, TracedModel, Volume  # noqa: E402
from . import io as _io  # noqa: E402,F401  registers the types' file readers/writers (types import no I/O)

__all__ = ["AtomicModel", "TiltSeries", "Volume", "TracedModel", "SCORE_COLUMNS", "__version__"]
