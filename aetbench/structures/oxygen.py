"""Oxygen placement: an Si network becomes an Si–O network (one bridging O on every Si–Si bond, non-bridging
O completing under-coordinated Si), scaled to the Si···Si distance of corner-sharing tetrahedra.  Units: Å.
"""
from __future__ import annotations

import numpy as np

from .silica_ff import SIO2
from .www import network_bonds

__all__ = ["decorate_with_oxygen", "decorate_bonds"]


def decorate_with_oxygen(si_positions, bond_cutoff: float, *, si_si: float | None = None, offset: float = 0.3,
                         seed: int = 0, terminate: bool = True):
    """Scale an a-Si network and put an O on every Si–Si bond.

    The network keeps at most four bonds per Si (:func:`network_bonds`); it is
    scaled so that its most probable Si–Si bond (the g(r) first peak, not the
    median, which the long surface bonds pull up) becomes ``si_si``.

    Parameters
    ----------
    si_positions : (N, 3) array
        a-Si network positions [Å].
    bond_cutoff : float
        Si–Si bond cutoff of the input network [Å] (2.84 for a-Si).
    si_si : float, optional
        Target Si–Si distance [Å]; default 2 b₀ sin(φ₀/2) = 3.09 Å (φ₀ = 147°).
    offset : float
        Random sideways displacement of each O from the bond midpoint [Å].
    seed : int
    terminate : bool
        Complete every under-coordinated Si (surface dangling bonds) to four O
        with non-bridging O.

    Returns
    -------
    positions : (N + M, 3) array
        Si first, then O [Å].
    bonds : (K, 2) int array
        Si–O bonds (Si index, O index).
    """
    x = np.asarray(si_positions, float)
    a, b, _ = network_bonds(x, bond_cutoff)
    return decorate_bonds(x, a, b, si_si=si_si, offset=offset, seed=seed, terminate=terminate)


def decorate_bonds(si_positions, a, b, *, si_si: float | None = None, offset: float = 0.3, seed: int = 0,
                   terminate: bool = True):
    """:func:`decorate_with_oxygen` for an explicit Si–Si bond list ``a[k]``–``b[k]`` (indices).

    The positions [Å] are scaled so that the most probable bond length becomes
    ``si_si`` [Å] (default 3.09 Å); returns (positions, Si–O bonds) as there.
    """
    from .analysis import _first_peak

    x = np.asarray(si_positions, float)
    a = np.asarray(a, np.int64)
    b = np.asarray(b, np.int64)
    d = np.linalg.norm(x[b] - x[a], axis=1)
    target = si_si if si_si is not None else 2 * SIO2["b0"] * np.sin(np.arccos(SIO2["cos_p"]) / 2)
    xs = x * (target / _first_peak(d))
    rng = np.random.default_rng(seed)
    mid = 0.5 * (xs[a] + xs[b])
    u = xs[b] - xs[a]
    u /= np.linalg.norm(u, axis=1)[:, None]
    r = rng.normal(size=mid.shape)
    r -= np.sum(r * u, axis=1)[:, None] * u
    r /= np.linalg.norm(r, axis=1)[:, None]
    o = mid + offset * r
    n = len(xs)
    io = n + np.arange(len(o))
    bonds = np.concatenate([np.stack([a, io], 1), np.stack([b, io], 1)])
    if terminate:
        # non-bridging O on under-coordinated Si, each opposite the mean direction of the O it already has
        nbr = [[] for _ in range(n)]
        for s, j in bonds:
            nbr[s].append(o[j - n] - xs[s])
        extra, eb = [], []
        for i in range(n):
            while len(nbr[i]) < 4:
                v = -np.sum([w / np.linalg.norm(w) for w in nbr[i]], axis=0) if nbr[i] else np.zeros(3)
                v = v + 0.3 * rng.normal(size=3)
                w = SIO2["b0"] * v / np.linalg.norm(v)
                nbr[i].append(w)
                extra.append(xs[i] + w)
                eb.append((i, n + len(o) + len(extra) - 1))
        if extra:
            o = np.vstack([o, extra])
            bonds = np.concatenate([bonds, np.array(eb, dtype=bonds.dtype)])
    return np.vstack([xs, o]), bonds
