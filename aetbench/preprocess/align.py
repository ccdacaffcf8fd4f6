"""Alignment of a tilt series: centre of mass, projection matching, common-line check.

For a compact particle the projected intensity centre of mass is the
projection of the particle's (intensity-weighted) centre, so shifting every
projection's centre of mass onto the image centre (index ``n // 2`` per axis,
:mod:`aetbench.geometry`) puts the rotation centre at the origin.  For a single
tilt about y only the x shift is strictly fixed by this argument
(``axes="x"``); for a compact particle both axes are safe (default).

The centre of mass is made robust: the background level is removed
(:func:`aetbench.preprocess.background.estimate_background`), the particle is
located on a smoothed copy, and the centre of mass of the unsmoothed,
background-free intensity is taken inside a disk that is re-centred on the
estimate until it stops moving (a disk centred on the particle is symmetric,
so zero-mean background noise does not bias it).

Projection matching (:func:`align_projections`) refines the centre-of-mass
shifts: reconstruct with a few RESIRE iterations, re-project with the nominal
angles, and move every measured projection onto its re-projection by the
sub-pixel peak of their cross-correlation (upsampled DFT, Guizar-Sicairos et
al. 2008); repeat until the largest correction is below a tolerance.  A shift
pattern that a 3-D translation of the particle explains, ``(R_k t)_{x,y}``,
only moves the reconstruction, so it is removed each round (the centre of mass
fixes the origin).  The common-line check (:func:`common_line_axis`) uses the
tilt-axis property of single-axis tomography: the 1-D profile of every
projection along the tilt axis (the image summed perpendicular to it) is the
same for all tilts; the in-plane direction that makes them agree best is the
measured tilt axis.

Sign convention: ``ts.metadata["align_shifts_px"]`` holds the shifts
*applied* to the images [pixels, (x, y)] (cumulative over alignment stages);
``ts.metadata["alignment"]["shifts_A"]`` holds the drift *found* [Å], the
negative of the applied shifts, comparable with the simulated
``truth["shifts_A"]`` (the content of projection ``k`` moved by ``+shift``).
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np
from scipy import ndimage

from ..errors import AetbenchError
from ..types import TiltSeries
from .background import background_mask

__all__ = ["centre_of_mass", "shift_images", "align_centre_of_mass", "align_projections", "common_line_axis",
           "cross_correlation_shift", "remove_translation"]


def centre_of_mass(image, *, smooth_sigma_px: float = 2.0, n_sigma: float = 4.0, margin_px: float = 4.0,
                   iterations: int = 20, tol_px: float = 1e-4) -> np.ndarray:
    """Robust intensity centre of mass of one projection [pixel indices].

    Parameters
    ----------
    image : ndarray, shape (nx, ny)
        Projection [counts]; a constant background is removed here.
    smooth_sigma_px : float
        Smoothing [pixels] used to find the particle support.
    n_sigma : float
        Support threshold in units of the smoothed background noise.
    margin_px : float
        Extra radius [pixels] of the disk beyond the farthest support pixel.
    iterations, tol_px : int, float
        Maximum re-centring iterations and convergence tolerance [pixels].

    Returns
    -------
    ndarray, shape (2,)
        (cx, cy) in fractional pixel indices.
    """
    img = np.asarray(image, dtype=float)
    bg = background_mask(img, smooth_sigma_px=smooth_sigma_px)
    w = img - img[bg].mean()
    sm = ndimage.gaussian_filter(w, smooth_sigma_px, mode="nearest")
    noise = sm[bg].std()
    support = sm > max(n_sigma * noise, 1e-12 * np.abs(sm).max())
    if not support.any():
        raise AetbenchError("align_centre_of_mass: no particle found above the background (empty projection?)")
    lab, nlab = ndimage.label(support)
    if nlab > 1:  # keep the component holding most intensity
        sums = ndimage.sum(np.clip(sm, 0, None), lab, index=np.arange(1, nlab + 1))
        support = lab == 1 + int(np.argmax(sums))
    X, Y = np.meshgrid(np.arange(img.shape[0], dtype=float), np.arange(img.shape[1], dtype=float), indexing="ij")
    sw = np.clip(sm, 0, None) * support
    c = np.array([(X * sw).sum(), (Y * sw).sum()]) / sw.sum()
    radius = np.sqrt(((X[support] - c[0]) ** 2 + (Y[support] - c[1]) ** 2).max()) + margin_px
    for _ in range(int(iterations)):
        disk = (X - c[0]) ** 2 + (Y - c[1]) ** 2 <= radius**2
        tot = w[disk].sum()
        if tot <= 0:
            raise AetbenchError("align_centre_of_mass: non-positive intensity inside the particle window")
        new = np.array([(X[disk] * w[disk]).sum(), (Y[disk] * w[disk]).sum()]) / tot
        done = np.max(np.abs(new - c)) < tol_px
        c = new
        if done:
            break
    return c


def shift_images(images, shifts_px) -> np.ndarray:
    """Sub-pixel Fourier shift of each image by ``shifts_px`` (n, 2) [pixels] (periodic)."""
    img = np.asarray(images, dtype=float)
    sh = np.asarray(shifts_px, dtype=float).reshape(img.shape[0], 2)
    out = np.empty_like(img)
    for k in range(img.shape[0]):
        out[k] = np.fft.ifft2(ndimage.fourier_shift(np.fft.fft2(img[k]), sh[k])).real
    return out


def align_centre_of_mass(ts: TiltSeries, *, axes: str = "xy", smooth_sigma_px: float = 2.0,
                         n_sigma: float = 4.0, margin_px: float = 4.0) -> TiltSeries:
    """Shift each projection so its robust centre of mass lies on index ``n // 2``.

    Parameters
    ----------
    ts : TiltSeries
        Projections (background-subtracted or not).
    axes : {"xy", "x"}
        Shift both image axes, or only x (perpendicular to the y tilt axis).
    smooth_sigma_px, n_sigma, margin_px
        See :func:`centre_of_mass`.

    Returns
    -------
    TiltSeries
        Shifted images; metadata ``align_shifts_px`` (n, 2) applied shifts
        [pixels, (x, y)] and ``align_method``.
    """
    if axes not in ("xy", "x"):
        raise AetbenchError(f"align_centre_of_mass: axes must be 'xy' or 'x', got {axes!r}")
    if smooth_sigma_px <= 0 or n_sigma <= 0 or margin_px < 0:
        raise AetbenchError("align_centre_of_mass: smooth_sigma_px > 0 px, n_sigma > 0, margin_px >= 0 px required")
    img = np.asarray(ts.images, dtype=float)
    centre = np.array([img.shape[1] // 2, img.shape[2] // 2], dtype=float)
    shifts = np.zeros((img.shape[0], 2))
    for k in range(img.shape[0]):
        shifts[k] = centre - centre_of_mass(img[k], smooth_sigma_px=smooth_sigma_px, n_sigma=n_sigma,
                                            margin_px=margin_px)
    if axes == "x":
        shifts[:, 1] = 0.0
    out = shift_images(img, shifts)
    total = shifts + _previous_shifts(ts)
    return ts.with_images(out, align_shifts_px=total.tolist(), align_method=f"centre-of-mass ({axes})")


def _previous_shifts(ts: TiltSeries) -> np.ndarray:
    """Shifts [pixels] already applied to ``ts`` by earlier alignment stages (zeros if none)."""
    prev = ts.metadata.get("align_shifts_px")
    if prev is None:
        return np.zeros((len(ts), 2))
    prev = np.asarray(prev, dtype=float)
    if prev.shape != (len(ts), 2):
        raise AetbenchError(f"metadata align_shifts_px: expected shape ({len(ts)}, 2) in pixels, got {prev.shape}")
    return prev


def cross_correlation_shift(reference, moving, *, upsample: int = 50) -> np.ndarray:
    """Shift [pixels, (x, y)] that moves ``moving`` onto ``reference`` (peak of their cross-correlation).

    Plain (not phase-normalised) cross-correlation, which weights spatial
    frequencies by their signal and so stays robust on noisy projections; the
    peak is located to ``1 / upsample`` pixel by an upsampled DFT around it
    (:func:`skimage.registration.phase_cross_correlation` with
    ``normalization=None``).  ``shift_images(moving, s)`` then matches
    ``reference``.
    """
    from skimage.registration import phase_cross_correlation

    if int(upsample) < 1:
        raise AetbenchError(f"align: upsample must be a positive integer (1/pixel), got {upsample!r}")
    shift, _, _ = phase_cross_correlation(np.asarray(reference, float), np.asarray(moving, float),
                                          upsample_factor=int(upsample), normalization=None)
    return np.asarray(shift, dtype=float)


def remove_translation(shifts_px, angles_deg) -> tuple[np.ndarray, np.ndarray]:
    """Remove from per-projection shifts the part a 3-D translation of the object explains.

    A translation ``t`` [pixels] of the object moves projection ``k`` by
    ``(R_k t)_{x,y}`` (:mod:`aetbench.geometry`), which a reconstruction absorbs
    by moving the particle; it is fitted by least squares and subtracted.

    Returns
    -------
    (ndarray (n, 2), ndarray (3,))
        The shifts without the translation part [pixels] and ``t`` [pixels].
    """
    from .. import geometry

    s = np.asarray(shifts_px, dtype=float)
    R = geometry.rotation_matrices(angles_deg)[:, :2, :]          # (n, 2, 3)
    A = R.reshape(-1, 3)
    t = np.linalg.lstsq(A, s.reshape(-1), rcond=None)[0]
    return s - (R @ t), t


def _profiles(img: np.ndarray, alpha_deg: float) -> np.ndarray:
    """1-D profiles along a direction at ``alpha_deg`` from the image y axis (sum perpendicular to it)."""
    n, mx, my = img.shape
    a = np.deg2rad(alpha_deg)
    X, Y = np.meshgrid(np.arange(mx) - mx // 2, np.arange(my) - my // 2, indexing="ij")
    t = -X * np.sin(a) + Y * np.cos(a) + my // 2          # coordinate along the axis [pixels]
    i0 = np.floor(t).astype(int)
    w = t - i0
    nb = my + 2
    ok0 = (i0 >= 0) & (i0 < my)
    ok1 = (i0 + 1 >= 0) & (i0 + 1 < my)
    out = np.empty((n, nb))
    for k in range(n):
        v = img[k]
        out[k] = (np.bincount(np.clip(i0[ok0], 0, nb - 1), weights=(v * (1 - w))[ok0], minlength=nb)[:nb]
                  + np.bincount(np.clip(i0[ok1] + 1, 0, nb - 1), weights=(v * w)[ok1], minlength=nb)[:nb])
    return out[:, :my]


def common_line_axis(images, *, search_deg: float = 3.0, step_deg: float = 0.1, window_px: float | None = None,
                     smooth_sigma_px: float = 1.0) -> dict:
    """Common-line check of the tilt axis (single-axis tilt about the image y axis).

    For a tilt about the image y axis every projection summed along x gives
    the same 1-D profile along y (the integral of the x–z plane at each y).
    The in-plane direction ``alpha`` [deg, from the y axis towards -x] along
    which the profiles of all projections agree best is searched on a grid of
    ``step_deg`` within ``±search_deg`` and refined by a parabola; each
    profile is normalised to unit sum (beam-current changes) and smoothed by
    ``smooth_sigma_px``.  Only pixels within ``window_px`` of the centre count
    (default: the largest disk inside the image, so that every direction sees
    the same pixels).

    Returns
    -------
    dict
        ``axis_offset_deg`` (found ``alpha``), ``misfit`` (relative rms spread
        of the profiles at ``alpha``), ``misfit_nominal`` (at 0) and the scan.
    """
    img = np.asarray(images, dtype=float)
    if img.ndim != 3:
        raise AetbenchError(f"common_line_axis: expected images (n, nx, ny), got shape {img.shape}")
    if not (search_deg > 0 and step_deg > 0):
        raise AetbenchError("common_line_axis: search_deg > 0 deg and step_deg > 0 deg required")
    n, mx, my = img.shape
    r = min(mx, my) / 2 - 1 if window_px is None else float(window_px)
    X, Y = np.meshgrid(np.arange(mx) - mx // 2, np.arange(my) - my // 2, indexing="ij")
    img = img * ((X**2 + Y**2) <= r * r)

    def misfit(alpha):
        p = _profiles(img, alpha)
        if smooth_sigma_px > 0:
            p = ndimage.gaussian_filter1d(p, smooth_sigma_px, axis=1)
        tot = p.sum(axis=1, keepdims=True)
        p = p / np.where(np.abs(tot) > 0, tot, 1.0)
        return float(np.sqrt(((p - p.mean(0)) ** 2).sum() / max((p.mean(0) ** 2).sum() * n, 1e-300)))

    grid = np.arange(-search_deg, search_deg + 0.5 * step_deg, step_deg)
    scan = np.array([misfit(a) for a in grid])
    j = int(np.argmin(scan))
    best = float(grid[j])
    if 0 < j < len(grid) - 1:
        y0, y1, y2 = scan[j - 1], scan[j], scan[j + 1]
        den = y0 - 2 * y1 + y2
        if den > 0:
            best += float(0.5 * (y0 - y2) / den * step_deg)
    return {"axis_offset_deg": best, "misfit": misfit(best), "misfit_nominal": misfit(0.0),
            "scan_deg": grid.tolist(), "scan_misfit": scan.tolist()}


def align_projections(ts: TiltSeries, *, centre_of_mass_first: bool = True, rounds: int = 5,
                      iterations: int = 10, tolerance_px: float = 0.01, upsample: int = 50,
                      lowpass_sigma_px: float = 1.0, single_axis_below_deg: float = 2.0, axis_check: bool = True,
                      axis_warn_deg: float = 0.5, progress: bool = False) -> TiltSeries:
    """Centre of mass, then projection matching; records the drift found and a tilt-axis check.

    Parameters
    ----------
    ts : TiltSeries
        Background-subtracted projections with their nominal angles [deg].
    centre_of_mass_first : bool
        Start from :func:`align_centre_of_mass` (both axes).
    rounds : int
        Maximum reconstruct → re-project → shift rounds (≥ 0; 0 = centre of mass only).
    iterations : int
        RESIRE iterations per round (warm-started from the previous round's volume).
    tolerance_px : float
        Stop when the rms correction of a round is below this [pixels].
    upsample : int
        Sub-pixel resolution of the cross-correlation peak (1/upsample pixel).
    lowpass_sigma_px : float
        Gaussian low-pass [pixels] applied to both images before correlating
        (suppresses shot noise; 0 disables).
    single_axis_below_deg : float
        When every nominal |phi| and |psi| is below this [deg] (a single-axis
        series with small Euler errors), the matching reconstructs with the
        tilt angles theta alone on the fast single-axis projector: a small
        rotation about the centre does not move a projection's centre, which
        is all a shift measures.  0 always uses the full angles.
    axis_check : bool
        Run :func:`common_line_axis` on the aligned series (single-axis series only).
    axis_warn_deg : float
        Warn (``warnings.warn``) if the tilt axis found is off by more than this [deg].
    progress : bool
        Show a progress bar over rounds.

    Returns
    -------
    TiltSeries
        Aligned images; metadata ``align_shifts_px`` (cumulative applied shifts
        [pixels, (x, y)]), ``align_method`` and ``alignment`` = {``shifts_A``:
        drift found (n, 2) [Å] = −applied × pixel size, ``centre_of_mass_A``,
        ``history_px`` (rms correction per round [pixels]),
        ``rounds``, ``axis_offset_deg`` (common-line check, or None)}.
    """
    import warnings

    from ..reconstruct.projector import Projector
    from ..reconstruct.resire import resire

    if not isinstance(ts, TiltSeries):
        raise AetbenchError(f"align_projections: expected an aetbench TiltSeries, got {type(ts).__name__}")
    for name, v in (("rounds", rounds), ("iterations", iterations), ("upsample", upsample)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < (0 if name == "rounds" else 1):
            raise AetbenchError(f"align_projections: {name} must be an integer ≥ {0 if name == 'rounds' else 1}, "
                                f"got {v!r}")
    if not (tolerance_px > 0 and lowpass_sigma_px >= 0 and axis_warn_deg > 0 and single_axis_below_deg >= 0):
        raise AetbenchError("align_projections: tolerance_px > 0 px, lowpass_sigma_px ≥ 0 px, axis_warn_deg > 0 deg, "
                            "single_axis_below_deg ≥ 0 deg required")
    start = _previous_shifts(ts)
    cur = align_centre_of_mass(ts) if centre_of_mass_first else ts
    com = _previous_shifts(cur) - start
    img = np.asarray(cur.images, dtype=float)
    applied = np.zeros((len(ts), 2))
    history: list[float] = []
    vol = None
    angles = np.asarray(cur.angles, dtype=float)
    if single_axis_below_deg > 0 and np.all(np.abs(angles[:, [0, 2]]) < single_axis_below_deg):
        angles = angles * [0.0, 1.0, 0.0]
    proj = Projector((img.shape[1], img.shape[2], img.shape[1]), angles, image_shape=cur.shape)
    smooth = (lambda a: ndimage.gaussian_filter(a, lowpass_sigma_px)) if lowpass_sigma_px > 0 else (lambda a: a)
    it = range(int(rounds))
    if progress:
        from tqdm.auto import tqdm

        it = tqdm(it, desc="align", unit="round")
    for _ in it:
        work = replace(cur, images=img.astype(np.float32), angles=angles)
        vol = resire(work, iterations=int(iterations), initial=vol)
        calc = proj.forward(vol.data)
        d = np.array([cross_correlation_shift(smooth(calc[k]), smooth(img[k]), upsample=upsample)
                      for k in range(len(img))])
        d, _ = remove_translation(d, angles)
        img = shift_images(img, d)
        applied += d
        history.append(float(np.sqrt((d**2).sum(1).mean())))
        if history[-1] < tolerance_px:
            break
    total_new = com + applied
    axis = None
    if axis_check and np.allclose(cur.angles[:, [0, 2]], 0.0, atol=5.0):
        axis = common_line_axis(img)
        if abs(axis["axis_offset_deg"]) > axis_warn_deg:
            warnings.warn(f"align_projections: common-line check puts the tilt axis {axis['axis_offset_deg']:.2f} deg "
                          f"from the image y axis (> {axis_warn_deg} deg); check the tilt-axis orientation",
                          stacklevel=2)
    info = {"shifts_A": (-total_new * ts.pixel_size).tolist(), "centre_of_mass_A": (-com * ts.pixel_size).tolist(),
            "history_px": history, "rounds": len(history),
            "axis_offset_deg": None if axis is None else axis["axis_offset_deg"],
            "axis_misfit": None if axis is None else [axis["misfit_nominal"], axis["misfit"]]}
    return cur.with_images(img, align_shifts_px=(start + total_new).tolist(),
                           align_method="centre of mass + projection matching", alignment=info)
