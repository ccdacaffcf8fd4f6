"""Data checks on a tilt series before reconstruction: refuse what cannot mean anything, warn about the rest.

:func:`check_tilt_series_data` looks at the images and angles as an experiment would
deliver them (and, when given, at the ground truth's extent) and returns one-line
warnings; it raises :class:`~aetbench.io.files.AetbenchError` where any number computed
from the data would be meaningless.  The rules, each stated with its threshold:

Errors
    * **angle count** ≠ projection count (:func:`check_angle_count`, for raw arrays);
    * **no projections** or a **single projection** (no 3D information);
    * **blank projections**: a projection whose pixels are all equal (all zero, for instance);
    * **negative data**: a projection whose total is ≤ 0, or negative pixels carrying more than
      half of the series' absolute signal (negated counts);
    * **hot pixels**: a pixel above :data:`HOT_ERROR_FACTOR` × the 99.9th percentile of the
      series' absolute values (atom columns stay within ~2 × that percentile at any dose: 1.5–1.8
      in the paper's aSi208 series at three doses and in a measured Ta film series);
    * **particle larger than the field of view**: the ground truth, centred on its centroid and
      rotated into each projection, spans more than the image (nx × pixel, ny × pixel) [Å].

Warnings
    * hot pixels above :data:`HOT_WARN_FACTOR` × the 99.9th percentile (but below the error level);
    * negative pixels carrying more than :data:`NEGATIVE_WARN_FRACTION` of the absolute signal
      (counts cannot be negative; phase images, ``metadata["units"]`` containing "phase", are exempt);
    * fewer than :data:`FEW_PROJECTIONS` projections;
    * a tilt range (largest angle between two beam directions) below :data:`MIN_TILT_RANGE_DEG`;
    * the ground truth filling more than :data:`FILL_WARN_FRACTION` of the field (no room for drift
      or the reconstruction's support).

Examples
--------
>>> import numpy as np
>>> from aetbench.types import TiltSeries
>>> rng = np.random.default_rng(0)
>>> ts = TiltSeries(rng.poisson(5.0, (30, 16, 16)).astype(float), np.arange(-87, 88, 6.0), pixel_size=0.5)
>>> check_tilt_series_data(ts)
[]
>>> check_tilt_series_data(ts.with_images(-ts.images))
Traceback (most recent call last):
...
aetbench.io.files.AetbenchError: tilt series: 30 of 30 projections have a total ≤ 0 (projections 0, 1, 2, …): negated or background-subtracted data? expected non-negative counts or intensities
"""
from __future__ import annotations

import numpy as np

from ..errors import AetbenchError

__all__ = ["check_tilt_series_data", "check_angle_count", "check_angles", "check_extent", "tilt_range_deg",
           "HOT_ERROR_FACTOR", "HOT_WARN_FACTOR",
           "NEGATIVE_WARN_FRACTION", "FEW_PROJECTIONS", "MIN_TILT_RANGE_DEG", "FILL_WARN_FRACTION"]

#: a pixel above this factor × the series' 99.9th percentile of |value| makes the data unusable
HOT_ERROR_FACTOR = 100.0
#: a pixel above this factor × the 99.9th percentile is reported
HOT_WARN_FACTOR = 10.0
#: negative pixels carrying more than this fraction of Σ|value| are reported (counts are ≥ 0)
NEGATIVE_WARN_FRACTION = 0.01
#: fewer projections than this are reported (the paper's series have 49–60)
FEW_PROJECTIONS = 10
#: a tilt range below this [deg] is reported (the missing wedge then dominates)
MIN_TILT_RANGE_DEG = 60.0
#: a truth spanning more than this fraction of the field in a projection is reported
FILL_WARN_FRACTION = 0.9


def _indices(idx, limit: int = 3) -> str:
    idx = [int(i) for i in idx]
    return ", ".join(map(str, idx[:limit])) + (", …" if len(idx) > limit else "")


def check_angle_count(n_projections: int, angles, source: str = "tilt series") -> None:
    """Raise a one-line :class:`AetbenchError` unless there is one (phi, theta, psi) row per projection."""
    a = np.asarray(angles)
    n_angles = a.shape[0] if a.ndim >= 1 else 0
    if n_angles != n_projections:
        raise AetbenchError(f"{source}: {n_angles} tilt angles for {n_projections} projections; "
                            "expected one angle (or one (phi, theta, psi) row, deg) per projection")


def tilt_range_deg(angles_deg) -> float:
    """Largest angle [deg] between two beam directions of the series (0 for one projection).

    For a single-axis series this is ``max(theta) − min(theta)`` (up to 180°).

    >>> round(tilt_range_deg(np.c_[np.zeros(3), [-60.0, 0.0, 45.0], np.zeros(3)]), 6)
    105.0
    """
    from ..geometry import rotation_matrices

    R = rotation_matrices(np.asarray(angles_deg, dtype=float).reshape(-1, 3))
    beams = R[:, 2, :]           # the beam axis (beam-frame z) in the object frame: row 2 of each R
    cos = np.clip(beams @ beams.T, -1.0, 1.0)
    return float(np.degrees(np.arccos(cos.min()))) if len(beams) > 1 else 0.0


def check_angles(angles_deg, source: str = "tilt series") -> list[str]:
    """Projection count and tilt range of a series' Euler angles (n, 3) [deg].

    Raises :class:`AetbenchError` for no or a single projection; warns for fewer than
    :data:`FEW_PROJECTIONS` projections and a tilt range below :data:`MIN_TILT_RANGE_DEG`.
    """
    angles = np.asarray(angles_deg, dtype=float).reshape(-1, 3)
    n = len(angles)
    if n == 0:
        raise AetbenchError(f"{source}: no projections")
    if n == 1:
        raise AetbenchError(f"{source}: a single projection holds no 3D information; tomography needs a tilt "
                            f"series (≥ {FEW_PROJECTIONS} projections over ≥ {MIN_TILT_RANGE_DEG:g}°)")
    warnings = []
    if n < FEW_PROJECTIONS:
        warnings.append(f"{source}: only {n} projections (< {FEW_PROJECTIONS}); expect streaks and missing atoms")
    rng = tilt_range_deg(angles)
    if rng < MIN_TILT_RANGE_DEG:
        warnings.append(f"{source}: tilt range {rng:.1f}° (< {MIN_TILT_RANGE_DEG:g}°): the missing wedge elongates "
                        "atoms along the beam")
    return warnings


def _check_values(img: np.ndarray, source: str, phase: bool) -> list[str]:
    warnings: list[str] = []
    n = img.shape[0]
    flat = img.reshape(n, -1)
    blank = np.flatnonzero(flat.max(axis=1) == flat.min(axis=1))
    if blank.size:
        vals = sorted({float(flat[i, 0]) for i in blank})
        what = "all zero" if vals == [0.0] else "constant"
        raise AetbenchError(f"{source}: {blank.size} of {n} projections are {what} (projections {_indices(blank)}): "
                            "no signal to reconstruct; remove them with their angles")
    totals = flat.sum(axis=1, dtype=np.float64)
    bad = np.flatnonzero(totals <= 0)
    absolute = np.abs(flat).sum(dtype=np.float64)
    negative = -flat[flat < 0].sum(dtype=np.float64)
    if bad.size:
        raise AetbenchError(f"{source}: {bad.size} of {n} projections have a total ≤ 0 "
                            f"(projections {_indices(bad)}): "
                            "negated or background-subtracted data? expected non-negative counts or intensities")
    if negative > 0.5 * absolute:
        raise AetbenchError(f"{source}: negative pixels carry {100 * negative / absolute:.0f} % of the signal: "
                            "negated data? expected non-negative counts or intensities")
    if not phase and negative > NEGATIVE_WARN_FRACTION * absolute:
        warnings.append(f"{source}: negative pixels carry {100 * negative / absolute:.1f} % of the signal "
                        f"(> {100 * NEGATIVE_WARN_FRACTION:g} %); counts cannot be negative")
    ref = float(np.percentile(np.abs(flat), 99.9))
    if ref > 0:
        peak = float(np.abs(flat).max())
        if peak > HOT_WARN_FACTOR * ref:
            k, pix = np.unravel_index(int(np.argmax(np.abs(flat))), flat.shape)
            ix, iy = np.unravel_index(int(pix), img.shape[1:])
            level = HOT_ERROR_FACTOR if peak > HOT_ERROR_FACTOR * ref else HOT_WARN_FACTOR
            n_hot = int((np.abs(flat) > level * ref).sum())
            msg = (f"{source}: {n_hot} hot pixel{'s' if n_hot > 1 else ''} above {level:g} × the 99.9th percentile "
                   f"({ref:.4g}); the largest, {peak:.4g}, in projection {k} at pixel ({ix}, {iy})")
            if level == HOT_ERROR_FACTOR:
                raise AetbenchError(msg + ": it would dominate the reconstruction; replace such pixels "
                                          "(e.g. by the median of their neighbours)")
            warnings.append(msg)
    return warnings


def check_extent(truth, angles_deg, shape, pixel_size: float, source: str = "tilt series") -> list[str]:
    """Check that the ground truth fits the field of view in every projection.

    The truth is centred on its centroid (its placement in the images is unknown) and rotated
    into each projection's beam frame; its span along the image axes [Å] is compared with the
    field ``shape × pixel_size`` [Å].  A span beyond the field raises :class:`AetbenchError`;
    one beyond :data:`FILL_WARN_FRACTION` of it gives a warning.

    Parameters
    ----------
    truth : AtomicModel
        Ground truth [Å].
    angles_deg : array_like, shape (n, 3)
        Euler angles (phi, theta, psi) [deg].
    shape : (int, int)
        Image size (nx, ny) [pixels].
    pixel_size : float
        Pixel edge [Å].
    """
    from ..geometry import rotation_matrices

    pos = np.asarray(truth.positions, dtype=float).reshape(-1, 3)
    if len(pos) == 0:
        return []
    pos = pos - pos.mean(axis=0)
    angles = np.asarray(angles_deg, dtype=float).reshape(-1, 3)
    span = np.empty((len(angles), 2))
    for k, R in enumerate(rotation_matrices(angles)):                        # one projection at a time
        beam = pos @ R[:2].T                                                 # (n_atoms, 2) beam-frame x, y [Å]
        span[k] = beam.max(axis=0) - beam.min(axis=0)
    fov = np.array(shape, dtype=float)[:2] * float(pixel_size)
    ratio = span / fov
    k = int(np.argmax(ratio.max(axis=1)))
    worst = float(ratio[k].max())
    desc = (f"the ground truth spans {span[k, 0]:.1f} × {span[k, 1]:.1f} Å in projection {k} "
            f"(theta {angles[k, 1]:g}°) but the field of view is {fov[0]:.1f} × {fov[1]:.1f} Å "
            f"({int(shape[0])} × {int(shape[1])} px of {float(pixel_size):g} Å)")
    if worst > 1.0:
        raise AetbenchError(f"{source}: {desc}: the particle does not fit; scores against this truth cannot mean "
                            "anything (larger image_size or pixel_size, or a smaller particle)")
    if worst > FILL_WARN_FRACTION:
        return [f"{source}: {desc}: it fills {100 * worst:.0f} % of the field (> {100 * FILL_WARN_FRACTION:g} %), "
                "no margin for drift"]
    return []


def check_tilt_series_data(ts, truth=None, *, source: str = "tilt series") -> list[str]:
    """Check a tilt series (and the ground truth's extent) before reconstruction.

    Parameters
    ----------
    ts : TiltSeries
        Images (n, nx, ny) and Euler angles (n, 3) [deg], pixel size [Å], as delivered.
    truth : AtomicModel, optional
        Ground truth [Å]; when given, its extent is checked against the field of view.
    source : str
        Name of the series in the messages (file or case).

    Returns
    -------
    list of str
        One-line warnings (see the module docstring for the rules).

    Raises
    ------
    AetbenchError
        One line, where a reconstruction of this data cannot mean anything.
    """
    img = np.asarray(ts.images)
    if img.ndim != 3:
        raise AetbenchError(f"{source}: images have shape {img.shape}; expected (n, nx, ny)")
    check_angle_count(img.shape[0], ts.angles, source)
    angle_warnings = check_angles(ts.angles, source)
    if not np.all(np.isfinite(img)):
        raise AetbenchError(f"{source}: projections contain NaN or infinite values")
    phase = "phase" in str(ts.metadata.get("units", "")).lower()
    warnings = _check_values(img, source, phase) + angle_warnings
    if truth is not None:
        warnings += check_extent(truth, ts.angles, ts.shape, ts.pixel_size, source)
    return warnings
