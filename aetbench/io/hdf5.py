"""HDF5 storage of tilt series and volumes (h5py), written atomically.

Layout of a tilt-series file::

    /images        (n, nx, ny)  float or int   projections [ix, iy]
    /angles        (n, 3)       float          Euler (phi, theta, psi) [deg]
    attrs: kind="aetbench.TiltSeries", pixel_size_A, dose_e_per_A2 (NaN = none),
           metadata_json

A volume file has ``/data`` (nx, ny, nz) and attrs ``kind="aetbench.Volume"``,
``voxel_size_A``, ``origin_A`` (3,) [Å] (position of voxel ``n // 2``; absent = zeros), ``metadata_json``.
"""
from __future__ import annotations

import io
import json
import math

import numpy as np

from ..errors import AetbenchError
from ..types import TiltSeries, Volume, register_file_io
from .files import atomic_write_path

__all__ = ["write_tilt_series", "read_tilt_series", "write_volume", "read_volume", "tilt_series_to_bytes",
           "tilt_series_from_bytes"]


def _json_default(o):
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, np.generic):
        return o.item()
    return str(o)


def _write_ts(ts, target) -> None:
    import h5py

    with h5py.File(target, "w") as f:
        f.create_dataset("images", data=ts.images, compression="gzip", compression_opts=1)
        f.create_dataset("angles", data=ts.angles)
        f.attrs["kind"] = "aetbench.TiltSeries"
        f.attrs["pixel_size_A"] = ts.pixel_size
        f.attrs["dose_e_per_A2"] = float("nan") if ts.dose is None else float(ts.dose)
        f.attrs["metadata_json"] = json.dumps(ts.metadata, default=_json_default)


def _read_ts(source, name):
    import h5py

    with h5py.File(source, "r") as f:
        if f.attrs.get("kind") != "aetbench.TiltSeries":
            raise AetbenchError(f"{name}: not an aetbench tilt-series HDF5 file")
        dose = float(f.attrs["dose_e_per_A2"])
        return TiltSeries(
            images=f["images"][()],
            angles=f["angles"][()],
            pixel_size=float(f.attrs["pixel_size_A"]),
            dose=None if math.isnan(dose) else dose,
            metadata=json.loads(f.attrs["metadata_json"]),
        )


def write_tilt_series(ts, path) -> None:
    with atomic_write_path(path) as tmp:
        _write_ts(ts, tmp)


def read_tilt_series(path):
    try:
        return _read_ts(path, path)
    except OSError as e:
        raise AetbenchError(f"{path}: cannot read HDF5 tilt series ({e})") from None


def tilt_series_to_bytes(ts) -> bytes:
    """The HDF5 file of ``ts`` (layout above) as bytes, e.g. for a checked cache entry."""
    buf = io.BytesIO()
    _write_ts(ts, buf)
    return buf.getvalue()


def tilt_series_from_bytes(data: bytes, name: str = "<bytes>"):
    """Inverse of :func:`tilt_series_to_bytes`; h5py's errors propagate (the caller names the file)."""
    return _read_ts(io.BytesIO(data), name)


def write_volume(vol, path) -> None:
    import h5py

    with atomic_write_path(path) as tmp:
        with h5py.File(tmp, "w") as f:
            f.create_dataset("data", data=vol.data, compression="gzip", compression_opts=1)
            f.attrs["kind"] = "aetbench.Volume"
            f.attrs["voxel_size_A"] = vol.voxel_size
            f.attrs["origin_A"] = np.asarray(vol.origin, dtype=float)
            f.attrs["metadata_json"] = json.dumps(vol.metadata, default=_json_default)


def read_volume(path):
    import h5py

    try:
        with h5py.File(path, "r") as f:
            if f.attrs.get("kind") != "aetbench.Volume":
                raise AetbenchError(f"{path}: not an aetbench volume HDF5 file")
            origin = np.asarray(f.attrs.get("origin_A", np.zeros(3)), dtype=float)
            return Volume(f["data"][()], float(f.attrs["voxel_size_A"]), json.loads(f.attrs["metadata_json"]), origin)
    except OSError as e:
        raise AetbenchError(f"{path}: cannot read HDF5 volume ({e})") from None


register_file_io("TiltSeries", read_tilt_series, write_tilt_series)  # ts.write(path), TiltSeries.read(path)
register_file_io("Volume", read_volume, write_volume)
