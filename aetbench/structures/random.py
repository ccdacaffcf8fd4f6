"""Placeholder structure source: random sequential addition in a sphere.

A seeded, dependency-free way to get an amorphous-looking particle with a
minimum interatomic distance.  The physically credible builders (relaxation,
melt-quench) live beside this module; this one stays as the fastest source
for tests.
"""
from __future__ import annotations

import numpy as np

from ..types import AtomicModel

__all__ = ["random_sphere"]


def random_sphere(n_atoms: int, *, element: str = "Si", min_distance: float = 2.2,
                  density: float = 0.05, seed: int = 0, max_tries: int = 2000) -> AtomicModel:
    """Random sequential addition of ``n_atoms`` atoms in a sphere.

    Parameters
    ----------
    n_atoms : int
        Number of atoms.
    element : str
        Chemical symbol of every atom.
    min_distance : float
        Minimum interatomic distance in Å.
    density : float
        Number density in atoms/Å³ used to size the sphere (a-Si: 0.05).
    seed : int
        Seed of the random generator; same seed → same coordinates.

    Returns
    -------
    AtomicModel
        Atoms centred on the origin.

    Examples
    --------
    >>> m = random_sphere(50, seed=1)
    >>> len(m)
    50
    """
    if n_atoms < 1:
        raise ValueError(f"n_atoms must be ≥ 1, got {n_atoms}")
    radius = (3.0 * n_atoms / (4.0 * np.pi * density)) ** (1.0 / 3.0)
    rng = np.random.default_rng(seed)
    pos = np.empty((n_atoms, 3))
    count = 0
    d2 = min_distance**2
    tries = 0
    while count < n_atoms:
        batch = rng.uniform(-radius, radius, size=(256, 3))
        batch = batch[np.einsum("ij,ij->i", batch, batch) <= radius**2]
        for p in batch:
            if count and np.min(np.einsum("ij,ij->i", pos[:count] - p, pos[:count] - p)) < d2:
                continue
            pos[count] = p
            count += 1
            if count == n_atoms:
                break
        tries += 1
        if tries > max_tries:
            # the sphere is too dense for the minimum distance: grow it a little
            radius *= 1.02
            tries = 0
    pos -= pos.mean(axis=0)
    return AtomicModel(pos, [element] * n_atoms, name=f"random_sphere_{element}{n_atoms}_s{seed}")
