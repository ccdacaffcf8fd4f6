"""GPU backend (numba.cuda) of the projector pair and RESIRE, selected by ``--device gpu``.

The kernels compute the operator of :mod:`aetbench.reconstruct.projector`
(bilinear voxel splat / gather on a one-pixel zero-padded image, same
geometry, same ``_EDGE`` rule) on the general ``[ix, iy, iz]`` layout, one
thread per voxel:

* forward: thread (voxel, projection) adds its four bilinear shares with
  float32 atomics (the summation order differs from the CPU: equal to float32
  round-off);
* back: thread (voxel) gathers from every projection (no atomics), fused with
  the RESIRE update ``x ← max(0, y − t · Aᵀ r)``.

RESIRE keeps every array on the device; only the R-factor (two scalars per
iteration) comes back.  Without a CUDA device, numba's simulator
(``NUMBA_ENABLE_CUDASIM=1``) runs the same kernels in Python (tiny sizes
only): that is how the tests check them against the CPU path.

:func:`set_default_device` is how the pipeline passes ``--device``:
:func:`aetbench.reconstruct.resire.resire` with ``device=None`` uses it.
"""
from __future__ import annotations

import math
import os

import numpy as np

from ..errors import AetbenchError

__all__ = ["available", "set_default_device", "default_device", "GpuProjector", "resire_gpu"]

_EDGE = 1e-3  # px: same rule as _kernels._EDGE
_TPB = 32 if os.environ.get("NUMBA_ENABLE_CUDASIM") == "1" else 128  # threads per block (the simulator runs
#                                                                       each thread as a Python thread)
_default = os.environ.get("AETBENCH_DEVICE", "cpu")
_kernels = None
cuda = None  # numba.cuda, imported on first use (keeps CPU-only imports light)


def set_default_device(device: str) -> None:
    """Device (``"cpu"`` or ``"gpu"``) used by reconstructions called with ``device=None``."""
    global _default
    if device not in ("cpu", "gpu"):
        raise AetbenchError(f"device: expected 'cpu' or 'gpu', got {device!r}")
    _default = device


def default_device() -> str:
    """The device set by :func:`set_default_device` (or ``$AETBENCH_DEVICE``, default ``"cpu"``)."""
    return _default


def available() -> bool:
    """True when numba.cuda can run kernels (a CUDA GPU, or the simulator ``NUMBA_ENABLE_CUDASIM=1``)."""
    try:
        from numba import cuda

        return bool(cuda.is_available())
    except Exception:  # noqa: BLE001 - no driver, no toolkit: simply unavailable
        return False


def _require():
    if not available():
        raise AetbenchError("device: 'gpu' requested but numba.cuda finds no usable CUDA GPU "
                            "(run with --device cpu, or set NUMBA_ENABLE_CUDASIM=1 for the slow simulator)")
    return _build()


def _numpy_names_for_numba_cuda() -> None:
    """Give NumPy back the aliases that NumPy 2.5 removed and numba-cuda still registers at its first kernel
    compile (``np.row_stack``: on an H200 image with numba-cuda 0.x and NumPy 2.5.2 every kernel compile failed
    with ``AttributeError: module 'numpy' has no attribute 'row_stack'``).  Each alias is set only where NumPy
    lacks it, to the function it was an alias of."""
    for old, new in (("row_stack", "vstack"), ("in1d", "isin"), ("trapz", "trapezoid")):
        if old not in np.__dict__ and hasattr(np, new):
            setattr(np, old, getattr(np, new))


def _build():
    """Compile (once) and return the kernels as a namespace."""
    global _kernels, cuda
    if _kernels is not None:
        return _kernels
    from types import SimpleNamespace

    _numpy_names_for_numba_cuda()

    from numba import cuda  # a module global: numba's simulator swaps the ``cuda`` the kernels see

    @cuda.jit
    def forward(vol, R, shifts, pad):
        v = cuda.blockIdx.x * cuda.blockDim.x + cuda.threadIdx.x
        k = cuda.blockIdx.y
        nx, ny, nz = vol.shape
        if v >= nx * ny * nz:
            return
        ix = v // (ny * nz)
        iy = (v // nz) % ny
        iz = v % nz
        val = vol[ix, iy, iz]
        if val == 0.0:
            return
        lo = -1.0 + _EDGE
        mx = pad.shape[1] - 2
        my = pad.shape[2] - 2
        x = float(ix - nx // 2)
        y = float(iy - ny // 2)
        z = float(iz - nz // 2)
        fu = R[k, 0, 0] * x + R[k, 0, 1] * y + R[k, 0, 2] * z + (mx // 2 + shifts[k, 0])
        fv = R[k, 1, 0] * x + R[k, 1, 1] * y + R[k, 1, 2] * z + (my // 2 + shifts[k, 1])
        if not (fu >= lo and fu <= mx - _EDGE and fv >= lo and fv <= my - _EDGE):  # the CPU kernels' range
            return
        gu = fu + 1.0
        gv = fv + 1.0
        i0 = int(gu)
        j0 = int(gv)
        wu = np.float32(gu - i0)
        wv = np.float32(gv - j0)
        a1 = val * wu
        a0 = val - a1
        b0 = a0 * wv
        b1 = a1 * wv
        cuda.atomic.add(pad, (k, i0, j0), a0 - b0)
        cuda.atomic.add(pad, (k, i0, j0 + 1), b0)
        cuda.atomic.add(pad, (k, i0 + 1, j0), a1 - b1)
        cuda.atomic.add(pad, (k, i0 + 1, j0 + 1), b1)

    @cuda.jit
    def back_step(pad, R, shifts, y_in, dt, mode, out):
        """mode 0: out = Aᵀ pad; mode 1: out = y − dt·Aᵀ pad; mode 2: out = max(0, y − dt·Aᵀ pad)."""
        v = cuda.blockIdx.x * cuda.blockDim.x + cuda.threadIdx.x
        nx, ny, nz = out.shape
        if v >= nx * ny * nz:
            return
        ix = v // (ny * nz)
        iy = (v // nz) % ny
        iz = v % nz
        lo = -1.0 + _EDGE
        mx = pad.shape[1] - 2
        my = pad.shape[2] - 2
        x = float(ix - nx // 2)
        y = float(iy - ny // 2)
        z = float(iz - nz // 2)
        acc = np.float32(0.0)
        for k in range(R.shape[0]):
            fu = R[k, 0, 0] * x + R[k, 0, 1] * y + R[k, 0, 2] * z + (mx // 2 + shifts[k, 0])
            fv = R[k, 1, 0] * x + R[k, 1, 1] * y + R[k, 1, 2] * z + (my // 2 + shifts[k, 1])
            if not (fu >= lo and fu <= mx - _EDGE and fv >= lo and fv <= my - _EDGE):
                continue
            gu = fu + 1.0
            gv = fv + 1.0
            i0 = int(gu)
            j0 = int(gv)
            wu = np.float32(gu - i0)
            wv = np.float32(gv - j0)
            s0 = pad[k, i0, j0] + wv * (pad[k, i0, j0 + 1] - pad[k, i0, j0])
            s1 = pad[k, i0 + 1, j0] + wv * (pad[k, i0 + 1, j0 + 1] - pad[k, i0 + 1, j0])
            acc += s0 + wu * (s1 - s0)
        if mode == 0:
            out[ix, iy, iz] = acc
        else:
            r = y_in[ix, iy, iz] - dt * acc
            if mode == 2 and r < 0.0:
                r = np.float32(0.0)
            out[ix, iy, iz] = r

    @cuda.jit
    def zero(a):
        i = cuda.grid(1)
        if i < a.size:
            a[i] = 0.0

    @cuda.jit
    def residual(pad_ax, pad_prev, b, beta, pad_r, sums):
        """r = A x − b (interior of pad_ax); pad_r = r + β (A x − A x_prev); sums += (Σ|r|, Σr²)."""
        n, mx, my = b.shape
        s_abs = 0.0
        s_sq = 0.0
        # grid-stride loop: one pair of atomics per thread, not per pixel
        for t in range(cuda.grid(1), n * mx * my, cuda.gridsize(1)):
            k = t // (mx * my)
            i = (t // my) % mx
            j = t % my
            ax = pad_ax[k, i + 1, j + 1]
            r = ax - b[k, i, j]
            pad_r[k, i + 1, j + 1] = r + beta * (ax - pad_prev[k, i + 1, j + 1])
            s_abs += abs(np.float64(r))
            s_sq += np.float64(r) * np.float64(r)
        cuda.atomic.add(sums, 0, s_abs)
        cuda.atomic.add(sums, 1, s_sq)

    @cuda.jit
    def momentum(x, x_prev, beta, y):
        """y = x + β (x − x_prev); x_prev = x (flat arrays)."""
        i = cuda.grid(1)
        if i < x.size:
            xi = x[i]
            y[i] = xi + beta * (xi - x_prev[i])
            x_prev[i] = xi

    _kernels = SimpleNamespace(forward=forward, back_step=back_step, zero=zero, residual=residual,
                               momentum=momentum, cuda=cuda)
    return _kernels


def _blocks(n: int) -> int:
    return max(1, (n + _TPB - 1) // _TPB)


class GpuProjector:
    """The projector pair of :class:`aetbench.reconstruct.projector.Projector` on a CUDA device.

    Parameters are those of :class:`~aetbench.reconstruct.projector.Projector`
    (``volume_shape`` ``(nx, ny, nz)``, Euler ``angles_deg`` [deg],
    ``image_shape``, ``shifts`` [pixels]); arrays are ``[ix, iy, iz]`` and
    ``(n, mx, my)`` float32, host (numpy) in, host out.
    """

    def __init__(self, volume_shape, angles_deg, image_shape=None, shifts=None):
        from .projector import Projector

        cpu = Projector(volume_shape, angles_deg, image_shape, shifts, method="general")  # validation, R
        self.volume_shape = cpu.volume_shape
        self.projections_shape = cpu.projections_shape
        self.K = _require()
        self.R = self.K.cuda.to_device(np.ascontiguousarray(cpu.R, dtype=np.float64))
        self.shifts = self.K.cuda.to_device(np.ascontiguousarray(cpu.shifts, dtype=np.float64))

    def __len__(self) -> int:
        return self.projections_shape[0]

    @property
    def n_voxels(self) -> int:
        return int(np.prod(self.volume_shape))

    def new_pad(self):
        n, mx, my = self.projections_shape
        pad = self.K.cuda.device_array((n, mx + 2, my + 2), dtype=np.float32)
        self.K.zero[_blocks(pad.size), _TPB](pad.reshape(pad.size))
        return pad

    def forward_device(self, vol_dev, pad_dev) -> None:
        """``pad_dev`` (zero-padded (n, mx+2, my+2)) ← A vol (zeroed here first)."""
        self.K.zero[_blocks(pad_dev.size), _TPB](pad_dev.reshape(pad_dev.size))
        self.K.forward[(_blocks(self.n_voxels), len(self)), _TPB](vol_dev, self.R, self.shifts, pad_dev)

    def back_device(self, pad_dev, out_dev, y_dev=None, dt: float = 0.0, positivity: bool = False) -> None:
        """``out ← Aᵀ pad`` or, with ``y_dev``, ``out ← [max(0,)] y − dt · Aᵀ pad`` (the RESIRE step)."""
        mode = 0 if y_dev is None else (2 if positivity else 1)
        self.K.back_step[_blocks(self.n_voxels), _TPB](pad_dev, self.R, self.shifts,
                                                      out_dev if y_dev is None else y_dev, np.float32(dt), mode,
                                                      out_dev)

    def forward(self, volume) -> np.ndarray:
        """Host volume [ix, iy, iz] → host float32 projections (n, mx, my)."""
        vol = np.ascontiguousarray(volume, dtype=np.float32)
        if vol.shape != self.volume_shape:
            raise AetbenchError(f"volume: expected shape {self.volume_shape} [ix, iy, iz], got {vol.shape}")
        pad = self.new_pad()
        self.forward_device(self.K.cuda.to_device(vol), pad)
        return np.ascontiguousarray(pad.copy_to_host()[:, 1:-1, 1:-1])

    def back(self, images) -> np.ndarray:
        """Host images (n, mx, my) → host float32 volume [ix, iy, iz] (the adjoint)."""
        img = np.asarray(images, dtype=np.float32)
        if img.shape != self.projections_shape:
            raise AetbenchError(f"images: expected shape {self.projections_shape} (n, nx, ny), got {img.shape}")
        n, mx, my = img.shape
        pad = np.zeros((n, mx + 2, my + 2), np.float32)
        pad[:, 1:-1, 1:-1] = img
        out = self.K.cuda.device_array(self.volume_shape, dtype=np.float32)
        self.back_device(self.K.cuda.to_device(pad), out)
        return out.copy_to_host()


def resire_gpu(b: np.ndarray, angles_deg, volume_shape, x0: np.ndarray, *, iterations: int, dt: float,
               positivity: bool, accelerate: str, b_abs_sum: float, iters=None, dts=None):
    """RESIRE iterations on the device (see :func:`aetbench.reconstruct.resire.resire`).

    ``b`` (n, mx, my) float32 measured images, ``x0`` float32 start ``[ix, iy, iz]``,
    ``dt`` the step [1/(n_proj·n_z) units already applied], ``dts`` optional steps per iteration (the
    ``"cyclic"`` schedule; they replace ``dt``).  Returns the volume
    (host), the R-factor history and the number of momentum restarts.
    """
    P = GpuProjector(volume_shape, angles_deg, image_shape=b.shape[1:])
    cuda = P.K.cuda
    nimg = b.size
    d_b = cuda.to_device(np.ascontiguousarray(b, dtype=np.float32))
    x = cuda.to_device(np.ascontiguousarray(x0, dtype=np.float32))
    y = cuda.to_device(np.ascontiguousarray(x0, dtype=np.float32))
    x_prev = cuda.to_device(np.ascontiguousarray(x0, dtype=np.float32))
    pad_ax, pad_prev, pad_r = P.new_pad(), P.new_pad(), P.new_pad()
    sums = cuda.device_array(2, dtype=np.float64)
    nesterov = accelerate == "nesterov"

    def residual(beta):
        P.K.zero[1, 2](sums)
        P.K.residual[min(_blocks(nimg), 512), _TPB](pad_ax, pad_prev, d_b, np.float32(beta), pad_r, sums)
        s = sums.copy_to_host()
        return float(s[0]), float(s[1])

    P.forward_device(x, pad_ax)
    P.K.zero[_blocks(pad_prev.size), _TPB](pad_prev.reshape(pad_prev.size))
    _, f_prev = residual(0.0)
    history, restarts, t = [], 0, 1.0
    nvox = P.n_voxels
    for i in (iters if iters is not None else range(iterations)):
        P.back_device(pad_r, x, y_dev=y if nesterov else x, dt=dt if dts is None else float(dts[i]),
                      positivity=positivity)
        pad_ax, pad_prev = pad_prev, pad_ax
        P.forward_device(x, pad_ax)
        if nesterov:
            # the momentum of this step is known only after the restart test, which needs r = A x − b
            abs_sum, f = residual(0.0)
            if f > f_prev:
                t, restarts = 1.0, restarts + 1
            t_next = 0.5 * (1.0 + math.sqrt(1.0 + 4.0 * t * t))
            beta = (t - 1.0) / t_next
            t = t_next
            if beta != 0.0:
                _ = residual(beta)  # pad_r = r + β (A x − A x_prev)
            P.K.momentum[_blocks(nvox), _TPB](x.reshape(nvox), x_prev.reshape(nvox), np.float32(beta),
                                              y.reshape(nvox))
        else:
            abs_sum, f = residual(0.0)
        f_prev = f
        history.append(abs_sum / b_abs_sum if b_abs_sum > 0 else float("nan"))
    return x.copy_to_host(), history, restarts
