"""4D-STEM tilt series with abTEM for ptychographic AET (the ``ptycho`` tier's simulator).

At every tilt the particle is rotated about ONE fixed centre with
:func:`aetbench.geometry.object_to_beam` and placed in ONE cell (the ADF tier's
:func:`aetbench.simulate.abtem_adf.plan_cell`: lateral size from the largest
distance to the centre plus a margin, same z extent and slice count for every
tilt); a probe scans a square field of view ``fov_A`` centred on the projected
rotation centre, and a pixelated detector records every diffraction pattern.
The output is one :class:`aetbench.ptycho.data.FourDSTEM` per tilt, in the
conventions of :mod:`aetbench.ptycho.data` (fftshift layout, axes ``u, v`` ↔
``x, y``, positions in the cell frame, abTEM's probe conventions).

Detector model
--------------
abTEM propagates each probe over the whole (periodic) cell of edge ``L``, so the
raw pattern has the fine angular sampling ``λ / L``.  A real detector pixel
integrates intensity over its solid angle, so the patterns are **binned** by
an odd factor ``b`` (the zero frequency stays on a pixel centre):
``angular_sampling = b λ / L``.  The reconstruction window those patterns
resolve is ``W = λ / angular_sampling = L / b`` with pixels of
``window_sampling = λ / (nk · angular_sampling) = W / nk``: binning coarsens
the angular sampling and shrinks the window by ``b``, cropping to ``nk`` pixels
sets the window's pixel size.  ``b`` is the largest odd factor with
``W ≥ window_A``; when that leaves ``W > 1.25 window_A`` the cell is enlarged
to ``(b + 2) · window_A`` instead (small particles: choose a small window).
``nk`` is the largest even FFT-friendly count with
``(nk / 2) · angular_sampling ≤ max_angle_mrad``, so the patterns reach
``max_angle_mrad`` and the window's pixels are about ``λ / (2 · max_angle)``.
``max_angle_mrad`` must not exceed the grid's anti-aliasing cut-off
(``2/3 · λ / (2 · potential_sampling)``); the corners of the square pattern
beyond the circular cut-off are zero, as in abTEM.  With ``engine = "prism"``
abTEM computes the patterns directly on the window (interpolation factor ``b``:
the exit wave is cropped to ``L / b`` around each probe instead of the pattern
being binned); same sampling, a few per cent different, several times faster.

``FourDSTEM.defocus_A`` is the defocus handed to abTEM (entrance surface):
``depth / 2 + slice / 2 + config.defocus_A`` (the half slice is the ADF tier's
measured offset that puts zero defocus on the rotation centre);
``metadata`` carries ``slice_thickness_A``, ``n_slices``, ``scan_step_A``,
``binning``, ``window_A``, ``nk`` and the seeds.

Values are the fraction of the incident probe per detector pixel (a pattern
sums to 1 in vacuum when ``max_angle_mrad`` ≥ the semi-angle); frozen phonons
are averaged incoherently; a finite source (``source_size_A``, Gaussian σ) is a
Gaussian blur over probe positions (the scan is padded by 3 σ, blurred, then
cropped).  :func:`apply_dose_4d` turns fractions into Poisson counts.

Paper-like silica case (6 nm a-SiO2, 49 tilts, 0.345 Å tomography pixels)
------------------------------------------------------------------------
300 kV, 25 mrad, defocus +100 Å from the particle centre (probe ≈ 5.1 Å wide,
no crossover inside the particle), 0.4 Å scan step (≈ 92 % linear overlap),
``max_angle_mrad = 60`` (window pixels ≈ 0.18 Å, finer than the 0.345 Å
tomography pixels), ``window_A = 16``, 0.05 Å potential sampling (cut-off
133 mrad), 1 Å slices, several frozen-phonon configurations.  For a
256 × 0.345 Å = 88 Å field and a 30 Å particle radius: cell 88.3 Å (1792²
grid, 62 slices), binning 5, window 17.7 Å, nk = 100 (1.11 mrad pixels),
221² positions → 1.95 GB of float32 patterns per tilt (scan only the particle
plus a margin, or use ``max_angle_mrad = 50`` → nk = 84, to shrink it).

Measured cost (``tests/bench/test_bench_ptycho_sim.py``, this 2-core machine
shared with other jobs (load ≈ 8), one worker, CPU, FFTW; wall / CPU seconds):
201-atom silica-like particle (radius 9 Å), smoke settings (0.1 Å sampling,
2 Å slices, 0.5 Å step over a 24 Å field = 48² positions, 10 Å window,
50 mrad, nk = 50, 1 phonon configuration; cell 30 Å, 300² grid, 11 slices):
multislice 95–165 s wall, 43.5 CPU-s per tilt (≈ 19 CPU-ms per position,
23 MB per tilt); PRISM 32–36 s wall, 14.5 CPU-s per tilt (L1 difference
2.8 %, correlation 0.9987 against multislice).  Paper-like sampling (0.05 Å,
1 Å slices, 60 mrad, 16 Å window; cell 48 Å, 960² grid, 21 slices): 1.06 s
wall, 0.46 CPU-s per position with multislice.  Scaled by grid points ×
slices (×10) to the 6 nm case: ≈ 4.6 CPU-s per position, ≈ 60 CPU-hours per
tilt and phonon configuration: the paper-size case needs a GPU
(``device="gpu"``, not measured here), PRISM and/or a Dask cluster.
"""
from __future__ import annotations

import math
import numbers
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from .. import geometry
from ..errors import AetbenchError
from ..io.files import atomic_write_path
from ..ptycho.data import FourDSTEM
from ..optics import fft_friendly, wavelength_A
from ..options import Checker, from_table
from ..types import AtomicModel
from .abtem_adf import _FFTS, _PARAMETRIZATIONS, ADFConfig, CellPlan, _cache_key, _tilt_seed, plan_cell, tilt_potential
from .runner import run_tasks

__all__ = ["PtychoConfig", "PtychoPlan", "plan_ptycho", "probe_diameter_A", "bin_patterns", "simulate_4dstem",
           "apply_dose_4d", "apply_dose_4d_series"]

_ENGINES = ("multislice", "prism")
_WINDOW_SLACK = 1.25   # the window lies in [window_A, 1.25 window_A]


def probe_diameter_A(energy_kV: float, semiangle_mrad: float, defocus_A: float) -> float:
    """Estimated probe diameter [Å]: ``√((2 α Δf)² + (1.22 λ / α)²)``.

    Geometric disk of a defocused probe combined with the Airy diameter of the
    focused one (α in rad, Δf in Å).
    """
    a = semiangle_mrad * 1e-3
    return float(math.hypot(2.0 * a * defocus_A, 1.22 * wavelength_A(energy_kV) / a))


@dataclass(frozen=True)
class PtychoConfig:
    """Settings of the abTEM 4D-STEM simulation (lengths in Å, angles in mrad).

    Attributes
    ----------
    engine : str
        ``"multislice"`` (abTEM ``Probe``: every probe propagated over the
        whole cell, patterns binned — the reference) or ``"prism"`` (abTEM
        ``SMatrix`` with interpolation factor = the binning factor: patterns
        computed on the window of ``window`` Å around each probe, i.e. the
        exit wave cropped to the window instead of the pattern binned;
        defocus applied in the reduction).
    energy_kV : float
        Beam energy [kV].
    semiangle_mrad : float
        Probe convergence semi-angle [mrad].
    defocus_A : float
        Probe defocus [Å] relative to focus at the rotation centre, abTEM's
        sign (positive = focus further along the beam, i.e. underfocus at the
        particle).  Default 100 Å: at 25 mrad a ≈ 5 Å probe, so a 0.4 Å step
        overlaps by ≈ 92 % and a 16 Å window holds three probe diameters;
        the crossover lies outside particles thinner than 20 nm, the usual
        setting of (multislice) ptychography.  ``FourDSTEM.defocus_A`` records
        the value handed to abTEM (referenced to the cell's entrance surface).
    Cs_A : float
        Spherical aberration C30 [Å].
    scan_step_A : float
        Scan step [Å] (both axes).
    min_overlap : float
        Smallest accepted linear probe overlap ``1 − step / diameter``
        (:func:`probe_diameter_A` at ``defocus_A``), in [0, 1).
    max_angle_mrad : float
        Half-width [mrad] of the square recorded pattern; ≥ the semi-angle and
        ≤ the grid's anti-aliasing cut-off (checked when planning).
    window_A : float or None
        Smallest real-space window [Å] the binned patterns resolve (``λ /
        angular sampling``); the window is the cell edge over an odd binning
        factor and lies in [window_A, 1.25 window_A] (the cell is enlarged
        when needed).  ``None``: no binning, the window is the whole cell.
    potential_sampling_A : float
        Largest potential/wave sampling [Å] (FFT-friendly grid, slightly finer).
    slice_thickness_A : float
        Multislice slice thickness [Å].
    parametrization : str
        abTEM potential parametrisation.
    phonon_configs : int
        Frozen-phonon configurations per tilt (0 = static atoms).
    phonon_sigma_A : dict[str, float]
        rms displacement per direction [Å] by element.
    default_phonon_sigma_A : float
        rms displacement [Å] of other elements.
    source_size_A : float
        Gaussian σ [Å] of the effective source (blur over probe positions);
        0 = coherent (default; the paper's cov35pm is 0.1486).
    margin_A : float
        Vacuum [Å] between the particle and the cell edge / the scan's probe tails.
    fft : str
        abTEM FFT backend.
    prism_batch : int or None
        Probe positions per PRISM reduction batch (speed only); ``None`` =
        abTEM's ``"auto"``.
    """

    engine: str = "multislice"
    energy_kV: float = 300.0
    semiangle_mrad: float = 25.0
    defocus_A: float = 100.0
    Cs_A: float = 0.0
    scan_step_A: float = 0.4
    min_overlap: float = 0.5
    max_angle_mrad: float = 60.0
    window_A: float | None = 16.0
    potential_sampling_A: float = 0.05
    slice_thickness_A: float = 2.0
    parametrization: str = "lobato"
    phonon_configs: int = 1
    phonon_sigma_A: dict[str, float] = field(default_factory=dict)
    default_phonon_sigma_A: float = 0.08
    source_size_A: float = 0.0
    margin_A: float = 3.0
    fft: str = "fftw"
    prism_batch: int | None = 64

    def __post_init__(self):
        c = Checker(self, "ptycho")
        c.choice("engine", _ENGINES)
        c.number("energy_kV", 10.0, 2000.0, unit=" [kV]")
        c.number("semiangle_mrad", 0.0, 200.0, lo_open=True, unit=" [mrad]")
        c.number("defocus_A", -1e5, 1e5, unit=" [Å]")
        c.number("Cs_A", unit=" [Å]")
        c.number("scan_step_A", 0.0, 10.0, lo_open=True, unit=" [Å]")
        c.number("min_overlap", 0.0, 0.99, unit=" (fraction)")
        c.number("max_angle_mrad", self.semiangle_mrad, 1000.0, unit=" [mrad] (at least the semi-angle)")
        c.number("window_A", 1.0, 1000.0, unit=" [Å]", optional=True)
        c.number("potential_sampling_A", 0.005, 0.5, unit=" [Å]")
        c.number("slice_thickness_A", 0.1, 50.0, unit=" [Å]")
        c.choice("parametrization", _PARAMETRIZATIONS)
        c.integer("phonon_configs", 0)
        c.per_element("phonon_sigma_A", 0.0, 1.0, " [Å]")
        c.number("default_phonon_sigma_A", 0.0, 1.0, unit=" [Å]")
        c.number("source_size_A", 0.0, 10.0, unit=" [Å]")
        c.number("margin_A", 0.0, 100.0, unit=" [Å]")
        c.choice("fft", _FFTS)
        c.integer("prism_batch", 1, optional=True)
        d = probe_diameter_A(self.energy_kV, self.semiangle_mrad, self.defocus_A)
        if 1.0 - self.scan_step_A / d < self.min_overlap:
            raise AetbenchError(f"ptycho.scan_step_A: {self.scan_step_A} Å gives {1 - self.scan_step_A / d:.0%} "
                                f"probe overlap (probe ≈ {d:.2f} Å at defocus {self.defocus_A} Å); expected ≤ "
                                f"{(1 - self.min_overlap) * d:.3f} Å for min_overlap {self.min_overlap}")

    @classmethod
    def from_dict(cls, table: dict[str, Any]) -> "PtychoConfig":
        """Build from a scenario's ``[simulation.ptycho]`` table; unknown keys raise :class:`AetbenchError`."""
        return from_table(cls, table, "ptycho")

    def sigma_of(self, element: str) -> float:
        """Frozen-phonon rms displacement [Å] of ``element``."""
        return float(self.phonon_sigma_A.get(element, self.default_phonon_sigma_A))

    @property
    def probe_diameter_A(self) -> float:
        """Probe diameter estimate [Å] at the rotation centre (:func:`probe_diameter_A`)."""
        return probe_diameter_A(self.energy_kV, self.semiangle_mrad, self.defocus_A)


@dataclass(frozen=True)
class PtychoPlan:
    """Cell, scan and detector geometry shared by every tilt (lengths in Å, angles in mrad)."""

    cell: CellPlan           # the ADF tier's cell plan (extent, depth, gpts, cut-off, focus)
    binning: int             # odd detector binning factor (fine pixels per detector pixel and axis)
    nk: int                  # detector pixels per side (even)
    angular_sampling_mrad: float
    n_scan: int              # probe positions per axis in the field of view
    pad: int                 # extra positions per side for the source-size blur
    scan_step_A: float

    @property
    def window_A(self) -> float:
        """Real-space window [Å] resolved by the binned patterns."""
        return self.cell.extent_A / self.binning

    @property
    def centre_A(self) -> float:
        """Field-frame coordinate [Å] of the projected rotation centre (both axes)."""
        return self.cell.extent_A / 2.0

    def scan_coordinates_A(self, padded: bool = False) -> np.ndarray:
        """Probe coordinates [Å] along one axis (field frame); index ``n_scan // 2`` is the centre."""
        p = self.pad if padded else 0
        return self.centre_A + (np.arange(-p, self.n_scan + p) - self.n_scan // 2) * self.scan_step_A


def _adf_like(c: PtychoConfig, binning: int = 1) -> ADFConfig:
    """The ADF config whose :func:`plan_cell` gives this simulation's cell (thin wrapper, no detector)."""
    prism = {"engine": "prism", "interpolation": binning} if c.engine == "prism" else {"engine": "multislice"}
    return ADFConfig(**prism, energy_kV=c.energy_kV, semiangle_mrad=c.semiangle_mrad, Cs_A=c.Cs_A,
                     defocus_A=c.defocus_A,
                     source_size_A=0.0, detector_inner_mrad=0.0, detector_outer_mrad=None,
                     potential_sampling_A=c.potential_sampling_A, slice_thickness_A=c.slice_thickness_A,
                     parametrization=c.parametrization, phonon_configs=c.phonon_configs,
                     phonon_sigma_A=dict(c.phonon_sigma_A), default_phonon_sigma_A=c.default_phonon_sigma_A,
                     margin_A=c.margin_A, fft=c.fft)


def _largest_friendly_even(n: int) -> int:
    m = n - (n % 2)
    while m > 2 and fft_friendly(m) != m:
        m -= 2
    return max(m, 2)


def plan_ptycho(radius_A: float, config: PtychoConfig, *, fov_A: float, depth_A: float | None = None) -> PtychoPlan:
    """Cell, scan and detector for a particle of ``radius_A`` [Å] scanned over ``fov_A`` [Å].

    The cell holds the particle at every orientation (plus ``margin_A``) and the
    scanned probe with its wrapped tails clear of the particle; its edge is an
    odd multiple ``b`` of the window, which lies in [window_A, 1.25 window_A].
    With ``depth_A`` the specimen is a column of lateral radius ``radius_A`` and
    thickness ``depth_A`` [Å] along the beam (one orientation): the cell is that
    deep (plus 2 Å, whole slices) and the probe focus refers to its middle.
    Raises :class:`AetbenchError` when ``max_angle_mrad`` exceeds the grid's
    anti-aliasing cut-off.
    """
    c = config
    if depth_A is not None:
        if not (isinstance(depth_A, (int, float)) and math.isfinite(depth_A) and depth_A > 0):
            raise AetbenchError(f"depth_A: expected a column thickness > 0 Å, got {depth_A!r}")
        plan = plan_ptycho(radius_A, config, fov_A=fov_A)
        dz = c.slice_thickness_A
        depth = max(1, math.ceil((float(depth_A) + 2.0) / dz - 1e-9)) * dz
        # as plan_cell: a slice's potential acts half a slice downstream, so focus at depth/2 + dz/2 (+ defocus)
        cell = replace(plan.cell, depth_A=depth, focus_A=depth / 2.0 + dz / 2.0 + c.defocus_A)
        return replace(plan, cell=cell)
    try:
        fov_A = float(fov_A)
    except (TypeError, ValueError):
        fov_A = float("nan")
    if not (math.isfinite(fov_A) and fov_A > 0):
        raise AetbenchError(f"fov_A: expected a field of view > 0 Å, got {fov_A!r}")
    lam = wavelength_A(c.energy_kV)
    a = c.semiangle_mrad * 1e-3
    # probe radius anywhere in the particle: geometric disk at the farthest defocus plus the Airy radius, ×1.5 tails
    r_probe = 1.5 * (a * (abs(c.defocus_A) + radius_A) + 1.22 * lam / a / 2.0)
    # the particle at any orientation, the scanned field, and the periodic image of a probe at the field's edge
    # clear of the particle
    need = max(2.0 * (radius_A + c.margin_A), fov_A, fov_A / 2.0 + radius_A + r_probe + c.margin_A)
    if c.window_A is None:
        b, extent = 1, need
    else:
        b = max(1, int(math.floor(need / c.window_A + 1e-9)))
        b -= 1 - b % 2                      # largest odd b with need / b ≥ window_A
        b = max(b, 1)
        extent = max(need, b * c.window_A)
        if extent / b > _WINDOW_SLACK * c.window_A:
            b += 2
            extent = b * c.window_A         # enlarge the cell rather than the window
    cell = plan_cell(radius_A, _adf_like(c, b), fov_A=extent)
    dtheta = b * lam / cell.extent_A * 1e3
    if c.max_angle_mrad > cell.cutoff_mrad + 1e-9:
        need_s = (2.0 / 3.0) * lam / (2.0 * c.max_angle_mrad * 1e-3)
        raise AetbenchError(f"ptycho.max_angle_mrad: {c.max_angle_mrad} mrad exceeds the grid's anti-aliasing cut-off "
                            f"{cell.cutoff_mrad:.1f} mrad; set potential_sampling_A ≤ {need_s:.4f} Å or lower it")
    nk = _largest_friendly_even(2 * int(math.floor(c.max_angle_mrad / dtheta + 1e-9)))
    if nk < 2 or (nk // 2) * dtheta < c.semiangle_mrad:
        raise AetbenchError(f"ptycho.window_A: {c.window_A} Å gives detector pixels of {dtheta:.2f} mrad, too coarse "
                            f"to hold the {c.semiangle_mrad} mrad bright-field disk in ±{c.max_angle_mrad} mrad; "
                            f"use a larger window")
    n_scan = max(1, math.ceil(fov_A / c.scan_step_A - 1e-9))
    pad = math.ceil(3.0 * c.source_size_A / c.scan_step_A) if c.source_size_A > 0 else 0
    return PtychoPlan(cell, b, nk, dtheta, n_scan, pad, float(c.scan_step_A))


def bin_patterns(patterns: np.ndarray, binning: int, nk: int) -> np.ndarray:
    """Crop and bin fftshifted patterns around their zero frequency (sums, float32).

    Parameters
    ----------
    patterns : ndarray, shape (..., g, g)
        Fine patterns with the zero frequency at index ``g // 2``.
    binning : int
        Odd number of fine pixels per output pixel and axis.
    nk : int
        Output pixels per axis; output pixel ``nk // 2`` is centred on the zero frequency.

    Returns
    -------
    ndarray, shape (..., nk, nk), float32
        Each output pixel is the sum of its ``binning²`` fine pixels (a detector
        pixel integrates intensity).
    """
    b, g = int(binning), patterns.shape[-1]
    if b < 1 or b % 2 == 0:
        raise AetbenchError(f"binning: expected an odd integer ≥ 1, got {binning}")
    start = g // 2 - (nk // 2) * b - b // 2
    stop = start + nk * b
    if start < 0 or stop > g or patterns.shape[-2] != g:
        raise AetbenchError(f"bin_patterns: {nk} pixels of {b} need {nk * b} of the {patterns.shape[-2:]} pattern")
    x = np.asarray(patterns[..., start:stop, start:stop], dtype=np.float32)
    x = x.reshape(x.shape[:-2] + (nk, b, nk, b))
    return x.sum(axis=(-3, -1), dtype=np.float32)


def _check_device(device: str) -> None:
    if device not in ("cpu", "gpu"):
        raise AetbenchError(f"device: expected 'cpu' or 'gpu', got {device!r}")
    if device == "gpu":
        try:
            import cupy  # noqa: F401
        except Exception as exc:  # pragma: no cover - depends on the machine
            raise AetbenchError(f"device 'gpu' needs CuPy, which cannot be imported here ({exc.__class__.__name__}); "
                                f"install cupy for your CUDA version or use device 'cpu'") from None


def _simulate_tilt_4d(job: dict) -> np.ndarray:
    """One tilt's binned 4D-STEM data (runs inside a Dask task); writes the cache file when asked."""
    import abtem

    cfg: PtychoConfig = job["config"]
    plan: PtychoPlan = job["plan"]
    cell = plan.cell
    device = job["device"]
    xs = plan.scan_coordinates_A(padded=True)
    n = len(xs)
    step = plan.scan_step_A
    with abtem.config.set({"fft": cfg.fft, "device": "gpu" if device == "gpu" else "cpu"}):
        potential = tilt_potential(job, cell)
        scan = abtem.GridScan(start=(xs[0], xs[0]), end=(xs[0] + n * step, xs[0] + n * step), gpts=(n, n),
                              endpoint=False)
        detector = abtem.PixelatedDetector(max_angle="full", to_cpu=True)
        energy = cfg.energy_kV * 1e3
        if cfg.engine == "prism":   # patterns on the PRISM window (= cell / binning): already at the final sampling
            smatrix = abtem.SMatrix(cfg.semiangle_mrad, energy, potential, interpolation=plan.binning, device=device)
            ctf = abtem.CTF(semiangle_cutoff=cfg.semiangle_mrad, energy=energy, defocus=cell.focus_A, Cs=cfg.Cs_A)
            measurement = smatrix.scan(scan=scan, detectors=detector, ctf=ctf,
                                       max_batch_reduction=cfg.prism_batch or "auto")
            binning = 1
        else:
            probe = abtem.Probe(semiangle_cutoff=cfg.semiangle_mrad, energy=energy, defocus=cell.focus_A, Cs=cfg.Cs_A,
                                device=device)
            measurement = probe.scan(potential, scan=scan, detectors=detector)
            binning = plan.binning
        arr = measurement.array
        if arr.shape[:2] != (n, n) or arr.shape[-1] < plan.nk * binning:
            raise AetbenchError(f"abTEM returned 4D data of shape {arr.shape}, expected ({n}, {n}, ≥ "
                                f"{plan.nk * binning}, ≥ {plan.nk * binning})")
        if hasattr(arr, "map_blocks"):  # lazy: bin every scan chunk as it is computed (memory ∝ binned data)
            arr = arr.rechunk({2: -1, 3: -1})
            binned = arr.map_blocks(_bin_block, binning, plan.nk, dtype=np.float32,
                                    chunks=arr.chunks[:2] + ((plan.nk,), (plan.nk,)))
            out = binned.compute(scheduler="synchronous")
        else:
            out = _bin_block(arr, binning, plan.nk)
    out = np.asarray(out, dtype=np.float32)
    if plan.pad > 0:
        from scipy.ndimage import gaussian_filter1d

        s = cfg.source_size_A / step
        for ax in (0, 1):
            out = gaussian_filter1d(out, s, axis=ax, mode="nearest", truncate=3.0)
        out = np.ascontiguousarray(out[plan.pad:plan.pad + plan.n_scan, plan.pad:plan.pad + plan.n_scan])
    if job["cache_path"] is not None:
        with atomic_write_path(job["cache_path"]) as tmp:
            np.savez(tmp, intensities=out)
    return out


def _bin_block(block, binning: int, nk: int) -> np.ndarray:
    if hasattr(block, "get"):  # CuPy
        block = block.get()
    return bin_patterns(np.asarray(block), binning, nk)


def simulate_4dstem(model: AtomicModel, angles_deg, config: PtychoConfig, *, seed: int, fov_A: float, centre=None,
                    column_A=None, cache_dir=None, scheduler=None, device: str = "cpu",
                    progress: bool = False) -> list[FourDSTEM]:
    """Noise-free 4D-STEM data of ``model`` at every tilt, simulated with abTEM multislice.

    Parameters
    ----------
    model : AtomicModel
        Atoms [Å], object frame.
    angles_deg : array_like, shape (n, 3) or (n,)
        Euler angles (phi, theta, psi) [deg] (or single-axis tilts theta).
    config : PtychoConfig
        Microscope, detector and numerical settings.
    seed : int
        Seeds the frozen phonons (a different seed per tilt).
    fov_A : float
        Edge [Å] of the square scanned field, centred on the projected rotation
        centre (the tomography field of view); ``ceil(fov_A / scan_step_A)``
        positions per axis, position ``n // 2`` on the centre.
    centre : array_like (3,), optional
        Fixed rotation centre [Å] (object frame); default the model's centroid.
    column_A : (float, float), optional
        ``(radius, thickness)`` [Å] of a column along the beam that holds the model at every given tilt (e.g.
        a cylinder cut from a larger particle for a thickness study at one tilt): the cell is sized for that
        column instead of the sphere that holds the model at any orientation.  Atoms outside it raise.
    cache_dir : path, optional
        Per-tilt results (``ptycho-<key>.npz``) are written atomically and reused.
    scheduler : None, str or dask.distributed.Client
        ``None``/``"threads"`` local threads, ``"synchronous"``, or a
        dask.distributed address / ``Client``.
    device : {"cpu", "gpu"}
        ``"gpu"`` runs abTEM on CuPy.
    progress : bool
        tqdm progress bar over tilts.

    Returns
    -------
    list of FourDSTEM
        One per tilt, fractions of the probe per detector pixel, ``dose_per_A2=None``.
    """
    if not isinstance(config, PtychoConfig):
        raise AetbenchError(f"simulate_4dstem: config must be a PtychoConfig, got {type(config).__name__}")
    _check_device(device)
    if len(model) == 0:
        raise AetbenchError("simulate_4dstem: the model has no atoms")
    angles = np.asarray(angles_deg, dtype=float)
    if angles.ndim == 1:
        angles = geometry.single_axis_angles(angles)
    if angles.ndim != 2 or angles.shape[1] != 3:
        raise AetbenchError(f"angles: expected shape (n, 3) in degrees, got {angles.shape}")
    centre = geometry.rotation_centre(model.positions, centre)  # the one rule (aetbench.geometry)
    if column_A is None:
        radius = float(np.linalg.norm(model.positions - centre, axis=1).max())
        plan = plan_ptycho(radius, config, fov_A=fov_A)
    else:
        try:
            radius, thickness = (float(v) for v in column_A)
        except (TypeError, ValueError):
            raise AetbenchError(f"column_A: expected (radius, thickness) in Å, got {column_A!r}") from None
        if not (radius > 0 and thickness > 0):
            raise AetbenchError(f"column_A: expected radius and thickness > 0 Å, got {column_A!r}")
        for a in angles:
            beam = geometry.object_to_beam(model.positions, a, centre)
            if (np.hypot(beam[:, 0], beam[:, 1]).max() > radius + 1e-6
                    or np.abs(beam[:, 2]).max() > thickness / 2 + 1e-6):
                raise AetbenchError(f"column_A: atoms lie outside the column of radius {radius} Å and thickness "
                                    f"{thickness} Å about the centre at tilt {tuple(float(v) for v in a)} deg")
        plan = plan_ptycho(radius, config, fov_A=fov_A, depth_A=thickness)
    cache = Path(cache_dir) if cache_dir is not None else None
    n = angles.shape[0]
    jobs, data = [], [None] * n
    for k in range(n):
        job = {"positions": model.positions, "elements": model.elements, "angle": angles[k], "centre": centre,
               "config": config, "plan": plan, "phonon_seed": _tilt_seed(seed, k), "defocus_error_A": 0.0,
               "pixel_size": plan.scan_step_A, "shape": (plan.n_scan, plan.n_scan), "device": device,
               "cache_path": None}
        if cache is not None:
            path = cache / f"ptycho-{_cache_key(job)}.npz"
            if path.exists():
                try:
                    with np.load(path) as f:
                        data[k] = f["intensities"]
                    continue
                except (OSError, ValueError, KeyError):
                    pass
            job["cache_path"] = path
        job["index"] = k
        jobs.append(job)
    if jobs:
        for job, arr in zip(jobs, run_tasks(_simulate_tilt_4d, jobs, scheduler, progress, "abTEM 4D-STEM tilts")):
            data[job["index"]] = arr
    xs = plan.scan_coordinates_A()
    positions = np.stack(np.meshgrid(xs, xs, indexing="ij"), axis=-1)
    cell = plan.cell
    base = {"simulator": "abtem-4dstem", "engine": config.engine, "ptycho_config": asdict(config), "seed": int(seed),
            "rotation_centre_object_A": centre.tolist(), "cell_A": [cell.extent_A, cell.extent_A, cell.depth_A],
            "gpts": cell.gpts, "potential_sampling_A": cell.sampling_A, "slice_thickness_A": config.slice_thickness_A,
            "n_slices": int(round(cell.depth_A / config.slice_thickness_A)), "cutoff_mrad": cell.cutoff_mrad,
            "binning": plan.binning, "window_A": plan.window_A, "scan_step_A": plan.scan_step_A, "nk": plan.nk,
            "detector_half_width_mrad": (plan.nk // 2) * plan.angular_sampling_mrad,
            "defocus_at_centre_A": config.defocus_A, "source_size_A": config.source_size_A, "device": device,
            "units": "fraction of the incident probe per detector pixel"}
    out = []
    for k in range(n):
        meta = dict(base, tilt_index=k, phonon_seed=_tilt_seed(seed, k))
        out.append(FourDSTEM(data[k], positions.copy(), angular_sampling_mrad=plan.angular_sampling_mrad,
                             energy_kV=config.energy_kV, semiangle_mrad=config.semiangle_mrad, defocus_A=cell.focus_A,
                             Cs_A=config.Cs_A, field_extent_A=(cell.extent_A, cell.extent_A), depth_A=cell.depth_A,
                             centre_A=(plan.centre_A, plan.centre_A), dose_per_A2=None,
                             angle_deg=tuple(float(a) for a in angles[k]), metadata=meta))
    return out


def _scan_steps_A(data: FourDSTEM) -> tuple[float, float]:
    P = data.scan_positions_A
    sx = float(np.linalg.norm(P[1, 0] - P[0, 0])) if P.shape[0] > 1 else float(data.metadata.get("scan_step_A", 0))
    sy = float(np.linalg.norm(P[0, 1] - P[0, 0])) if P.shape[1] > 1 else float(data.metadata.get("scan_step_A", 0))
    if not sx > 0 and sy > 0:
        sx = sy
    if not sy > 0 and sx > 0:
        sy = sx
    if not (sx > 0 and sy > 0):
        raise AetbenchError("apply_dose_4d: cannot tell the scan step [Å] (one position, no metadata['scan_step_A'])")
    return sx, sy


def apply_dose_4d(data: FourDSTEM, dose_per_A2: float | None, *, seed: int, background: float = 0.0) -> FourDSTEM:
    """Poisson electron counts on every diffraction pattern.

    Convention: ``dose_per_A2`` is the dose per projection [e/Å²] over the
    scanned area, so each probe position receives ``dose × step_x × step_y``
    electrons and a detector pixel expects ``fraction × dose × step_x ×
    step_y + background`` counts.

    Parameters
    ----------
    data : FourDSTEM
        Noise-free data (fractions of the probe per detector pixel).
    dose_per_A2 : float or None
        e/Å² per projection; ``None`` or ``inf`` returns the data unchanged.
    seed : int
        Seed of the Poisson generator (use a different one per tilt, e.g.
        :func:`apply_dose_4d_series`).
    background : float
        Mean background counts per detector pixel (≥ 0), added before sampling.

    Returns
    -------
    FourDSTEM
        float32 counts, ``dose_per_A2`` set; metadata records seed and background.
    """
    if data.dose_per_A2 is not None:
        raise AetbenchError(f"apply_dose_4d: data already carry a dose of {data.dose_per_A2} e/Å²")
    if dose_per_A2 is None or (isinstance(dose_per_A2, numbers.Real) and dose_per_A2 == math.inf):
        return data
    if isinstance(dose_per_A2, bool) or not isinstance(dose_per_A2, numbers.Real) or not (
            math.isfinite(dose_per_A2) and dose_per_A2 > 0):
        raise AetbenchError(f"dose_per_A2: expected > 0 e/Å² per projection, got {dose_per_A2!r}")
    if isinstance(background, bool) or not isinstance(background, numbers.Real) or not (
            math.isfinite(background) and background >= 0):
        raise AetbenchError(f"background: expected ≥ 0 counts per detector pixel, got {background!r}")
    sx, sy = _scan_steps_A(data)
    electrons = float(dose_per_A2) * sx * sy
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 4421]))
    I = np.asarray(data.intensities)
    counts = np.empty(I.shape, dtype=np.float32)
    for i in range(I.shape[0]):                 # row by row: float64 temporaries stay small for large scans
        lam = np.clip(I[i].astype(np.float64), 0.0, None) * electrons + float(background)
        counts[i] = rng.poisson(lam)
    meta = dict(data.metadata, noise_seed=int(seed), background_counts=float(background),
                electrons_per_position=electrons, units="electron counts per detector pixel")
    return replace(data, intensities=counts, dose_per_A2=float(dose_per_A2), metadata=meta)


def apply_dose_4d_series(series: list[FourDSTEM], dose_per_A2: float | None, *, seed: int,
                         background: float = 0.0) -> list[FourDSTEM]:
    """:func:`apply_dose_4d` on every tilt with a different seed per tilt (derived from ``seed``)."""
    return [apply_dose_4d(d, dose_per_A2, seed=_tilt_seed(seed, k), background=background)
            for k, d in enumerate(series)]
