"""Structure recipes: TOML files shipped in ``aetbench/data/structures/`` (or the user's, by path or
``$AETBENCH_STRUCTURES``; see :mod:`aetbench.data`).

A recipe names the material, composition, packing density, seed, potential and
melt-quench schedule.  Example (the shipped ``asi208``)::

    name = "asi208"
    material = "a-Si"
    target = "physical"        # "physical" density, or "paper" geometry
    seed = 208
    [composition]
    Si = 208
    [packing]
    density = 0.050            # atoms/Å³ of the random start
    min_distance = 2.1         # Å
    [potential]
    kind = "stillinger-weber"  # or "gupta", "eam-zhou2004", "silica-network"
    variants = { Si = "Si-vink" }
    [schedule]
    t_melt = 3000.0            # K
    melt_fs = 2000.0           # fs
    quench_fs = 20000.0        # fs, linear ramp to t_end
    t_end = 300.0              # K
    dt = 1.0                   # fs
    [relabel]                  # optional: relabel at random after the build
    [analysis]
    shell = 3.0                # Å, surface shell excluded from interior metrics
"""
from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import AetbenchError

__all__ = ["Recipe", "load_recipe", "recipes_dir", "resolve_recipe", "list_recipes"]

POTENTIALS = ("stillinger-weber", "gupta", "eam-zhou2004", "silica-network")
METALLIC = ("gupta", "eam-zhou2004")  #: many-body metal potentials (metallic-glass analysis)
TARGETS = ("physical", "paper")
SCHEDULE_KEYS = {"t_melt": (100.0, 10000.0), "melt_fs": (0.0, 1e7), "quench_fs": (1.0, 1e7),
                 "t_end": (0.0, 5000.0), "dt": (0.1, 5.0), "anneal_T": (0.0, 10000.0),
                 "anneal_fs": (0.0, 1e7), "friction": (1e-5, 1.0)}


@dataclass
class Recipe:
    """A parsed structure recipe (units: Å, K, fs, atoms/Å³)."""

    name: str
    path: Path
    material: str
    target: str
    seed: int
    composition: dict[str, int]
    density: float
    min_distance: float
    potential: str
    variants: dict[str, str] = field(default_factory=dict)
    schedule: dict[str, float] = field(default_factory=dict)
    relabel: dict[str, int] = field(default_factory=dict)
    analysis: dict = field(default_factory=dict)
    raw: dict = field(default_factory=dict)

    @property
    def n_atoms(self) -> int:
        return int(sum(self.composition.values()))


def recipes_dir() -> Path:
    """The first folder searched for a recipe name: ``$AETBENCH_STRUCTURES``'s first entry or the shipped one."""
    from ..data import recipe_dirs

    return recipe_dirs()[0]


def list_recipes() -> list[str]:
    """Names of the recipes in ``$AETBENCH_STRUCTURES`` and the shipped ones."""
    from ..data import list_toml, recipe_dirs

    return [name for name, _ in list_toml(recipe_dirs())]


def resolve_recipe(recipe: str | os.PathLike) -> Path:
    """Path of a recipe given by path (an existing file) or by name (``asi208``; also the source checkout's
    ``structures/asi208.toml`` when no such file exists): see :mod:`aetbench.data` for the folders searched."""
    from ..data import find_toml, recipe_dirs

    p = Path(recipe)
    if p.is_file():
        return p
    try:
        q = find_toml(str(recipe), recipe_dirs(), "structures")
    except LookupError as e:
        raise AetbenchError(f"structure recipe {e}") from None
    if q is not None:
        return q
    if p.suffix == ".toml" or len(p.parts) > 1:
        raise AetbenchError(f"{p}: structure recipe not found")
    raise AetbenchError(f"structure recipe {recipe!r} not found in {', '.join(map(str, recipe_dirs()))} "
                        f"(known: {', '.join(list_recipes()) or 'none'})")


def _num(path, d, key, lo, hi, default=None, kind=float):
    if key not in d:
        if default is None:
            raise AetbenchError(f"{path}: {key}: required ({kind.__name__} in [{lo}, {hi}])")
        return default
    v = d[key]
    if isinstance(v, bool) or not isinstance(v, (int, float)) or (kind is int and not isinstance(v, int)):
        raise AetbenchError(f"{path}: {key}: expected a {kind.__name__} in [{lo}, {hi}], got {v!r}")
    if not lo <= v <= hi:
        raise AetbenchError(f"{path}: {key}: {v} out of range [{lo}, {hi}]")
    return kind(v)


def _counts(path, d, key):
    if not isinstance(d, dict) or not d:
        raise AetbenchError(f"{path}: [{key}]: expected a table element = atom count, e.g. Si = 208")
    out = {}
    for el, c in d.items():
        if isinstance(c, bool) or not isinstance(c, int) or c < 0:
            raise AetbenchError(f"{path}: {key}.{el}: expected a non-negative integer atom count, got {c!r}")
        if c:
            out[str(el)] = c
    if not out:
        raise AetbenchError(f"{path}: [{key}]: no atoms")
    return out


def load_recipe(recipe) -> Recipe:
    """Read and validate a recipe (name or path); bad input raises :class:`AetbenchError`."""
    path = resolve_recipe(recipe)
    try:
        raw = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as e:
        raise AetbenchError(f"{path}: not valid TOML: {e}") from None
    known = {"name", "material", "target", "seed", "description", "composition", "packing", "potential",
             "schedule", "relabel", "analysis"}
    extra = sorted(set(raw) - known)
    if extra:
        raise AetbenchError(f"{path}: unknown key {extra[0]!r} (expected one of {sorted(known)})")
    target = raw.get("target", "physical")
    if target not in TARGETS:
        raise AetbenchError(f"{path}: target: expected one of {TARGETS}, got {target!r}")
    comp = _counts(path, raw.get("composition"), "composition")
    pack = raw.get("packing", {})
    pot = raw.get("potential", {})
    kind = pot.get("kind")
    if kind not in POTENTIALS:
        raise AetbenchError(f"{path}: potential.kind: expected one of {POTENTIALS}, got {kind!r}")
    if kind == "silica-network" and set(comp) != {"Si"}:
        raise AetbenchError(f"{path}: composition: silica-network takes the Si count only (O is put on every "
                            f"Si–Si bond), got {sorted(comp)}")
    sched_raw = raw.get("schedule", {})
    bad = sorted(set(sched_raw) - set(SCHEDULE_KEYS))
    if bad:
        raise AetbenchError(f"{path}: schedule.{bad[0]}: unknown key (expected {sorted(SCHEDULE_KEYS)})")
    sched = {k: _num(path, {f"schedule.{k}": v}, f"schedule.{k}", *SCHEDULE_KEYS[k]) for k, v in sched_raw.items()}
    relabel = _counts(path, raw["relabel"], "relabel") if raw.get("relabel") else {}
    if relabel and sum(relabel.values()) != sum(comp.values()):
        raise AetbenchError(f"{path}: relabel: {sum(relabel.values())} atoms but composition has "
                            f"{sum(comp.values())}; the counts must match")
    return Recipe(
        name=str(raw.get("name", path.stem)), path=path, material=str(raw.get("material", "")), target=target,
        seed=_num(path, raw, "seed", 0, 2**31 - 1, default=0, kind=int), composition=comp,
        density=_num(path, {"packing.density": pack.get("density")} if "density" in pack else {},
                     "packing.density", 0.005, 0.2),
        min_distance=_num(path, {"packing.min_distance": pack["min_distance"]} if "min_distance" in pack else {},
                          "packing.min_distance", 0.5, 4.0, default=2.0),
        potential=kind, variants=dict(pot.get("variants", {})), schedule=sched, relabel=relabel,
        analysis=dict(raw.get("analysis", {})), raw=raw)
