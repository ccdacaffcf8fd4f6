"""Measured data (``[[input]] kind = "measured"``): tilt series, support, reference model, region, evaluation.

A measured series has no dose and no ground truth.  What the scenario may give, and how it is used:

* ``projections``, ``angles``, ``pixel_size`` — read like the paper's data (:mod:`aetbench.io.paper`).
* ``extended = true`` — the sample is wider than the field of view; every reconstruction method runs on the
  widened volume and keeps the central box (:mod:`aetbench.reconstruct.extended`).
* ``origin`` [Å] — where the reconstruction's centre voxel (index n // 2, the rotation centre) lies in the global
  frame (e.g. a sub-area in the whole film's frame).  It is recorded as the series' ``metadata["centre_A"]``, so
  traced models land in the global frame (:func:`aetbench.methods.to_object_frame`), as simulated ones do.
* ``support`` — a mask of the sample in the global frame (its centre voxel at ``support_origin``); traced atoms
  outside it are dropped (the authors' rule: the support, not the intensity, decides atom vs. non-atom at the
  film's surfaces).
* ``reference_model`` — a published model to compare with in the **region**: the reconstructed box shrunk by
  ``region_margin_A`` on every face, intersected with the support eroded by ``region_erosion_A``.
* ``sub_area`` + ``sub_area_index`` — a scanning-AET film (Yuan et al. 2022): the alignment file lists every
  sub-area's centre and half-size in voxels of the film volume (``CropCen``, ``CropHalf``, 1-based).  The origin
  follows from it (:func:`read_sub_area`), and so does the sub-area's **own patch**: the part of the stitched film
  that the authors took from this sub-area's reconstruction (their stitching rule, below).  The published model
  there was traced in this sub-area's own volume; elsewhere in the box it was traced in the neighbours' volumes,
  reconstructed from other fields of view.  The agreement is reported in the region and in the region ∩ own patch.

:func:`evaluate` scores a traced model against the reference (:mod:`aetbench.score.reference`), draws the figure
and computes the packing analysis of ours and of the reference in the same region (:mod:`aetbench.score.packing`).
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from .errors import AetbenchError
from .types import NON_ATOM, AtomicModel, TiltSeries, TracedModel, Volume

__all__ = ["MeasuredInfo", "SubArea", "measured_info", "read_measured", "read_sub_area", "apply_support", "evaluate",
           "normalised_cross_correlation"]

#: rows the authors trim at a sub-area's y edges when they stitch the film (``dy`` of their stitching script)
STITCH_TRIM_Y = 4


@dataclass(frozen=True)
class SubArea:
    """One sub-area of a scanning-AET film, in voxels of the film volume (1-based, as the alignment file).

    Attributes
    ----------
    index : int
        Its row in the alignment file (1-based).
    centre, half : ndarray (3,)
        ``CropCen`` and ``CropHalf``: the sub-volume spans ``centre ± half``.
    patch : ndarray (2, 2)
        ``[[x0, x1], [y0, y1]]``: the sub-volume indices (1-based, inclusive) the stitched film takes from this
        sub-area; all of z.
    """

    index: int
    centre: np.ndarray
    half: np.ndarray
    patch: np.ndarray

    def origin_A(self, film_shape, pixel_size: float, film_origin=(0.0, 0.0, 0.0)) -> np.ndarray:
        """Position [Å] of the sub-volume's centre voxel, the film volume's centre voxel (index n // 2) being at
        ``film_origin``."""
        return (self.centre - 1 - np.asarray(film_shape) // 2) * float(pixel_size) + np.asarray(film_origin, float)

    def patch_box_A(self, origin_A, pixel_size: float) -> tuple[np.ndarray, np.ndarray]:
        """The own patch as a box (lo, hi) [Å] in the global frame (z unbounded)."""
        off = (self.patch - 1 - self.half[:2, None]) * float(pixel_size)  # from the centre voxel, index half + 1
        lo = np.r_[origin_A[:2] + off[:, 0], -np.inf]
        hi = np.r_[origin_A[:2] + off[:, 1], np.inf]
        return lo, hi


def read_sub_area(path, index: int) -> SubArea:
    """Sub-area ``index`` (1-based) of a scanning-AET alignment file, with its own patch.

    The stitching rule (Yuan et al. 2022, ``Main_RESIRE_Ta_film_sAET.m``): sub-areas form rows of equal y centre
    (rows in ascending y); in its row (in file order) a sub-area keeps x indices ``[1 + dx, 2 h_x + 1 − dx]`` of its
    sub-volume, with ``dx = round(h_x − (x₂ − x₁) / 2) − 2`` from the row's first two centres; the first of a row keeps
    its low side whole, the last its high side.  In y it keeps ``[1 + dy, 2 h_y + 1 − dy]`` with ``dy`` =
    :data:`STITCH_TRIM_Y`, the first row its low side whole, the last row its high side.

    Raises
    ------
    AetbenchError
        The file lacks ``CropCen`` / ``CropHalf`` (N × 3) or ``index`` is not one of its rows (one line).
    """
    from .io.paper import read_mat_arrays

    arrs = read_mat_arrays(path)
    cen, half = arrs.get("CropCen"), arrs.get("CropHalf")
    if cen is None or half is None or cen.ndim != 2 or cen.shape[1] != 3 or half.shape != cen.shape:
        raise AetbenchError(f"{path}: expected CropCen and CropHalf, N × 3 voxel indices (1-based) of the sub-areas, "
                            f"found {sorted(arrs)}")
    if not 1 <= int(index) <= len(cen):
        raise AetbenchError(f"{path}: sub_area_index {index}: expected 1 … {len(cen)} (the file's rows)")
    cen = np.rint(cen).astype(int)
    half = np.rint(half).astype(int)
    k = int(index) - 1
    c, h = cen[k], half[k]
    rows = np.unique(cen[:, 1])
    i = int(np.searchsorted(rows, c[1]))
    row = np.flatnonzero(cen[:, 1] == c[1])  # file order, as the authors' stitching
    j = int(np.flatnonzero(row == k)[0])
    dx = int(np.floor(h[0] - (cen[row[1], 0] - cen[row[0], 0]) / 2 + 0.5)) - 2 if len(row) > 1 else 0
    x = [1 + (dx if j > 0 else 0), 2 * h[0] + 1 - (dx if j < len(row) - 1 else 0)]
    dy = STITCH_TRIM_Y if len(rows) > 1 else 0
    y = [1 + (dy if i > 0 else 0), 2 * h[1] + 1 - (dy if i < len(rows) - 1 else 0)]
    return SubArea(int(index), c.astype(float), h.astype(float), np.array([x, y], dtype=float))


@dataclass
class MeasuredInfo:
    """What a measured case carries besides its tilt series (positions [Å], global frame)."""

    support_path: Path | None
    support_origin: np.ndarray
    reference: AtomicModel | None
    margin_A: float
    erosion_A: float
    cutoff_A: float
    reference_volume: Path | None = None
    origin: np.ndarray | None = None
    sub_area: SubArea | None = None
    _support: Volume | None = None
    _reference_data: np.ndarray | None = None

    def volume_ncc(self, volume: Volume, own_patch: bool = False) -> float | None:
        """Normalised cross-correlation of ``volume`` with the reference reconstruction (same box), or None;
        ``own_patch``: over the sub-area's own patch only (None without a sub-area, or when the box is not the
        sub-volume of the alignment file)."""
        if self.reference_volume is None:
            return None
        if self._reference_data is None:  # read once: the box and the own patch both compare with it
            from .io.paper import read_mat_arrays

            arrs = [a for a in read_mat_arrays(self.reference_volume).values() if a.ndim == 3]
            if len(arrs) != 1:
                raise AetbenchError(f"{self.reference_volume}: expected one 3-D reconstruction [ix, iy, iz], found "
                                    f"shapes {[a.shape for a in arrs]}")
            self._reference_data = arrs[0]
        a, b = volume.data, self._reference_data
        if b.shape != a.shape:
            raise AetbenchError(f"{self.reference_volume}: expected one 3-D reconstruction of shape {volume.shape} "
                                f"[ix, iy, iz], found shapes {[b.shape]}")
        if own_patch:
            sub = self.sub_area
            if sub is None or tuple(volume.shape[:2]) != tuple(int(2 * h + 1) for h in sub.half[:2]):
                return None
            (x0, x1), (y0, y1) = sub.patch.astype(int)
            a, b = a[x0 - 1:x1, y0 - 1:y1], b[x0 - 1:x1, y0 - 1:y1]
        return normalised_cross_correlation(a, b)

    def support(self, pixel_size: float) -> Volume | None:
        """The support as a boolean Volume in the global frame (read once)."""
        if self.support_path is None:
            return None
        if self._support is None:
            from .io.paper import read_mat_arrays

            if self.support_path.suffix in (".h5", ".hdf5"):
                v = Volume.read(self.support_path)
                self._support = Volume(v.data > 0, v.voxel_size, {}, v.origin)
            else:
                arrs = [a for a in read_mat_arrays(self.support_path).values() if a.ndim == 3]
                if len(arrs) != 1:
                    raise AetbenchError(f"{self.support_path}: expected exactly one 3-D support array, found {len(arrs)}")
                self._support = Volume(arrs[0] > 0, pixel_size, {}, self.support_origin)
        return self._support


def measured_info(inp, sc) -> MeasuredInfo:
    """Collect the measured-data options of ``[[input]]`` table ``inp`` (paths resolved, reference read)."""
    from .io.models import read_model
    from .scenario import resolve_data_path

    ref = None
    if inp.reference_model:
        ref = read_model(resolve_data_path(inp.reference_model, sc, "input.reference_model"),
                         elements=inp.reference_elements or (inp.elements[0] if len(inp.elements) == 1 else None))
    sup = resolve_data_path(inp.support, sc, "input.support") if inp.support else None
    rv = resolve_data_path(inp.reference_volume, sc, "input.reference_volume") if inp.reference_volume else None
    info = MeasuredInfo(sup, np.asarray(inp.support_origin or [0.0, 0.0, 0.0], dtype=float), ref,
                        float(inp.region_margin_A), float(inp.region_erosion_A), float(inp.match_cutoff_A), rv,
                        np.asarray(inp.origin, dtype=float) if inp.origin else None)
    if inp.sub_area:
        sub = read_sub_area(resolve_data_path(inp.sub_area, sc, "input.sub_area"), inp.sub_area_index)
        film = info.support(inp.pixel_size)  # the film volume: its centre voxel sits at support_origin
        info.sub_area = sub
        info.origin = sub.origin_A(film.shape, inp.pixel_size, info.support_origin)
    return info


def normalised_cross_correlation(a, b) -> float:
    """NCC of two arrays of one shape: Σ (a − ā)(b − b̄) / sqrt(Σ (a − ā)² Σ (b − b̄)²) (float64)."""
    a = np.asarray(a, dtype=np.float64).ravel()
    b = np.asarray(b, dtype=np.float64).ravel()
    a = a - a.mean()
    b = b - b.mean()
    den = np.sqrt((a * a).sum() * (b * b).sum())
    return float((a * b).sum() / den) if den > 0 else float("nan")


def read_measured(proj, ang, inp, origin) -> TiltSeries:
    """The measured tilt series, with ``extended_object`` and ``centre_A`` in its metadata (``origin`` [Å],
    :attr:`MeasuredInfo.origin`; None: no larger frame)."""
    from .io.paper import read_paper_tilt_series

    ts = read_paper_tilt_series(proj, ang, pixel_size=inp.pixel_size, dose=None)
    meta = {"measured": True, "extended_object": bool(inp.extended)}
    if origin is not None:
        meta["centre_A"] = [float(c) for c in origin]
    return ts.with_images(ts.images, **meta)


def apply_support(traced: TracedModel, support: Volume | None) -> TracedModel:
    """``traced`` with the atoms outside ``support`` (global frame) relabelled as non-atoms."""
    if support is None or len(traced) == 0:
        return traced
    from .trace.support import mask_at

    inside = mask_at(support, traced.model.positions)
    el = np.where(inside, traced.model.elements, NON_ATOM)
    return replace(traced, model=AtomicModel(traced.model.positions, el, name=traced.model.name))


def region(info: MeasuredInfo, ts: TiltSeries):
    """The comparison region: the reconstructed box (nx, ny, nx around ``centre_A``) shrunk by the margin, ∩ the
    support eroded by ``erosion_A``."""
    from .score.reference import Region
    from .trace.support import erode

    nx, ny = ts.shape
    n = np.array([nx, ny, nx])
    p = ts.pixel_size
    c = np.asarray(ts.metadata.get("centre_A", [0.0, 0.0, 0.0]), dtype=float)
    lo = c + (-(n // 2)) * p + info.margin_A
    hi = c + (n - 1 - n // 2) * p - info.margin_A
    sup = info.support(p)
    if sup is not None and info.erosion_A > 0:
        sup = replace(sup, data=erode(sup.data, info.erosion_A / sup.voxel_size))
    return Region(lo=tuple(lo), hi=tuple(hi), mask=sup)


def evaluate(traced: TracedModel, info: MeasuredInfo, ts: TiltSeries, out: Path, tag: str,
             ncc: float | None = None, ncc_own_patch: float | None = None) -> list[dict]:
    """Reference agreement (+ figure) and packing analysis of ours and of the reference in the region, then (for a
    scanning-AET sub-area) the agreement in the region ∩ the sub-area's own patch (tag ``<tag>_own-patch``);
    ``ncc``, ``ncc_own_patch``: the volume's correlation with the reference reconstruction over the box and over the
    own patch (:meth:`MeasuredInfo.volume_ncc`).  No rows without a reference model."""
    if info.reference is None:
        return []
    from .score.reference import OWN_PATCH_SUFFIX, Region, plot_reference, reference_agreement

    reg = region(info, ts)
    res = reference_agreement(traced.atoms(), info.reference, cutoff=info.cutoff_A, region=reg)
    plot_reference(res, Path(out) / f"reference_{tag}.png", title=tag)
    row = {"tag": tag, "volume_ncc": ncc, **res.row(), "region": res.region}
    try:
        from .score.packing import packing_summary

        row["packing"] = {"ours": packing_summary(traced.atoms(), reg),
                          "reference": packing_summary(info.reference, reg)}
    except ImportError:  # pragma: no cover - packing analysis not available
        pass
    rows = [row]
    if info.sub_area is not None:
        lo, hi = info.sub_area.patch_box_A(info.origin, ts.pixel_size)
        own = Region(lo=tuple(np.maximum(reg.lo, lo)), hi=tuple(np.minimum(reg.hi, hi)), mask=reg.mask)
        ptag = f"{tag}{OWN_PATCH_SUFFIX}"
        pres = reference_agreement(traced.atoms(), info.reference, cutoff=info.cutoff_A, region=own)
        plot_reference(pres, Path(out) / f"reference_{ptag}.png", title=f"{ptag} (sub-area {info.sub_area.index})")
        rows.append({"tag": ptag, "volume_ncc": ncc_own_patch, **pres.row(), "region": pres.region})
    return rows
