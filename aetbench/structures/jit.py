"""``njit`` with an on-disk cache keyed by the source of the whole package.

Why: numba's ``cache=True`` invalidates a cached kernel only when *its own*
source file changes (file stamp + the function's bytecode).  A cached caller
(e.g. ``md._langevin``) contains compiled copies of the kernels it calls from
other files (``sw._sw``, ``gupta._gupta``, ``neighbors._neighbors``), so after
an edit of ``sw.py`` the MD loop kept running the *old* force kernel.  Worse,
when a process also loads the new ``_sw`` (e.g. a test called
``sw_energy_forces`` first), the two copies share one symbol name and the JIT
linker binds the caller to whichever was loaded first: the build then depended
on which kernels the process had called before (differences of ~1e-13 Å that
the chaotic melt-quench amplifies into a different particle).

:func:`kernel` adds a hash of every ``*.py`` file of :mod:`aetbench.structures`
to numba's cache index key, so any edit of the package recompiles every kernel
and a cached caller always embeds the current callees.  The kernels themselves
use no ``fastmath`` (no FMA contraction or reassociation) and fixed-order
reductions, so a fresh compile and a cache load give the same bits.
"""
from __future__ import annotations

import contextlib
import hashlib
import os
from pathlib import Path

import numpy as np
from numba import njit

__all__ = ["kernel", "reduce_blocks", "pair_force_block", "SOURCE_FINGERPRINT", "source_fingerprint"]


def source_fingerprint(folder=None) -> str:
    """SHA-256 (16 hex digits) of the names and bytes of every ``*.py`` in ``folder``
    (default: this package)."""
    root = Path(folder) if folder is not None else Path(__file__).resolve().parent
    h = hashlib.sha256()
    for f in sorted(root.glob("*.py")):
        h.update(f.name.encode())
        h.update(f.read_bytes())
    return h.hexdigest()[:16]


SOURCE_FINGERPRINT = source_fingerprint()

@contextlib.contextmanager
def _cache_lock(folder):
    """Exclusive advisory lock on ``folder/aetbench-numba.lock`` (POSIX ``flock``; no-op elsewhere)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    try:
        os.makedirs(folder, exist_ok=True)
        fd = os.open(os.path.join(folder, "aetbench-numba.lock"), os.O_RDWR | os.O_CREAT, 0o666)
    except OSError:  # read-only cache folder: numba itself falls back to no caching
        yield
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


try:
    from numba.core.caching import FunctionCache, IndexDataCacheFile

    class _PackageCache(FunctionCache):
        """numba ``FunctionCache`` whose index key also holds :data:`SOURCE_FINGERPRINT`, and whose loads
        and saves hold an exclusive file lock on the cache folder.

        Without the lock, two processes compiling the same kernel at once (parallel test runs, Dask
        workers building particles) can each number a new entry from the same old index, overwrite each
        other's ``.nbc`` file and leave an index entry that points at another specialisation's machine
        code: the next process that loads it crashes with a segmentation fault (seen here; numba issues
        #4807 and #10128).  Each package source version caches into its own sub-folder
        ``aetbench-<fingerprint>``, because numba renumbers an index whose source stamp differs from its own.
        """

        def __init__(self, py_func):
            super().__init__(py_func)
            # one folder per package source version: processes that run different sources (an edit while a
            # build runs, two installed versions) never renumber or overwrite each other's index and data files
            path = os.path.join(self._cache_path, f"aetbench-{SOURCE_FINGERPRINT}")
            try:
                os.makedirs(path, exist_ok=True)
            except OSError:  # read-only location: numba's own fallback rules apply to the parent folder
                return
            self._cache_path = path
            self._cache_file = IndexDataCacheFile(cache_path=path, filename_base=self._impl.filename_base,
                                                  source_stamp=self._impl.locator.get_source_stamp())

        def _index_key(self, sig, codegen):
            return super()._index_key(sig, codegen) + (SOURCE_FINGERPRINT,)

        def load_overload(self, sig, target_context):
            with _cache_lock(self._cache_path):
                return super().load_overload(sig, target_context)

        def save_overload(self, sig, data):
            with _cache_lock(self._cache_path):
                super().save_overload(sig, data)

except ImportError:  # pragma: no cover - numba moved its cache classes
    _PackageCache = None


def kernel(fn=None, **options):
    """``numba.njit(**options)`` cached on disk under a key that includes the package source hash.

    Use as ``@kernel`` or ``@kernel(parallel=True)``.  ``fastmath`` is refused:
    it lets LLVM contract and reorder floating-point operations differently in
    different compiled specialisations, which breaks bit-identical rebuilds.
    """
    if options.get("fastmath"):
        raise ValueError("aetbench.structures kernels must not use fastmath (reproducible builds)")
    options.pop("cache", None)

    def wrap(f):
        if _PackageCache is None:  # pragma: no cover
            return njit(cache=False, **options)(f)
        disp = njit(cache=False, **options)(f)
        disp._cache = _PackageCache(disp.py_func)
        return disp

    return wrap(fn) if fn is not None else wrap


@kernel
def reduce_blocks(fb, eb):
    """Sum per-block forces ``fb`` (nb, n, 3) [eV/Å] and energies ``eb`` (nb,) [eV] in block order.

    The force drivers split the atoms into blocks (one per thread) and reduce here in a fixed order, so the
    serial and parallel drivers give the same bits.
    """
    nb, n = fb.shape[0], fb.shape[1]
    f = np.zeros((n, 3))
    for i in range(n):
        for b in range(nb):
            for d in range(3):
                f[i, d] += fb[b, i, d]
    energy = 0.0
    for b in range(nb):
        energy += eb[b]
    return energy, f


@kernel
def pair_force_block(b, nb, pos, offset, index, a, p, q, w, fb):
    """Pass 2 of the many-body kernels (Gupta, EAM): forces [eV/Å] of the pairs (i < j) owned by the atoms of
    block ``b`` into fb[b].

    Per neighbour slot ``s`` (pair i, j) the first pass stored ``a``, ``p``, ``q`` so that
    (dE/dr)/r = a[s] + w[i]·p[s] + w[j]·q[s], with ``w`` = dF/dρ per atom (embedding derivative); slots with
    all three zero (beyond the cutoff) are skipped.
    """
    n = pos.shape[0]
    for i in range(b * n // nb, (b + 1) * n // nb):
        for s in range(offset[i], offset[i + 1]):
            j = index[s]
            if j <= i:
                continue
            c = a[s] + w[i] * p[s] + w[j] * q[s]
            if c == 0.0:
                continue
            dx = pos[j, 0] - pos[i, 0]
            dy = pos[j, 1] - pos[i, 1]
            dz = pos[j, 2] - pos[i, 2]
            fb[b, i, 0] += c * dx
            fb[b, i, 1] += c * dy
            fb[b, i, 2] += c * dz
            fb[b, j, 0] -= c * dx
            fb[b, j, 1] -= c * dy
            fb[b, j, 2] -= c * dz
