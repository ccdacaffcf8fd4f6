"""The one rotation convention of aetbench, and the voxel/pixel coordinate frames.

Everything that rotates atoms (the simulators) or drives a projector (the
reconstructors) goes through this module; importers convert external
conventions into it.  No other module builds rotation matrices.

Euler convention (the paper's)
------------------------------
For Euler angles ``(phi, theta, psi)`` in **degrees**::

    R = (R_z(phi) @ R_y(theta) @ R_x(psi)).T

``R`` maps a point ``r`` given in the *object* frame (the particle's own
frame, the frame of the ground truth and of reconstructed volumes) to the
*beam* frame: ``r_beam = R @ (r - centre)``.  The beam travels along the beam
frame's z axis; a projection image is the integral along z, sampled on the
beam frame's (x, y) plane.  ``theta`` alone is a tilt about the second image
axis (y): the tilt axis of single-axis tomography.

Array axis order
----------------
* A volume array is indexed ``[ix, iy, iz]`` (object x, y, z).
* A projection image is indexed ``[ix, iy]`` (beam-frame x, y); a tilt series
  stacks them as ``(n_projections, nx, ny)``.
* The coordinate origin sits on index ``n // 2`` along every axis (the FFT
  centre), so position [Å] = (index - n // 2) * spacing [Å].

Examples
--------
>>> import numpy as np
>>> R = rotation_matrix(0.0, 90.0, 0.0)
>>> np.round(R @ [1.0, 0.0, 0.0], 12)   # a tilt of 90 deg turns x into the beam axis
array([0., 0., 1.])
"""
from __future__ import annotations

import numpy as np

__all__ = [
    "rotation_matrix",
    "rotation_matrices",
    "euler_angles",
    "rotation_derivatives",
    "rotation_gauges",
    "object_to_beam",
    "beam_to_object",
    "centre_index",
    "axis_coordinates",
    "index_to_position",
    "position_to_index",
    "single_axis_angles",
    "rotation_centre",
    "field_overflow",
]


def _rz(a: float) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def _ry(a: float) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


def _rx(a: float) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    return np.array([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])


def rotation_matrix(phi: float, theta: float, psi: float) -> np.ndarray:
    """Object→beam rotation ``R = (R_z(phi) R_y(theta) R_x(psi))ᵀ``.

    Parameters
    ----------
    phi, theta, psi : float
        Euler angles in degrees; ``theta`` is the tilt about the y (second
        image) axis.

    Returns
    -------
    ndarray, shape (3, 3)
        Orthonormal matrix with ``r_beam = R @ r_object``.
    """
    p, t, s = np.deg2rad([phi, theta, psi])
    return (_rz(p) @ _ry(t) @ _rx(s)).T


def rotation_matrices(angles_deg) -> np.ndarray:
    """Stack of :func:`rotation_matrix` for ``angles_deg`` of shape (n, 3) [deg]."""
    angles = np.atleast_2d(np.asarray(angles_deg, dtype=float))
    if angles.shape[-1] != 3:
        raise ValueError(f"Euler angles must have shape (n, 3) as (phi, theta, psi) in degrees, got {angles.shape}")
    return np.stack([rotation_matrix(*a) for a in angles])


def euler_angles(R, near=None) -> np.ndarray:
    """Inverse of :func:`rotation_matrices`: Euler angles (n, 3) as (phi, theta, psi) [deg] of rotation
    matrices ``R`` (n, 3, 3) or (3, 3).

    Every rotation has two such triples, ``(phi, theta, psi)`` and ``(phi + 180, 180 − theta, psi + 180)``;
    without ``near`` the one with theta in [−90°, 90°] is returned, with ``near`` (n, 3) [deg] the one closer to
    it, each angle wrapped to within 180° of ``near`` (tilt series run to 177°).  At theta = ±90° phi and psi
    turn about one axis; their sum or difference is returned with psi = 0.
    """
    M = np.swapaxes(np.atleast_3d(np.asarray(R, dtype=float)).reshape(-1, 3, 3), 1, 2)  # R_z R_y R_x
    theta = np.arcsin(np.clip(-M[:, 2, 0], -1.0, 1.0))
    lock = np.abs(np.cos(theta)) < 1e-9
    phi = np.where(lock, np.arctan2(-M[:, 0, 1], M[:, 1, 1]), np.arctan2(M[:, 1, 0], M[:, 0, 0]))
    psi = np.where(lock, 0.0, np.arctan2(M[:, 2, 1], M[:, 2, 2]))
    out = np.rad2deg(np.stack([phi, theta, psi], axis=1))
    if near is None:
        return out
    ref = np.asarray(near, dtype=float).reshape(out.shape)
    cands = [out, out * [1, -1, 1] + [180.0, 180.0, 180.0]]
    cands = [ref + (c - ref + 180.0) % 360.0 - 180.0 for c in cands]
    far = [np.abs(c - ref).sum(axis=1) for c in cands]
    return np.where((far[1] < far[0])[:, None], cands[1], cands[0])


def rotation_derivatives(angles_deg, h_deg: float = 1e-3) -> np.ndarray:
    """Derivatives of :func:`rotation_matrices` by phi, theta and psi [1/deg], shape (n, 3 angles, 3, 3), by
    central differences of step ``h_deg`` [deg] (exact to ~1e-9 relative at the default step)."""
    a = np.atleast_2d(np.asarray(angles_deg, dtype=float))
    return np.stack([(rotation_matrices(a + h_deg * e) - rotation_matrices(a - h_deg * e)) / (2.0 * h_deg)
                     for e in np.eye(3)], axis=1)


def rotation_gauges(angles_deg, h_deg: float = 1e-3) -> np.ndarray:
    """The three directions of Euler-angle change that turn the whole object, shape (3n, 3).

    Column ``i`` holds, for every projection ``k``, the change of (phi, theta, psi) [deg per radian] that
    equals an infinitesimal rotation of the object about its axis ``i`` (``R_k → R_k (I + [e_i]×)``),
    flattened as ``(n, 3)``.  No tilt series can fix these directions (a turned object fits as well), so a fit
    of per-projection angles projects them out and a comparison with true angles removes them.  About z the
    column is a common phi offset; about y, for small phi, a common theta offset; about x, a theta-dependent
    mix of phi and psi.

    Parameters
    ----------
    angles_deg : array (n, 3)
        Euler angles (phi, theta, psi) [deg] at which to linearise.
    h_deg : float
        Central-difference step of the rotation matrices' derivatives [deg].
    """
    a = np.atleast_2d(np.asarray(angles_deg, dtype=float))
    n = a.shape[0]
    R = rotation_matrices(a)
    dR = np.moveaxis(rotation_derivatives(a, h_deg), 1, -1).reshape(n, 9, 3)  # (n, 9 matrix entries, 3 angles)
    skew = np.array([[[0, 0, 0], [0, 0, -1], [0, 1, 0]], [[0, 0, 1], [0, 0, 0], [-1, 0, 0]],
                     [[0, -1, 0], [1, 0, 0], [0, 0, 0]]], dtype=float)
    out = np.empty((n, 3, 3))
    for i in range(2):
        target = (R @ skew[i]).reshape(n, 9)
        for k in range(n):
            out[k, :, i] = np.linalg.lstsq(dR[k], target[k], rcond=1e-6)[0]  # min-norm at the lock
    # about z exactly a common phi offset, R(phi + c) = R R_z(c)ᵀ, at every theta; the least-squares solution
    # would split it between phi and psi at the gimbal lock (theta = ±90°)
    out[:, :, 2] = [-np.rad2deg(1.0), 0.0, 0.0]
    return out.reshape(3 * n, 3)


def object_to_beam(positions, angles_deg, centre=(0.0, 0.0, 0.0)) -> np.ndarray:
    """Rotate object-frame positions [Å] into the beam frame for one orientation.

    The rotation is always about the fixed ``centre`` [Å] (never re-centred per
    tilt); the result is relative to that centre.
    """
    R = rotation_matrix(*np.asarray(angles_deg, dtype=float).ravel()[:3])
    return (np.asarray(positions, dtype=float) - np.asarray(centre, dtype=float)) @ R.T


def beam_to_object(positions, angles_deg, centre=(0.0, 0.0, 0.0)) -> np.ndarray:
    """Inverse of :func:`object_to_beam`."""
    R = rotation_matrix(*np.asarray(angles_deg, dtype=float).ravel()[:3])
    return np.asarray(positions, dtype=float) @ R + np.asarray(centre, dtype=float)


def centre_index(n: int) -> int:
    """Index of the coordinate origin on an axis of ``n`` samples (``n // 2``)."""
    return int(n) // 2


def axis_coordinates(n: int, spacing: float) -> np.ndarray:
    """Positions [Å] of the ``n`` samples of an axis with ``spacing`` [Å]."""
    return (np.arange(int(n)) - centre_index(n)) * float(spacing)


def index_to_position(index, shape, spacing: float) -> np.ndarray:
    """Convert (fractional) array indices (..., 3) to positions [Å]."""
    shape = np.asarray(shape)
    return (np.asarray(index, dtype=float) - shape // 2) * float(spacing)


def position_to_index(position, shape, spacing: float) -> np.ndarray:
    """Convert positions [Å] (..., 3) to fractional array indices."""
    shape = np.asarray(shape)
    return np.asarray(position, dtype=float) / float(spacing) + shape // 2


def single_axis_angles(thetas_deg) -> np.ndarray:
    """Euler angles (n, 3) [deg] for a single-axis tilt series about y."""
    thetas = np.asarray(thetas_deg, dtype=float).ravel()
    out = np.zeros((thetas.size, 3))
    out[:, 1] = thetas
    return out


def rotation_centre(positions, centre=None) -> np.ndarray:
    """The rotation centre [Å] of a tilt series of atoms at ``positions`` (N, 3) [Å].

    The one rule of aetbench: the stated ``centre`` (a scenario's ``[structure] centre``) when given, else the
    centroid of the atoms.  Every tier simulates about it, records it as ``metadata["centre_A"]`` of the tilt
    series, and it projects onto pixel ``(nx // 2, ny // 2)`` at every tilt.

    Examples
    --------
    >>> rotation_centre([[0.0, 0.0, 0.0], [2.0, 4.0, -6.0]])
    array([ 1.,  2., -3.])
    >>> rotation_centre([[0.0, 0.0, 0.0]], centre=(5, 0, 0))
    array([5., 0., 0.])
    """
    if centre is not None:
        c = np.asarray(centre, dtype=float).ravel()
        if c.shape != (3,) or not np.all(np.isfinite(c)):
            raise ValueError(f"rotation centre: expected 3 finite coordinates [Å], got {centre!r}")
        return c
    pos = np.asarray(positions, dtype=float).reshape(-1, 3)
    if pos.shape[0] == 0:
        return np.zeros(3)
    return pos.mean(axis=0)


def field_overflow(positions, angles_deg, centre, *, pixel_size: float, shape, margin_A: float = 0.0):
    """How far [Å] the projected atoms (plus ``margin_A``) reach beyond the image field, worst tilt first.

    Atoms are rotated about ``centre`` into the beam frame at every orientation; the field covers beam-frame
    coordinates ``(i - n // 2) · pixel_size`` for pixel indices ``0 ≤ i < n`` on each image axis (the pixel
    centres; half a pixel is added on each side).  The overflow of a tilt is the largest distance by which an atom's
    projected position ± ``margin_A`` lies outside that range along either axis; it is ≤ 0 when everything fits.

    Parameters
    ----------
    positions : array_like (N, 3)
        Atoms [Å], object frame.
    angles_deg : array_like (n, 3)
        Euler angles [deg] (:func:`rotation_matrix`).
    centre : array_like (3,)
        Rotation centre [Å] (:func:`rotation_centre`).
    pixel_size : float
        Pixel size [Å].
    shape : (int, int)
        Image size (nx, ny) [pixels].
    margin_A : float
        Half-width [Å] of an atom's projected profile (or the probe) that must stay inside too.

    Returns
    -------
    overflow_A : float
        The largest overflow over all tilts [Å] (≤ 0: the particle fits).
    worst : int
        Index of the projection where it occurs.

    Examples
    --------
    >>> field_overflow([[0.0, 0.0, 0.0], [10.0, 0.0, 0.0]], [[0, 0, 0]], None, pixel_size=1.0, shape=(16, 16))
    (-2.5, 0)
    >>> field_overflow([[0.0, 0.0, 0.0], [10.0, 0.0, 0.0]], [[0, 0, 0]], [0, 0, 0], pixel_size=1.0, shape=(16, 16))
    (2.5, 0)
    """
    pos = np.asarray(positions, dtype=float).reshape(-1, 3)
    angles = np.atleast_2d(np.asarray(angles_deg, dtype=float))
    c = rotation_centre(pos, centre)
    if pos.shape[0] == 0:
        return -np.inf, 0
    beam = np.einsum("kij,aj->kai", rotation_matrices(angles), pos - c)[..., :2]  # (n, N, 2)
    n = np.asarray(shape, dtype=int).reshape(2)
    lo = -(n // 2 + 0.5) * float(pixel_size)
    hi = (n - 1 - n // 2 + 0.5) * float(pixel_size)
    over = np.maximum(lo - (beam.min(axis=1) - margin_A), (beam.max(axis=1) + margin_A) - hi).max(axis=1)
    worst = int(np.argmax(over))
    return float(over[worst]), worst
