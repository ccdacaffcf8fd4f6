"""Numba kernels of the ptychography engines (numpy path): the per-batch work that is not an FFT.

All act on flat object arrays and the ``(B, nk, nk)`` flat indices of a batch's windows, so their cost is
O(B·nk²) whatever the size of the object.
"""
from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True)
def far_field_correction(F, meas, nk, measured, poisson, floor):
    """Replace ``F`` in place by the far-field correction; return the amplitude error Σ(|F|/nk − √I)².

    ``F``: (B, nk, nk) complex model far field (unnormalised FFT, numpy layout); ``meas``: (B, nk, nk) measured
    amplitudes in the normalised scale; ``measured``: (nk, nk) bool, False where the detector has no data
    (there the correction is 0 and no error is counted).

    ``poisson=False``: the amplitude projection ``F·(√I·nk/|F| − 1)``.  ``poisson=True``: ``F·(I − q) /
    (2 (q + floor))`` with ``q = |F|²/nk²`` the model intensity and ``I = meas²``; ``floor`` [normalised
    intensity, e.g. one count] bounds the weight of pixels the model predicts (nearly) dark.  This is the
    gradient of the Poisson negative log-likelihood ``Σ q − I log q`` scaled by its curvature ``1 / (2q)``, so for
    ``q ≫ floor`` and ``q ≈ I`` it equals the amplitude projection; its fixed point over repeated noisy patterns
    is the mean count (the amplitude projection's is the mean of ``√I``, biased low where counts are few).
    Where the model has no wave the correction starts it at the measured modulus.
    """
    err = 0.0
    inv = 1.0 / nk
    B = F.shape[0]
    for b in range(B):
        for i in range(F.shape[1]):
            for j in range(F.shape[2]):
                if not measured[i, j]:
                    F[b, i, j] = 0.0
                    continue
                f = F[b, i, j]
                a = np.sqrt(f.real * f.real + f.imag * f.imag)
                m = meas[b, i, j]
                d = a * inv - m
                err += d * d
                if poisson:
                    q = a * a * inv * inv
                    I = m * m
                    if q > 1e-30:
                        F[b, i, j] = f * ((I - q) / (2.0 * (q + floor)))
                    else:
                        F[b, i, j] = m * nk * (I / (I + floor)) - f
                elif a > 1e-20:
                    F[b, i, j] = f * (m * nk / a - 1.0)
                else:
                    F[b, i, j] = m * nk - f
    return err


@njit(cache=True)
def accumulate(num, den, flat_idx, inc, delta):
    """``num[k] += conj(inc)·delta`` and ``den[k] += |inc|²`` over a batch of windows (duplicates add up)."""
    B, n1, n2 = inc.shape
    for b in range(B):
        for i in range(n1):
            for j in range(n2):
                k = flat_idx[b, i, j]
                p = inc[b, i, j]
                num[k] += np.conj(p) * delta[b, i, j]
                den[k] += p.real * p.real + p.imag * p.imag


@njit(cache=True)
def apply_update(obj, num, den, flat_idx, step, reg, max_amplitude):
    """``obj[k] += step·num[k] / (den[k] + reg·max den)`` at the batch's pixels, then |obj| ≤ max_amplitude
    (if > 0); clears ``num`` and ``den`` there for the next batch."""
    B, n1, n2 = flat_idx.shape
    dmax = 0.0
    for b in range(B):
        for i in range(n1):
            for j in range(n2):
                d = den[flat_idx[b, i, j]]
                if d > dmax:
                    dmax = d
    r = reg * dmax + 1e-12
    max2 = max_amplitude * max_amplitude
    for b in range(B):
        for i in range(n1):
            for j in range(n2):
                k = flat_idx[b, i, j]
                d = den[k]
                nm = num[k]
                if d == 0.0 and nm == 0.0:
                    continue                                  # already applied (duplicate) or no light
                o = obj[k] + nm * (step / (d + r))
                if max_amplitude > 0:
                    a2 = o.real * o.real + o.imag * o.imag
                    if a2 > max2:
                        o = o * (max_amplitude / np.sqrt(a2))
                obj[k] = o
                num[k] = 0.0
                den[k] = 0.0
