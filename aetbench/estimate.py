"""Memory and time a scenario will need, estimated before any work, and refused when beyond the machine.

:func:`estimate_scenario` derives the workload from the scenario alone (no arrays are built:
``tilt.step = 1e-7`` must not allocate the angle list): projections, image pixels, voxels
(``nx × ny × nz`` with ``nz = nx``, the reconstructions' default volume), atoms, the simulation
tier and the methods' iterations.  :func:`check_resources` refuses (one line, with the
estimate) a run whose peak memory exceeds :data:`MEMORY_FRACTION` of this machine's RAM or whose
time exceeds :data:`MAX_HOURS` on its cores, unless ``force`` is given or the work goes to a
cluster (``scheduler``) or a GPU (``device="gpu"``).

The figures are order-of-magnitude estimates (within ~3×), from rates measured on 2 shared cores
(Dec 2026): random packing ~2.6e-7 s × N²; a structure recipe ~15 ms per atom (MD); the linear model
~5 µs per atom and projection; abTEM ADF ~9 s per projection of a 25 Å field (PRISM, one phonon and
defocus; × field area × thickness); 4D-STEM ~10 ms and each ptychography engine ~5 ms per scan position and
tilt at smoke-pty's settings (simulation × (window / potential sampling)² × slices × phonon configurations;
engines × detector pixels); an iterative reconstruction ~1 ns per voxel, projection and
iteration (forward + back projection) on the single-axis path and ~3× that with off-axis Euler angles
(measured angles with phi/psi errors, or a method that refines the angles: the row-splat / shear-warp pair); position
refinement ~70 µs per traced atom and projection.  A ``file`` structure is counted by reading the file.
Memory: 20 bytes per voxel (volume, gradient, tracing
copies, float32), 48 bytes per projection pixel (raw, dosed, preprocessed and residual copies,
float64) and, for ptychography, the 4D data (4 bytes per detector pixel and scan position).

Examples
--------
>>> from aetbench.estimate import Estimate
>>> print(Estimate(memory_bytes=32 * 2**30, seconds=7200.0, detail="2048×2048×2048 voxels").describe())
32 GiB, 2.0 h (2048×2048×2048 voxels)
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass

from .errors import AetbenchError

__all__ = ["Estimate", "estimate_scenario", "check_resources", "machine_memory_bytes", "MEMORY_FRACTION",
           "MAX_HOURS"]

#: refuse a run whose estimated peak memory exceeds this fraction of the machine's RAM
MEMORY_FRACTION = 0.8
#: refuse a run estimated to take longer than this on the local cores [h]
MAX_HOURS = 24.0
#: cores of the machine the rates below were measured on
_REF_CORES = 2

# rates measured on 2 shared cores (see the module docstring)
_RANDOM_S_PER_N2 = 2.6e-7        # random sequential packing: s per atom²
_RECIPE_S_PER_ATOM = 0.015       # melt-quench / bond-switching recipes: s per atom
_LINEAR_S_PER_ATOM_PROJ = 5e-6   # linear ADF model: s per atom and projection
_LINEAR_S_PER_PIXEL = 2e-8       # linear ADF model: s per image pixel (blur, dose)
_ABTEM_S_PER_PROJ = 9.0          # abTEM PRISM ADF, 25 Å field, per projection …
_ABTEM_REF_FIELD_A = 25.0        # … of this field [Å]
_PTYCHO_SIM_S_PER_POSITION = 0.01     # 4D-STEM simulation per scan position and tilt …
_PTYCHO_RECON_S_PER_POSITION = 0.005  # … and one ptychography engine per position, tilt and dose …
_PTYCHO_REF_COST = (10.0 / 0.12) ** 2 * (22.0 / 2.0)   # … at (window / sampling)² × slices of smoke-pty …
_PTYCHO_REF_DETECTOR = 2570.0         # … and its detector pixels (10 Å window, 50 mrad, 300 kV)
_RECON_S_PER_VOXEL_PROJ_IT = 1e-9
_EULER_FACTOR = 3.0              # off-axis Euler angles vs single-axis: RESIRE 200 it at 290³, 1.5 s (CoPdPt angle study,
#                                  55 projections, φ/ψ ≈ 0.6°: row splat) vs 0.63 s (asi20k, 60) per iteration
_REFINE_S_PER_ATOM_PROJ = 7e-5   # position refinement against the projections: s per traced atom and projection
_BYTES_PER_VOXEL = 20
_BYTES_PER_PIXEL = 48


@dataclass(frozen=True)
class Estimate:
    """Estimated peak memory [bytes] and run time [s] on :data:`_REF_CORES` cores, with what drives them."""

    memory_bytes: float
    seconds: float
    detail: str = ""

    def describe(self, cores: int = _REF_CORES) -> str:
        t = self.seconds * _REF_CORES / max(cores, 1)
        return f"{_fmt_bytes(self.memory_bytes)}, {_fmt_seconds(t)}" + (f" ({self.detail})" if self.detail else "")


def _fmt_bytes(b: float) -> str:
    for unit, f in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20)):
        if b >= f:
            return f"{b / f:.3g} {unit}" if b / f < 1e4 else f"{b / f:.2e} {unit}"
    return f"{b / 2**20:.2f} MiB"


def _fmt_seconds(s: float) -> str:
    if s >= 86400:
        return f"{s / 86400:.3g} days" if s < 1e7 * 86400 else f"{s / 86400:.2e} days"
    if s >= 3600:
        return f"{s / 3600:.1f} h"
    if s >= 60:
        return f"{s / 60:.1f} min"
    return f"{s:.0f} s"


def machine_memory_bytes() -> float:
    """Physical RAM of this machine [bytes] (psutil, else ``os.sysconf``; ``inf`` when unknown)."""
    try:
        import psutil

        return float(psutil.virtual_memory().total)
    except Exception:  # noqa: BLE001 - psutil is optional
        try:
            return float(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
        except (ValueError, OSError, AttributeError):
            return math.inf


def _n_projections(tilt) -> int:
    if tilt.angles:
        return len(tilt.angles)
    return int(math.floor((tilt.stop - tilt.start) / tilt.step + 1e-9)) + 1


def _method_iterations(sc) -> list[tuple[str, float, bool]]:
    """(method, reconstruction cost in single-axis iterations, refines positions) per method.

    FBP counts as 2 iterations (one filtered back projection); a method on off-axis Euler angles
    (:func:`_general_euler`) costs :data:`_EULER_FACTOR` times as much per iteration.
    """
    from .methods import scenario_methods

    out = []
    for m, method in scenario_methods(sc).items():
        it = 2.0
        for s in method.steps:
            if s.stage == "reconstruct":
                it = float(s.params.get("iterations", 2) or 2)
        if _general_euler(sc, method):
            it *= _EULER_FACTOR
        out.append((m, it, any(s.stage == "refine" for s in method.steps)))
    return out


def _n_atoms(sc) -> int:
    st = sc.structure
    if st.source == "random":
        return st.n_atoms
    if st.source == "recipe":
        try:
            from .structures.recipe import load_recipe

            return load_recipe(st.recipe).n_atoms
        except Exception:  # noqa: BLE001 - the pipeline reports a bad recipe in its own words
            return 0
    if st.source == "file":
        return _model_atoms(sc, st.path, "structure.path", st.elements)
    return 0


def _model_atoms(sc, path: str, where: str, elements: str, types: str = "") -> int:
    """Atoms in a model file of the scenario, or 0 when it cannot be read (the run reports that in its own words).
    The file is read in full by the run anyway; a model of 10⁴–10⁵ atoms takes well under a second."""
    try:
        from .io.models import read_model
        from .scenario import resolve_data_path

        return len(read_model(resolve_data_path(path, sc, where), elements=elements or None,
                              atomic_numbers=not elements,
                              types_path=resolve_data_path(types, sc, f"{where}_types") if types else None))
    except Exception:  # noqa: BLE001 - an unreadable file is reported when the run reads it
        return 0


def _truth_atoms(inp, sc) -> int:
    """Atoms of an ``[[input]]`` series' ground truth (its traced model will hold about as many), or 0."""
    return _model_atoms(sc, inp.truth, "input.truth", inp.truth_elements, inp.truth_types) if inp.truth else 0


def _general_euler(sc, method) -> bool:
    """True when ``method`` reconstructs with off-axis Euler angles (no single-axis fast path): the nominal
    angles carry phi/psi errors, or the method refines the angles."""
    err = getattr(sc.simulation, "errors", None) if sc.simulation is not None else None
    if err is not None and err.euler_sigma_deg > 0:
        return True
    return any(s.stage == "reconstruct" and "refine_angles" in s.name for s in method.steps)


def _input_shape(inp, sc) -> tuple[int, int, int] | None:
    """(n, nx, ny) of an ``[[input]]`` series from the file's header (no data read), or None."""
    from .scenario import resolve_data_path

    try:
        path = resolve_data_path(inp.projections, sc, "input.projections")
        if inp.kind == "hdf5":
            import h5py

            with h5py.File(path, "r") as f:
                return tuple(int(v) for v in f["images"].shape)
        import scipy.io

        shapes = [s for _, s, _ in scipy.io.whosmat(path) if len(s) == 3]
        if len(shapes) == 1:
            nx, ny, n = shapes[0]
            return int(n), int(nx), int(ny)
    except Exception:  # noqa: BLE001 - unreadable files are reported when they are read
        return None
    return None


def estimate_scenario(sc) -> Estimate:
    """Estimate peak memory and run time of a validated scenario (see the module docstring for the rates).

    Returns
    -------
    Estimate
        ``memory_bytes`` (the largest single cell), ``seconds`` (all cells, on 2 cores) and the
        workload that drives them.
    """
    iters = _method_iterations(sc)
    it_total = sum(i for _, i, _ in iters)
    n_refine = sum(1 for _, _, r in iters if r)
    if sc.input:
        mem, sec, parts = 0.0, 0.0, []
        for inp in sc.input:
            shape = _input_shape(inp, sc)
            if shape is None:
                continue
            n, nx, ny = shape
            vox = float(nx) * ny * nx
            mem = max(mem, _BYTES_PER_VOXEL * vox + _BYTES_PER_PIXEL * float(n) * nx * ny)
            sec += _RECON_S_PER_VOXEL_PROJ_IT * vox * n * it_total
            sec += _REFINE_S_PER_ATOM_PROJ * _truth_atoms(inp, sc) * n * n_refine
            parts.append(f"{n} projections of {nx}×{ny} px, {nx}×{ny}×{nx} voxels")
        return Estimate(mem, sec, "; ".join(dict.fromkeys(parts)))
    sim = sc.simulation
    n = _n_projections(sim.tilt)
    nx, ny = (int(v) for v in sim.image_size)
    vox = float(nx) * ny * nx
    pixels = float(n) * nx * ny
    atoms = _n_atoms(sc)
    n_doses = len(sim.doses)
    fov = max(nx, ny) * sim.pixel_size
    # structure
    st = sc.structure
    sec = {"random": _RANDOM_S_PER_N2 * atoms**2, "recipe": _RECIPE_S_PER_ATOM * atoms}.get(st.source, 0.0)
    mem = _BYTES_PER_VOXEL * vox + _BYTES_PER_PIXEL * pixels
    n_series = n_doses
    if sim.model == "linear":
        sec += _LINEAR_S_PER_ATOM_PROJ * atoms * n + _LINEAR_S_PER_PIXEL * pixels * (1 + n_doses)
    elif sim.model == "abtem":
        cfg = sim.abtem
        mult = int(cfg.get("phonon_configs", 1) or 1) * int(cfg.get("n_defocus", 1) or 1)
        sec += _ABTEM_S_PER_PROJ * n * mult * (fov / _ABTEM_REF_FIELD_A) ** 3
    else:
        from .ptycho.series import ReconConfig
        from .simulate.ptycho import PtychoConfig

        pcfg, rcfg = PtychoConfig.from_dict(sim.ptycho), ReconConfig.from_dict(sim.ptycho_recon)
        positions = (fov / pcfg.scan_step_A) ** 2
        det = (2 * pcfg.max_angle_mrad / 1e3 * (fov if pcfg.window_A is None else pcfg.window_A)
               / _wavelength_A(pcfg.energy_kV)) ** 2   # detector pixels: 2 × max angle / angular sampling
        mem = max(mem, 4.0 * positions * det * n)
        n_series = n_doses * len(rcfg.engines)
        window = pcfg.window_A if pcfg.window_A is not None else fov
        cost = ((window / pcfg.potential_sampling_A) ** 2 * (fov / pcfg.slice_thickness_A)
                * int(getattr(pcfg, "phonon_configs", 1) or 1)) / _PTYCHO_REF_COST
        sec += n * positions * (cost * _PTYCHO_SIM_S_PER_POSITION
                                + det / _PTYCHO_REF_DETECTOR * _PTYCHO_RECON_S_PER_POSITION * n_series)
    sec += _RECON_S_PER_VOXEL_PROJ_IT * vox * n * it_total * n_series
    sec += _REFINE_S_PER_ATOM_PROJ * atoms * n * n_refine * n_series
    detail = (f"{n:,} projections of {nx}×{ny} px, {nx}×{ny}×{nx} = {vox:.3g} voxels, {atoms:,} atoms, "
              f"{sim.model} tier, {n_series} series × {len(iters)} method(s)")
    return Estimate(mem, sec, detail)


def _wavelength_A(energy_kV: float) -> float:
    """Relativistic electron wavelength [Å] at ``energy_kV``."""
    e = energy_kV * 1e3
    return 12.2643 / math.sqrt(e * (1 + 0.97845e-6 * e))


def check_resources(sc, *, force: bool = False, scheduler=None, device: str = "cpu") -> Estimate:
    """Refuse a scenario whose estimate exceeds this machine (one line giving the estimate).

    Memory: more than :data:`MEMORY_FRACTION` of the RAM; time: more than :data:`MAX_HOURS` on the
    local cores (scaled from :data:`_REF_CORES` by ``os.cpu_count()``).  Skipped with ``force`` or
    when a cluster (``scheduler``) or GPU (``device="gpu"``) is named.

    Returns
    -------
    Estimate
    """
    est = estimate_scenario(sc)
    if force or scheduler or device == "gpu":
        return est
    ram = machine_memory_bytes()
    cores = os.cpu_count() or 1
    hours = est.seconds * _REF_CORES / cores / 3600.0
    where = f"{sc.path or sc.name}"
    if est.memory_bytes > MEMORY_FRACTION * ram:
        raise AetbenchError(f"{where}: needs about {est.describe(cores)} but this machine has "
                            f"{_fmt_bytes(ram)} of memory; reduce the scenario, or run with --force, "
                            "--scheduler ADDRESS or --device gpu")
    if hours > MAX_HOURS:
        raise AetbenchError(f"{where}: needs about {est.describe(cores)} on {cores} cores (> {MAX_HOURS:g} h); "
                            "reduce the scenario, or run with --force, --scheduler ADDRESS or --device gpu")
    return est
