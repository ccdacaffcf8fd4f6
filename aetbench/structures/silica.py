"""Amorphous silica by the network route.

Three parts, each its own module (their public names are importable from here too):
:mod:`.www` builds the Si network (WWW bond switching with the Keating energy),
:mod:`.oxygen` places the O atoms, :mod:`.silica_ff` holds the silica valence force field
and its relaxation.  This module joins them (:func:`build_silica`).

The Si network (Si···Si through the bridging O) is built first, every Si–Si
bond gets an O, and the Si–O network is relaxed with a valence force field.

Si network, default (``network="www"``): a Wooten–Winer–Weaire continuous
random network (WWW, PRL 54, 1392 (1985)).  The ``n`` sites of a diamond lattice
(the Si sublattice of β-cristobalite) nearest to a random point are
randomised by bond switches (a–b, c–d → a–c, b–d around a bond b–c; every
coordination number is kept, no 3-rings) at kT = 1 eV until fewer than 1 % of
the four-fold atoms keep the diamond ring environment, then annealed from 0.7
to 0.1 eV over 30 attempts per atom with the Metropolis rule on the Keating
energy (α = 2.965 eV/Å², β = 0.285 α, d = 2.35 Å, plus a non-bonded repulsion
below 3 Å) after a local relaxation of the atoms within two bonds of the
switch.  WWW networks have ring statistics peaked at 6 (a-Si: Djordjevic, Thorpe
& Wooten, PRB 52, 5685 (1995)), as vitreous silica has (6-membered rings most
frequent, 5 and 7 next: Rino et al., PRB 47, 3053 (1993); WWW-type silica
networks, Vink & Barkema, PRB 67, 245201 (2003)).  A Stillinger–Weber
melt-quench (``network="sw"``) is the alternative; its small particles have
about as many 5- as 6-rings (150 Si: 6/5 ratio 0.8–1.3 over five seeds; 2,603
Si: 1.55).

The network keeps at most four bonds per Si, is scaled so that its Si–Si bond
peak becomes the Si···Si distance of corner-sharing tetrahedra, an O atom is
put on every Si–Si bond (slightly off the midpoint, seeded) and every
under-coordinated Si is completed to four O by non-bridging O; the Si–O
network is then relaxed at fixed particle size with a valence force field of
fixed topology:

.. math::

    E = \\sum_{Si-O} \\tfrac12 k_b (r - b_0)^2
      + \\sum_{O-Si-O} \\tfrac12 k_{\\theta} (\\cos\\theta - \\cos\\theta_T)^2
      + \\sum_{Si-O-Si} \\tfrac12 k_{\\phi} (\\cos\\phi - \\cos\\phi_0)^2
      + \\sum_{\\text{non-bonded}} \\tfrac12 k_r (r - d_{min})^2 [r < d_{min}]

with b₀ = 1.61 Å, θ_T = 109.47°, φ₀ = 147° (the mean Si–O–Si angle of vitreous
silica, 147° from neutron diffraction, Neuefeind & Liss 1996, 151° from ²⁹Si/¹⁷O
NMR, Mauri et al., PRB 62, R4786 (2000); the mode is 144°, Mozzi & Warren 1969),
k_b = 30 eV/Å², k_θ = 5 eV, k_φ = 1 eV, and repulsion k_r = 10 eV/Å² for
non-bonded pairs (neither bonded nor bonded to a common atom) closer than 2.5 Å
(O–O), 2.9 Å (Si–Si) and 2.5 Å (Si–O).  This is a Keating-type model in the
spirit of the WWW silica models (scaled a-Si → SiO₂), not a transferable
potential.

Why the size is held: the corner-sharing network is floppy (the Si–O–Si angle
is soft); relaxed freely, the tetrahedra rotate and fold the particle in by
~6 % in volume, while at the size of the scaled network the density is within
10 % of a-SiO₂ (2.20 g/cm³, 0.0662 atoms/Å³; the diamond lattice scaled to
Si···Si 3.09 Å has 0.0220 Si/Å³, the Si density of a-SiO₂).  Units: Å, eV,
degrees.
"""
from __future__ import annotations

import numpy as np

from ..errors import AetbenchError
from ..types import AtomicModel
# the three parts of the route, each in its own module; their public names stay importable from here
from .oxygen import decorate_bonds, decorate_with_oxygen
from .silica_ff import SIO2, relax_silica, silica_energy_gradient  # noqa: F401
from .www import KEATING, WWW, diamond_sphere, keating_energy, network_bonds, www_anneal  # noqa: F401

__all__ = ["decorate_with_oxygen", "decorate_bonds", "network_bonds", "relax_silica", "keating_energy",
           "diamond_sphere", "www_anneal", "build_silica", "SIO2", "KEATING", "WWW"]


def si_interior_density(x, is_o, shell: float = 4.0) -> float:
    """Si number density [Si/Å³] inside the sphere of radius R − ``shell`` [Å] (R from the radius of
    gyration of all atoms, R = √(5/3) R_g), counted over that sphere's volume."""
    c = x.mean(0)
    rr = np.linalg.norm(x - c, axis=1)
    rc = np.sqrt(5 / 3) * np.sqrt(np.mean(rr**2)) - shell
    return float(np.sum((rr < rc) & ~is_o) / (4 / 3 * np.pi * rc**3))


def build_silica(n_si: int, *, seed: int, network_kw: dict | None = None, log=None, name: str = "",
                 hold_size: float = 1.0, shell: float = 4.0, network: str = "www", www: dict | None = None) -> AtomicModel:
    """a-SiO₂ particle: Si network of ``n_si`` atoms → O on every Si–Si bond → valence-force-field relaxation.

    Parameters
    ----------
    n_si : int
        Number of Si atoms.
    seed : int
        Same seed → identical coordinates.
    network : {"www", "sw"}
        ``"www"`` (default): the ``n_si`` sites of a diamond lattice (the Si
        sublattice of β-cristobalite) nearest to a random point, randomised
        and annealed by WWW bond switches with the Keating potential
        (:func:`www_anneal`; ``www`` overrides :data:`WWW`).  ``"sw"``: a
        Stillinger–Weber melt-quench (``network_kw`` goes to
        :func:`aetbench.structures.build.build_network`), whose small particles
        have about as many 5- as 6-rings.
    hold_size : float
        Size-hold constant of the final relaxation [eV/Å⁴] (:func:`relax_silica`).
    shell : float
        Surface shell [Å] left out of the logged Si density.
    """
    import time

    t0 = time.perf_counter()
    rng = np.random.default_rng(seed)
    if network == "www":
        x, a, b = diamond_sphere(n_si, rng)
        x, a, b, info = www_anneal(x, a, b, seed=int(rng.integers(2**31)), schedule=www or {})
        if log is not None:
            log.update(info)
    elif network == "sw":
        from .build import build_network

        net = build_network({"Si": n_si}, seed=int(rng.integers(2**31)), log=log, **(network_kw or {}))
        x = net.positions
        a, b, _ = network_bonds(x, 2.84)
    else:
        raise AetbenchError(f"network: expected 'www' or 'sw', got {network!r}")
    x, bonds = decorate_bonds(x, a, b, seed=int(rng.integers(2**31)))
    is_o = np.arange(len(x)) >= n_si
    x, info = relax_silica(x, is_o, bonds, hold_size=hold_size)
    if log is not None:
        log.update({"silica_" + k: v for k, v in info.items()})
        log["silica_si_density_per_A3"] = si_interior_density(x, is_o, shell)
        log["build_seconds"] = time.perf_counter() - t0
    el = np.where(is_o, "O", "Si")
    return AtomicModel(x - x.mean(0), el, name=name)
