"""Atomic models as extended XYZ files (through ASE), written atomically.

Registers itself as the file reader and writer of :class:`aetbench.types.AtomicModel`
(``model.write(path)``, ``AtomicModel.read(path)``).
"""
from __future__ import annotations

from ..types import register_file_io
from .files import atomic_write_path

__all__ = ["write_atoms_xyz", "read_atoms"]


def write_atoms_xyz(atoms, path) -> None:
    """Write an :class:`ase.Atoms` as extended XYZ (ASE-readable), atomically."""
    with atomic_write_path(path) as tmp:
        atoms.write(str(tmp), format="extxyz")


def read_atoms(path):
    """Read an extended XYZ (or any ASE-readable) file as :class:`ase.Atoms`."""
    from ase.io import read

    return read(str(path))


register_file_io("AtomicModel", read_atoms, write_atoms_xyz)
