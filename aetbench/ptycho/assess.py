"""How well a ptychographic phase matches the truth: the true projected phase of a model on the tomography grid.

The reference is abTEM's projected potential of the static atoms (``projection="infinite"``, Lobato), times the
interaction parameter σ (:func:`~aetbench.ptycho.conventions.interaction_parameter`), placed in the data's field
frame the way :mod:`aetbench.simulate.ptycho` places the atoms (object frame rotated about
``metadata["rotation_centre_object_A"]``, then shifted to the cell centre), Gaussian-prefiltered and bilinearly
resampled exactly as :func:`~aetbench.ptycho.reconstruct.phase_image` resamples a reconstruction (σ = 0.42 tomography
pixels).  Frozen phonons and the probe's band limit are not in the reference, so even noise-free data stop short
of NCC 1 (measured 0.96 single-slice / 0.98 multislice on sio2_tiny at 25 mrad).
"""
from __future__ import annotations

import numpy as np

from ..errors import AetbenchError
from ..score.image import normalised_cross_correlation as ncc
from ..types import AtomicModel
from .data import FourDSTEM

__all__ = ["true_phase_image", "phase_ncc"]


def true_phase_image(model: AtomicModel, data: FourDSTEM, shape, pixel_size_A: float, *,
                     sampling_A: float = 0.05, parametrization: str = "lobato") -> np.ndarray:
    """True projected phase σ·∫V dz [rad] of ``model`` at the tilt of ``data``, on the tomography grid.

    Parameters
    ----------
    model : AtomicModel
        Atoms [Å], object frame (as given to the simulator).
    data : FourDSTEM
        Simulated data of one tilt (``angle_deg``, ``field_extent_A``, ``depth_A``, ``centre_A`` and
        ``metadata["rotation_centre_object_A"]``; default centre: the model's centroid).
    shape : (int, int)
        Tomography image size (nx, ny) [pixels]; pixel ``(nx // 2, ny // 2)`` lies on ``data.centre_A``.
    pixel_size_A : float
        Tomography pixel size [Å].
    sampling_A : float
        Potential sampling [Å] of the reference (finer than the reconstruction's).

    Returns
    -------
    ndarray (nx, ny), float64
        Projected phase [rad], 0 in vacuum.
    """
    import abtem
    from ase import Atoms
    from scipy import ndimage

    from .. import geometry
    from .conventions import interaction_parameter

    if not pixel_size_A > 0:
        raise AetbenchError(f"pixel_size_A: expected > 0 Å, got {pixel_size_A}")
    if not 0 < sampling_A <= 0.2:
        raise AetbenchError(f"sampling_A: expected 0 < sampling ≤ 0.2 Å, got {sampling_A}")
    ext = float(data.field_extent_A[0])
    depth = float(data.depth_A) if data.depth_A and data.depth_A > 0 else 1.0
    centre = np.asarray(data.metadata.get("rotation_centre_object_A", model.positions.mean(axis=0)), dtype=float)
    beam = geometry.object_to_beam(model.positions, data.angle_deg, centre)
    beam = beam + np.array([data.field_extent_A[0] / 2.0, data.field_extent_A[1] / 2.0, depth / 2.0])
    atoms = Atoms(symbols=list(model.elements), positions=beam, cell=[ext, float(data.field_extent_A[1]), depth])
    pot = abtem.Potential(atoms, sampling=sampling_A, slice_thickness=depth, projection="infinite",
                          parametrization=parametrization)
    V = np.asarray(pot.build().compute(progress_bar=False).array).sum(axis=0)
    sx, sy = ext / V.shape[0], float(data.field_extent_A[1]) / V.shape[1]
    phase = interaction_parameter(data.energy_kV) * V
    phase = ndimage.gaussian_filter(phase, (0.42 * pixel_size_A / sx, 0.42 * pixel_size_A / sy), mode="wrap")
    nx, ny = int(shape[0]), int(shape[1])
    x = data.centre_A[0] + (np.arange(nx) - nx // 2) * pixel_size_A
    y = data.centre_A[1] + (np.arange(ny) - ny // 2) * pixel_size_A
    gx, gy = np.meshgrid(x / sx, y / sy, indexing="ij")
    return ndimage.map_coordinates(phase, [gx, gy], order=1, mode="grid-wrap")


def phase_ncc(image: np.ndarray, reference: np.ndarray, lowpass_px: float = 0.0) -> float:
    """Normalised cross-correlation of a phase image with the reference, both optionally Gaussian-filtered
    with σ = ``lowpass_px`` tomography pixels (0: as is)."""
    from scipy import ndimage

    a, b = np.asarray(image, float), np.asarray(reference, float)
    if a.shape != b.shape:
        raise AetbenchError(f"image: expected the reference's shape {b.shape}, got {a.shape}")
    if lowpass_px > 0:
        a, b = ndimage.gaussian_filter(a, lowpass_px), ndimage.gaussian_filter(b, lowpass_px)
    return float(ncc(a, b))
