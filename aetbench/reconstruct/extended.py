"""Extended objects: reconstructing a film (or any sample) wider than the field of view.

A film fills the field of view at every tilt and reaches beyond it: the rays that cross the field at a high tilt
also cross parts of the film outside the (nx, ny, nz) box above the field.  A reconstruction confined to that box
must put their mass somewhere inside it (edge artefacts).  As in the authors' RESIRE (``extenedobject = true``,
Yuan et al., Nat. Mater. 2022), the volume is widened so that **every ray through the field of view, at every
tilt, stays inside the volume over the sample's thickness nz**, reconstructed there, and only the central
(nx, ny, nz) box is kept.

Rule of :func:`extended_shape`: a ray through image pixel (u, v) [pixels, from the image centre n // 2] at
orientation R (object → beam, :mod:`aetbench.geometry`) is ``r(t) = Rᵀ (u, v, t)``.  For the four corner pixel
centres of the image and the two faces ``z = −(nz // 2)`` and ``z = nz − 1 − nz // 2`` of the slab, the ray's
object-frame (x, y) is computed; the widened size per axis is ``ceil(2 · max |x| + 1)`` (at least the image size),
as in the authors' ``objectsize.m`` (N is the smallest size whose voxel offsets −(N // 2) … N − 1 − N // 2 cover
the rays, so a zero tilt keeps the image size).  For a single-axis series of half-width h = nx // 2 this is
``2 (h / cos θ + (nz // 2) |tan θ|) + 1`` along x at the largest |θ|.  The crop keeps voxel ``N // 2`` of the
widened volume at voxel ``n // 2`` of the result, so the crop is centred on the rotation centre like every
aetbench volume.

:func:`reconstruct_step` is the one place the pipeline calls a reconstruction through: with ``extended`` (or
``ts.metadata["extended_object"]``, written by the ``measured`` input kind) it widens, reconstructs and crops;
otherwise it calls the method as is.  Every reconstruction method that takes ``volume_shape`` (RESIRE, SIRT, FBP
and any later one) gets extended-object geometry this way.
"""
from __future__ import annotations

import math
from dataclasses import replace

import numpy as np

from .. import geometry
from ..errors import AetbenchError
from ..types import TiltSeries, Volume

__all__ = ["extended_shape", "crop_centre", "reconstruct_extended", "reconstruct_step"]


def extended_shape(angles_deg, image_shape, nz: int | None = None) -> tuple[int, int, int]:
    """Volume shape (NX, NY, nz) [voxels] that holds every ray through the field at every tilt over thickness nz.

    Parameters
    ----------
    angles_deg : array_like (n, 3)
        Euler angles (phi, theta, psi) [deg].
    image_shape : (int, int)
        Image size (nx, ny) [pixels].
    nz : int, optional
        Thickness of the reconstructed slab [voxels]; default nx (the authors' ``obj_dimz = 1``).

    Returns
    -------
    (int, int, int)

    Examples
    --------
    >>> extended_shape([[0, -63.0, 0], [0, 55.9, 0]], (131, 61))
    (543, 61, 131)
    >>> extended_shape([[0, 0, 0]], (64, 32))
    (64, 32, 64)
    """
    angles = np.atleast_2d(np.asarray(angles_deg, dtype=float))
    try:
        nx, ny = (int(s) for s in image_shape)
    except (TypeError, ValueError):
        raise AetbenchError(f"image_shape: expected (nx, ny) pixels, got {image_shape!r}") from None
    nz = nx if nz is None else int(nz)
    if min(nx, ny, nz) < 1:
        raise AetbenchError(f"extended_shape: expected positive sizes, got image {image_shape}, nz {nz}")
    R = geometry.rotation_matrices(angles)  # (n, 3, 3), r_beam = R r_obj
    us = np.array([-(nx // 2), nx - 1 - nx // 2], dtype=float)
    vs = np.array([-(ny // 2), ny - 1 - ny // 2], dtype=float)
    zs = np.array([-(nz // 2), nz - 1 - nz // 2], dtype=float)
    u, v, z = (a.ravel() for a in np.meshgrid(us, vs, zs, indexing="ij"))
    # r = u Rᵀe1 + v Rᵀe2 + t Rᵀe3 = u R[0] + v R[1] + t R[2]; choose t so that r_z = z
    r0, r1, r2 = R[:, 0, :], R[:, 1, :], R[:, 2, :]
    if np.any(np.abs(r2[:, 2]) < 1e-6):
        raise AetbenchError("extended_shape: a projection looks along the slab (|tilt| = 90 deg); "
                            "an extended object needs |tilt| < 90 deg")
    t = (z[None, :] - u[None, :] * r0[:, 2:3] - v[None, :] * r1[:, 2:3]) / r2[:, 2:3]
    x = u[None] * r0[:, 0:1] + v[None] * r1[:, 0:1] + t * r2[:, 0:1]
    y = u[None] * r0[:, 1:2] + v[None] * r1[:, 1:2] + t * r2[:, 1:2]
    return _fit(x, nx), _fit(y, ny), nz


def _fit(c: np.ndarray, n: int) -> int:
    """Smallest size N ≥ n whose voxel offsets ``-(N // 2) … N - 1 - N // 2`` cover the coordinates ``c``."""
    a = max(int(math.ceil(-float(c.min()) - 1e-6)), n // 2)
    b = max(int(math.ceil(float(c.max()) - 1e-6)), n - 1 - n // 2)
    N = a + b + 1
    while N // 2 < a or N - 1 - N // 2 < b:
        N += 1
    return N


def crop_centre(data: np.ndarray, shape) -> np.ndarray:
    """The central ``shape`` box of ``data``: index ``N // 2`` of ``data`` becomes index ``n // 2``."""
    full = np.asarray(data.shape)
    shape = np.asarray(shape, dtype=int)
    start = full // 2 - shape // 2
    if np.any(start < 0) or np.any(start + shape > full):
        raise AetbenchError(f"crop: box {tuple(shape)} does not fit in {tuple(full)}")
    return np.ascontiguousarray(data[tuple(slice(a, a + n) for a, n in zip(start, shape))])


def reconstruct_extended(fn, ts: TiltSeries, *, volume_shape=None, **params) -> Volume:
    """Reconstruct ``ts`` with ``fn`` on the widened volume of :func:`extended_shape`, then crop the centre.

    Parameters
    ----------
    fn : callable
        A reconstruction ``fn(ts, volume_shape=..., **params) -> Volume`` (RESIRE, SIRT, FBP ...).
    ts : TiltSeries
        Images (n, nx, ny), Euler angles [deg], pixel size [Å].
    volume_shape : tuple of 3 int, optional
        The kept box (nx, ny, nz); default (nx, ny, nx).  Its nz is the slab thickness used for widening.

    Returns
    -------
    Volume
        The central box, ``metadata["extended_shape"]`` = the widened shape.
    """
    nx, ny = ts.shape
    keep = (nx, ny, nx) if volume_shape is None else tuple(int(s) for s in volume_shape)
    if len(keep) != 3 or min(keep) < 1:
        raise AetbenchError(f"volume_shape: expected 3 positive voxel counts (nx, ny, nz), got {volume_shape!r}")
    big = extended_shape(ts.angles, (max(nx, keep[0]), max(ny, keep[1])), nz=keep[2])
    big = (max(big[0], keep[0]), max(big[1], keep[1]), keep[2])
    vol = fn(ts, volume_shape=big, **params)
    meta = {**vol.metadata, "extended_shape": list(big)}
    return replace(vol, data=crop_centre(vol.data, keep), metadata=meta)


def reconstruct_step(fn, ts: TiltSeries, *, extended: bool | None = None, **params) -> Volume:
    """Call reconstruction ``fn`` on ``ts``; widened and cropped when the object is extended.

    ``extended=None`` (default) takes ``ts.metadata["extended_object"]`` (set by the ``measured`` input kind from
    the scenario's ``[[input]] extended``); ``True``/``False`` force it.
    """
    if extended is None:
        extended = bool(ts.metadata.get("extended_object", False)) if isinstance(ts.metadata, dict) else False
    if extended:
        return reconstruct_extended(fn, ts, **params)
    return fn(ts, **params)
