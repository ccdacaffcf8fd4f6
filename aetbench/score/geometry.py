"""The projection geometry a method recovered, against the simulated truth: rms angle and shift errors.

A simulated series with experimental errors (``[simulation.errors]``) keeps the true Euler angles and drift
in ``ts.metadata["truth"]`` (``angles_deg``, ``shifts_A``) and hands the method only the nominal angles.  A
method that aligns or refines angles records what it found (``refined_angles`` [deg]; the shifts it applied to
the images, ``align_shifts_px``).  This module compares both the nominal and the found geometry with the truth,
up to the gauges no tomographic data can fix:

* a rotation of the whole object (``R_k → R_k Q`` for every projection; about z a common phi offset, about y at
  small phi a common theta offset, about x a theta-dependent mix of phi and psi,
  :func:`aetbench.geometry.rotation_gauges`) fits the data as well: the angle errors' component along these
  three directions (linearised at the true angles, a least-squares fit) is removed first.  Euler angles, not
  rotation matrices, are compared, because near theta = 90° a tiny rotation moves phi and psi far (gimbal
  lock); the linear removal stays well-conditioned there;
* a 3-D translation of the object moves every projection by ``(R_k t)_{x,y}``: the part of the shift errors it
  explains is removed (:func:`aetbench.preprocess.align.remove_translation`).

Shift errors are reported per axis (rms over projections and over x, y), the way ``shift_sigma_A`` is set.

Examples
--------
>>> import numpy as np
>>> true = np.stack([np.zeros(5), np.arange(5) * 30.0, np.zeros(5)], axis=1)
>>> found = true + [0.2, 0.5, 0.0]          # a common phi and theta offset: a rotated object, no error
>>> [round(float(v), 6) for v in angle_errors_deg(found, true)]
[0.0, 0.0, 0.0]
"""
from __future__ import annotations

import numpy as np

from ..errors import AetbenchError

__all__ = ["angle_errors_deg", "rotation_errors_deg", "shift_errors_A", "geometry_record", "geometry_rows", "GEOMETRY_COLUMNS"]

GEOMETRY_COLUMNS = ("structure", "dose", "method", "geometry", "phi_rms_deg", "theta_rms_deg", "psi_rms_deg",
                    "rotation_rms_deg", "shift_rms_A")


def _angles(a, n: int | None, name: str) -> np.ndarray:
    a = np.asarray(a, dtype=float)
    if a.ndim != 2 or a.shape[1] != 3 or (n is not None and a.shape[0] != n) or not np.all(np.isfinite(a)):
        raise AetbenchError(f"{name}: expected finite Euler angles of shape ({n if n is not None else 'n'}, 3) "
                            f"as (phi, theta, psi) [deg], got shape {a.shape}")
    return a


def angle_errors_deg(angles_deg, true_deg) -> np.ndarray:
    """RMS error [deg] of (phi, theta, psi) over the projections, up to a rotation of the whole object.

    Parameters
    ----------
    angles_deg, true_deg : array (n, 3)
        Found (or nominal) and true Euler angles [deg].

    Returns
    -------
    ndarray (3,)
        RMS of phi, theta and psi errors [deg].
    """
    return np.sqrt((_residuals(angles_deg, true_deg) ** 2).mean(axis=0))


def _residuals(angles_deg, true_deg) -> np.ndarray:
    """Euler-angle errors (n, 3) [deg] without their component along the object-rotation gauges."""
    from .. import geometry

    t = _angles(true_deg, None, "true angles")
    d = ((_angles(angles_deg, t.shape[0], "angles") - t + 180.0) % 360.0 - 180.0).ravel()
    G = geometry.rotation_gauges(t)
    return (d - G @ np.linalg.lstsq(G, d, rcond=None)[0]).reshape(t.shape)


def rotation_errors_deg(angles_deg, true_deg) -> float:
    """RMS over the projections of the angle [deg] of the rotation between found and true orientation, up to a
    rotation of the whole object.  Unlike the Euler angles it is well defined at the gimbal lock (theta = ±90°),
    where phi + psi (or phi − psi) does not change the orientation and no data can fix it."""
    from .. import geometry

    t = _angles(true_deg, None, "true angles")
    Rf = geometry.rotation_matrices(t + _residuals(angles_deg, t))
    c = (np.einsum("kij,kij->k", Rf, geometry.rotation_matrices(t)) - 1.0) / 2.0
    return float(np.sqrt((np.rad2deg(np.arccos(np.clip(c, -1.0, 1.0))) ** 2).mean()))


def shift_errors_A(found_A, true_A, true_deg, pixel_size_A: float) -> float:
    """RMS per-axis error [Å] of the drift found, after removing the part a 3-D object translation explains.

    ``found_A`` and ``true_A`` are (n, 2) [Å] in the convention of ``truth["shifts_A"]`` (the content of
    projection ``k`` moved by ``+shift``).
    """
    from ..preprocess.align import remove_translation

    t = _angles(true_deg, None, "true angles")
    f, s = np.asarray(found_A, dtype=float), np.asarray(true_A, dtype=float)
    if f.shape != (t.shape[0], 2) or s.shape != f.shape:
        raise AetbenchError(f"shifts: expected ({t.shape[0]}, 2) arrays [Å], got {f.shape} and {s.shape}")
    err, _ = remove_translation((f - s) / pixel_size_A, t)
    return float(np.sqrt((err ** 2).mean()) * pixel_size_A)


def geometry_record(ts, preprocessed, records: dict) -> dict | None:
    """What one method found beside the truth, JSON-ready; ``None`` when ``ts`` carries no geometry truth.

    ``ts`` is the simulated series with ``metadata["truth"]``; ``preprocessed`` the method's final series (its
    ``align_shifts_px``: the shifts it applied [pixels]); ``records`` the method's records
    (``refined_angles`` [deg] when it refined them).
    """
    meta = ts.metadata if isinstance(ts.metadata, dict) else {}
    truth = meta.get("truth") or {}
    if "angles_deg" not in truth and "shifts_A" not in truth:
        return None
    n = len(ts.angles)
    nominal = np.asarray(ts.angles, dtype=float)
    applied = (preprocessed.metadata.get("align_shifts_px") if isinstance(preprocessed.metadata, dict) else None)
    applied = np.zeros((n, 2)) if applied is None else np.asarray(applied, dtype=float)
    return {"true_angles": np.asarray(truth.get("angles_deg", nominal), float).tolist(),
            "nominal_angles": nominal.tolist(),
            "found_angles": np.asarray(records.get("refined_angles", nominal), float).tolist(),
            "true_shifts_A": np.asarray(truth.get("shifts_A", np.zeros((n, 2))), float).tolist(),
            "found_shifts_A": (-applied * float(ts.pixel_size)).tolist(),
            "pixel_size_A": float(ts.pixel_size)}


def geometry_rows(structure: str, dose: float, method: str, rec: dict) -> list[dict]:
    """Two rows (``nominal``: the angles as measured and no drift correction; ``found``: the method's) of
    rms errors against the truth, for ``geometry.csv`` and the report."""
    true = np.asarray(rec["true_angles"], float)
    px = float(rec["pixel_size_A"])
    zero = np.zeros((len(true), 2))
    rows = []
    for label, ang, sh in (("nominal", rec["nominal_angles"], zero), ("found", rec["found_angles"],
                                                                      rec["found_shifts_A"])):
        a = angle_errors_deg(ang, true)
        rows.append({"structure": structure, "dose": dose, "method": method, "geometry": label,
                     "phi_rms_deg": float(a[0]), "theta_rms_deg": float(a[1]), "psi_rms_deg": float(a[2]),
                     "rotation_rms_deg": rotation_errors_deg(ang, true),
                     "shift_rms_A": shift_errors_A(sh, rec["true_shifts_A"], true, px)})
    return rows
