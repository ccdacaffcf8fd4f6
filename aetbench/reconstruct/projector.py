"""Real-space projector pair (forward projection and its exact adjoint), numba.

Geometry follows :mod:`aetbench.geometry` exactly: a voxel at volume index
``(ix, iy, iz)`` sits at ``p = (i - n // 2)`` voxels on every axis (object
frame); its beam-frame position is ``R @ p`` with ``R`` from
:func:`aetbench.geometry.rotation_matrices`; the beam travels along beam z, so
the voxel lands at fractional image index ``(fx, fy) = (u + mx // 2 + sx,
v + my // 2 + sy)`` where ``(u, v)`` are the first two beam coordinates and
``(sx, sy)`` an optional in-plane shift of projection ``k`` [pixels].  Voxel
and pixel have the same edge (the tilt series' pixel size [Å]).

Forward model ``A`` (voxel-driven): each voxel's value is splatted onto the
four pixels around ``(fx, fy)`` with bilinear weights, so a projection is the
sum of voxel values along the beam (image units = volume units × voxels) and
the weighted centroid of a single voxel's footprint is exactly ``(fx, fy)``.
The back-projector ``Aᵀ`` gathers each voxel's value from the same four
pixels with the same weights: it is the exact transpose of ``A`` (pixels that
fall outside the image are dropped by both).

Two implementations share this definition:

* ``general`` — arbitrary Euler angles; forward is parallel over projections,
  back-projection parallel over the x planes of the volume.
* ``single_axis`` — rotations about the y axis only (``R[:, 1, :] = R[:, :, 1]
  = (0, 1, 0)``, e.g. phi = psi = 0) and no y shift: every y plane is an
  independent 2-D problem with linear interpolation along x only; y is made
  the contiguous (vector) axis internally.  It computes the same operator as
  ``general`` (tested) several times faster.  The forward kernel gives each
  thread one run of projections and walks the volume's x planes outermost, so
  a plane is read once for the whole run (at 290³ the volume no longer fits
  in cache: 1.9× faster than one projection at a time); where two
  neighbouring z rows land on the same two image rows it updates those rows
  once for both, in the unpaired order (bit-identical sums).  The back
  projection pairs z rows the same way.

A third, ``shear_warp`` (:mod:`aetbench.reconstruct.shearwarp`), handles any
Euler angles, per projection: where the object's y axis lands within ≈ 3° of
the image's (a measured or refined series: small phi and psi), the ``general``
operator itself, splatted along y rows in runs of constant footprint rows
(vectorised); elsewhere a shear of the volume's slices onto an intermediate
image, then a 2-D warp onto the detector, two bilinear steps instead of one
(same mass and centroid per voxel, a slightly wider footprint; its own exact
adjoint).

``method="auto"`` picks ``single_axis`` whenever the geometry allows it, else
``shear_warp``.  FP+BP of 128³ × 60 on 2 idle cores: see
``aetbench/benchmarks/test_bench_projector.py`` and the README.

Examples
--------
>>> import numpy as np
>>> vol = np.zeros((8, 8, 8), np.float32); vol[4, 4, 4] = 1.0
>>> img = forward_project(vol, [[0.0, 90.0, 0.0]])
>>> img.shape, float(img.sum())
((1, 8, 8), 1.0)
"""
from __future__ import annotations

import math

import numpy as np
import numba
from numba import njit, prange

from .. import geometry
from ..errors import AetbenchError
from ._kernels import _footprint, _z_range, gather4, nonzero_rows, splat4
from .shearwarp import shear_warp_back, shear_warp_forward, shear_warp_plan

__all__ = ["Projector", "forward_project", "back_project", "is_single_axis"]

_SINGLE_AXIS_TOL = 1e-9


# ----------------------------------------------------------------------------- kernels: general
# Images are handled with a one-pixel zero border (``pad[k, i + 1, j + 1] = img[k, i, j]``) so that
# every bilinear footprint with -1 <= fu < mx and -1 <= fv < my falls inside the buffer: one range
# test per voxel instead of four, and the border pixels (outside the image) are dropped by both
# operators, which keeps them exact transposes.


@njit(parallel=True, cache=True, fastmath=True, error_model="numpy", boundscheck=False)
def _forward_general(vol, R, shifts, pad):
    n = R.shape[0]
    nx, ny, nz = vol.shape
    mx, my = pad.shape[1] - 2, pad.shape[2] - 2
    cx, cy, cz = nx // 2, ny // 2, nz // 2
    for k in prange(n):
        r00, r01, r02 = R[k, 0, 0], R[k, 0, 1], R[k, 0, 2]
        r10, r11, r12 = R[k, 1, 0], R[k, 1, 1], R[k, 1, 2]
        ou = mx // 2 + shifts[k, 0]
        ov = my // 2 + shifts[k, 1]
        pk = pad[k]
        for ix in range(nx):
            x = ix - cx
            for iy in range(ny):
                y = iy - cy
                bu = r00 * x + r01 * y + ou
                bv = r10 * x + r11 * y + ov
                lu, hu = _z_range(bu, r02, mx, nz, cz)
                lv, hv = _z_range(bv, r12, my, nz, cz)
                for iz in range(max(lu, lv), min(hu, hv)):
                    val = vol[ix, iy, iz]
                    if val == 0.0:
                        continue
                    z = iz - cz
                    i0, j0, wu, wv = _footprint(bu + r02 * z, bv + r12 * z)
                    splat4(pk, i0, j0, i0 + np.uint64(1), j0 + np.uint64(1), wu, wv, val)


@njit(parallel=True, cache=True, fastmath=True, error_model="numpy", boundscheck=False)
def _back_general(pad, R, shifts, out):
    n = R.shape[0]
    nx, ny, nz = out.shape
    mx, my = pad.shape[1] - 2, pad.shape[2] - 2
    cx, cy, cz = nx // 2, ny // 2, nz // 2
    for ix in prange(nx):
        x = ix - cx
        for k in range(n):
            r00, r01, r02 = R[k, 0, 0], R[k, 0, 1], R[k, 0, 2]
            r10, r11, r12 = R[k, 1, 0], R[k, 1, 1], R[k, 1, 2]
            ou = mx // 2 + shifts[k, 0]
            ov = my // 2 + shifts[k, 1]
            pk = pad[k]
            for iy in range(ny):
                y = iy - cy
                bu = r00 * x + r01 * y + ou
                bv = r10 * x + r11 * y + ov
                o = out[ix, iy]
                lu, hu = _z_range(bu, r02, mx, nz, cz)
                lv, hv = _z_range(bv, r12, my, nz, cz)
                for iz in range(max(lu, lv), min(hu, hv)):
                    z = iz - cz
                    i0, j0, wu, wv = _footprint(bu + r02 * z, bv + r12 * z)
                    o[iz] += gather4(pk, i0, j0, i0 + np.uint64(1), j0 + np.uint64(1), wu, wv)


# ------------------------------------------------------------------------- kernels: single axis
# Volume held as volT[ix, iz, iy] (y contiguous); images [k, ix, iy].
# u = R00 * x + R02 * z (+ shift), v = y; image column = iy + dy.


_FAST = dict(parallel=True, cache=True, fastmath=True, error_model="numpy", boundscheck=False)


@njit(cache=True, inline="always")
def _footprint_1d(fu):  # pragma: no cover - numba
    """Image row ``i0 = floor(fu)`` and the linear weights of rows i0 and i0 + 1."""
    fi = math.floor(fu)
    w1 = np.float32(fu - fi)
    return int(fi), np.float32(1.0) - w1, w1


@njit(cache=True, inline="always")
def _splat_row(ok, i0, w0, w1, src, mx, c0, c1):  # pragma: no cover - numba
    """ok[i0, c0:c1] += w0 src, ok[i0 + 1, c0:c1] += w1 src (rows outside the image dropped)."""
    L = c1 - c0
    if i0 >= 0 and i0 + 1 < mx:
        d0 = ok[i0, c0:c1]
        d1 = ok[i0 + 1, c0:c1]
        for j in range(L):
            v = src[j]
            d0[j] += w0 * v
            d1[j] += w1 * v
    elif i0 >= 0 and i0 < mx:
        d0 = ok[i0, c0:c1]
        for j in range(L):
            d0[j] += w0 * src[j]
    elif i0 == -1:
        d1 = ok[0, c0:c1]
        for j in range(L):
            d1[j] += w1 * src[j]


@njit(cache=True, inline="always")
def _gather_row(o, img_k, i0, w0, w1, mx, c0, c1):  # pragma: no cover - numba
    """o += w0 img_k[i0, c0:c1] + w1 img_k[i0 + 1, c0:c1] (the transpose of :func:`_splat_row`)."""
    L = c1 - c0
    if i0 >= 0 and i0 + 1 < mx:
        s0 = img_k[i0, c0:c1]
        s1 = img_k[i0 + 1, c0:c1]
        for j in range(L):
            o[j] += w0 * s0[j] + w1 * s1[j]
    elif i0 >= 0 and i0 < mx:
        s0 = img_k[i0, c0:c1]
        for j in range(L):
            o[j] += w0 * s0[j]
    elif i0 == -1:
        s1 = img_k[0, c0:c1]
        for j in range(L):
            o[j] += w1 * s1[j]


# Both kernels take the volume's z rows two at a time: when both land on the same image rows i0, i0 + 1 (about
# half the pairs over a ±70° series), one pass over those rows serves both (back projection 1.2× faster at 128³
# and 290³; forward 1.3× at 128³).  The forward projection keeps the unpaired summation order, so its output is
# the same to the bit; alone it cost 50 % at 290³, where the volume streams from memory once per projection, which
# the per-thread runs of projections with x planes outermost remove.
@njit(**_FAST)
def _forward_single(volT, nonzero, r00, r02, su, dy, chunks, out):
    nx, nz, ny = volT.shape
    mx, my = out.shape[1], out.shape[2]
    cx, cz = nx // 2, nz // 2
    lo = max(0, -dy)
    hi = min(ny, my - dy)  # loops run over j >= 0 on row slices: provably non-negative indices vectorise
    nc = chunks.size - 1
    for c in prange(nc):  # each thread a run of projections; ix outermost, so a volume slab serves all of them
        for k in range(chunks[c], chunks[c + 1]):
            ok = out[k]
            for i in range(mx):  # zeroed here, by the thread that fills it (cache-warm, parallel)
                row = ok[i]
                for j in range(my):
                    row[j] = 0.0
        for ix in range(nx):
            x = ix - cx
            for k in range(chunks[c], chunks[c + 1]):
                ok = out[k]
                ou = mx // 2 + su[k]
                iz = 0
                while iz < nz:
                    if not nonzero[ix, iz]:
                        iz += 1
                        continue
                    ia, wa0, wa1 = _footprint_1d(r00[k] * x + r02[k] * (iz - cz) + ou)
                    if iz + 1 < nz and nonzero[ix, iz + 1]:
                        ib, wb0, wb1 = _footprint_1d(r00[k] * x + r02[k] * (iz + 1 - cz) + ou)
                        if ia == ib and ia >= 0 and ia + 1 < mx:
                            # both rows land on image rows ia, ia + 1: one read-modify-write of each serves both,
                            # in the order of the unpaired loop (row iz first), so the sums are the same to the bit
                            d0 = ok[ia, lo + dy:hi + dy]
                            d1 = ok[ia + 1, lo + dy:hi + dy]
                            sa = volT[ix, iz, lo:hi]
                            sb = volT[ix, iz + 1, lo:hi]
                            for j in range(hi - lo):
                                va = sa[j]
                                vb = sb[j]
                                t0 = d0[j] + wa0 * va
                                t1 = d1[j] + wa1 * va
                                d0[j] = t0 + wb0 * vb
                                d1[j] = t1 + wb1 * vb
                            iz += 2
                            continue
                    _splat_row(ok, ia, wa0, wa1, volT[ix, iz, lo:hi], mx, lo + dy, hi + dy)
                    iz += 1


@njit(**_FAST)
def _back_single(img, r00, r02, su, dy, outT):
    n = r00.shape[0]
    nx, nz, ny = outT.shape
    mx, my = img.shape[1], img.shape[2]
    cx, cz = nx // 2, nz // 2
    lo = max(0, -dy)
    hi = min(ny, my - dy)
    L = hi - lo
    for ix in prange(nx):
        x = ix - cx
        for iz in range(0, nz, 2):
            two = iz + 1 < nz
            for z in range(iz, iz + 2 if two else iz + 1):
                o = outT[ix, z]
                for j in range(ny):  # zeroed here (cache-warm, parallel), not by a serial fill
                    o[j] = 0.0
            oa = outT[ix, iz, lo:hi]
            ob = outT[ix, iz + 1 if two else iz, lo:hi]
            for k in range(n):
                ou = mx // 2 + su[k]
                ia, wa0, wa1 = _footprint_1d(r00[k] * x + r02[k] * (iz - cz) + ou)
                if two:
                    ib, wb0, wb1 = _footprint_1d(r00[k] * x + r02[k] * (iz + 1 - cz) + ou)
                    if ia == ib and ia >= 0 and ia + 1 < mx:
                        s0 = img[k, ia, lo + dy:hi + dy]
                        s1 = img[k, ia + 1, lo + dy:hi + dy]
                        for j in range(L):
                            p = s0[j]
                            q = s1[j]
                            oa[j] += wa0 * p + wa1 * q
                            ob[j] += wb0 * p + wb1 * q
                        continue
                    _gather_row(ob, img[k], ib, wb0, wb1, mx, lo + dy, hi + dy)
                _gather_row(oa, img[k], ia, wa0, wa1, mx, lo + dy, hi + dy)


# ------------------------------------------------------------------------------------ python API
def _as_angles(angles_deg) -> np.ndarray:
    a = np.asarray(angles_deg, dtype=float)
    if a.ndim == 1:
        a = geometry.single_axis_angles(a)
    if a.ndim != 2 or a.shape[1] != 3 or a.shape[0] == 0:
        raise AetbenchError(f"angles: expected Euler angles (n, 3) as (phi, theta, psi) in degrees, got shape {a.shape}")
    if not np.all(np.isfinite(a)):
        raise AetbenchError("angles: Euler angles [deg] must be finite")
    return a


def _is_single_axis_R(R: np.ndarray) -> bool:
    e = np.array([0.0, 1.0, 0.0])
    return bool(
        np.all(np.abs(R[:, 1, :] - e) < _SINGLE_AXIS_TOL) and np.all(np.abs(R[:, :, 1] - e) < _SINGLE_AXIS_TOL)
    )


def is_single_axis(angles_deg) -> bool:
    """True when every rotation is a tilt about the y axis (e.g. phi = psi = 0).

    Parameters
    ----------
    angles_deg : array_like, shape (n, 3)
        Euler angles (phi, theta, psi) [deg].
    """
    return _is_single_axis_R(geometry.rotation_matrices(_as_angles(angles_deg)))


class Projector:
    """A cached projector geometry: volume shape, image shape, angles, shifts.

    Parameters
    ----------
    volume_shape : tuple of 3 int
        ``(nx, ny, nz)`` of the volume, indexed ``[ix, iy, iz]``.
    angles_deg : array_like, shape (n, 3)
        Euler angles (phi, theta, psi) [deg] (:mod:`aetbench.geometry`);
        a 1-D array is read as single-axis tilts theta.
    image_shape : tuple of 2 int, optional
        ``(mx, my)`` of each projection; default ``(nx, ny)``.
    shifts : array_like, shape (n, 2), optional
        In-plane shift of each projection's content [pixels]: the object
        centre projects to image index ``(mx // 2 + sx, my // 2 + sy)``.
    method : {"auto", "general", "single_axis", "shear_warp"}
        Kernel choice; ``auto`` uses ``single_axis`` when the rotations are
        all about y and the y shifts are zero, else ``shear_warp``
        (:mod:`aetbench.reconstruct.shearwarp`: the general operator along y
        rows for near-axis projections, the shear-warp factorisation for the
        others); ``general`` is the voxel-driven splat of every voxel at its
        own footprint.

    Attributes
    ----------
    single_axis : bool
        Whether the fast single-axis kernels are in use.
    method : str
        The kernels in use: ``"single_axis"``, ``"shear_warp"`` or ``"general"``.
    """

    def __init__(self, volume_shape, angles_deg, image_shape=None, shifts=None, method: str = "auto"):
        vs = tuple(int(s) for s in volume_shape)
        if len(vs) != 3 or min(vs) < 1:
            raise AetbenchError(f"volume_shape: expected 3 positive voxel counts (nx, ny, nz), got {volume_shape}")
        self.volume_shape = vs
        self.angles = _as_angles(angles_deg)
        n = self.angles.shape[0]
        ims = (vs[0], vs[1]) if image_shape is None else tuple(int(s) for s in image_shape)
        if len(ims) != 2 or min(ims) < 1:
            raise AetbenchError(f"image_shape: expected 2 positive pixel counts (nx, ny), got {image_shape}")
        self.image_shape = ims
        sh = np.zeros((n, 2)) if shifts is None else np.asarray(shifts, dtype=float)
        if sh.shape != (n, 2) or not np.all(np.isfinite(sh)):
            raise AetbenchError(f"shifts: expected finite in-plane shifts ({n}, 2) in pixels, got shape {sh.shape}")
        self.shifts = np.ascontiguousarray(sh)
        self.R = np.ascontiguousarray(geometry.rotation_matrices(self.angles))
        fast_ok = _is_single_axis_R(self.R) and bool(np.all(sh[:, 1] == 0.0))
        if method == "auto":
            method = "single_axis" if fast_ok else "shear_warp"
        if method == "single_axis" and not fast_ok:
            raise AetbenchError("method: 'single_axis' needs rotations about y only (phi = psi = 0) and zero y shifts")
        if method not in ("general", "single_axis", "shear_warp"):
            raise AetbenchError(f"method: expected 'auto', 'general', 'single_axis' or 'shear_warp', got {method!r}")
        self.method = method
        self.single_axis = method == "single_axis"
        self._transposed = method in ("single_axis", "shear_warp")  # native layout [ix, iz, iy]
        self._plan = shear_warp_plan(self.R, self.shifts, vs, ims) if method == "shear_warp" else None
        self._r00 = np.ascontiguousarray(self.R[:, 0, 0])
        self._r02 = np.ascontiguousarray(self.R[:, 0, 2])
        self._su = np.ascontiguousarray(self.shifts[:, 0])
        self._dy = ims[1] // 2 - vs[1] // 2
        self._scratch: dict[str, np.ndarray] = {}

    def __len__(self) -> int:
        return self.angles.shape[0]

    @property
    def projections_shape(self) -> tuple[int, int, int]:
        """``(n, mx, my)`` of the projection stack."""
        return (len(self), *self.image_shape)

    # -- native layout: [ix, iz, iy] on the single-axis and shear-warp paths (y contiguous), [ix, iy, iz] otherwise.
    # Iterative solvers keep their volume in this layout to skip two transposes per iteration.
    def to_native(self, volume) -> np.ndarray:
        """Copy of ``volume`` [ix, iy, iz] as contiguous float32 in the kernels' native layout."""
        vol = np.asarray(volume)
        if vol.shape != self.volume_shape:
            raise AetbenchError(f"volume: expected shape {self.volume_shape} [ix, iy, iz], got {vol.shape}")
        if self._transposed:
            return np.ascontiguousarray(vol.transpose(0, 2, 1), dtype=np.float32)
        return np.array(vol, dtype=np.float32, order="C")

    def from_native(self, native: np.ndarray) -> np.ndarray:
        """Inverse of :meth:`to_native`: a contiguous float32 volume [ix, iy, iz]."""
        if self._transposed:
            return np.ascontiguousarray(native.transpose(0, 2, 1))
        return np.ascontiguousarray(native)

    def _chunks(self) -> np.ndarray:
        """Bounds of the runs of projections the single-axis forward kernel gives the threads (one run each)."""
        parts = max(1, min(len(self), numba.get_num_threads()))
        return np.linspace(0, len(self), parts + 1).round().astype(np.int64)

    def _buffer(self, name: str, shape, dtype=np.float32) -> np.ndarray:
        """A scratch array kept between calls (one per name), so iterative solvers do not allocate."""
        buf = self._scratch.get(name)
        if buf is None or buf.shape != tuple(shape) or buf.dtype != dtype:
            buf = np.empty(shape, dtype=dtype)
            self._scratch[name] = buf
        return buf

    @staticmethod
    def _check_out(out, shape) -> np.ndarray:
        if out is None:
            return np.empty(shape, dtype=np.float32)
        if out.shape != tuple(shape) or out.dtype != np.float32 or not out.flags.c_contiguous:
            raise AetbenchError(f"out: expected a C-contiguous float32 array of shape {tuple(shape)}, got "
                                f"{out.dtype} {out.shape}")
        return out

    def forward_native(self, native: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """:meth:`forward` of a volume already in native layout (contiguous float32).

        ``out`` (float32, shape :attr:`projections_shape`), when given, receives the
        projections and is returned: no allocation per call.
        """
        out = self._check_out(out, self.projections_shape)
        if self.single_axis:  # the kernel zeroes ``out``
            nonzero = self._buffer("nonzero", native.shape[:2], np.bool_)
            nonzero_rows(native, nonzero)  # all-zero y rows (common after positivity) are skipped
            _forward_single(native, nonzero, self._r00, self._r02, self._su, self._dy, self._chunks(), out)
            return out
        n, mx, my = self.projections_shape
        pad = self._buffer("pad", (n, mx + 2, my + 2))
        pad.fill(0.0)
        if self._plan is not None:
            shear_warp_forward(native, self._plan, pad, self._buffer)
        else:
            _forward_general(native, self.R, self.shifts, pad)
        out[...] = pad[:, 1:-1, 1:-1]
        return out

    def back_native(self, images, out: np.ndarray | None = None) -> np.ndarray:
        """:meth:`back` returning the volume in native layout (``out``, when given, is filled and returned)."""
        img = np.asarray(images)
        if img.shape != self.projections_shape:
            raise AetbenchError(f"images: expected shape {self.projections_shape} (n, nx, ny), got {img.shape}")
        nx, ny, nz = self.volume_shape
        if self.single_axis:
            outT = self._check_out(out, (nx, nz, ny))  # the kernel zeroes it
            _back_single(np.ascontiguousarray(img, dtype=np.float32), self._r00, self._r02, self._su, self._dy, outT)
            return outT
        out = self._check_out(out, (nx, nz, ny) if self._transposed else self.volume_shape)
        out.fill(0.0)
        pad = self._buffer("pad", (img.shape[0], img.shape[1] + 2, img.shape[2] + 2))
        pad[:, 0, :] = 0.0
        pad[:, -1, :] = 0.0
        pad[:, :, 0] = 0.0
        pad[:, :, -1] = 0.0
        pad[:, 1:-1, 1:-1] = img
        if self._plan is not None:
            shear_warp_back(pad, self._plan, out, self._buffer)
        else:
            _back_general(pad, self.R, self.shifts, out)
        return out

    def forward(self, volume) -> np.ndarray:
        """Project ``volume`` [ix, iy, iz] → float32 images (n, mx, my) (sums along the beam)."""
        return self.forward_native(self.to_native(volume))

    def back(self, images) -> np.ndarray:
        """Back-project images (n, mx, my) → float32 volume [ix, iy, iz]; exact transpose of :meth:`forward`."""
        return self.from_native(self.back_native(images))


def forward_project(volume, angles_deg, image_shape=None, shifts=None, method: str = "auto") -> np.ndarray:
    """Project a volume [ix, iy, iz] along the beam for each Euler angle triple.

    Parameters
    ----------
    volume : ndarray, shape (nx, ny, nz)
        Object-frame volume; voxel edge = pixel edge.
    angles_deg : array_like, shape (n, 3)
        Euler angles (phi, theta, psi) [deg].
    image_shape : tuple of 2 int, optional
        Image size (mx, my); default (nx, ny).
    shifts : array_like, shape (n, 2), optional
        In-plane shifts [pixels] (see :class:`Projector`).
    method : {"auto", "general", "single_axis", "shear_warp"}

    Returns
    -------
    ndarray, float32, shape (n, mx, my)
        Projections indexed ``[k, ix, iy]``.
    """
    vol = np.asarray(volume)
    if vol.ndim != 3:
        raise AetbenchError(f"volume: expected a 3-D array [ix, iy, iz], got shape {vol.shape}")
    return Projector(vol.shape, angles_deg, image_shape, shifts, method).forward(vol)


def back_project(images, angles_deg, volume_shape=None, shifts=None, method: str = "auto") -> np.ndarray:
    """Back-project images (n, mx, my): the exact adjoint of :func:`forward_project`.

    Parameters
    ----------
    images : ndarray, shape (n, mx, my)
    angles_deg : array_like, shape (n, 3)
        Euler angles (phi, theta, psi) [deg].
    volume_shape : tuple of 3 int, optional
        Default ``(mx, my, mx)``.
    shifts : array_like, shape (n, 2), optional
        In-plane shifts [pixels].
    method : {"auto", "general", "single_axis", "shear_warp"}

    Returns
    -------
    ndarray, float32, shape volume_shape
    """
    img = np.asarray(images)
    if img.ndim != 3:
        raise AetbenchError(f"images: expected (n, nx, ny), got shape {img.shape}")
    if volume_shape is None:
        volume_shape = (img.shape[1], img.shape[2], img.shape[1])
    return Projector(volume_shape, angles_deg, img.shape[1:], shifts, method).back(img)
