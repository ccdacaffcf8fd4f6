"""Atom tracing: sub-voxel peaks of a reconstructed volume → :class:`TracedModel`.

Two methods, chosen by ``trace_atoms(volume, method=...)``:

``"com"``
    Local maxima (``scipy.ndimage.maximum_filter``, ±1 voxel, or ±1 original
    voxel of the spline-oversampled volume when ``oversampling > 1``) above a
    threshold, refined per axis by a 3-point fit (``refine="gauss"``: parabola
    through the logarithm of the three values, exact for a Gaussian peak;
    ``"parabola"``: parabola through the values; ``"com"``: intensity-weighted
    centre of mass of the 3×3×3 neighbourhood above its minimum).
``"poly"``
    The paper's polynomial tracing, see :mod:`aetbench.trace.poly`.

Both finish with minimum-distance pruning in descending peak height: of any
two peaks closer than ``min_distance_A`` the brighter is kept.  Every traced
peak gets the provisional label :data:`UNCLASSIFIED` (``"?"``), which
:func:`aetbench.trace.classify.classify` replaces by an element symbol or
:data:`aetbench.types.NON_ATOM`.

Default threshold (both methods): ``threshold_fraction`` (0.1) × the 99.9th
percentile of the volume, a robust stand-in for the brightest atom.
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage

from ..errors import AetbenchError
from ..types import AtomicModel, TracedModel, Volume
from . import poly as _poly
from .maxima import local_maxima, prune_min_distance, three_point_fit, three_point_offsets

__all__ = [
    "UNCLASSIFIED",
    "default_threshold",
    "local_maxima",
    "three_point_fit",
    "three_point_offsets",
    "refine_centre_of_mass",
    "prune_min_distance",
    "integrated_intensity",
    "trace_atoms",
]

#: provisional label of traced, not yet classified peaks
UNCLASSIFIED = "?"


def default_threshold(data: np.ndarray, fraction: float = 0.1, percentile: float = 99.9) -> float:
    """``fraction`` × the ``percentile``-th percentile of ``data`` (volume units)."""
    if not 0 <= fraction < 1:
        raise AetbenchError(f"trace: threshold_fraction must be in [0, 1), got {fraction}")
    return float(fraction) * float(np.percentile(np.asarray(data), percentile))


def refine_centre_of_mass(data: np.ndarray, index: np.ndarray) -> np.ndarray:
    """Intensity-weighted centre of mass of the 3×3×3 cube around each voxel.

    Weights are the values minus the cube's minimum, so a constant background
    does not pull the centre to the cube's centre.  Returns fractional indices (N, 3).
    """
    g = np.arange(-1, 2)
    off = np.stack(np.meshgrid(g, g, g, indexing="ij"), -1).reshape(-1, 3)
    idx = np.asarray(index)[:, None, :] + off[None]
    v = np.asarray(data, dtype=np.float64)[idx[..., 0], idx[..., 1], idx[..., 2]]
    w = v - v.min(axis=1, keepdims=True)
    s = w.sum(1, keepdims=True)
    s[s == 0] = 1.0
    return np.asarray(index, dtype=np.float64) + (w @ off) / s


def integrated_intensity(volume: Volume, positions: np.ndarray, radius_A: float,
                         step: float = 0.5, order: int = 3) -> np.ndarray:
    """Integral of the volume over a sphere of ``radius_A`` [Å] around each position [Å].

    Sub-voxel aware: the sphere is sampled on a grid of spacing ``step`` voxels
    centred on the exact position (cubic-spline interpolation for ``order=3``,
    trilinear for 1), and the sum is scaled so that its sample count stands for
    the exact sphere volume.  Result in volume units × voxels (≈ the sum of
    the voxels inside the sphere), smooth in the position.
    """
    if not radius_A > 0:
        raise AetbenchError(f"classify: radius_A must be > 0 Å, got {radius_A}")
    pos = np.asarray(positions, dtype=np.float64).reshape(-1, 3)
    if pos.shape[0] == 0:
        return np.zeros(0)
    r_vox = float(radius_A) / volume.voxel_size
    m = int(np.ceil(r_vox / step))
    g = np.arange(-m, m + 1) * step
    off = np.stack(np.meshgrid(g, g, g, indexing="ij"), -1).reshape(-1, 3)
    off = off[(off**2).sum(1) <= r_vox**2]
    scale = 4.0 / 3.0 * np.pi * r_vox**3 / off.shape[0]
    idx = volume.position_to_index(pos)
    data = np.asarray(volume.data, dtype=np.float64)
    if order == 3:
        data = _poly.spline_coefficients(data)
    out = np.empty(pos.shape[0])
    chunk = max(1, 2_000_000 // off.shape[0])
    for s in range(0, pos.shape[0], chunk):
        pts = (idx[s:s + chunk, None, :] + off[None]).reshape(-1, 3).T
        v = ndimage.map_coordinates(data, pts, order=order, mode="mirror" if order == 3 else "constant",
                                    prefilter=False)
        out[s:s + chunk] = v.reshape(-1, off.shape[0]).sum(1) * scale
    return out


def _refine_height(heights, gains, kind):
    """Peak height from the sample maximum and the per-axis gains of :func:`three_point_fit`."""
    g = gains.sum(1)
    return heights * np.exp(g) if kind == "gauss" else heights + g


def _trace_com(data, threshold, oversampling, refine):
    ov = int(oversampling)
    if ov == 1:
        seeds, heights = local_maxima(data, threshold)
        if refine == "com":
            return refine_centre_of_mass(data, seeds), heights, {}
        d = np.asarray(data, dtype=np.float64)
        sample = lambda q: d[tuple(q.T)]  # noqa: E731
    else:
        if refine == "com":
            raise AetbenchError("trace: refine='com' needs oversampling=1")
        c = _poly.spline_coefficients(data)
        seeds, heights = _poly.oversampled_maxima(c, ov, threshold)
        sample = lambda q: _poly.sample_spline(c, q / ov)  # noqa: E731
    offs = np.zeros(seeds.shape, dtype=np.float64)
    gains = np.zeros(seeds.shape, dtype=np.float64)
    for k in range(3):
        e = np.zeros(3, dtype=np.int64)
        e[k] = 1
        offs[:, k], gains[:, k] = three_point_fit(sample(seeds - e), heights, sample(seeds + e), refine)
    return (seeds + offs) / ov, _refine_height(heights, gains, refine), {}


def _seed_prune_distance(min_distance_A: float, voxel_size: float, enabled: bool) -> float:
    """Seed pre-pruning distance [original voxels]: ``min_distance_A`` less one voxel, since
    seeds sit on the oversampled grid up to ~1 voxel (pair distance) from the fitted peaks."""
    return max(float(min_distance_A) / voxel_size - 1.0, 0.0) if enabled else 0.0


def trace_atoms(volume: Volume, *, method: str = "com", min_distance_A: float | str = "bond", oversampling: int = 1,
                threshold: float | None = None, threshold_fraction: float = 0.1, refine: str = "gauss",
                radius_A: float | str | None = None, search_radius: float = 3.0, degree: int = 4, alpha: float = 1.0,
                max_iter: int = 14, max_peaks: int | None = None, prune_seeds: bool = True,
                mask=None, elements=None) -> TracedModel:
    """Trace atoms (sub-voxel intensity peaks) in a volume.

    Parameters
    ----------
    volume : Volume
        Reconstruction, ``[ix, iy, iz]``, voxel size in Å.
    method : {"com", "poly"}
        Local maxima + 3-point fit / centre of mass, or polynomial tracing.
    min_distance_A : float or str
        Minimum distance between traced peaks [Å]; the brighter of a closer pair wins.  ``"bond"`` (default): from
        the elements (:func:`aetbench.trace.bonds.bond_distance_A`, 0.75 × the shortest bond they form; needs
        ``elements``); ``"f*bond"``: ``f`` times that.
    oversampling : int
        Cubic-spline oversampling factor (1 = none; paper: 3 for ``"poly"``).
    threshold : float, optional
        Peaks must exceed this (volume units); default
        ``threshold_fraction`` × 99.9th percentile of the volume.
    refine : {"gauss", "parabola", "com"}
        Sub-voxel refinement of ``"com"``.
    radius_A : float or str, optional
        Sphere radius [Å] of the ``intensity`` (integrated intensity) feature; default half of
        ``min_distance_A`` (neighbours' spheres never overlap).
    search_radius, degree, alpha, max_iter, max_peaks
        Passed to :func:`aetbench.trace.poly.poly_trace` (``search_radius`` in
        oversampled voxels).
    prune_seeds : bool
        ``"poly"``: drop seeds within ``min_distance_A`` − 1 voxel of a brighter
        seed before fitting (saves time on noise maxima; final pruning still uses
        the fitted heights).
    elements : list of str, optional
        The scenario's elements (given by the pipeline); needed for ``min_distance_A="bond"``.
    mask : ndarray, Volume or "auto", optional
        Support: peaks outside it are dropped.  A boolean array of the volume's shape, a
        :class:`Volume` in the global frame (any shape), or ``"auto"`` for
        :func:`aetbench.trace.support.compute_support` (smoothed volume, Otsu, largest component).

    Returns
    -------
    TracedModel
        Positions [Å], labels ``"?"``, ``intensity`` = integrated intensity in
        ``radius_A``; features ``height`` (peak value), ``integrated``, and for
        ``"poly"`` ``residual`` (relative weighted RMS misfit) and ``n_iter``.
    """
    if not isinstance(volume, Volume):
        raise AetbenchError(f"trace: expected a Volume, got {type(volume).__name__}")
    if method not in ("com", "poly"):
        raise AetbenchError(f"trace: method must be 'com' or 'poly', got {method!r}")
    if int(oversampling) != oversampling or oversampling < 1:
        raise AetbenchError(f"trace: oversampling must be an integer ≥ 1, got {oversampling}")
    from .bonds import resolve_distance

    min_distance_A = resolve_distance(min_distance_A, elements, "trace: min_distance_A")
    radius_A = 0.5 * min_distance_A if radius_A is None else resolve_distance(radius_A, elements, "trace: radius_A")
    data = np.asarray(volume.data, dtype=np.float64)
    thr = default_threshold(data, threshold_fraction) if threshold is None else float(threshold)
    feats: dict[str, np.ndarray] = {}
    if method == "com":
        index, height, feats = _trace_com(data, thr, int(oversampling), refine)
    else:
        r = _poly.poly_trace(data, oversampling=int(oversampling), search_radius=search_radius, threshold=thr,
                             degree=degree, alpha=alpha, max_iter=max_iter, max_peaks=max_peaks,
                             seed_min_distance=_seed_prune_distance(min_distance_A, volume.voxel_size, prune_seeds))
        index, height = r["index"], r["height"]
        feats = {"residual": r["residual"], "n_iter": r["n_iter"].astype(np.float64)}
    pos = volume.index_to_position(index).reshape(-1, 3)
    if mask is not None:  # support: drop peaks outside (before pruning, so they cannot suppress atoms)
        from .support import as_mask_volume, compute_support, mask_at

        m = compute_support(volume) if isinstance(mask, str) and mask == "auto" else mask
        inside = mask_at(as_mask_volume(m, volume, "trace mask"), pos)
        pos, index, height = pos[inside], index[inside], np.asarray(height)[inside]
        feats = {k: np.asarray(v)[inside] for k, v in feats.items()}
    keep = prune_min_distance(pos, height, float(min_distance_A))
    pos, height = pos[keep], np.asarray(height)[keep]
    feats = {k: np.asarray(v)[keep] for k, v in feats.items()}
    integ = integrated_intensity(volume, pos, radius_A)
    feats = {"height": height, "integrated": integ, **feats}
    model = AtomicModel(pos, np.full(pos.shape[0], UNCLASSIFIED), name=f"traced:{method}")
    return TracedModel(model=model, intensity=integ, features=feats)
