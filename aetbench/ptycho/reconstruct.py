"""Ptychographic reconstruction of one tilt's 4D-STEM data: single-slice and multislice engines.

The forward model (scan geometry, shifted probes, a 4D-STEM simulator) is :mod:`.forward`, the projected
phase on the tomography grid :mod:`.phase`, the result type :class:`~.data.PtychoResult`; their public names
are importable from here too.

Both engines are mini-batch projection / gradient schemes on the amplitude (√I) of the patterns:

1. for a batch of ``B`` scan positions gather the object windows under the probe (fancy indexing),
2. forward model of :mod:`aetbench.ptycho.conventions` (single slice: ``ψ = P·O``; multislice: transmit, Fresnel
   propagate with abTEM's sign, …),
3. correct the far field and back-transform: ``Δψ`` at the exit plane.  ``noise_model="amplitude"`` (default)
   replaces the modulus by the measured amplitude; ``noise_model="poisson"`` steps along the gradient of the
   Poisson negative log-likelihood of the counts scaled by its curvature, ``Ψ·(I − |Ψ|²) / (2(|Ψ|² + ε))``
   (ε: one count), whose fixed point is the mean count rather than the low-biased mean of √counts,
4. back-propagate ``Δψ`` through the slices (multislice: ``Δψ_in = conj(O_s)·Δψ_s`` then the inverse
   propagator) and update every slice with the illumination-normalised, batch-averaged step
   ``O_s += (step / n_slices) · Σ conj(ψ_in,s) Δψ_s / (Σ|ψ_in,s|² + reg · max Σ|ψ_in,s|²)`` (scatter-added
   with ``bincount``; the slices share the step, as their changes add up in the exit wave), optionally the probe
   the same way (``refine_probe``),
5. optionally (``positivity``) after every pass each slice's negative phases are set to 0.

Geometry: the object grid has the detector window's sampling ``s = data.window_sampling_A``; object pixel
``[0, 0]`` sits at ``origin_A`` (field frame, Å).  A scan position ``r`` maps to the fractional object pixel
``c = (r − origin_A) / s``; the window starts at ``round(c) − nk // 2`` and the probe (centred at window index
``nk // 2``, :func:`~aetbench.ptycho.conventions.make_probe`) is Fourier-shifted by the sub-pixel remainder
``c − round(c)``, so scan steps need not be multiples of ``s``.

Intensity scale: patterns (counts or fractions) are divided by their mean sum, and the probe is normalised to
``Σ|P|² = 1``, so dose only changes the noise.

Detector: the default probe is :func:`~aetbench.ptycho.conventions.make_probe` with the data's parameters and
``binning = data.metadata.get("binning", 1)``: patterns simulated at finer angles and binned (the simulator of
:mod:`aetbench.simulate.ptycho`) have a blurred aperture edge, which a probe built on the coarse grid misses
(measured on a 4-atom abTEM case: final error 3.5e-3 without, 6.8e-6 with).  Detector pixels that carry no data
(the zeroed corners beyond a simulator's anti-aliasing cut-off) are left unconstrained (``detector_mask``).
"""
from __future__ import annotations

import time

import numpy as np

from ..errors import AetbenchError
from . import conventions as cv
from .data import FourDSTEM, PtychoResult
from .forward import _fft2, _ifft2, _Probes, _scatter_add, _to_np, _window_index, _xp_of, scan_geometry
# re-exported: the forward model and the phase projection lived here before the split
from .forward import ScanGeometry, simulate_fourdstem  # noqa: F401
from .phase import phase_image, projected_phase, scanned_mask  # noqa: F401

#: numpy path: numba kernels for the modulus constraint, scatter-add and update (False: generic array code,
#: the one CuPy runs; kept for tests and machines without numba).
USE_NUMBA = True

#: noise models of the far-field update (``noise_model`` keyword)
NOISE_MODELS = ("amplitude", "poisson")

#: Poisson update: variance floor [counts] added to the model intensity in the curvature ``2 (q + floor)``
#: (bounds the step on pixels the model predicts dark); noise-free data (no ``dose_per_A2``) are treated as
#: :data:`NOISE_FREE_COUNTS` counts per pattern.
POISSON_FLOOR_COUNTS = 1.0
NOISE_FREE_COUNTS = 1e6

__all__ = ["PtychoResult", "ScanGeometry", "scan_geometry", "reconstruct", "reconstruct_single_slice",
           "reconstruct_multislice", "phase_image", "projected_phase", "scanned_mask", "simulate_fourdstem",
           "counts_per_pattern", "NOISE_MODELS"]


def _validate(data, iterations, batch_size, step, noise_model="amplitude"):
    if noise_model not in NOISE_MODELS:
        raise AetbenchError(f"noise_model: expected one of {', '.join(NOISE_MODELS)}, got {noise_model!r}")
    if not isinstance(data, FourDSTEM):
        raise AetbenchError(f"data: expected a FourDSTEM, got {type(data).__name__}")
    I = np.asarray(data.intensities)
    if I.shape[-1] != I.shape[-2]:
        raise AetbenchError(f"data.intensities: expected square patterns (nk, nk), got {I.shape[-2:]}")
    if I.shape[-1] < 8:
        raise AetbenchError(f"data.intensities: expected patterns of ≥ 8 × 8 pixels, got {I.shape[-2:]}")
    m = I.shape[0] * I.shape[1]
    if m < 4:
        raise AetbenchError(f"data.scan_positions_A: expected ≥ 4 scan positions, got {m}")
    if not np.all(np.isfinite(I)) or I.min() < 0:
        raise AetbenchError("data.intensities: expected finite, non-negative fractions or counts")
    if np.ptp(data.scan_positions_A.reshape(-1, 2), axis=0).max() <= 0:
        raise AetbenchError("data.scan_positions_A: all scan positions coincide; expected a scan [Å]")
    if int(iterations) != iterations or iterations < 1:
        raise AetbenchError(f"iterations: expected an integer ≥ 1, got {iterations}")
    if int(batch_size) != batch_size or batch_size < 1:
        raise AetbenchError(f"batch_size: expected an integer ≥ 1 positions, got {batch_size}")
    if not 0 < step <= 2:
        raise AetbenchError(f"step: expected 0 < step ≤ 2, got {step}")
    if data.semiangle_mrad is None or not data.semiangle_mrad > 0:
        raise AetbenchError(f"data.semiangle_mrad: expected > 0 mrad, got {data.semiangle_mrad}")


def counts_per_pattern(data: FourDSTEM) -> float:
    """Mean electrons per diffraction pattern: the mean pattern sum of count data (``data.dose_per_A2`` set),
    :data:`NOISE_FREE_COUNTS` for noise-free fractions."""
    if data.dose_per_A2 is None:
        return NOISE_FREE_COUNTS
    return float(np.asarray(data.intensities).sum(axis=(-2, -1), dtype=np.float64).mean())


def _prepare(data: FourDSTEM, xp, probe, plane_A, dtype):
    """Measured amplitudes (M, nk, nk) in numpy's FFT layout, normalised scale, the geometry and the probe."""
    nk = data.nk
    I = np.asarray(data.intensities).reshape(-1, nk, nk)
    mean_sum = float(I.sum(axis=(-2, -1), dtype=np.float64).mean())
    if not mean_sum > 0:
        raise AetbenchError("data.intensities: all patterns are empty (sum 0)")
    amp = np.empty(I.shape, dtype=dtype)
    for c in range(0, len(I), 2048):                                      # chunks: no float64 copy of the data
        blk = np.asarray(I[c:c + 2048], dtype=dtype) / dtype(mean_sum)
        amp[c:c + 2048] = np.sqrt(np.fft.ifftshift(blk, axes=(-2, -1)))
    s = data.window_sampling_A
    geom = scan_geometry(data.scan_positions_A.reshape(-1, 2), nk, s)
    if probe is None:
        binning = int(data.metadata.get("binning", 1) or 1) if isinstance(data.metadata, dict) else 1
        probe = cv.make_probe(nk, s, data.energy_kV, data.semiangle_mrad, data.defocus_A - plane_A, data.Cs_A,
                              xp=np, binning=binning)
    probe = np.asarray(_to_np(probe), dtype=np.complex128)
    if probe.shape != (nk, nk):
        raise AetbenchError(f"probe: expected shape ({nk}, {nk}), got {probe.shape}")
    probe = probe / np.sqrt(np.sum(np.abs(probe) ** 2))
    cdtype = np.complex64 if dtype == np.float32 else np.complex128
    return xp.asarray(amp), geom, xp.asarray(probe.astype(cdtype)), cdtype


def _detector_mask(data: FourDSTEM, detector_mask) -> np.ndarray:
    """(nk, nk) bool in numpy's FFT layout: True where the detector measured.

    Default: the disk out to the largest scattering angle that is non-zero in any pattern (simulators zero the
    corners beyond their anti-aliasing cut-off; those pixels carry no data and are left free), at least
    1.05 × the aperture.
    """
    nk = data.nk
    if detector_mask is None:
        k = np.arange(nk) - nk // 2
        r = np.hypot(k[:, None], k[None, :])
        lit = np.asarray(data.intensities).reshape(-1, nk, nk).max(axis=0) > 0
        r_max = max(float(r[lit].max()) if lit.any() else 0.0,
                    1.05 * data.semiangle_mrad / data.angular_sampling_mrad)
        mask = r <= r_max + 1e-6
    else:
        mask = np.asarray(detector_mask, dtype=bool)
        if mask.shape != (nk, nk):
            raise AetbenchError(f"detector_mask: expected shape ({nk}, {nk}) (fftshift layout), got {mask.shape}")
    return np.ascontiguousarray(np.fft.ifftshift(mask))


def _clip_negative_phase(obj, xp):
    """Set every slice's negative phases to 0 in place, keeping the modulus (the potential of neutral atoms is
    positive, so each slice's phase σ∫V dz ≥ 0 with vacuum at 0; weak objects: phase per slice < π)."""
    ph = xp.angle(obj)
    neg = ph < 0
    obj[neg] = xp.abs(obj[neg]).astype(obj.dtype)


def _batches(m, batch_size, rng):
    order = rng.permutation(m)
    return [order[i:i + batch_size] for i in range(0, m, batch_size)]


def _iterate(data, *, n_slices, dz, plane_A, engine, iterations, batch_size, step, reg, probe, refine_probe,
             probe_step, refine_probe_after, seed, xp, progress, dtype, detector_mask=None, max_amplitude=1.0,
             noise_model="amplitude", positivity=False):
    xp = _xp_of(xp)
    fast = xp is np and USE_NUMBA
    t0 = time.perf_counter()
    amp, geom, P0, cdtype = _prepare(data, xp, probe, plane_A, dtype)
    measured = _detector_mask(data, detector_mask)
    measured = measured if fast else xp.asarray(measured)
    nk = geom.nk
    m = amp.shape[0]
    poisson = noise_model == "poisson"
    floor = POISSON_FLOOR_COUNTS / counts_per_pattern(data)            # one count in the normalised scale
    size = geom.shape[0] * geom.shape[1]
    obj = xp.ones((n_slices, size), dtype=cdtype)
    H = cv.fresnel_propagator(nk, geom.sampling_A, data.energy_kV, dz, xp).astype(cdtype)
    Hc = xp.conj(H)
    probes = _Probes(P0, geom, xp)
    rng = np.random.default_rng(seed)
    if fast:
        from . import _kernels as _k

        num_buf = np.zeros((n_slices, size), dtype=cdtype)
        den_buf = np.zeros((n_slices, size), dtype=np.float32 if cdtype == np.complex64 else np.float64)
    errors: list[float] = []
    total = float(xp.sum(xp.sum(amp ** 2, axis=0, dtype=np.float64) * xp.asarray(measured)))
    loop = range(int(iterations))
    if progress:
        from tqdm.auto import tqdm

        loop = tqdm(loop, desc=f"ptycho {engine}", unit="it")
    eps = 1e-12
    # every slice is updated from the same exit-wave correction; where the slices act alike (low spatial
    # frequencies, depths within the depth of field) their changes add up, so each takes 1/n_slices of the step
    # (the full step on all n slices overshoots n-fold: 8 slices of 2.5 Å diverged, NCC 0.21 noise-free)
    slice_step = float(step) / n_slices
    for it in loop:
        err = 0.0
        refine = refine_probe and it >= refine_probe_after
        for idx in _batches(m, int(batch_size), rng):
            fidx = _window_index(geom, idx, xp)
            win = obj[:, fidx]                                            # (S, B, nk, nk)
            Pb = probes(idx)
            incident = [Pb]
            for s in range(n_slices - 1):
                incident.append(_ifft2(_fft2(incident[s] * win[s], xp) * H, xp))
            exit_wave = incident[-1] * win[-1]
            F = _fft2(exit_wave, xp)
            meas = amp[xp.asarray(idx)]
            if fast:
                err += _k.far_field_correction(F, meas, nk, measured, poisson, floor)  # F becomes the correction
                delta = _ifft2(F, xp)                                    # Δψ at the last slice's exit
            else:
                a = xp.abs(F) / nk                                       # model amplitude, normalised scale
                err += float(xp.sum(((a - meas) * measured) ** 2))
                if poisson:
                    q = a * a
                    inten = meas * meas
                    corr = F * ((inten - q) / (2 * (q + floor)))
                    corr = xp.where(q <= 1e-30, meas * nk * (inten / (inten + floor)) - F, corr)
                    delta = _ifft2(corr * measured, xp)
                else:
                    delta = _ifft2(F * ((meas / (a + eps) - 1) * measured), xp)
            updates = []
            for s in range(n_slices - 1, -1, -1):
                inc = incident[s]
                if fast:
                    _k.accumulate(num_buf[s], den_buf[s], fidx, inc, delta)
                else:
                    num = _scatter_add(fidx, xp.conj(inc) * delta, size, xp)
                    den = _scatter_add(fidx, (inc.real ** 2 + inc.imag ** 2), size, xp)
                    updates.append((s, num, den))
                if s > 0 or refine:
                    delta = xp.conj(win[s]) * delta                     # Δ incident wave of slice s
                    if s > 0:
                        delta = _ifft2(_fft2(delta, xp) * Hc, xp)        # back to the exit of slice s − 1
            if fast:
                for s in range(n_slices):
                    _k.apply_update(obj[s], num_buf[s], den_buf[s], fidx, slice_step, reg, max_amplitude or 0.0)
            for s, num, den in updates:
                sel = fidx
                d = den[sel]
                o = obj[s][sel] + (slice_step * num[sel] / (d + reg * xp.max(d) + eps)).astype(cdtype)
                if max_amplitude is not None:
                    mag = xp.abs(o)
                    o = o * xp.where(mag > max_amplitude, max_amplitude / (mag + eps), 1.0).astype(o.real.dtype)
                obj[s][sel] = o                                          # duplicates write equal values
            if refine:
                # delta is now the change of the incident probe at the first slice, per position
                pw = xp.sum(xp.abs(win[0]) ** 2, axis=0)
                g = probes.unshift_sum(delta, idx) / (xp.max(pw) + eps)
                newp = probes.probe + (probe_step * g).astype(cdtype)
                probes.set(newp / xp.sqrt(xp.sum(xp.abs(newp) ** 2)))          # data fix Σ|P|² = 1
        errors.append(err / total)
        if positivity:
            _clip_negative_phase(obj, xp)
    illum = xp.zeros(size, dtype=np.float64)
    for idx in _batches(m, int(batch_size), np.random.default_rng(0)):
        Pb = probes(idx)
        illum += _scatter_add(_window_index(geom, idx, xp), (Pb.real ** 2 + Pb.imag ** 2), size, xp)
    return PtychoResult(
        object=_to_np(obj).reshape((n_slices,) + geom.shape), sampling_A=geom.sampling_A, origin_A=geom.origin_A,
        probe=_to_np(probes.probe), errors=errors, engine=engine, n_slices=n_slices, slice_thickness_A=float(dz),
        seconds=time.perf_counter() - t0, probe_plane_A=float(plane_A), illumination=_to_np(illum).reshape(geom.shape),
        metadata=dict(iterations=int(iterations), batch_size=int(batch_size), step=float(step), reg=float(reg),
                      refine_probe=bool(refine_probe), seed=seed, n_positions=int(m), nk=int(nk),
                      noise_model=noise_model))


def reconstruct_single_slice(data: FourDSTEM, *, iterations: int = 30, batch_size: int = 32, step: float = 1.0,
                             reg: float = 0.5, probe=None, refine_probe: bool = False, probe_step: float = 1.0,
                             refine_probe_after: int = 3, plane_A: float | None = None, seed: int = 0, xp=None,
                             progress: bool = False, dtype=np.float32, detector_mask=None,
                             noise_model: str = "amplitude", positivity: bool = False) -> PtychoResult:
    """Single-slice ptychography (mini-batch amplitude-projection / ePIE-type update).

    Parameters
    ----------
    data : FourDSTEM
        One tilt's patterns (fractions or counts).
    iterations : int
        Passes over all scan positions.
    batch_size : int
        Positions updated together (random order per pass, drawn from ``seed``).
    step : float
        Object step (1 = full projection step), 0 < step ≤ 2.
    reg : float
        Illumination regularisation: fraction of the maximal summed probe intensity added to the denominator.
    probe : complex (nk, nk), optional
        Probe at the object plane; default :func:`~aetbench.ptycho.conventions.make_probe` with the data's
        parameters, its defocus referred to ``plane_A``.
    refine_probe : bool
        Also update the probe (after ``refine_probe_after`` passes, step ``probe_step``).
    plane_A : float, optional
        Depth [Å] below the entrance surface of the (single) object plane; default ``data.depth_A / 2``.
    seed : int
        Seed of the position order; equal seeds give identical results.
    xp : module, optional
        numpy (default) or cupy.
    progress : bool
        tqdm progress bar over passes.
    dtype : numpy float dtype
        float32 (default) or float64 working precision.
    detector_mask : bool (nk, nk), optional
        fftshift layout; True where the detector measured.  Default: pixels lit in any pattern or inside
        1.05 × the aperture (zeroed corners beyond a simulator's anti-aliasing cut-off are left free).
    noise_model : {"amplitude", "poisson"}
        Far-field update.  ``"amplitude"``: replace the model modulus by ``√I`` (Gaussian noise on the
        amplitude).  ``"poisson"``: the gradient of the Poisson negative log-likelihood of the counts, scaled by
        its curvature, ``Ψ·(I − q) / (2 (q + ε))`` with ``q = |Ψ|²`` and ``ε`` = :data:`POISSON_FLOOR_COUNTS`
        count (counts per pattern from :func:`counts_per_pattern`); its fixed point is the mean count, where
        the amplitude update's is the (low-biased) mean of ``√I``.
    positivity : bool
        After every pass set each slice's negative phases to 0 (modulus kept): the projected potential of
        neutral atoms is positive, so with vacuum at phase 0 no slice can hold negative phase.  A physical prior
        against noise; it binds more the thinner (sparser) the slices.  Assumes less than π of phase per slice.

    Returns
    -------
    PtychoResult
        ``object`` of shape (1, Nx, Ny).
    """
    _validate(data, iterations, batch_size, step, noise_model)
    depth = float(data.depth_A or 0.0)
    plane = depth / 2 if plane_A is None else float(plane_A)
    return _iterate(data, n_slices=1, dz=depth, plane_A=plane, engine="single-slice", iterations=iterations,
                    batch_size=batch_size, step=step, reg=reg, probe=probe, refine_probe=refine_probe,
                    probe_step=probe_step, refine_probe_after=refine_probe_after, seed=seed, xp=xp,
                    progress=progress, dtype=dtype, detector_mask=detector_mask, noise_model=noise_model,
                    positivity=positivity)


def reconstruct_multislice(data: FourDSTEM, *, n_slices: int, slice_thickness_A: float | None = None,
                           iterations: int = 30, batch_size: int = 32, step: float = 1.0, reg: float = 0.5,
                           probe=None, refine_probe: bool = False, probe_step: float = 1.0,
                           refine_probe_after: int = 3, seed: int = 0, xp=None, progress: bool = False,
                           dtype=np.float32, detector_mask=None, noise_model: str = "amplitude",
                           positivity: bool = False) -> PtychoResult:
    """Multislice ptychography: ``n_slices`` object slices, Fresnel propagation (abTEM's sign) between them.

    The probe is defined at the entrance surface (the data's ``defocus_A`` as is); slice ``s`` is transmitted,
    then the wave propagates ``slice_thickness_A`` to slice ``s + 1`` (abTEM's multislice order).  The exit-wave
    correction is back-propagated through the slices (``Δψ_in = conj(O_s)·Δψ_s``, inverse propagator) and each
    slice gets the illumination-normalised update of its own incident wave.

    Parameters
    ----------
    n_slices : int
        Number of object slices (≥ 1).
    slice_thickness_A : float, optional
        Slice thickness [Å]; default ``data.depth_A / n_slices``.
    Other parameters
        As :func:`reconstruct_single_slice`.

    Returns
    -------
    PtychoResult
        ``object`` of shape (n_slices, Nx, Ny).
    """
    if int(n_slices) != n_slices or n_slices < 1:
        raise AetbenchError(f"n_slices: expected an integer ≥ 1, got {n_slices}")
    _validate(data, iterations, batch_size, step, noise_model)
    if slice_thickness_A is None:
        if not (data.depth_A and data.depth_A > 0):
            raise AetbenchError(f"data.depth_A: expected > 0 Å to derive slice_thickness_A, got {data.depth_A}")
        dz = float(data.depth_A) / int(n_slices)
    else:
        dz = float(slice_thickness_A)
    if not dz >= 0:
        raise AetbenchError(f"slice_thickness_A: expected ≥ 0 Å, got {slice_thickness_A}")
    return _iterate(data, n_slices=int(n_slices), dz=dz, plane_A=0.0, engine="multislice", iterations=iterations,
                    batch_size=batch_size, step=step, reg=reg, probe=probe, refine_probe=refine_probe,
                    probe_step=probe_step, refine_probe_after=refine_probe_after, seed=seed, xp=xp,
                    progress=progress, dtype=dtype, detector_mask=detector_mask, noise_model=noise_model,
                    positivity=positivity)


def reconstruct(data: FourDSTEM, engine: str = "single-slice", *, n_slices: int | None = None,
                **kwargs) -> PtychoResult:
    """Dispatch to :func:`reconstruct_single_slice` (``engine="single-slice"``) or
    :func:`reconstruct_multislice` (``engine="multislice"``, ``n_slices`` required); other keywords pass on."""
    if engine == "single-slice":
        if n_slices not in (None, 1):
            raise AetbenchError(f"n_slices: the single-slice engine takes 1 slice, got {n_slices}")
        return reconstruct_single_slice(data, **kwargs)
    if engine == "multislice":
        if n_slices is None:
            raise AetbenchError("n_slices: expected an integer ≥ 1 for the multislice engine, got None")
        return reconstruct_multislice(data, n_slices=n_slices, **kwargs)
    raise AetbenchError(f"engine: expected 'single-slice' or 'multislice', got {engine!r}")

