"""aetbench.preprocess — TiltSeries → TiltSeries stages.

* :func:`subtract_background` (background.py) — robust background level, subtracted.
* :func:`denoise` (denoise.py, the dispatcher; noise model and GAT in gat.py, the numba block-matching filter
  in blockmatch.py) — Poisson–Gaussian noise estimate, GAT, block-matching /
  NLM / Gaussian / optional BM3D denoising, exact unbiased inverse.
* :func:`normalise_intensity` (normalise.py) — equal total intensity per projection.
* :func:`align_centre_of_mass` (align.py) — sub-pixel centre-of-mass alignment.
"""
from .align import align_centre_of_mass, centre_of_mass, shift_images
from .background import estimate_background, subtract_background
from .denoise import bm3d_like, denoise, estimate_noise_params, gat_forward, gat_inverse
from .normalise import normalise_intensity

__all__ = [
    "subtract_background", "estimate_background", "denoise", "estimate_noise_params", "gat_forward",
    "gat_inverse", "bm3d_like", "normalise_intensity", "align_centre_of_mass", "centre_of_mass", "shift_images",
]
