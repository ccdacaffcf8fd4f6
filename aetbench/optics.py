"""Electron optics shared by the simulators and the ptychographic reconstruction (ground floor).

:mod:`aetbench.simulate` (ADF-STEM and 4D-STEM simulation) and :mod:`aetbench.ptycho`
(reconstruction) both need the electron wavelength, the probe's Nyquist scan step and
FFT-friendly grid sizes; they live here so that neither package imports the other for them.
Pure functions of numbers; imports nothing of aetbench.
"""
from __future__ import annotations

import math

__all__ = ["wavelength_A", "nyquist_scan_step_A", "fft_friendly"]


def wavelength_A(energy_kV: float) -> float:
    """Relativistic electron wavelength [Å] at ``energy_kV`` [kV]."""
    e = energy_kV * 1e3
    return 12.2642598 / math.sqrt(e + 0.97847573e-6 * e * e)


def nyquist_scan_step_A(energy_kV: float, semiangle_mrad: float) -> float:
    """Largest scan step [Å] that samples an ADF image without aliasing: ``λ / (4 α)``.

    The ADF signal as a function of probe position is band-limited to spatial
    frequency ``2 α / λ`` (twice the aperture radius).
    """
    return wavelength_A(energy_kV) / (4.0 * semiangle_mrad * 1e-3)


def fft_friendly(n: int, multiple_of: int = 1) -> int:
    """Smallest ``m ≥ n`` with ``m % multiple_of == 0`` and only prime factors 2, 3, 5, 7."""
    m = max(int(math.ceil(n)), 1)
    while True:
        if m % multiple_of == 0:
            r = m
            for p in (2, 3, 5, 7):
                while r % p == 0:
                    r //= p
            if r == 1:
                return m
        m += 1
