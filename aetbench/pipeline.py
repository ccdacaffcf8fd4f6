"""Scenario runner: structure → tilt series → methods → scores → report.

Every (structure, dose) *case* yields one tilt series, simulated (cached
under a content hash of structure, simulation config, seed and code
version) or imported from ``[[input]]`` files.  Every method runs on it; its
traced model is cached too (keyed by tilt series and method config), so an
interrupted run resumes where it stopped and sweeps reuse finished cells.
Results are written atomically under ``reports/<scenario>/<timestamp>/``.
"""
from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import asdict, dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from . import cache
from .io.files import AetbenchError, atomic_write_path
from .methods import METHODS, get_method, run_method
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

def _structure(sc: Scenario) -> AtomicModel:
    st = sc.structure
    if st.source == "random":
        from .structures.random import random_sphere

        return random_sphere(st.n_atoms, element=st.element, min_distance=st.min_distance,
                             density=st.density, seed=sc.seed)
    if st.source == "recipe":
        from .structures.command import build_structure

        return build_structure(st.recipe, seed=sc.seed)
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


def _simulated_cases(sc: Scenario, cache_dir: Path, progress: bool, scheduler=None, device="cpu") -> list[Case]:
    sim = sc.simulation
    truth = _structure(sc)
    angles = np.stack([np.zeros_like(t := sim.tilt.thetas()), t, np.zeros_like(t)], axis=1)
    centre = check_field(sc, truth, angles)   # before any simulation: the one rotation centre, the field checked
    code = cache.code_fingerprint("simulate", "structures", "geometry.py", "types.py")
    structure_key = {k: v for k, v in asdict(sc.structure).items() if k != "reference"}
    clean_key = cache.content_hash("clean", structure_key, {k: v for k, v in asdict(sim).items() if k != "doses"},
                                   sc.seed, truth.positions, list(truth.elements), code)

    def clean() -> TiltSeries:
        path = cache_dir / "tiltseries" / f"{clean_key}-clean.h5"
        if path.exists():
            return TiltSeries.read(path)
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
        ts = _apply_errors(ts, sim.errors, sc.seed)
        ts.write(path)
        return ts

    if sim.model == "ptycho":
        return _ptycho_cases(sc, truth, angles, centre, clean_key, cache_dir, progress, scheduler, device)
    out = []
    for dose in sim.doses:
        key = cache.content_hash(clean_key, "dose", dose, sim.background)

        def make(dose=dose, key=key) -> TiltSeries:
            from .simulate.dose import apply_dose

            path = cache_dir / "tiltseries" / f"{key}.h5"
            if path.exists():
                return TiltSeries.read(path)
            ts = apply_dose(clean(), dose, seed=_noise_seed(sc.seed, dose), background=sim.background)
            ts.write(path)
            return ts

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
                held["clean"], None if not np.isfinite(dose) else dose, seed=_noise_seed(sc.seed, dose),
                background=sim.background)
        return held["dosed"]

    out = []
    code = cache.code_fingerprint("ptycho")
    for dose in sim.doses:
        for engine in rcfg.engines:
            key = cache.content_hash(clean_key, "ptycho", dose, sim.background, engine, asdict(rcfg), code)

            def make(dose=dose, engine=engine, key=key) -> TiltSeries:
                from .ptycho.series import phase_tilt_series

                path = cache_dir / "tiltseries" / f"{key}.h5"
                if path.exists():
                    return TiltSeries.read(path)
                ts = phase_tilt_series(dosed4d(dose), engine, rcfg, shape=tuple(sim.image_size), pixel_size=sim.pixel_size,
                                       seed=sc.seed, progress=progress)
                ts = _apply_errors(ts, sim.errors, sc.seed)
                ts.write(path)
                return ts

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
            key = cache.content_hash("measured", cache.file_digest(proj), cache.file_digest(ang), inp.pixel_size,
                                     inp.extended, list(inp.origin), cache.code_fingerprint("io", "measured.py"))

            def make(proj=proj, ang=ang, inp=inp) -> TiltSeries:
                return read_measured(proj, ang, inp)
        elif inp.kind == "paper-mat":
            ang = resolve_data_path(inp.angles, sc, f"{where}.angles")
            key = cache.content_hash("paper-mat", cache.file_digest(proj), cache.file_digest(ang), inp.pixel_size,
                                     inp.dose, cache.code_fingerprint("io"))

            def make(proj=proj, ang=ang, inp=inp) -> TiltSeries:
                from .io.paper import read_paper_tilt_series

                dose = None if not np.isfinite(inp.dose) else inp.dose
                return read_paper_tilt_series(proj, ang, pixel_size=inp.pixel_size, dose=dose)
        else:
            key = cache.content_hash("hdf5", cache.file_digest(proj))

            def make(proj=proj) -> TiltSeries:
                return TiltSeries.read(proj)
        label = inp.label or proj.parent.name or proj.stem
        out.append(Case(label, float(inp.dose), truth, elements, inp.reference, key, make, info))
    return out


def cases(sc: Scenario, cache_dir: Path, progress: bool = False, scheduler=None, device="cpu") -> list[Case]:
    return _input_cases(sc) if sc.input else _simulated_cases(sc, cache_dir, progress, scheduler, device)


# --------------------------------------------------------------------------- traced-model cache

def _save_traced(path: Path, traced: TracedModel, seconds: dict, volume_meta: dict) -> None:
    with atomic_write_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, positions=traced.model.positions, elements=traced.model.elements.astype("U3"),
                     intensity=np.asarray(traced.intensity, float),
                     meta=json.dumps({"seconds": seconds, "volume": volume_meta}, default=str))


def _load_traced(path: Path):
    with np.load(path, allow_pickle=False) as z:
        traced = TracedModel(AtomicModel(z["positions"], z["elements"]), z["intensity"])
        meta = json.loads(str(z["meta"]))
    return traced, meta["seconds"], meta["volume"]


# --------------------------------------------------------------------------- runner

def run_scenario(scenario, *, reports_root="reports", cache_dir=None, quiet=False, scheduler=None,
                 device="cpu", save_volumes=False, out_dir=None) -> Path:
    """Run a scenario (path or :class:`Scenario`) and write its report; returns the report folder."""
    from tqdm.auto import tqdm

    sc = scenario if isinstance(scenario, Scenario) else load_scenario(scenario, known_methods=METHODS)
    for m in sc.methods:
        get_method(m, sc.method_options.get(m))  # validate names and options before any work
    from .report.markdown import write_report
    from .score import score, score_details, spread_warning

    progress = progress_enabled(quiet)
    cache_dir = Path(cache_dir) if cache_dir else cache.default_cache_dir()
    all_cases = cases(sc, cache_dir, progress, scheduler, device)  # input files are checked here
    out = Path(out_dir) if out_dir else Path(reports_root) / sc.name / datetime.now().strftime("%Y%m%d-%H%M%S")
    out.mkdir(parents=True, exist_ok=True)
    rec_code = cache.code_fingerprint("preprocess", "reconstruct", "trace", "methods.py", "geometry.py", "io")

    rows, details, stage_rows, warnings, ref_rows = [], {}, [], [], []
    loaded: tuple[Case, TiltSeries] | None = None  # cells run case by case: load each tilt series once
    cells = [(c, m) for c in all_cases for m in sc.methods]
    bar = tqdm(cells, desc=f"{sc.name}", unit="cell", disable=not progress)
    for case, mname in bar:
        bar.set_postfix_str(f"{case.structure} dose={case.dose:g} {mname}")
        method = get_method(mname, sc.method_options.get(mname))
        rkey = cache.content_hash(case.key, method.config(), sc.seed, case.elements, rec_code)
        rpath = cache_dir / "results" / f"{rkey}.npz"
        if rpath.exists():
            traced, seconds, vmeta = _load_traced(rpath)
        else:
            t0 = time.perf_counter()
            if loaded is None or loaded[0] is not case:
                loaded = (case, case.make())
            ts = loaded[1]
            seconds = {"load": time.perf_counter() - t0}
            res = run_method(method, experiment_view(ts), elements=case.elements, seed=sc.seed, progress=progress)
            seconds.update(res.seconds)
            traced = res.traced
            vmeta = {k: v for k, v in res.volume.metadata.items() if k in ("r_factor",)}
            if case.measured is not None:
                vmeta["ncc_reference"] = case.measured.volume_ncc(res.volume)
            _save_traced(rpath, traced, seconds, vmeta)
            if save_volumes:
                res.volume.write(out / "volumes" / f"{case.structure}_{case.dose:g}_{mname}.h5")
        tag = f"{case.structure}_dose{case.dose:g}_{mname}"
        if case.measured is not None:  # support, then agreement with the reference model (aetbench.measured)
            from .measured import apply_support, evaluate

            if loaded is None or loaded[0] is not case:
                loaded = (case, case.make())
            traced = apply_support(traced, case.measured.support(loaded[1].pixel_size))
            tag = f"{case.structure}_{mname}"
            ref_rows.append(evaluate(traced, case.measured, loaded[1], out / "figures", tag, vmeta.get("ncc_reference")))
        traced.atoms().write(out / "models" / f"{tag}.xyz")
        total = float(sum(seconds.values()))
        stage_rows.append({"structure": case.structure, "dose": case.dose, "method": mname,
                           **{f"{k}_s": round(v, 3) for k, v in seconds.items()}, "total_s": round(total, 3)})
        if case.truth is None:
            continue
        for protocol in sc.scoring.protocol:
            df = score(traced.atoms(), case.truth, cutoff=sc.scoring.cutoff, protocol=protocol)
            for r in df.to_dict("records"):
                rows.append({"structure": case.structure, "dose": case.dose, "method": mname,
                             "protocol": protocol, "cutoff": sc.scoring.cutoff, "seconds": round(total, 3),
                             "reference": case.reference, **r})
        details[tag] = (case, score_details(traced.atoms(), case.truth, cutoff=sc.scoring.cutoff, protocol="strict"))
        warn = spread_warning(traced.atoms(), case.truth, sc.scoring.cutoff)
        if warn:
            warnings.append(f"{case.structure}, dose {case.dose:g}, {mname}: {warn}")
            print(f"aetbench: warning: {warnings[-1]}", file=sys.stderr)
        # write partial results after every cell: an interruption never loses finished work
        _write_scores(out, rows)
    bar.close()
    _write_scores(out, rows)
    pd.DataFrame(stage_rows).to_csv(out / "stage_seconds.csv", index=False)
    write_report(out, sc, pd.read_csv(out / "scores.csv") if rows else pd.DataFrame(columns=SCORE_COLUMNS),
                 pd.DataFrame(stage_rows), details, warnings=warnings)
    if any(ref_rows):
        from .report.reference import append_reference_section

        append_reference_section(out, [r for r in ref_rows if r])
    return out


def _write_scores(out: Path, rows: list[dict]) -> None:
    if not rows:
        return
    df = pd.DataFrame(rows)
    extra = [c for c in df.columns if c not in SCORE_COLUMNS]
    df = df[SCORE_COLUMNS + extra]
    with atomic_write_path(out / "scores.csv") as tmp:
        df.to_csv(tmp, index=False, float_format="%.6g")
