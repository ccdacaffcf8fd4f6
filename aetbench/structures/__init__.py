"""aetbench.structures — seeded nanoparticle builders and realism analysis.

* :mod:`.random` — random sequential addition (placeholder, fastest).
* :mod:`.sw`, :mod:`.gupta` — Stillinger–Weber (Si/Ge/Sn) and Gupta/RGL (Co/Pd/Pt) numba kernels.
* :mod:`.md` — FIRE relaxation and Langevin melt-quench of free clusters.
* :mod:`.build` — random packing → relaxation → melt-quench → relaxation.
* :mod:`.silica` — amorphous silica by the network route: :mod:`.www` (WWW Si network), :mod:`.oxygen`
  (O placement), :mod:`.silica_ff` (valence force field and relaxation).
* :mod:`.analysis`, :mod:`.crystal` — g(r) peaks, coordination, angles, rings, a-CNA.
* :mod:`.recipe`, :mod:`.command` — TOML recipes (shipped in ``aetbench/data/structures/``), cached
  :func:`~.command.build_structure` and ``aetbench structure build|show``.
"""
