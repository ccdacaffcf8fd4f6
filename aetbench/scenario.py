"""Scenario files: TOML validated into frozen dataclasses.

A scenario is data: structure × simulation × doses × methods × scoring (or,
instead of structure/simulation, one or more ``[[input]]`` tables pointing at
external tilt series).  Unknown keys, wrong types and out-of-range values are
refused with one line naming the file, the key and what was expected.

Example (the shipped ``quick``, ``aetbench/data/scenarios/quick.toml``)::

    name = "quick"
    seed = 0
    methods = ["resire", "sirt"]

    [structure]
    source = "random"        # random | recipe | file
    n_atoms = 208
    element = "Si"

    [simulation]
    model = "linear"         # linear | abtem
    pixel_size = 0.195       # Å
    image_size = 128         # pixels
    tilt = { start = 0.0, stop = 177.0, step = 3.0 }   # degrees, inclusive
    doses = [1.6e4, 1.6e5]   # e/Å² per projection
    background = 1.0         # counts per pixel

    [scoring]
    cutoff = 0.9             # Å
    protocol = ["paper", "strict"]
"""
from __future__ import annotations

import math
import os
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from .config import ConfigError, build, setting
from .errors import AetbenchError

__all__ = [
    "Scenario", "StructureConfig", "SimulationConfig", "ErrorsConfig", "TiltScheme", "ScoringConfig", "InputConfig",
    "load_scenario", "ScenarioError", "paper_data_dir", "resolve_data_path",
]


class ScenarioError(ConfigError):
    """A scenario file is invalid (message names file, key and expectation)."""


_f = setting   # a validated scenario field: default, range [lo, hi], choices, unit, doc (aetbench.config.setting)


@dataclass(frozen=True)
class TiltScheme:
    """Tilt angles about y [deg]: ``start`` to ``stop`` inclusive in ``step`` increments, or an explicit list."""

    start: float = _f(0.0, lo=-90.0, hi=180.0, unit="deg")
    stop: float = _f(177.0, lo=-90.0, hi=180.0, unit="deg")
    step: float = _f(3.0, lo=0.0, lo_open=True, hi=90.0, unit="deg")
    angles: list[float] = _f([], unit="deg", doc="explicit tilt angles; overrides start/stop/step")

    def thetas(self) -> np.ndarray:
        if self.angles:
            return np.asarray(self.angles, dtype=float)
        n = int(math.floor((self.stop - self.start) / self.step + 1e-9)) + 1
        return self.start + self.step * np.arange(max(n, 1))


@dataclass(frozen=True)
class StructureConfig:
    """Where the ground-truth particle comes from."""

    source: str = _f("random", choices=("random", "recipe", "file"))
    n_atoms: int = _f(208, lo=1, hi=2_000_000)
    element: str = _f("Si")
    min_distance: float = _f(2.2, lo=0.5, hi=5.0, unit="Å")
    density: float = _f(0.05, lo=0.0, lo_open=True, hi=0.2, unit="atoms/Å³")
    recipe: str = _f("", doc="recipe name or path (source = 'recipe')")
    path: str = _f("", doc="model file (source = 'file')")
    elements: str = _f("", doc="label → element list for 'file', e.g. 'Si,Ge,Sn'")
    axes: str = _f("", doc="axes string for 'file', e.g. 'yxz'")
    reference: str = _f("", doc="published numbers to show beside ours, e.g. 'liao2026/aSi208' "
                                "(see aetbench.published)")
    centre: list[float] = _f([], unit="Å", doc="rotation centre [x, y, z] of the simulated tilt series (object "
                                              "frame); default the structure's centroid (aetbench.geometry)")

    def label(self) -> str:
        if self.source == "random":
            return f"random-{self.element}{self.n_atoms}"
        if self.source == "recipe":
            return Path(self.recipe).stem
        return Path(self.path).stem


@dataclass(frozen=True)
class ErrorsConfig:
    """Experimental errors applied to the simulated series, each seeded and recorded in ``metadata["truth"]``.

    The pipeline never sees the truth: it gets the shifted, scaled, noisy images and the *nominal* angles.
    """

    shift_sigma_A: float = _f(0.0, lo=0.0, hi=50.0, doc="drift/misalignment per projection and axis (sd)")
    angle_sigma_deg: float = _f(0.0, lo=0.0, hi=10.0, doc="tilt-angle error per projection (sd of theta)")
    euler_sigma_deg: float = _f(0.0, lo=0.0, hi=10.0, doc="error of phi and psi per projection (sd)")
    intensity_sigma_rel: float = _f(0.0, lo=0.0, hi=0.9, doc="beam-current scaling per projection (sd)")
    defocus_sigma_A: float = _f(0.0, lo=0.0, hi=1e4, doc="random defocus error per projection (abTEM tier)")

    def any(self) -> bool:
        return any(getattr(self, f.name) > 0 for f in fields(self))


@dataclass(frozen=True)
class SimulationConfig:
    """How tilt series are simulated from the structure."""

    model: str = _f("linear", choices=("linear", "abtem", "ptycho"),
                    doc="linear (fast ADF), abtem (ADF-STEM), ptycho (4D-STEM → ptychographic phase)")
    pixel_size: float = _f(0.195, lo=0.01, hi=5.0, unit="Å")
    image_size: list[int] = _f([128, 128], pair=True, doc="pixels, one int (square) or [nx, ny]")
    tilt: TiltScheme = field(default_factory=TiltScheme)
    doses: list[float] = _f([1.6e4], lo=0.0, lo_open=True, unit="e/Å²",
                            doc="per projection; inf = noise-free (finite doses ≤ MAX_DOSE: Poisson counts stay exact)")
    background: float = _f(1.0, lo=0.0, hi=1e6, unit="counts/pixel")
    blur_sigma: float = _f(0.30, lo=0.0, hi=5.0, unit="Å")
    atom_sigma: float = _f(0.25, lo=0.0, hi=5.0, unit="Å")
    amplitude: dict[str, float] = _f({}, lo=0.0, lo_open=True, unit="Å²", doc="ADF cross-section per element")
    abtem: dict[str, Any] = _f({}, doc="options of the abTEM tier (see aetbench.simulate.abtem_adf)")
    ptycho: dict[str, Any] = _f({}, doc="4D-STEM settings (see aetbench.simulate.ptycho.PtychoConfig)")
    ptycho_recon: dict[str, Any] = _f({}, doc="ptychography engines and settings (aetbench.ptycho.series.ReconConfig)")
    errors: ErrorsConfig = field(default_factory=ErrorsConfig)


@dataclass(frozen=True)
class InputConfig:
    """An external tilt series (replaces structure/simulation)."""

    kind: str = _f(choices=("paper-mat", "hdf5", "measured"),
                   doc="measured: paper-mat projections/angles of a real experiment, no dose or truth needed")
    projections: str = _f(doc="projection file")
    angles: str = _f("", doc="angle file (paper-mat)")
    pixel_size: float = _f(0.0, lo=0.0, hi=5.0, unit="Å", doc="required for paper-mat")
    dose: float = _f(float("inf"), lo=0.0, lo_open=True, unit="e/Å²")
    truth: str = _f("", doc="ground-truth model file (scoring only)")
    truth_elements: str = _f("")
    truth_axes: str = _f("")
    truth_types: str = _f("")
    elements: list[str] = _f([], doc="elements present, ascending Z (classification)")
    label: str = _f("", doc="structure name in the report")
    reference: str = _f("", doc="published result to compare with, e.g. 'liao2026/aSi208'")
    # measured data (kind = "measured"; see aetbench.pipeline._measured and README "Real data")
    extended: bool = _f(False, doc="the sample is wider than the field of view (a film): widen and crop")
    origin: list[float] = _f([], unit="Å", doc="global-frame position of the reconstruction's centre voxel")
    sub_area: str = _f("", doc="scanning-AET alignment file (CropCen, CropHalf per sub-area, 1-based voxels of the "
                               "film volume, e.g. alignPara.mat): the origin and the sub-area's own patch from it")
    sub_area_index: int = _f(0, lo=0, hi=10**6, doc="which sub-area of sub_area (1-based row)")
    support: str = _f("", doc="support/mask file (.mat or aetbench HDF5 volume), global frame")
    support_origin: list[float] = _f([], unit="Å", doc="global position of the support's centre voxel n//2")
    reference_model: str = _f("", doc="reference atomic model to compare with (published, not a truth)")
    reference_elements: str = _f("", doc="labels → elements of the reference model, e.g. 'Ta'")
    region_margin_A: float = _f(0.0, lo=0.0, hi=1e3, doc="region = reconstructed box shrunk by this")
    region_erosion_A: float = _f(0.0, lo=0.0, hi=1e3, doc="... ∩ the support eroded by this")
    reference_volume: str = _f("", doc="a published reconstruction of the same box (.mat), compared by NCC")
    match_cutoff_A: float = _f(1.0, lo=0.0, lo_open=True, hi=10.0, doc="one-to-one cutoff vs the reference")


@dataclass(frozen=True)
class ScoringConfig:
    cutoff: float = _f(0.9, lo=0.0, lo_open=True, hi=10.0, unit="Å")
    protocol: list[str] = _f(["paper", "strict"], choices=("paper", "strict"))


@dataclass(frozen=True)
class Scenario:
    """A validated scenario."""

    name: str = _f()
    methods: list[str] = _f(["resire"], doc="methods to run: a list of names, or [methods.NAME] tables that define "
                                           "them (aetbench.methods.registry.method_from_table)")
    seed: int = _f(0, lo=0, hi=2**63 - 1)
    noise_seed: int = _f(-1, lo=-1, hi=2**63 - 1, doc="seed of the Poisson and experimental-error draws and of the "
                         "methods' own random choices; -1: the same as seed (aetbench compare varies it)")
    description: str = _f("")
    structure: StructureConfig | None = None
    simulation: SimulationConfig | None = None
    input: list[InputConfig] = _f([])
    scoring: ScoringConfig = field(default_factory=ScoringConfig)
    method_options: dict[str, dict[str, Any]] = _f({}, doc="per-method parameter overrides")
    method_tables: dict[str, dict[str, Any]] = _f({}, doc="the [methods.NAME] tables (set by the loader)")
    path: str = _f("", doc="file the scenario was read from")

    @property
    def draw_seed(self) -> int:
        """Seed of the noise and error draws [-]: ``noise_seed`` when set, else ``seed`` (the structure's)."""
        return self.seed if self.noise_seed < 0 else self.noise_seed

    @property
    def folder(self) -> Path:
        return Path(self.path).resolve().parent if self.path else Path.cwd()


# --------------------------------------------------------------------------- validation (aetbench.config)

def _build(cls, table, where):
    """``cls`` from ``table`` by the one config engine (:func:`aetbench.config.build`); errors as ScenarioError."""
    try:
        return build(cls, table, where, internal=("path", "method_tables") if cls is Scenario else ())
    except ConfigError as e:
        raise ScenarioError(str(e)) from None


def paper_data_dir() -> Path:
    """``AETBENCH_PAPER_DATA`` or ``../shared/paper-data`` (relative to the working directory)."""
    return Path(os.environ.get("AETBENCH_PAPER_DATA", "../shared/paper-data"))


def real_data_dir() -> Path:
    """``AETBENCH_REAL_DATA`` or ``../shared/real-data`` (measured data, e.g. ``ta-film/``)."""
    return Path(os.environ.get("AETBENCH_REAL_DATA", "../shared/real-data"))


def resolve_data_path(p: str, scenario: Scenario, where: str) -> Path:
    """Resolve a data path: absolute as is, else the paper-data folder, the real-data folder, the scenario's folder."""
    path = Path(p).expanduser()
    if path.is_absolute():
        candidates = [path]
    else:
        candidates = [paper_data_dir() / path, real_data_dir() / path, scenario.folder / path]
    for c in candidates:
        if c.exists():
            return c
    raise ScenarioError(f"{scenario.path}: {where}: file not found: {p!r} "
                        f"(looked in {', '.join(str(c.parent) for c in candidates)}; set AETBENCH_PAPER_DATA or AETBENCH_REAL_DATA)")


def load_scenario(path, *, known_methods=None) -> Scenario:
    """Read and validate a scenario TOML file.

    Raises
    ------
    ScenarioError
        One line naming the file, the key and what was expected.
    """
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise ScenarioError(f"{path}: scenario file not found") from None
    except UnicodeDecodeError:
        raise ScenarioError(f"{path}: not a text file (binary content); expected a TOML scenario") from None
    except OSError as e:
        raise ScenarioError(f"{path}: cannot read scenario file ({e.strerror})") from None
    try:
        table = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ScenarioError(f"{path}: invalid TOML ({e})") from None
    method_tables = {}
    if isinstance(table.get("methods"), dict):   # [methods.NAME] tables: each defines and runs a method
        method_tables = table["methods"]
        for name, t in method_tables.items():
            if not isinstance(t, dict):
                raise ScenarioError(f"{path}: methods.{name}: expected a table (base = ..., overrides, or steps = "
                                    f"[...]), got {t!r}")
        table = {**table, "methods": list(method_tables)}
    try:
        sc = _build(Scenario, table, "")
    except ScenarioError as e:
        raise ScenarioError(f"{path}: {e}") from None
    from dataclasses import replace

    sc = replace(sc, path=str(path), method_tables=method_tables)
    _check_semantics(sc, path, known_methods)
    _check_elements(sc, path)
    _check_doses(sc, path)
    return sc


def _check_file_names(sc: Scenario, path) -> None:
    """``name`` and every ``[[input]] label`` become file names: refuse separators, ``..`` and absolute paths."""
    from .io.files import check_name

    try:
        check_name(sc.name, f"{path}: name")
        for i, inp in enumerate(sc.input):
            if inp.label:
                check_name(inp.label, f"{path}: input[{i}].label")
    except AetbenchError as e:
        raise ScenarioError(str(e)) from None


#: largest finite dose [e/Å² per projection] a scenario may ask for: 1e12 is ~10⁶ × any AET experiment, and
#: keeps the expected counts per pixel far below the limit of numpy's Poisson sampler (~9e18)
MAX_DOSE = 1e12


def _check_doses(sc: Scenario, path) -> None:
    """Refuse absurd finite doses (one line; ``inf`` stays the noise-free series)."""
    if sc.simulation is None:
        return
    for i, d in enumerate(sc.simulation.doses):
        if math.isfinite(d) and d > MAX_DOSE:
            raise ScenarioError(f"{path}: simulation.doses[{i}]: {d:g} e/Å² per projection is beyond any experiment; "
                                f"expected ≤ {MAX_DOSE:g} e/Å² (or inf for a noise-free series)")


def _check_elements(sc: Scenario, path) -> None:
    """Refuse unknown chemical symbols in every element field (one line naming the key)."""
    from .io.models import parse_elements

    fields_ = []
    if sc.structure is not None:
        fields_.append(("structure.element", sc.structure.element))
        if sc.structure.elements:
            fields_.append(("structure.elements", sc.structure.elements))
    if sc.simulation is not None:
        fields_ += [(f"simulation.amplitude.{k}", k) for k in sc.simulation.amplitude]
    for i, inp in enumerate(sc.input):
        if inp.elements:
            fields_.append((f"input[{i}].elements", list(inp.elements)))
        if inp.truth_elements:
            fields_.append((f"input[{i}].truth_elements", inp.truth_elements))
    for where, value in fields_:
        try:
            parsed = parse_elements(value, what=where)
        except AetbenchError as e:
            raise ScenarioError(f"{path}: {e}") from None
        if where == "structure.element" and (parsed != [value] or value == "x"):
            raise ScenarioError(f"{path}: {where}: expected one chemical symbol such as 'Si', got {value!r}")


def _check_semantics(sc: Scenario, path, known_methods) -> None:
    _check_file_names(sc, path)
    if sc.input and (sc.structure or sc.simulation):
        raise ScenarioError(f"{path}: [[input]] replaces [structure]/[simulation]; give one or the other")
    if not sc.input:
        if sc.structure is None:
            raise ScenarioError(f"{path}: structure: missing required table [structure] (or [[input]])")
        if sc.simulation is None:
            raise ScenarioError(f"{path}: simulation: missing required table [simulation]")
        sim = sc.simulation
        if len(sim.image_size) != 2 or min(sim.image_size) < 8:
            raise ScenarioError(f"{path}: simulation.image_size: expected one or two integers ≥ 8 pixels, got {sim.image_size}")
        if not sim.doses:
            raise ScenarioError(f"{path}: simulation.doses: expected at least one dose [e/Å²]")
        if sim.model == "ptycho":
            from .ptycho.series import ReconConfig
            from .simulate.ptycho import PtychoConfig

            for name, ctor, table in (("ptycho", PtychoConfig.from_dict, sim.ptycho),
                                      ("ptycho_recon", ReconConfig.from_dict, sim.ptycho_recon)):
                try:
                    ctor(table)
                except AetbenchError as e:
                    raise ScenarioError(f"{path}: simulation.{name}: {e}") from None
            if sim.errors.defocus_sigma_A > 0:
                raise ScenarioError(f"{path}: simulation.errors.defocus_sigma_A: not available for model = 'ptycho'")
        elif sim.ptycho or sim.ptycho_recon:
            raise ScenarioError(f"{path}: simulation.ptycho: only used with model = 'ptycho' (got {sim.model!r})")
        if sim.errors.defocus_sigma_A > 0 and sim.model == "linear":
            raise ScenarioError(f"{path}: simulation.errors.defocus_sigma_A: the linear model has no defocus; "
                                f"use model = 'abtem' or 0 Å")
        if sim.errors.defocus_sigma_A > 0 and float(sim.abtem.get("defocus_error_sigma_A", 0.0)) > 0:
            raise ScenarioError(f"{path}: simulation.errors.defocus_sigma_A: give the defocus error once "
                                f"(also set as simulation.abtem.defocus_error_sigma_A)")
        if sim.tilt.stop < sim.tilt.start and not sim.tilt.angles:
            raise ScenarioError(f"{path}: simulation.tilt.stop: expected ≥ start ({sim.tilt.start} deg), got {sim.tilt.stop}")
        st = sc.structure
        if st.centre and (len(st.centre) != 3 or not all(math.isfinite(c) for c in st.centre)):
            raise ScenarioError(f"{path}: structure.centre: expected 3 finite coordinates [x, y, z] in Å, "
                                f"got {st.centre}")
        if st.reference:
            from .published import PUBLISHED

            refs = [st.reference]
            if "{engine}" in st.reference and sc.simulation.model == "ptycho":
                from .ptycho.series import ReconConfig

                refs = [st.reference.replace("{engine}", e) for e in ReconConfig.from_dict(sc.simulation.ptycho_recon).engines]
            if any(r not in PUBLISHED for r in refs):
                raise ScenarioError(f"{path}: structure.reference: unknown reference {st.reference!r} "
                                    f"(known: {', '.join(sorted(PUBLISHED))})")
        if st.source == "recipe" and not st.recipe:
            raise ScenarioError(f"{path}: structure.recipe: required when source = 'recipe'")
        if st.source == "file":
            if not st.path:
                raise ScenarioError(f"{path}: structure.path: required when source = 'file'")
            resolve_data_path(st.path, sc, "structure.path")
    for i, inp in enumerate(sc.input):
        where = f"input[{i}]"
        resolve_data_path(inp.projections, sc, f"{where}.projections")
        if inp.kind in ("paper-mat", "measured"):
            if not inp.angles:
                raise ScenarioError(f"{path}: {where}.angles: required for kind = {inp.kind!r}")
            if inp.pixel_size <= 0:
                raise ScenarioError(f"{path}: {where}.pixel_size: required for kind = {inp.kind!r} (> 0 Å)")
            for key in ("origin", "support_origin"):
                v = getattr(inp, key)
                if v and (len(v) != 3 or not all(math.isfinite(c) for c in v)):
                    raise ScenarioError(f"{path}: {where}.{key}: expected 3 finite coordinates [x, y, z] in Å, got {v}")
            if inp.sub_area:
                if inp.origin:
                    raise ScenarioError(f"{path}: {where}.origin: give origin or sub_area (which sets it), not both")
                if inp.sub_area_index < 1:
                    raise ScenarioError(f"{path}: {where}.sub_area_index: required with sub_area (1-based row, ≥ 1)")
                if not inp.support:
                    raise ScenarioError(f"{path}: {where}.sub_area: needs {where}.support (the film volume whose "
                                        "centre voxel is the frame's origin)")
            for key in ("support", "reference_model", "reference_volume", "sub_area"):
                if getattr(inp, key):
                    resolve_data_path(getattr(inp, key), sc, f"{where}.{key}")
            if inp.region_erosion_A > 0 and not inp.support:
                raise ScenarioError(f"{path}: {where}.region_erosion_A: needs {where}.support")
            resolve_data_path(inp.angles, sc, f"{where}.angles")
        if inp.truth:
            resolve_data_path(inp.truth, sc, f"{where}.truth")
    if not sc.methods:
        raise ScenarioError(f"{path}: methods: expected at least one method name")
    if known_methods is not None:
        for m in sc.methods:
            if m in sc.method_tables:
                t = sc.method_tables[m]
                base = t.get("base", None if "steps" in t else m)
                if base is not None and (not isinstance(base, str) or base not in known_methods):
                    raise ScenarioError(f"{path}: methods.{m}.base: unknown method {base!r} "
                                        f"(known: {', '.join(sorted(known_methods))})")
            elif m not in known_methods:
                raise ScenarioError(f"{path}: methods: unknown method {m!r} (known: {', '.join(sorted(known_methods))})")
        for m in sc.method_options:
            if m not in known_methods and m not in sc.method_tables:
                raise ScenarioError(f"{path}: method_options.{m}: unknown method (known: {', '.join(sorted(known_methods))})")
