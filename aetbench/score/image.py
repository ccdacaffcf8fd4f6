"""Similarity of two images (or any equally shaped arrays): a score, shared by the simulators'
calibration (:mod:`aetbench.simulate.calibrate`) and the ptychography assessment (:mod:`aetbench.ptycho.assess`)."""
from __future__ import annotations

import numpy as np

__all__ = ["normalised_cross_correlation"]


def normalised_cross_correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation of two equally shaped arrays (1 = identical up to gain and offset)."""
    a = np.asarray(a, float).ravel() - np.mean(a)
    b = np.asarray(b, float).ravel() - np.mean(b)
    return float(a @ b / np.sqrt((a @ a) * (b @ b)))
