"""Scenario runner: structure → tilt series → methods → scores → report.

Every (structure, dose) *case* yields one tilt series, simulated (cached
under a content hash of structure, simulation config, seed and code
version) or imported from ``[[input]]`` files.  Every method runs on it; its
traced model is cached too (keyed by tilt series and method config), so an
interrupted run resumes where it stopped and sweeps reuse finished cells.
Cache entries carry their key and a checksum (:func:`aetbench.cache.load_entry`): a damaged or
mismatched entry is reported, moved aside and recomputed.

Results are written atomically under ``reports/<scenario>/<timestamp>-<random>/``, a folder claimed
atomically (so two runs started in the same second never share one) just before the first file is
written (so a run that fails earlier leaves no folder).
"""
from __future__ import annotations

import io
import json
import os
import secrets
import sys
import time
from dataclasses import asdict, dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from . import cache, provenance
from .io.files import AetbenchError, atomic_write_path, check_name, remove_stale_parts, safe_join
from .methods import METHODS, run_method, scenario_methods
from .scenario import Scenario, load_scenario, resolve_data_path
from .types import SCORE_COLUMNS, AtomicModel, TiltSeries, TracedModel

__all__ = ["Case", "cases", "run_scenario", "progress_enabled"]


def progress_enabled(quiet: bool) -> bool:
    """Progress bars unless ``--quiet`` or running in CI."""
    return not quiet and os.environ.get("CI", "").lower() != "true"


@dataclass
class Case:
    """One tilt series to reconstruct, with its ground truth."""

    structure: str
    dose: float
    truth: AtomicModel | None
    elements: list[str]
    reference: str
    key: str
    make: Callable[[], TiltSeries]
    measured: object = None  # aetbench.measured.MeasuredInfo for kind = "measured"


# --------------------------------------------------------------------------- cases

def _code(*modules: str) -> str:
    """Fingerprint of the code a cache entry depends on: the named modules and every aetbench module they import,
    lazy imports included (:func:`aetbench.methods.fingerprint.module_fingerprint`), with the version — the code
    actually called, read from the imports, as for the methods' results (no folders listed by hand)."""
    from ._version import __version__
    from .methods.fingerprint import module_fingerprint

    return cache.content_hash(__version__, [(m, module_fingerprint(m)) for m in modules])


def _structure(sc: Scenario, cache_dir: Path | None = None) -> AtomicModel:
    st = sc.structure
    if st.source == "random":
        from .structures.random import random_sphere

        return random_sphere(st.n_atoms, element=st.element, min_distance=st.min_distance,
                             density=st.density, seed=sc.seed)
    if st.source == "recipe":
        from .structures.command import build_structure

        return build_structure(st.recipe, seed=sc.seed, cache_dir=cache_dir)  # built once per cache folder
    from .io.models import read_model

    return read_model(resolve_data_path(st.path, sc, "structure.path"), elements=st.elements or None,
                      axes=st.axes or None)


def _noise_seed(seed: int, dose: float) -> int:
    return int(cache.content_hash("noise", seed, dose), 16) % (2**32)


def _apply_errors(ts: TiltSeries, err, seed: int) -> TiltSeries:
    """Drift, beam-current scaling and tilt-angle errors (seeded, recorded in ``metadata["truth"]``)."""
    from .simulate import artefacts

    if err.shift_sigma_A > 0:
        ts = artefacts.apply_shifts(ts, err.shift_sigma_A, seed=seed)
    if err.intensity_sigma_rel > 0:
        ts = artefacts.apply_intensity_scaling(ts, err.intensity_sigma_rel, seed=seed)
    if err.angle_sigma_deg > 0 or err.euler_sigma_deg > 0:
        ts = artefacts.apply_angle_errors(ts, [err.euler_sigma_deg, err.angle_sigma_deg, err.euler_sigma_deg],
                                          seed=seed)
    return ts


def experiment_view(ts: TiltSeries) -> TiltSeries:
    """What an experiment would record: the series without ``metadata["truth"]`` (true angles, shifts …)."""
    if "truth" not in ts.metadata:
        return ts
    return replace(ts, metadata={k: v for k, v in ts.metadata.items() if k != "truth"})


def profile_margin_A(sim) -> float:
    """Half-width [Å] of an atom's projected profile that must stay inside the field: 3 standard deviations of
    the tier's profile ``sqrt(atom_sigma² + blur_sigma²)`` (the linear tier's own width; the abTEM and ptychographic
    tiers use it as the stated proxy of their probe-broadened atom images)."""
    return 3.0 * float(np.hypot(sim.atom_sigma, sim.blur_sigma))


def check_field(sc: Scenario, truth: AtomicModel, angles: np.ndarray) -> np.ndarray:
    """The rotation centre [Å] of ``sc``'s simulated series; refuses a particle that leaves the field of view.

    The centre is ``[structure] centre`` when given, else the structure's centroid
    (:func:`aetbench.geometry.rotation_centre`).  At every tilt the atoms, rotated about it, plus
    :func:`profile_margin_A` must project inside the ``image_size × pixel_size`` field; otherwise one line names
    the scenario, the overflow [Å], the tilt and the fixes, before any simulation starts.
    """
    from . import geometry

    sim = sc.simulation
    try:
        centre = geometry.rotation_centre(truth.positions, sc.structure.centre or None)
    except ValueError as e:
        raise AetbenchError(f"{sc.path}: structure.centre: {e}") from None
    margin = profile_margin_A(sim)
    over, k = geometry.field_overflow(truth.positions, angles, centre, pixel_size=sim.pixel_size,
                                      shape=tuple(sim.image_size), margin_A=margin)
    if over > 0:
        rel = truth.positions - centre
        reach = float(np.linalg.norm(rel, axis=1).max()) + margin
        need = int(np.ceil(2 * reach / sim.pixel_size)) + 1
        where = "given" if sc.structure.centre else "centroid"
        raise AetbenchError(
            f"{sc.path or sc.name}: the particle leaves the field of view by {over:.2f} Å at tilt "
            f"{tuple(round(float(a), 2) for a in angles[k])} deg (field {sim.image_size[0]}×{sim.image_size[1]} px × "
            f"{sim.pixel_size:g} Å, rotation centre ({where}) {tuple(round(float(c), 2) for c in centre)} Å, "
            f"atom margin {margin:.2f} Å): use simulation.image_size ≥ {need}, a larger simulation.pixel_size, "
            f"or a structure.centre nearer the particle")
    return centre


def _cached_series(path: Path, compute: Callable[[], TiltSeries]) -> TiltSeries:
    """The tilt series cached at ``path`` (checked entry keyed by the file's stem), else ``compute()``d and saved."""
    from .io.hdf5 import tilt_series_from_bytes, tilt_series_to_bytes

    key = path.name[: -len(path.suffix)] if path.suffix else path.name
    ts = cache.load_entry(path, key, decode=lambda b: tilt_series_from_bytes(b, str(path)))
    if ts is None:
        ts = compute()
        cache.save_entry(path, key, tilt_series_to_bytes(ts))
    return ts


def _simulated_cases(sc: Scenario, cache_dir: Path, progress: bool, scheduler=None, device="cpu") -> list[Case]:
    sim = sc.simulation
    truth = _structure(sc, cache_dir)
    angles = np.stack([np.zeros_like(t := sim.tilt.thetas()), t, np.zeros_like(t)], axis=1)
    centre = check_field(sc, truth, angles)   # before any simulation: the one rotation centre, the field checked
    code = _code("aetbench.simulate.linear", "aetbench.simulate.abtem_adf", "aetbench.simulate.dose",
                 "aetbench.simulate.artefacts")   # the structure's own code is in its positions
    structure_key = {k: v for k, v in asdict(sc.structure).items() if k != "reference"}
    clean_key = cache.content_hash("clean-physics", structure_key, {k: v for k, v in asdict(sim).items() if k != "doses"},
                                   sc.seed, truth.positions, list(truth.elements), code, cache.ENTRY_FORMAT)

    def clean() -> TiltSeries:
        return _cached_series(cache_dir / "tiltseries" / f"{clean_key}-clean.h5", simulate)

    def simulate() -> TiltSeries:
        if sim.model == "linear":
            from .simulate.linear import LinearParams, simulate_linear

            params = LinearParams(amplitude=dict(sim.amplitude), default_sigma_A=sim.atom_sigma,
                                  blur_sigma_A=sim.blur_sigma)
            ts = simulate_linear(truth, angles, pixel_size=sim.pixel_size, shape=tuple(sim.image_size), params=params,
                                 centre=centre, metadata={"structure": sc.structure.label(), "seed": sc.seed})
        else:
            from .simulate.abtem_adf import ADFConfig, simulate_adf

            acfg = dict(sim.abtem)
            if sim.errors.defocus_sigma_A > 0:
                acfg["defocus_error_sigma_A"] = sim.errors.defocus_sigma_A
            ts = simulate_adf(truth, angles, ADFConfig.from_dict(acfg), seed=sc.seed, pixel_size=sim.pixel_size,
                              shape=tuple(sim.image_size), progress=progress, scheduler=scheduler,
                              cache_dir=cache_dir / "tilts", device=device, centre=centre)
        return ts  # experimental errors are drawn per noise realisation (make), after the cached physics

    if sim.model == "ptycho":
        return _ptycho_cases(sc, truth, angles, centre, clean_key, cache_dir, progress, scheduler, device)
    out = []
    for dose in sim.doses:
        key = cache.content_hash(clean_key, "dose", dose, sim.background, sc.draw_seed)

        def make(dose=dose, key=key) -> TiltSeries:
            from .simulate.dose import apply_dose

            return _cached_series(cache_dir / "tiltseries" / f"{key}.h5", lambda: apply_dose(
                _apply_errors(clean(), sim.errors, sc.draw_seed), dose, seed=_noise_seed(sc.draw_seed, dose),
                background=sim.background))

        out.append(Case(sc.structure.label(), float(dose), truth, truth.species, sc.structure.reference, key, make))
    return out


def _ptycho_cases(sc: Scenario, truth: AtomicModel, angles: np.ndarray, centre: np.ndarray, clean_key: str,
                  cache_dir: Path, progress: bool, scheduler, device) -> list[Case]:
    """One case per (dose, ptychography engine): 4D-STEM per tilt → dose → phase projections."""
    from .ptycho.series import ReconConfig
    from .simulate.ptycho import PtychoConfig

    sim = sc.simulation
    pcfg = PtychoConfig.from_dict(sim.ptycho)
    rcfg = ReconConfig.from_dict(sim.ptycho_recon)
    fov = max(sim.image_size) * sim.pixel_size
    held: dict = {}   # the noise-free 4D data, and the dosed data of the last dose (shared by its engines)

    def dosed4d(dose: float):
        from .simulate.ptycho import apply_dose_4d_series, simulate_4dstem

        if "clean" not in held:
            held["clean"] = simulate_4dstem(truth, angles, pcfg, seed=sc.seed, fov_A=fov, cache_dir=cache_dir / "tilts4d",
                                            scheduler=scheduler, device=device, progress=progress, centre=centre)
        if held.get("dose") != dose:
            held["dose"], held["dosed"] = dose, apply_dose_4d_series(
                held["clean"], None if not np.isfinite(dose) else dose, seed=_noise_seed(sc.draw_seed, dose),
                background=sim.background)
        return held["dosed"]

    out = []
    code = _code("aetbench.ptycho.series", "aetbench.simulate.ptycho")
    for dose in sim.doses:
        for engine in rcfg.engines:
            key = cache.content_hash(clean_key, "ptycho", dose, sim.background, engine, asdict(rcfg), code,
                                     sc.draw_seed)

            def make(dose=dose, engine=engine, key=key) -> TiltSeries:
                from .ptycho.series import phase_tilt_series

                def compute() -> TiltSeries:
                    ts = phase_tilt_series(dosed4d(dose), engine, rcfg, shape=tuple(sim.image_size),
                                           pixel_size=sim.pixel_size, seed=sc.seed, progress=progress)
                    return _apply_errors(ts, sim.errors, sc.draw_seed)

                return _cached_series(cache_dir / "tiltseries" / f"{key}.h5", compute)

            ref = sc.structure.reference.replace("{engine}", engine)
            out.append(Case(f"{sc.structure.label()}-{engine}", float(dose), truth, truth.species, ref, key, make))
    return out


def _input_cases(sc: Scenario) -> list[Case]:
    out = []
    for i, inp in enumerate(sc.input):
        where = f"input[{i}]"
        proj = resolve_data_path(inp.projections, sc, f"{where}.projections")
        truth = None
        if inp.truth:
            from .io.models import read_model

            truth = read_model(resolve_data_path(inp.truth, sc, f"{where}.truth"),
                               elements=inp.truth_elements or None, axes=inp.truth_axes or None,
                               types_path=resolve_data_path(inp.truth_types, sc, f"{where}.truth_types")
                               if inp.truth_types else None)
        elements = list(inp.elements) or (truth.species if truth is not None else [])
        if not elements:
            raise AetbenchError(f"{sc.path}: {where}.elements: required when no truth is given (e.g. ['Si'])")
        info = None
        if inp.kind == "measured":
            from .measured import measured_info, read_measured

            ang = resolve_data_path(inp.angles, sc, f"{where}.angles")
            info = measured_info(inp, sc)
            origin = None if info.origin is None else info.origin.tolist()
            key = cache.content_hash("measured", cache.file_digest(proj), cache.file_digest(ang), inp.pixel_size,
                                     inp.extended, origin, _code("aetbench.measured"))

            def make(proj=proj, ang=ang, inp=inp, origin=origin) -> TiltSeries:
                return read_measured(proj, ang, inp, origin)
        elif inp.kind == "paper-mat":
            ang = resolve_data_path(inp.angles, sc, f"{where}.angles")
            key = cache.content_hash("paper-mat", cache.file_digest(proj), cache.file_digest(ang), inp.pixel_size,
                                     inp.dose, _code("aetbench.io.paper"))

            def make(proj=proj, ang=ang, inp=inp) -> TiltSeries:
                from .io.paper import read_paper_tilt_series

                dose = None if not np.isfinite(inp.dose) else inp.dose
                return read_paper_tilt_series(proj, ang, pixel_size=inp.pixel_size, dose=dose)
        else:
            key = cache.content_hash("hdf5", cache.file_digest(proj))

            def make(proj=proj) -> TiltSeries:
                try:
                    return TiltSeries.read(proj)
                except ValueError as e:  # inconsistent arrays, e.g. 6 angle rows for 5 projections
                    raise AetbenchError(f"{proj}: {e}") from None
        label = inp.label or proj.parent.name or proj.stem
        out.append(Case(label, float(inp.dose), truth, elements, inp.reference, key, make, info))
    return out


def cases(sc: Scenario, cache_dir: Path, progress: bool = False, scheduler=None, device="cpu") -> list[Case]:
    return _input_cases(sc) if sc.input else _simulated_cases(sc, cache_dir, progress, scheduler, device)


# --------------------------------------------------------------------------- data checks

def _check_cases(all_cases: list[Case], cache_dir: Path, sc: Scenario) -> list[str]:
    """Run :func:`aetbench.preprocess.checks.check_tilt_series_data` on every case before any output.

    Errors stop the run (one line, nothing written); warnings are printed on stderr and
    returned for the report.  A simulated particle is checked against the field of view
    before anything is simulated.  The warnings of a case are cached (keyed by the case, its
    truth and the checks' code), so a rerun whose cells are all cached does not load the series again.
    """
    import sys

    from .io.models import model_warnings
    from .preprocess.checks import check_angles, check_tilt_series_data

    if sc.simulation is not None:   # geometry known up front: refuse what cannot work before simulating
        # (the particle against the field was checked with the rotation centre by check_field when the cases were made)
        th = sc.simulation.tilt.thetas()
        check_angles(np.stack([np.zeros_like(th), th, np.zeros_like(th)], axis=1), source=f"{sc.path}: simulation.tilt")

    code = _code("aetbench.preprocess.checks", "aetbench.io.models")
    out: list[str] = []
    for case in all_cases:
        truth_key = None if case.truth is None else (case.truth.positions, list(map(str, case.truth.elements)))
        path = cache_dir / "checks" / f"{cache.content_hash('checks', case.key, truth_key, code)}.json"
        found = None
        if path.exists():
            try:
                found = json.loads(path.read_text())
                found = found if isinstance(found, list) and all(isinstance(w, str) for w in found) else None
            except (OSError, ValueError):
                found = None   # unreadable entry: check again
        if found is None:
            source = f"{case.structure} dose {case.dose:g}"
            found = check_tilt_series_data(experiment_view(case.make()), case.truth, source=source)
            if case.truth is not None:
                found += model_warnings(case.truth, f"{source}: ground truth")
            with atomic_write_path(path) as tmp:
                tmp.write_text(json.dumps(found))
        for w in found:
            print(f"aetbench: warning: {w}", file=sys.stderr)
        out += found
    return out


def _axes_warning(model: AtomicModel, case: Case, inp, cutoff: float, tag: str) -> str | None:
    """A one-line warning when the paper-protocol rate is poor and another truth axes convention is far better.

    See :func:`aetbench.score.command.axes_hint` (the 48 signed axis permutations of the truth).
    """
    from .score import score
    from .score.command import POOR_RATE_PCT, axes_hint

    df = score(model, case.truth, cutoff=cutoff, protocol="paper")
    rate = 100.0 * float(df["identified"].sum()) / max(float(df["n_truth"].sum()), 1.0)
    if rate >= POOR_RATE_PCT:
        return None
    hint = axes_hint(model, case.truth, cutoff=cutoff, protocol="paper", truth_axes=inp.truth_axes or None)
    if hint is None:
        return None
    return (f"{tag}: only {rate:.2f} % identified; truth_axes = \"{hint[0]}\" would give {hint[1]:.2f} % "
            "(paper protocol): check the input's axis convention")


# --------------------------------------------------------------------------- traced-model cache

def _save_traced(path: Path, key: str, traced: TracedModel, seconds: dict, volume_meta: dict) -> None:
    buf = io.BytesIO()
    np.savez(buf, positions=traced.model.positions, elements=traced.model.elements.astype("U3"),
             intensity=np.asarray(traced.intensity, float),
             meta=json.dumps({"seconds": seconds, "volume": volume_meta}, default=str))
    cache.save_entry(path, key, buf.getvalue())


def _decode_traced(body: bytes):
    with np.load(io.BytesIO(body), allow_pickle=False) as z:
        traced = TracedModel(AtomicModel(z["positions"], z["elements"]), z["intensity"])
        meta = json.loads(str(z["meta"]))
    return traced, meta["seconds"], meta["volume"]


def _load_traced(path: Path, key: str):
    """``(traced, seconds, volume_meta)`` of a checked results entry, or ``None`` (missing or moved aside)."""
    return cache.load_entry(path, key, decode=_decode_traced)


class _RunFolder:
    """The report folder of one run, claimed on the first write.

    With ``out_dir`` the folder is the caller's (created if needed, may exist).
    Otherwise it is ``root/<name>/<YYYYmmdd-HHMMSS>-<6 hex>``, created with an
    exclusive ``mkdir`` (retried with a new suffix if taken), so concurrent
    runs never share a folder.  Every path handed out stays inside it.
    """

    def __init__(self, root, name: str, out_dir=None):
        self.root, self.name, self.out_dir, self._path, self.claimed = root, name, out_dir, None, False

    @property
    def path(self) -> Path:
        if self._path is None:
            if self.out_dir:
                p = Path(self.out_dir)
                p.mkdir(parents=True, exist_ok=True)
            else:
                parent = safe_join(self.root, self.name)
                parent.mkdir(parents=True, exist_ok=True)
                for _ in range(1000):
                    p = parent / f"{datetime.now():%Y%m%d-%H%M%S}-{secrets.token_hex(3)}"
                    try:
                        p.mkdir()
                        break
                    except FileExistsError:
                        continue
                else:  # pragma: no cover - 1000 collisions of a 24-bit suffix
                    raise AetbenchError(f"{parent}: cannot claim a new report folder")
                self.claimed = True
            self._path = p
        return self._path

    def file(self, *parts: str) -> Path:
        return safe_join(self.path, *parts)

    def discard_if_empty(self) -> None:
        """Remove the folder this run claimed if nothing was written into it."""
        if not self.claimed or self._path is None:
            return
        for d, _, files in os.walk(self._path, topdown=False):
            if files:
                return
            try:
                os.rmdir(d)
            except OSError:
                return


# --------------------------------------------------------------------------- runner

def run_scenario(scenario, *, reports_root="reports", cache_dir=None, quiet=False, scheduler=None,
                 device="cpu", save_volumes=False, out_dir=None, force=False) -> Path:
    """Run a scenario (path or :class:`Scenario`) and write its report; returns the report folder.

    The folder is ``out_dir`` if given, else a new ``reports_root/<name>/<timestamp>-<random>``
    (see :class:`_RunFolder`).  With ``save_volumes`` every cell is reconstructed even when its
    traced model is cached (the cache holds no volumes), so the volumes are always written.
    Before any work the memory and time are estimated (:func:`aetbench.estimate.check_resources`);
    a run beyond this machine is refused unless ``force`` or a ``scheduler`` or GPU is given.
    Every tilt series is checked (:func:`aetbench.preprocess.checks.check_tilt_series_data`)
    before the report folder is made; its warnings go to stderr and into the report.
    """
    from .estimate import check_resources

    sc = scenario if isinstance(scenario, Scenario) else load_scenario(scenario, known_methods=METHODS)
    check_name(sc.name, f"{sc.path or 'scenario'}: name")
    scenario_methods(sc)  # validate names, [methods.NAME] tables and options before any work
    check_resources(sc, force=force, scheduler=scheduler, device=device)
    cache_dir = Path(cache_dir) if cache_dir else cache.default_cache_dir()
    for sub in ("results", "tiltseries", "tilts", "tilts4d", "structures", "bounds"):
        remove_stale_parts(cache_dir / sub)  # left by killed runs
    folder = _RunFolder(reports_root, sc.name, out_dir)
    clock = _CompileClock()
    try:
        return _run(sc, folder, cache_dir, quiet, scheduler, device, save_volumes, provenance.now_utc(), clock)
    except BaseException:
        folder.discard_if_empty()
        raise
    finally:
        clock.close()


def _run(sc: Scenario, folder: _RunFolder, cache_dir: Path, quiet, scheduler, device, save_volumes, started,
         clock: "_CompileClock") -> Path:
    from tqdm.auto import tqdm

    from .report.markdown import write_report
    from .score import score, score_details, spread_warning
    from .score.bound import bound_columns
    from .score.geometry import geometry_record, geometry_rows

    progress = progress_enabled(quiet)
    from .reconstruct.gpu import set_default_device

    set_default_device(device)  # --device gpu: RESIRE runs on the GPU too (aetbench.reconstruct.gpu)
    series_s: dict[str, float] = {}  # seconds spent simulating or loading each case's series, in this run
    all_cases = [replace(c, make=_timed(c.make, c.key, series_s))
                 for c in cases(sc, cache_dir, progress, scheduler, device)]  # input files are checked here
    data_warnings = _check_cases(all_cases, cache_dir, sc)  # bad data stops here, before any output
    hits: dict[str, int] = {"results": 0}
    misses: dict[str, int] = {"results": 0}
    methods = scenario_methods(sc)

    rows, details, stage_rows, limits, ref_rows, geo_rows = [], {}, [], {}, [], []
    convergence: dict[tuple, list] = {}  # (structure, dose, method) -> R-factor per iteration
    warnings = data_warnings   # one list: data checks, axis hints, spread of the traced atoms
    loaded: tuple[Case, TiltSeries] | None = None  # cells run case by case: load each tilt series once
    cells = [(c, m) for c in all_cases for m in sc.methods]
    bar = tqdm(cells, desc=f"{sc.name}", unit="cell", disable=not progress)
    for case, mname in bar:
        bar.set_postfix_str(f"{case.structure} dose={case.dose:g} {mname}")
        method = methods[mname]   # keyed by its configuration and the code of every function it calls
        rkey = cache.content_hash(case.key, method.fingerprint(), sc.seed, sc.draw_seed, case.elements,
                                  cache.ENTRY_FORMAT)
        rpath = cache_dir / "results" / f"{rkey}.npz"
        hit = None if save_volumes else _load_traced(rpath, rkey)
        (hits if hit is not None else misses)["results"] += 1
        if hit is not None:
            traced, seconds, vmeta = hit
        else:
            t0 = time.perf_counter()
            if loaded is None or loaded[0] is not case:
                loaded = (case, case.make())
            ts = loaded[1]
            seconds = {"load": time.perf_counter() - t0}
            c0 = clock.total
            res = run_method(method, experiment_view(ts), elements=case.elements, seed=sc.draw_seed,
                             progress=progress, device=device)
            seconds.update(res.seconds)
            seconds["compile"] = clock.total - c0  # numba compilation inside the stages (first use of a kernel)
            traced = res.traced
            vmeta = {k: v for k, v in res.volume.metadata.items() if k in ("r_factor",)}
            geo = geometry_record(ts, res.preprocessed, res.records)  # simulated errors: what the method found
            if geo is not None:
                vmeta["geometry"] = geo
            if case.measured is not None:
                vmeta["ncc_reference"] = case.measured.volume_ncc(res.volume)
                vmeta["ncc_reference_own_patch"] = case.measured.volume_ncc(res.volume, own_patch=True)
            _save_traced(rpath, rkey, traced, seconds, vmeta)
            if save_volumes:
                res.volume.write(folder.file("volumes", f"{case.structure}_{case.dose:g}_{mname}.h5"))
        tag = f"{case.structure}_dose{case.dose:g}_{mname}"
        if vmeta.get("r_factor"):
            convergence[(case.structure, case.dose, mname)] = [float(v) for v in vmeta["r_factor"]]
        if vmeta.get("geometry"):
            geo_rows += geometry_rows(case.structure, case.dose, mname, vmeta["geometry"])
        if case.measured is not None:  # support, then agreement with the reference model (aetbench.measured)
            from .measured import apply_support, evaluate

            if loaded is None or loaded[0] is not case:
                loaded = (case, case.make())
            traced = apply_support(traced, case.measured.support(loaded[1].pixel_size))
            tag = f"{case.structure}_{mname}"
            ref_rows.extend(evaluate(traced, case.measured, loaded[1], folder.path / "figures", tag,
                                     vmeta.get("ncc_reference"), vmeta.get("ncc_reference_own_patch")))
            traced.atoms().write(folder.file("models", f"{tag}.xyz"))
            limit = {}  # no bound for measured data: its profile and dose are not known here
        else:
            limit = _case_limit(case, traced, rkey, loaded, cache_dir, limits, folder.file("models", f"{tag}.xyz"))
        total = float(sum(v for k, v in seconds.items() if k not in ("load", "compile")))
        compile_s = float(seconds.get("compile", 0.0))
        method_s = max(total - compile_s, 0.0)  # the method alone: no series, no compilation
        timing = {"seconds": round(method_s, 3), "compile_s": round(compile_s, 3),
                  "series_s": round(series_s.get(case.key, 0.0), 3), "cached": hit is not None}
        stage_rows.append({"structure": case.structure, "dose": case.dose, "method": mname,
                           **{f"{k}_s": round(v, 3) for k, v in seconds.items()}, "method_s": round(method_s, 3),
                           "cached": hit is not None})
        if case.truth is None:
            continue
        for protocol in sc.scoring.protocol:
            df = score(traced.atoms(), case.truth, cutoff=sc.scoring.cutoff, protocol=protocol)
            for r in df.to_dict("records"):
                rows.append({"structure": case.structure, "dose": case.dose, "method": mname,
                             "protocol": protocol, "cutoff": sc.scoring.cutoff, **timing,
                             "reference": case.reference, **r, **bound_columns(r, limit)})
        if sc.input:  # external truth: a poor score may be a wrong axis convention, never guessed silently
            hint = _axes_warning(traced.atoms(), case, sc.input[all_cases.index(case)], sc.scoring.cutoff, tag)
            if hint:
                print(f"aetbench: warning: {hint}", file=sys.stderr)
                data_warnings.append(hint)
        details[tag] = (case, score_details(traced.atoms(), case.truth, cutoff=sc.scoring.cutoff, protocol="strict"))
        warn = spread_warning(traced.atoms(), case.truth, sc.scoring.cutoff)
        if warn:
            warnings.append(f"{case.structure}, dose {case.dose:g}, {mname}: {warn}")
            print(f"aetbench: warning: {warnings[-1]}", file=sys.stderr)
        # write partial results after every cell: an interruption never loses finished work
        _write_scores(folder.path, rows)
    bar.close()
    out = folder.path
    _write_scores(out, rows)
    with atomic_write_path(out / "stage_seconds.csv") as tmp:
        pd.DataFrame(stage_rows).to_csv(tmp, index=False)
    geometry = pd.DataFrame(geo_rows)
    if geo_rows:
        with atomic_write_path(out / "geometry.csv") as tmp:
            geometry.to_csv(tmp, index=False, float_format="%.6g")
    write_report(out, sc, pd.read_csv(out / "scores.csv") if rows else pd.DataFrame(columns=SCORE_COLUMNS),
                 pd.DataFrame(stage_rows), details, warnings=warnings, geometry=geometry, convergence=convergence)
    if ref_rows:
        from .report.reference import append_reference_section

        append_reference_section(out, ref_rows)
    from .report.html import write_html

    write_html(out / "report.md", title=f"aetbench report — {sc.name}")  # one self-contained file for a talk
    provenance.write(out / "provenance.json", provenance.collect(
        sc, {m: methods[m].config() for m in sc.methods}, started=started,
        cache={"hits": hits, "misses": misses}, device=device, scheduler=scheduler))
    return out


def _timed(make: Callable[[], TiltSeries], key: str, spent: dict) -> Callable[[], TiltSeries]:
    """``make`` that adds its wall time [s] to ``spent[key]`` (a case's series: simulated, or loaded from cache)."""
    def timed() -> TiltSeries:
        t0 = time.perf_counter()
        try:
            return make()
        finally:
            spent[key] = spent.get(key, 0.0) + time.perf_counter() - t0

    return timed


class _CompileClock:
    """Running total [s] of numba compilation in this thread (outermost ``numba:compile`` events only, so nested
    compilations of callees are not counted twice).  Reported apart from a method's own time: the first method to
    use a kernel otherwise pays for every later one."""

    def __init__(self):
        import threading

        from numba.core import event

        self.total, self._depth, self._t0 = 0.0, 0, 0.0
        self._thread = threading.get_ident()
        outer = self

        class _Listener(event.Listener):
            def on_start(self, ev):
                if threading.get_ident() == outer._thread:
                    if outer._depth == 0:
                        outer._t0 = time.perf_counter()
                    outer._depth += 1

            def on_end(self, ev):
                if threading.get_ident() == outer._thread and outer._depth > 0:
                    outer._depth -= 1
                    if outer._depth == 0:
                        outer.total += time.perf_counter() - outer._t0

        self._listener = _Listener()
        event.register("numba:compile", self._listener)

    def close(self) -> None:
        from numba.core import event

        if self._listener is not None:
            event.unregister("numba:compile", self._listener)
            self._listener = None


def _case_limit(case: Case, traced: TracedModel, rkey: str, loaded, cache_dir: Path, held: dict, xyz: Path) -> dict:
    """The physical limit (:mod:`aetbench.score.bound`), cached on disk: writes the traced model ``xyz`` with each
    atom's σ [pm] from the data alone, and returns the case's bound at its truth (once per case; {} without truth)."""
    from .score.bound import cached_atom_sigma, cached_case_bound, write_model_sigma

    def make() -> TiltSeries:  # the case's series, loaded at most once here
        if loaded is not None and loaded[0] is case:
            return loaded[1]
        if held.get("ts", (None,))[0] is not case:
            held["ts"] = (case, case.make())
        return held["ts"][1]

    from .score.model_check import model_check

    code = _code("aetbench.score.bound", "aetbench.score.model_check")
    atoms = traced.atoms()
    sigma = cached_atom_sigma(make, atoms, cache_dir / "bounds" / f"{cache.content_hash(rkey, code)}-sigma.npy",
                              dose=case.dose)
    write_model_sigma(xyz, atoms, sigma)
    if case.truth is not None and case.key not in held:
        key = cache.content_hash(case.key, case.truth.positions, list(case.truth.elements), code)
        held[case.key] = cached_case_bound(make, case.truth, cache_dir / "bounds" / f"{key}.json", dose=case.dose,
                                           check=model_check)
    return held.get(case.key, {})


def _write_scores(out: Path, rows: list[dict]) -> None:
    if not rows:
        return
    df = pd.DataFrame(rows)
    extra = [c for c in df.columns if c not in SCORE_COLUMNS]
    df = df[SCORE_COLUMNS + extra]
    with atomic_write_path(out / "scores.csv") as tmp:
        df.to_csv(tmp, index=False, float_format="%.6g")
