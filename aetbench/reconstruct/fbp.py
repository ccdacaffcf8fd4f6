"""Filtered back-projection (FBP) with the real-space back-projector.

Each image is filtered along its x axis (image axis 1, perpendicular to the y
tilt axis) with the band-limited ramp filter of Kak & Slaney (built in real
space, so the DC term is exact), optionally apodised, then back-projected with
:meth:`Projector.back` and weighted by the angular interval of each
projection [rad].  For a full 180° single-axis scheme a uniform object of
value ``c`` per voxel is reconstructed with value ``c``.
"""
from __future__ import annotations

import time

import numpy as np

from ..errors import AetbenchError
from ..types import TiltSeries, Volume
from .resire import check_tilt_series, default_volume_shape, make_projector

__all__ = ["fbp", "fbp_filter", "FILTERS"]

FILTERS = ("ramp", "hann", "shepp-logan", "cosine")


def fbp_filter(n: int, name: str = "ramp") -> np.ndarray:
    """Frequency response of the FBP filter for an FFT of length ``n`` (``np.fft.fftfreq`` order).

    Parameters
    ----------
    n : int
        FFT length in pixels (the padded image width).
    name : {"ramp", "hann", "shepp-logan", "cosine"}
        Apodisation of the ramp; ``f`` below is in cycles/pixel (|f| ≤ 0.5):
        hann ``½(1 + cos 2πf)``, shepp-logan ``sinc(f)``, cosine ``cos πf``.

    Returns
    -------
    ndarray, shape (n,)
        Real filter; ≈ |f| [cycles/pixel] times the apodisation.
    """
    if name not in FILTERS:
        raise AetbenchError(f"filter: expected one of {', '.join(FILTERS)}, got {name!r}")
    k = np.fft.fftfreq(n) * n  # integer offsets, wrapped
    h = np.zeros(n)
    h[0] = 0.25
    odd = (np.abs(k) % 2) == 1
    h[odd] = -1.0 / (np.pi * k[odd]) ** 2
    H = np.real(np.fft.fft(h))
    f = np.fft.fftfreq(n)
    if name == "hann":
        H *= 0.5 * (1.0 + np.cos(2.0 * np.pi * f))
    elif name == "shepp-logan":
        H *= np.sinc(f)
    elif name == "cosine":
        H *= np.cos(np.pi * f)
    return H


def _angular_weights(angles: np.ndarray, single_axis: bool) -> np.ndarray:
    """Angular interval [rad] owned by each projection (midpoint rule on theta)."""
    n = angles.shape[0]
    if not single_axis or n < 2:
        return np.full(n, np.pi / n)
    t = np.deg2rad(angles[:, 1])
    order = np.argsort(t)
    ts = t[order]
    d = np.diff(ts)
    w = np.empty(n)
    w[1:-1] = 0.5 * (d[:-1] + d[1:])
    w[0] = d[0]
    w[-1] = d[-1]
    out = np.empty(n)
    out[order] = w
    return out


def fbp(ts: TiltSeries, *, filter: str = "ramp", volume_shape=None, progress: bool = False) -> Volume:
    """Filtered back-projection of a tilt series.

    Parameters
    ----------
    ts : TiltSeries
        Images (n, nx, ny) in linear units, Euler angles [deg], pixel size [Å].
    filter : {"ramp", "hann", "shepp-logan", "cosine"}
        Ramp filter and its apodisation (see :func:`fbp_filter`).
    volume_shape : tuple of 3 int, optional
        ``(nx, ny, nz)``; default ``(nx, ny, nx)``.
    progress : bool
        Accepted for symmetry with the iterative methods (FBP is one pass).

    Returns
    -------
    Volume
        float32 ``[ix, iy, iz]``, ``voxel_size = ts.pixel_size`` [Å].

    Notes
    -----
    The filter always acts along image x (axis 1 of the (n, nx, ny) stack),
    which is exact for single-axis tilts about y.  For other Euler angles
    (phi or psi ≠ 0) the same x filter is applied and each projection is
    weighted by π / n: the result is then only an approximate FBP.
    Projections are zero-padded to ≥ 2·nx before filtering.
    """
    b = check_tilt_series(ts)
    vs = default_volume_shape(ts, volume_shape)
    proj = make_projector(ts, vs)
    t0 = time.perf_counter()
    nx = b.shape[1]
    npad = int(2 ** np.ceil(np.log2(max(2 * nx, 2))))
    H = fbp_filter(npad, filter)
    F = np.fft.rfft(b, n=npad, axis=1)
    F *= H[: F.shape[1]][None, :, None]
    q = np.fft.irfft(F, n=npad, axis=1)[:, :nx, :]
    w = _angular_weights(ts.angles, proj.single_axis)
    q *= w[:, None, None]
    x = proj.back(np.ascontiguousarray(q, dtype=np.float32))
    meta = {"method": "fbp", "filter": filter, "single_axis_projector": proj.single_axis,
            "seconds": time.perf_counter() - t0}
    return Volume(x, ts.pixel_size, meta)
