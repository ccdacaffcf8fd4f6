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

:func:`evaluate` scores a traced model against the reference (:mod:`aetbench.score.reference`), draws the figure
and computes the packing analysis of ours and of the reference in the same region (:mod:`aetbench.score.packing`).
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from .errors import AetbenchError
from .types import NON_ATOM, AtomicModel, TiltSeries, TracedModel, Volume

__all__ = ["MeasuredInfo", "measured_info", "read_measured", "apply_support", "evaluate",
           "normalised_cross_correlation"]


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
    _support: Volume | None = None

    def volume_ncc(self, volume: Volume) -> float | None:
        """Normalised cross-correlation of ``volume`` with the reference reconstruction (same box), or None."""
        if self.reference_volume is None:
            return None
        from .io.paper import read_mat_arrays

        arrs = [a for a in read_mat_arrays(self.reference_volume).values() if a.ndim == 3]
        if len(arrs) != 1 or arrs[0].shape != volume.shape:
            raise AetbenchError(f"{self.reference_volume}: expected one 3-D reconstruction of shape {volume.shape} "
                                f"[ix, iy, iz], found shapes {[a.shape for a in arrs]}")
        return normalised_cross_correlation(volume.data, arrs[0])

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
    return MeasuredInfo(sup, np.asarray(inp.support_origin or [0.0, 0.0, 0.0], dtype=float), ref,
                        float(inp.region_margin_A), float(inp.region_erosion_A), float(inp.match_cutoff_A), rv)


def normalised_cross_correlation(a, b) -> float:
    """NCC of two arrays of one shape: Σ (a − ā)(b − b̄) / sqrt(Σ (a − ā)² Σ (b − b̄)²) (float64)."""
    a = np.asarray(a, dtype=np.float64).ravel()
    b = np.asarray(b, dtype=np.float64).ravel()
    a = a - a.mean()
    b = b - b.mean()
    den = np.sqrt((a * a).sum() * (b * b).sum())
    return float((a * b).sum() / den) if den > 0 else float("nan")


def read_measured(proj, ang, inp) -> TiltSeries:
    """The measured tilt series, with ``extended_object`` and ``centre_A`` (= ``origin``) in its metadata."""
    from .io.paper import read_paper_tilt_series

    ts = read_paper_tilt_series(proj, ang, pixel_size=inp.pixel_size, dose=None)
    meta = {"measured": True, "extended_object": bool(inp.extended)}
    if inp.origin:
        meta["centre_A"] = [float(c) for c in inp.origin]
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
             ncc: float | None = None) -> dict | None:
    """Reference agreement (+ figure) and packing analysis of ours and of the reference in the region;
    ``ncc``: the volume's correlation with the reference reconstruction (:meth:`MeasuredInfo.volume_ncc`)."""
    if info.reference is None:
        return None
    from .score.reference import plot_reference, reference_agreement

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
    return row
