"""aetbench.io: files in and out.

Importing this package registers the file readers and writers of the shared types
(:mod:`.hdf5` for tilt series and volumes, :mod:`.xyz` for atomic models), so that
``TiltSeries.read``, ``Volume.write``, ``AtomicModel.write`` ... work while
:mod:`aetbench.types` itself imports no I/O.
"""
from . import hdf5, xyz  # noqa: F401  (registration)
