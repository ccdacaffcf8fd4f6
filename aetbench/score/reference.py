"""Agreement with a reference model (a published model, not a ground truth), restricted to a region.

Protocol ``reference``:

* Both models stay in the **absolute frame** (no centring; a traced model of a sub-area and a whole-film model
  share the film's coordinates).  An optional small translation (``fit_shift=True``) is fitted on the atoms in
  the region by :func:`aetbench.score.match.fit_shift` and accepted only when shorter than ``max_shift_A``
  (default: the cutoff), so a large offset is reported, not hidden.
* Atoms are paired **one to one** within ``cutoff`` [Å] (:func:`aetbench.score.match.assign_one_to_one`,
  minimum total distance).  Pairing uses every atom of both models near the region, and the counts use the atoms
  inside it, so an atom just inside the border keeps its partner just outside (no border artefact).
* The **region** is a box [Å] (``lo``, ``hi``), a mask (:mod:`aetbench.trace.support`: an aetbench Volume in the
  global frame) or both (intersection).
* Reported: atoms of each model in the region, matched pairs, the matched fraction of the reference
  (``frac_reference``) and of ours (``frac_ours``), the RMS distance of the pairs [Å], missing reference atoms and
  extra atoms of ours, and the shift.

Examples
--------
>>> from aetbench.types import AtomicModel
>>> ref = AtomicModel([[0, 0, 0], [2.5, 0, 0], [5, 0, 0], [7.5, 0, 0]], "Ta")
>>> ours = AtomicModel([[0.1, 0, 0], [2.5, 0.2, 0], [5, 0, 0]], "Ta")
>>> r = reference_agreement(ours, ref, cutoff=1.0, region=Region(lo=(-1, -1, -1), hi=(8, 1, 1)))
>>> (r.n_reference, r.n_ours, r.matched, r.missing, r.extra)
(4, 3, 3, 1, 0)
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ..errors import AetbenchError
from ..types import NON_ATOM, AtomicModel, Volume
from .match import assign_one_to_one, fit_shift as _fit_shift

__all__ = ["OWN_PATCH_SUFFIX", "Region", "ReferenceResult", "reference_agreement", "parse_box", "plot_reference",
           "REFERENCE_KEYS"]

#: tag suffix of an agreement row restricted to a scanning-AET sub-area's own patch (:func:`aetbench.measured.evaluate`)
OWN_PATCH_SUFFIX = "_own-patch"

#: keys of :meth:`ReferenceResult.row`
REFERENCE_KEYS = ["n_reference", "n_ours", "matched", "frac_reference_pct", "frac_ours_pct", "rms_A", "missing",
                  "extra", "cutoff_A", "shift_A"]


@dataclass(frozen=True)
class Region:
    """A box ``lo``–``hi`` [Å] (each (3,), optional) and/or a boolean mask Volume in the global frame."""

    lo: tuple | None = None
    hi: tuple | None = None
    mask: Volume | None = None

    def contains(self, positions) -> np.ndarray:
        """Boolean (N,): inside the box (inclusive) and the mask."""
        pos = np.asarray(positions, dtype=float).reshape(-1, 3)
        ok = np.ones(pos.shape[0], dtype=bool)
        if self.lo is not None:
            ok &= np.all(pos >= np.asarray(self.lo, dtype=float), axis=1)
        if self.hi is not None:
            ok &= np.all(pos <= np.asarray(self.hi, dtype=float), axis=1)
        if self.mask is not None:
            from ..trace.support import mask_at

            ok &= mask_at(self.mask, pos)
        return ok

    def describe(self) -> str:
        parts = []
        if self.lo is not None or self.hi is not None:
            lo = "−∞" if self.lo is None else ", ".join(f"{v:.2f}" for v in self.lo)
            hi = "∞" if self.hi is None else ", ".join(f"{v:.2f}" for v in self.hi)
            parts.append(f"box ({lo}) – ({hi}) Å")
        if self.mask is not None:
            parts.append(f"mask {self.mask.shape} voxels of {self.mask.voxel_size:g} Å")
        return " ∩ ".join(parts) or "everything"


def parse_box(text: str) -> Region:
    """``"x0,x1,y0,y1,z0,z1"`` [Å] → :class:`Region` (one-line error otherwise)."""
    try:
        v = [float(t) for t in str(text).replace(":", ",").split(",")]
    except ValueError:
        v = []
    if len(v) != 6 or not all(math.isfinite(a) for a in v) or v[0] > v[1] or v[2] > v[3] or v[4] > v[5]:
        raise AetbenchError(f"--region: expected 'x0,x1,y0,y1,z0,z1' in Å with each low ≤ high, got {text!r}")
    return Region(lo=(v[0], v[2], v[4]), hi=(v[1], v[3], v[5]))


@dataclass
class ReferenceResult:
    """Result of :func:`reference_agreement` (positions [Å] in the absolute frame)."""

    n_reference: int
    n_ours: int
    matched: int
    rms_A: float
    cutoff_A: float
    shift_A: np.ndarray
    region: str
    ours_in: np.ndarray = field(repr=False)          # (n_ours, 3) our atoms in the region
    reference_in: np.ndarray = field(repr=False)     # (n_reference, 3)
    ours_matched: np.ndarray = field(repr=False)     # bool (n_ours,)
    reference_matched: np.ndarray = field(repr=False)
    distances_A: np.ndarray = field(repr=False)      # distances of the pairs with a reference atom in the region

    @property
    def frac_reference(self) -> float:
        return self.matched / self.n_reference if self.n_reference else float("nan")

    @property
    def frac_ours(self) -> float:
        n = int(self.ours_matched.sum())
        return n / self.n_ours if self.n_ours else float("nan")

    @property
    def missing(self) -> int:
        return int(self.n_reference - self.reference_matched.sum())

    @property
    def extra(self) -> int:
        return int(self.n_ours - self.ours_matched.sum())

    def row(self) -> dict:
        """JSON-able summary with :data:`REFERENCE_KEYS`."""
        return {"n_reference": self.n_reference, "n_ours": self.n_ours, "matched": self.matched,
                "frac_reference_pct": round(100 * self.frac_reference, 3), "frac_ours_pct": round(100 * self.frac_ours, 3),
                "rms_A": round(self.rms_A, 4), "missing": self.missing, "extra": self.extra,
                "cutoff_A": self.cutoff_A, "shift_A": [round(float(s), 4) for s in self.shift_A]}


def reference_agreement(model: AtomicModel, reference: AtomicModel, *, cutoff: float = 1.0, region: Region | None = None,
                        fit_shift: bool = False, max_shift_A: float | None = None) -> ReferenceResult:
    """Agreement of ``model`` with ``reference`` in ``region`` (see the module docstring).

    Raises
    ------
    AetbenchError
        Bad cutoff, non-finite positions, or no reference atom in the region (one line).
    """
    c = float(cutoff) if isinstance(cutoff, (int, float)) else float("nan")
    if not (math.isfinite(c) and c > 0):
        raise AetbenchError(f"cutoff: expected a positive distance in Å, got {cutoff!r}")
    for what, m in (("model", model), ("reference", reference)):
        if not isinstance(m, AtomicModel):
            raise AetbenchError(f"{what}: expected an AtomicModel, got {type(m).__name__}")
        if not np.all(np.isfinite(m.positions)):
            raise AetbenchError(f"{what}: positions contain NaN or infinite values")
    region = region or Region()
    ours = model.select(model.elements != NON_ATOM).positions
    ref = reference.select(reference.elements != NON_ATOM).positions
    ref_in = region.contains(ref)
    if not ref_in.any():
        lo, hi = ref.min(axis=0) if len(ref) else np.zeros(3), ref.max(axis=0) if len(ref) else np.zeros(3)
        raise AetbenchError(f"reference: no reference atom lies in the region ({region.describe()}; the reference "
                            f"spans ({', '.join(f'{v:.1f}' for v in lo)}) – ({', '.join(f'{v:.1f}' for v in hi)}) Å); "
                            "check the frame (origin) and the region")
    shift = np.zeros(3)
    if fit_shift and len(ours):
        s = _fit_shift(ours[region.contains(ours)], ref[ref_in], c)
        limit = c if max_shift_A is None else float(max_shift_A)
        if np.linalg.norm(s) <= limit:
            shift = s
    ours_s = ours + shift
    # pair atoms near the region (within one cutoff of it), count inside it
    pad = Region(lo=None if region.lo is None else tuple(np.asarray(region.lo) - c),
                 hi=None if region.hi is None else tuple(np.asarray(region.hi) + c))
    near_o = pad.contains(ours_s)
    near_r = pad.contains(ref)
    io = np.flatnonzero(near_o)
    ir = np.flatnonzero(near_r)
    a, b = assign_one_to_one(ours_s[io], ref[ir], c)
    a, b = io[np.asarray(a, dtype=np.intp)], ir[np.asarray(b, dtype=np.intp)]
    d = np.linalg.norm(ours_s[a] - ref[b], axis=1)
    ours_in = region.contains(ours_s)
    ref_matched = np.zeros(len(ref), dtype=bool)
    ref_matched[b] = True
    ours_matched = np.zeros(len(ours), dtype=bool)
    ours_matched[a] = True
    sel = ref_in[b]
    dist = d[sel]
    rms = float(np.sqrt(np.mean(dist**2))) if dist.size else float("nan")
    return ReferenceResult(n_reference=int(ref_in.sum()), n_ours=int(ours_in.sum()), matched=int(sel.sum()), rms_A=rms,
                           cutoff_A=c, shift_A=shift, region=region.describe(), ours_in=ours_s[ours_in],
                           reference_in=ref[ref_in], ours_matched=ours_matched[ours_in],
                           reference_matched=ref_matched[ref_in], distances_A=dist)


def plot_reference(result: ReferenceResult, path, title: str = "") -> None:
    """Figure: map (x–y) of matched, missing and extra atoms in the region, and the histogram of pair distances."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..io.files import atomic_write_path

    fig, ax = plt.subplots(1, 2, figsize=(10, 4.2))
    r, o = result.reference_in, result.ours_in
    ax[0].scatter(r[result.reference_matched, 0], r[result.reference_matched, 1], s=10, c="0.6", label="matched")
    ax[0].scatter(r[~result.reference_matched, 0], r[~result.reference_matched, 1], s=22, c="tab:red", marker="x",
                  label=f"missing ({result.missing})")
    ax[0].scatter(o[~result.ours_matched, 0], o[~result.ours_matched, 1], s=22, facecolors="none",
                  edgecolors="tab:blue", label=f"extra ({result.extra})")
    ax[0].set_xlabel("x (Å)")
    ax[0].set_ylabel("y (Å)")
    ax[0].set_aspect("equal")
    ax[0].legend(fontsize=8, loc="upper right")
    ax[0].set_title(title or "agreement with the reference")
    ax[1].hist(result.distances_A, bins=np.linspace(0, result.cutoff_A, 26), color="tab:green")
    ax[1].set_xlabel("pair distance (Å)")
    ax[1].set_ylabel("pairs")
    ax[1].set_title(f"{100 * result.frac_reference:.1f} % of reference, {100 * result.frac_ours:.1f} % of ours, "
                    f"RMS {result.rms_A:.2f} Å", fontsize=9)
    fig.tight_layout()
    with atomic_write_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
