"""Classification of traced peaks into elements and non-atoms (multi-step k-means).

After the authors' classification scripts (``AET-pAET/Supplementary-Data-Codes``;
written from scratch), on the integrated intensity ``I`` of each peak (sum of
the volume in a sphere of ``radius_A`` around the sub-voxel position, see
:func:`aetbench.trace.peaks.integrated_intensity`):

Step 1 — non-atoms.  k-means on ``I`` into ``K + 1`` clusters (``K`` =
number of elements).  The lowest cluster is declared non-atoms (label
:data:`aetbench.types.NON_ATOM`) only if **both**

* its centre is below ``nonatom_ratio`` (0.4) × the next cluster's centre, and
* every other pair of neighbouring clusters is separated by more than
  ``min_separation`` (2.0) × the sum of their standard deviations — i.e. the
  ``K + 1``-cluster solution did not have to split one element's unimodal
  intensity distribution in two (a split Gaussian gives ≈ 1.3, a split uniform ≈ 1.7).

So a model without spurious peaks loses no atoms: for one element the two
k-means halves of a single population have centre ratio > 0.4 unless its
relative spread exceeds ~50 %; for several elements the split is caught by the
separation test even when the lightest element is much dimmer than the next
(Si/Ge ≈ 0.25 in ADF Z-contrast).

Step 2 — elements.  k-means on the atoms' ``I`` into ``K`` clusters; clusters
ordered by centre are matched to ``elements`` ordered by atomic number
(heavier = brighter).

Step 3 — profile refinement (``refine_iter`` rounds, default 2).  Each
atom's local intensity profile (the volume sampled on a 3×3×3 grid of spacing
``radius_A`` / 2 around it) is compared with every class's mean profile; it
is reassigned to the class at the smallest Euclidean distance (non-atoms take
part as a class when step 1 found them).  Stops early when nothing changes.

k-means uses ``sklearn.cluster.KMeans(n_init=n_init, random_state=seed)`` on
1-D data, so the result is deterministic for a seed.
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage

from ..errors import AetbenchError
from ..types import NON_ATOM, AtomicModel, TracedModel, Volume
from .peaks import integrated_intensity

__all__ = ["order_elements", "kmeans_1d", "gmm_1d", "find_nonatoms", "local_profiles", "refine_by_profile", "classify"]


def order_elements(elements) -> list[str]:
    """Element symbols sorted by atomic number (lightest first), duplicates removed."""
    from ase.data import atomic_numbers

    out = []
    for e in elements:
        if e not in atomic_numbers or e == "X":
            raise AetbenchError(f"classify: elements must be chemical symbols, got {e!r}")
        if e not in out:
            out.append(e)
    if not out:
        raise AetbenchError("classify: elements must name at least one element")
    return sorted(out, key=lambda e: atomic_numbers[e])


def kmeans_1d(values: np.ndarray, k: int, seed: int = 0, n_init: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """k-means of scalar values; clusters relabelled by ascending centre.

    Returns
    -------
    labels : ndarray (N,) int in 0..k-1 (0 = lowest centre)
    centres : ndarray (k,) ascending
    """
    from sklearn.cluster import KMeans

    x = np.asarray(values, dtype=np.float64).reshape(-1, 1)
    k = int(min(k, np.unique(x).size))
    if k <= 1:
        return np.zeros(x.shape[0], dtype=np.int64), np.array([x.mean()]) if x.size else np.zeros(1)
    km = KMeans(n_clusters=k, n_init=n_init, random_state=seed).fit(x)
    c = km.cluster_centers_[:, 0]
    order = np.argsort(c)
    rank = np.empty(k, dtype=np.int64)
    rank[order] = np.arange(k)
    return rank[km.labels_], c[order]


def gmm_1d(values: np.ndarray, labels: np.ndarray, seed: int = 0) -> np.ndarray:
    """Relabel scalar ``values`` by a Gaussian mixture started from the classes ``labels`` (ints 0..C-1, ascending
    means): one component per class, EM from the classes' means, spreads and fractions, then the component of
    highest posterior probability.  Returns the new labels (components ordered by mean, so label c stays the
    c-th brightest class)."""
    from sklearn.mixture import GaussianMixture

    x = np.asarray(values, dtype=np.float64).reshape(-1, 1)
    lab = np.asarray(labels, dtype=np.int64)
    present = [c for c in range(int(lab.max()) + 1) if (lab == c).sum() >= 2]
    if len(present) < 2:
        return lab.copy()
    means = np.array([[x[lab == c].mean()] for c in present])
    var = np.array([max(x[lab == c].var(), 1e-12 * max(float(np.abs(x).max()), 1.0)) for c in present])
    weights = np.array([(lab == c).mean() for c in present])
    g = GaussianMixture(len(present), covariance_type="full", means_init=means, weights_init=weights / weights.sum(),
                        precisions_init=(1.0 / var).reshape(-1, 1, 1), random_state=seed).fit(x)
    order = np.argsort(g.means_.ravel())
    rank = np.empty(len(present), dtype=np.int64)
    rank[order] = np.arange(len(present))
    return np.asarray(present)[rank[g.predict(x)]]


def find_nonatoms(intensity: np.ndarray, n_elements: int, *, seed: int = 0, n_init: int = 10,
                  nonatom_ratio: float = 0.4, min_separation: float = 2.0) -> np.ndarray:
    """Boolean mask (N,) of non-atom peaks by the step-1 rule of this module.

    Parameters
    ----------
    intensity : ndarray (N,)
        Integrated intensities (volume units × voxels).
    n_elements : int
        Number of elements ``K``.
    nonatom_ratio : float
        Lowest cluster centre must be below this fraction of the next one.
    min_separation : float
        Other neighbouring clusters must be farther apart than this × (σ₁ + σ₂).
    """
    I = np.asarray(intensity, dtype=np.float64)
    if I.size < n_elements + 1:
        return np.zeros(I.size, dtype=bool)
    lab, cen = kmeans_1d(I, n_elements + 1, seed, n_init)
    if cen.size < n_elements + 1 or not cen[0] < nonatom_ratio * cen[1]:
        return np.zeros(I.size, dtype=bool)
    sd = np.array([I[lab == j].std() for j in range(cen.size)])
    for j in range(1, cen.size - 1):
        if cen[j + 1] - cen[j] <= min_separation * (sd[j] + sd[j + 1]):
            return np.zeros(I.size, dtype=bool)
    return lab == 0


def local_profiles(volume: Volume, positions: np.ndarray, spacing_A: float) -> np.ndarray:
    """Volume sampled (trilinear) on a 3×3×3 grid of ``spacing_A`` [Å] around each position → (N, 27)."""
    g = np.arange(-1, 2) * (float(spacing_A) / volume.voxel_size)
    off = np.stack(np.meshgrid(g, g, g, indexing="ij"), -1).reshape(-1, 3)
    idx = volume.position_to_index(np.asarray(positions, dtype=np.float64).reshape(-1, 3))
    pts = (idx[:, None, :] + off[None]).reshape(-1, 3).T
    v = ndimage.map_coordinates(np.asarray(volume.data, dtype=np.float64), pts, order=1, mode="constant")
    return v.reshape(-1, off.shape[0])


def refine_by_profile(profiles: np.ndarray, labels: np.ndarray, n_iter: int = 2) -> np.ndarray:
    """Reassign every item to the class whose mean profile is nearest (Euclidean); ``n_iter`` rounds.

    ``labels`` are ints 0..C-1; classes that become empty keep no mean and
    receive no items.  Returns the new labels.
    """
    lab = np.asarray(labels, dtype=np.int64).copy()
    C = int(lab.max()) + 1 if lab.size else 0
    for _ in range(int(n_iter)):
        means, present = [], []
        for c in range(C):
            m = lab == c
            if m.any():
                means.append(profiles[m].mean(0))
                present.append(c)
        if len(present) < 2:
            break
        M = np.stack(means)
        d2 = (profiles**2).sum(1)[:, None] - 2.0 * profiles @ M.T + (M**2).sum(1)[None]
        new = np.asarray(present)[np.argmin(d2, axis=1)]
        if np.array_equal(new, lab):
            break
        lab = new
    return lab


def classify(traced: TracedModel, volume: Volume, *, elements: list[str], seed: int = 0, radius_A: float | str = "0.5*bond",
             n_init: int = 10, nonatom_ratio: float = 0.4, min_separation: float = 2.0, refine_iter: int = 2,
             find_nonatom: bool = True, intensity_model: str = "kmeans") -> TracedModel:
    """Label every traced peak with an element of ``elements`` or :data:`NON_ATOM` (``"x"``).

    Parameters
    ----------
    traced : TracedModel
        Traced peaks (positions [Å]); existing labels are ignored.
    volume : Volume
        The volume they were traced in (voxel size [Å]).
    elements : list of str
        Chemical symbols present; matched to intensity clusters by atomic number.
    seed : int
        ``random_state`` of k-means (deterministic for a seed).
    radius_A : float or str
        Radius [Å] of the sphere of integrated intensity; default ``"0.5*bond"``: half the elements' minimum
        distance (:func:`aetbench.trace.bonds.bond_distance_A`), so that neighbours' spheres never overlap
        (Si 0.88 Å, Co-Pd-Pt 0.94 Å).
    n_init, nonatom_ratio, min_separation, refine_iter
        See the module docstring.
    find_nonatom : bool
        Run step 1 (if False every peak is an atom).
    intensity_model : {"kmeans", "gmm"}
        ``"kmeans"``: steps 1–2 as in the module docstring (boundaries halfway between cluster centres).
        ``"gmm"``: the same decision whether non-atoms exist, then a Gaussian mixture of the classes' intensity
        distributions (one component per class, started from the k-means centres) assigns every peak to the
        class of highest posterior probability: boundaries move towards the narrower, rarer class instead of
        sitting halfway (:func:`gmm_1d`).

    Returns
    -------
    TracedModel
        Same positions; ``intensity`` = integrated intensity in ``radius_A``;
        features gain ``integrated`` and ``class_index`` (-1 non-atom, else the
        index into the elements sorted by atomic number).
    """
    from .bonds import resolve_distance

    els = order_elements(elements)
    radius_A = resolve_distance(radius_A, els, "classify: radius_A")
    pos = traced.model.positions
    I = integrated_intensity(volume, pos, radius_A)
    K = len(els)
    non = (find_nonatoms(I, K, seed=seed, n_init=n_init, nonatom_ratio=nonatom_ratio,
                         min_separation=min_separation) if find_nonatom else np.zeros(I.size, dtype=bool))
    if intensity_model not in ("kmeans", "gmm"):
        raise AetbenchError(f"classify: intensity_model must be 'kmeans' or 'gmm', got {intensity_model!r}")
    cls = np.full(I.size, -1, dtype=np.int64)
    atoms = np.nonzero(~non)[0]
    if atoms.size:
        cls[atoms] = kmeans_1d(I[atoms], K, seed, n_init)[0] if K > 1 else 0
    if intensity_model == "gmm" and I.size > K + 1 and (K > 1 or non.any()):
        cls = gmm_1d(I, cls + 1, seed) - 1
    if refine_iter > 0 and I.size > 1 and (K > 1 or non.any()):
        prof = local_profiles(volume, pos, radius_A / 2.0)
        cls = refine_by_profile(prof, cls + 1, refine_iter) - 1
    labels = np.where(cls < 0, NON_ATOM, np.asarray(els, dtype=object)[np.maximum(cls, 0)]).astype(str)
    feats = {**traced.features, "integrated": I, "class_index": cls.astype(np.float64)}
    model = AtomicModel(pos, labels, name=traced.model.name)
    return TracedModel(model=model, intensity=I, features=feats)
