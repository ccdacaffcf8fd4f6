"""aetbench.reconstruct: projector pair and tomographic reconstruction (RESIRE, SIRT, FBP).

All functions take a :class:`aetbench.types.TiltSeries` and return a
:class:`aetbench.types.Volume` on the voxel grid of :mod:`aetbench.geometry`
(voxel size = pixel size [Å], origin at index n // 2).
"""
from .fbp import FILTERS, fbp, fbp_filter
from .projector import Projector, back_project, forward_project, is_single_axis
from .resire import resire
from .sirt import sirt

__all__ = ["Projector", "forward_project", "back_project", "is_single_axis", "resire", "sirt", "fbp",
           "fbp_filter", "FILTERS"]
