"""The ONE set of electron-optical conventions shared by the 4D-STEM simulator and the ptychographic reconstructor.

Every convention here is abTEM's (1.0.x), checked against abTEM in ``tests/test_ptycho_recon.py``:

- Interaction parameter ``σ`` [rad/(V·Å)]: abTEM's ``energy2sigma`` = 2π m λ e / h² (relativistic mass).
- Transmission function of a slice with projected potential ``V`` [V·Å]: ``t = exp(+i σ V)`` (phase positive on
  atoms).
- Fresnel propagator over ``dz`` [Å] (multiplied onto the wave's FFT, numpy's unshifted frequency layout):
  ``H(k) = exp(-i π λ dz |k|²)``.  abTEM additionally multiplies its propagator by a 2/3-Nyquist antialiasing
  aperture; we do not (the reconstructor works on the detector's window, whose pixels all carry data).
- Probe: ``ψ(k) = A(α) · exp(-i χ(α)) · exp(-2πi k·r0)``, ``α = λ|k|`` [rad] (no arcsin),
  ``χ = 2π/λ (α² C10 / 2 + α⁴ C30 / 4)``, ``C10 = −defocus`` (abTEM's ``defocus`` > 0: focused *below* the reference plane; propagating
  the probe by ``dz`` with ``H`` lowers its defocus by ``dz``).  ``A`` is abTEM's default *soft* aperture:
  ``clip((α_c − α) / Δα + 1/2, 0, 1)`` with ``Δα = λ / (n·Δx)`` the angular pixel size, ``A(0) = 1``.
- Probe origin: abTEM places a probe built at scan position ``r0`` [Å] (``Probe.build([r0])``) centred on
  pixel ``r0 / Δx`` counted from array index 0; ``Probe.build()`` without a scan centres it at ``extent / 2``.
  :func:`make_probe` centres the probe at index ``n // 2`` (``r0 = (n // 2)·Δx``), identical to abTEM's
  unscanned probe for even ``n``.
- Normalisation: :func:`make_probe` returns ``Σ|ψ|² = 1`` (abTEM normalises differently; only the shape is
  compared), and :func:`forward_pattern` returns ``|FFT(ψ·O)|² / n²`` so a pattern sums to ``Σ|ψ·O|²``
  (= 1 for a pure-phase object), in the ``fftshift`` layout with axes ``u, v`` ↔ ``x, y`` (as abTEM's
  ``PixelatedDetector`` writes its patterns).

All functions take ``xp`` (numpy or cupy) and otherwise use only array-API calls both provide.
"""
from __future__ import annotations

import math

import numpy as np

from ..errors import AetbenchError
from ..optics import wavelength_A

__all__ = ["wavelength_A", "interaction_parameter", "spatial_frequencies", "make_probe", "fresnel_propagator",
           "transmission_function", "fourier_shift_kernel", "fft_module", "forward_pattern", "forward_multislice"]

# CODATA constants (SI)
_M0 = 9.1093837015e-31      # electron rest mass [kg]
_E = 1.602176634e-19        # elementary charge [C]
_H = 6.62607015e-34         # Planck constant [J s]
_C = 299792458.0            # speed of light [m/s]


def interaction_parameter(energy_kV: float) -> float:
    """Interaction parameter σ [rad/(V·Å)] at ``energy_kV`` [kV] (abTEM's ``energy2sigma``).

    ``σ = 2π m λ e / h²`` with the relativistic mass ``m = m0 (1 + eU / m0c²)``.

    Examples
    --------
    >>> round(interaction_parameter(300.0), 6)
    0.000653
    """
    if not energy_kV > 0:
        raise AetbenchError(f"energy_kV: expected > 0 kV, got {energy_kV}")
    U = energy_kV * 1e3
    m = _M0 * (1.0 + _E * U / (_M0 * _C ** 2))
    lam_m = wavelength_A(energy_kV) * 1e-10
    return 2.0 * math.pi * m * _E * lam_m / _H ** 2 * 1e-10


def fft_module(xp=np):
    """FFT namespace for ``xp``: ``scipy.fft`` for numpy (keeps complex64, ~10× faster than ``numpy.fft`` on
    stacks of small complex64 windows), ``xp.fft`` otherwise (cupy)."""
    if xp is np:
        import scipy.fft

        return scipy.fft
    return xp.fft


def spatial_frequencies(n: int, sampling_A: float, xp=np):
    """Spatial frequencies ``(kx[:, None], ky[None, :])`` [1/Å] of an ``n × n`` grid (numpy FFT layout)."""
    k = xp.fft.fftfreq(int(n), float(sampling_A))
    return k[:, None], k[None, :]


def _check_grid(nk, window_sampling_A):
    if int(nk) != nk or nk < 2:
        raise AetbenchError(f"nk: expected an integer ≥ 2 pixels, got {nk}")
    if not window_sampling_A > 0:
        raise AetbenchError(f"window_sampling_A: expected > 0 Å, got {window_sampling_A}")


def make_probe(nk: int, window_sampling_A: float, energy_kV: float, semiangle_mrad: float, defocus_A: float = 0.0,
               Cs_A: float = 0.0, xp=np, binning: int = 1) -> np.ndarray:
    """Real-space probe of abTEM's ``Probe`` on an ``nk × nk`` window, centred at index ``nk // 2``.

    Parameters
    ----------
    nk : int
        Window size [pixels].
    window_sampling_A : float
        Real-space pixel size [Å].
    energy_kV : float
        Beam energy [kV].
    semiangle_mrad : float
        Aperture semi-angle [mrad] (abTEM's soft aperture edge).
    defocus_A : float
        abTEM defocus [Å] (= −C10; positive: focused below the reference plane).
    Cs_A : float
        Spherical aberration C30 [Å].
    xp : module
        numpy or cupy.
    binning : int
        Detector binning ``b`` (odd) of data whose patterns were simulated at ``b``× finer angular sampling and
        binned (``FourDSTEM.metadata["binning"]`` of :mod:`aetbench.simulate.ptycho`): the aperture amplitude of
        every pixel becomes the root of the mean of the ``b × b`` finer pixels' ``|A|²``, so the vacuum pattern
        equals the binned one (the aperture edge spreads over ``b`` fine pixels, not one coarse pixel).  ``1``:
        abTEM's probe on this grid.

    Returns
    -------
    ndarray, complex128, shape (nk, nk)
        Probe with ``Σ|ψ|² = 1``.
    """
    _check_grid(nk, window_sampling_A)
    if not semiangle_mrad > 0:
        raise AetbenchError(f"semiangle_mrad: expected > 0 mrad, got {semiangle_mrad}")
    nk = int(nk)
    lam = wavelength_A(energy_kV)
    kx, ky = spatial_frequencies(nk, window_sampling_A, xp)
    alpha = xp.sqrt(kx ** 2 + ky ** 2) * lam                           # rad
    dalpha = lam / (nk * window_sampling_A)                             # rad per pixel
    if int(binning) != binning or binning < 1:
        raise AetbenchError(f"binning: expected an integer ≥ 1, got {binning}")
    b = int(binning)
    if b == 1:
        aperture = xp.clip((semiangle_mrad * 1e-3 - alpha) / dalpha + 0.5, 0.0, 1.0)
        aperture[0, 0] = 1.0
    else:
        fine = dalpha / b
        sub = (xp.arange(b) - (b - 1) / 2.0) / b                         # sub-pixel offsets [coarse pixels]
        acc = xp.zeros((nk, nk))
        for ox in sub:
            for oy in sub:
                a = xp.sqrt((kx * lam + ox * dalpha) ** 2 + (ky * lam + oy * dalpha) ** 2)
                acc = acc + xp.clip((semiangle_mrad * 1e-3 - a) / fine + 0.5, 0.0, 1.0) ** 2
        aperture = xp.sqrt(acc / b ** 2)
    chi = 2.0 * math.pi / lam * (0.5 * alpha ** 2 * (-float(defocus_A)) + 0.25 * alpha ** 4 * float(Cs_A))
    r0 = (nk // 2) * window_sampling_A
    psi_k = aperture * xp.exp(-1j * chi) * xp.exp(-2j * math.pi * (kx + ky) * r0)
    psi = xp.fft.ifft2(psi_k)
    return psi / xp.sqrt(xp.sum(xp.abs(psi) ** 2))


def fresnel_propagator(nk: int, window_sampling_A: float, energy_kV: float, dz_A: float, xp=np) -> np.ndarray:
    """abTEM's Fresnel propagator ``exp(-iπλ dz |k|²)`` over ``dz_A`` [Å], numpy FFT layout, shape (nk, nk)."""
    _check_grid(nk, window_sampling_A)
    lam = wavelength_A(energy_kV)
    kx, ky = spatial_frequencies(int(nk), window_sampling_A, xp)
    return xp.exp(-1j * math.pi * lam * float(dz_A) * (kx ** 2 + ky ** 2))


def transmission_function(projected_potential_VA, energy_kV: float, xp=np):
    """Transmission ``exp(iσV)`` of a slice with projected potential ``V`` [V·Å] (abTEM's convention)."""
    V = xp.asarray(projected_potential_VA)
    return xp.exp(1j * interaction_parameter(energy_kV) * V)


def fourier_shift_kernel(shifts_px, nk: int, xp=np):
    """Phase ramps ``exp(-2πi k·d)`` that move a window's content by ``d`` pixels; shape (..., nk, nk).

    ``shifts_px`` has shape (..., 2) (x, y) in pixels (fractions allowed).
    """
    d = xp.asarray(shifts_px, dtype=float)
    k = xp.fft.fftfreq(int(nk))
    ex = xp.exp(-2j * math.pi * k[None, :] * d[..., 0:1])               # (..., nk)
    ey = xp.exp(-2j * math.pi * k[None, :] * d[..., 1:2])
    return ex[..., :, None] * ey[..., None, :]


def forward_pattern(probe, object_window, xp=np):
    """Far-field intensity ``|FFT(ψ·O)|² / nk²`` in the fftshift layout (axes u, v ↔ x, y).

    Parameters
    ----------
    probe : complex array (..., nk, nk)
        Incident wave in the object plane (already shifted to the scan position).
    object_window : complex array (..., nk, nk)
        Transmission function of the object under the window.

    Returns
    -------
    float array (..., nk, nk)
        Pattern with zero frequency at ``(nk // 2, nk // 2)``; sums to ``Σ|ψ·O|²``.
    """
    exit_wave = xp.asarray(probe) * xp.asarray(object_window)
    nk = exit_wave.shape[-1]
    if exit_wave.shape[-2] != nk:
        raise AetbenchError(f"forward_pattern: expected square windows (..., nk, nk), got {exit_wave.shape}")
    F = fft_module(xp).fft2(exit_wave, axes=(-2, -1))
    return xp.fft.fftshift(xp.abs(F) ** 2, axes=(-2, -1)) / nk ** 2


def forward_multislice(probe, object_windows, propagator, xp=np):
    """Multislice far-field pattern: transmit slice ``s``, propagate ``dz`` to slice ``s + 1``, …, then FFT.

    Parameters
    ----------
    probe : complex array (..., nk, nk)
        Incident wave at the entrance plane of the first slice.
    object_windows : complex array (n_slices, ..., nk, nk)
        Transmission functions of the slices under the window (abTEM order: first slice first).
    propagator : complex array (nk, nk)
        :func:`fresnel_propagator` over one slice thickness.

    Returns
    -------
    float array (..., nk, nk)
        Pattern as in :func:`forward_pattern` (the final propagation does not change the intensity).
    """
    wave = xp.asarray(probe)
    n = object_windows.shape[0]
    for s in range(n - 1):
        fft = fft_module(xp)
        wave = fft.ifft2(fft.fft2(wave * object_windows[s], axes=(-2, -1)) * propagator, axes=(-2, -1))
    return forward_pattern(wave, object_windows[n - 1], xp)
