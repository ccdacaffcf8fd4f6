"""The methods aetbench ships: each a :class:`~aetbench.methods.contract.Method` of plain stage functions.

Functions are named ``"package.module:function"`` so that listing the methods imports no stage code.
"""
from __future__ import annotations

from .contract import Method, Step

__all__ = ["BUILTIN"]

_PRE = "aetbench.preprocess"
_REC = "aetbench.reconstruct"
_TR = "aetbench.trace"


#: the shortest distance two atoms of liao2026's model may have: "bond", the elements' rule
#: (:mod:`aetbench.trace.bonds`: 0.75 × the shortest bond the elements form; Si 1.76 Å, Co-Pd-Pt 1.88 Å, SiO2
#: 1.38 Å).  Tracing keeps peaks this far apart, and the refinement drops the weaker of a closer pair and adds
#: missed atoms only this far from the others.
_MIN_DISTANCE_A = "bond"


def _trace(min_distance_A: float | str = _MIN_DISTANCE_A) -> Step:
    """Local-maximum tracing with centre-of-mass sub-voxel positions, peaks ≥ ``min_distance_A`` [Å] apart."""
    return Step("trace", f"{_TR}.peaks:trace_atoms", {"method": "com", "min_distance_A": min_distance_A,
                                                      "oversampling": 1})


def _classify(radius_A: float | str = "0.5*bond") -> Step:
    """k-means classification on the integrated intensity within ``radius_A`` [Å] (default half the elements'
    minimum distance: neighbours' spheres never overlap)."""
    return Step("classify", f"{_TR}.classify:classify", {"radius_A": radius_A})


def _resire(iterations: int) -> Step:
    return Step("reconstruct", f"{_REC}.resire:resire", {"iterations": iterations, "step": 1.0})


_background = Step("preprocess", f"{_PRE}.background:subtract_background", {})
_refine = Step("refine", f"{_TR}.refine:refine_positions", {"data": "raw", "iterations": 60})
_denoise = Step("preprocess", f"{_PRE}.denoise:denoise", {"method": "bm3d-like"})

BUILTIN: dict[str, Method] = {
    "resire": Method(
        "resire", "background subtraction, RESIRE (positivity), local-maximum tracing, k-means classification, "
                  "position refinement against the projections",
        (_background, _resire(150), _trace(), _classify(), _refine)),
    "sirt": Method(
        "sirt", "background subtraction, SIRT (positivity), local-maximum tracing, k-means classification "
                "(no refinement: the plain SIRT baseline)",
        (_background, Step("reconstruct", f"{_REC}.sirt:sirt", {"iterations": 150}), _trace(), _classify())),
    "fbp": Method(
        "fbp", "background subtraction, filtered back-projection (ramp), local-maximum tracing, k-means",
        (_background, Step("reconstruct", f"{_REC}.fbp:fbp", {"filter": "hann"}), _trace(), _classify())),
    "liao2026": Method(
        "liao2026", "Liao et al. 2026: GAT + block-matching denoising, background, normalisation, RESIRE, "
                    "sub-voxel peak tracing, multi-step k-means, position refinement against the projections "
                    "(with the atoms the residual shows added, pairs closer than the tracing distance pruned and each "
                    "atom's element chosen by the fit)",
        (_denoise, _background, Step("preprocess", f"{_PRE}.normalise:normalise_intensity", {"window": "image"}),
         _resire(200), _trace(), _classify(),
         Step("refine", f"{_TR}.refine:refine_positions", {"data": "raw", "iterations": 60,
                                                          "prune_distance_A": _MIN_DISTANCE_A,
                                                          "add_distance_A": _MIN_DISTANCE_A,
                                                          "reclassify": True}))),
    # Alignment, angle refinement and the beam-current normalisation are NOT in liao2026's defaults: on the
    # paper's own error-free aSi208 data they lowered the low-dose results (8.0e3: 96.63 % / 26.42 pm,
    # 1.6e4: 99.52 % / 10.27 pm against 98.08 % / 25.88 pm and 100 % / 9.75 pm without; the windowed /
    # raw-scaled normalisation alone moved them by ±0.5 pm), while on simulated data with drift, angle and
    # current errors they recover 100 % / 2.22 pm at 1.6e5 (errors scenario, issue 14).
    "liao2026-robust": Method(
        "liao2026-robust", "liao2026 for data with experimental errors: denoising, background, normalisation, "
                           "alignment (centre of mass + projection matching), RESIRE with per-projection "
                           "angle and shift refinement, tracing, k-means, refinement of the atoms jointly with "
                           "every projection's angles and shift against the projections",
        (_denoise, _background,
         Step("preprocess", f"{_PRE}.normalise:normalise_intensity", {"window": "support", "beam_current": True}),
         Step("preprocess", f"{_PRE}.align:align_projections", {"rounds": 5, "iterations": 10}),
         Step("reconstruct", f"{_REC}.angles:resire_refine_angles",
              {"iterations": 200, "step": 1.0, "refine_after": 60, "refine_every": 20, "rounds": 3,
               "half_set_rounds": 2}),
         _trace(), _classify(),
         Step("refine", f"{_TR}.refine:refine_positions", {"data": "raw", "iterations": 200,
                                                          "refine_geometry": True}))),
    "liao2026-pty": Method(
        "liao2026-pty", "Liao et al. 2026 on ptychographic phase projections (pAET): normalisation, RESIRE, "
                        "sub-voxel peak tracing at the elements' minimum distance, multi-step k-means, position "
                        "refinement against the phase projections (no Poisson denoising: phases are not counts; no "
                        "background step: the ptychography puts the vacuum phase at 0)",
        (Step("preprocess", f"{_PRE}.normalise:normalise_intensity", {}), _resire(200), _trace(), _classify(),
         _refine)),
    "yuan2022": Method(
        "yuan2022", "Yuan et al. 2022 (amorphous films, measured data): RESIRE 500 iterations, step 1, positivity, "
                    "local-maximum tracing at the authors' 2.0 Å minimum distance, k-means; no refinement against "
                    "the projections (an extended object's projections hold atoms outside the kept box)",
        (_resire(500), _trace(2.0), _classify())),
    "busch2026": Method(
        "busch2026", "Busch et al. 2026 style: Gaussian pre-filter, no alignment, SIRT 200 iterations, same tracing",
        (Step("preprocess", f"{_PRE}.denoise:denoise", {"method": "gaussian"}), _background,
         Step("reconstruct", f"{_REC}.sirt:sirt", {"iterations": 200}), _trace(), _classify())),
}
