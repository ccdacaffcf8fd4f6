"""``aetbench structure build|show NAME`` and the cached :func:`build_structure`.

Built particles are cached under ``<cache>/structures/<name>-<key>.extxyz``
with the realism metrics in ``<name>-<key>.json`` next to them; the key hashes
the recipe content, the seed and the source of :mod:`aetbench.structures`.
The JSON file (written last) also records the entry's key and the checksum of
the ``.extxyz``: a damaged or mismatched pair is reported in one line, moved
aside and rebuilt.  The recipe ``name`` must be a plain file name.
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from ..cache import ENTRY_FORMAT, code_fingerprint, content_hash, default_cache_dir, file_digest, move_aside
from ..errors import AetbenchError
from ..io.files import atomic_write_text, check_name, safe_join
from ..types import AtomicModel
from .recipe import METALLIC, Recipe, list_recipes, load_recipe

__all__ = ["build_structure", "build_from_recipe", "structure_metrics", "add_arguments"]


def _cache_paths(rec: Recipe, seed: int, cache_dir) -> tuple[Path, Path]:
    check_name(rec.name, f"{rec.path}: name")
    # the cached metrics hold ring counts from score/rings.py (the one ring counter): its source is in the key
    key = content_hash("structure", rec.raw, seed, code_fingerprint("structures", "score/rings"), ENTRY_FORMAT)
    d = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    stem = f"{rec.name}-{key}"
    return safe_join(d, "structures", f"{stem}.extxyz"), safe_join(d, "structures", f"{stem}.json")


def _load_cached(xyz: Path, js: Path):
    """``(model, metrics)`` of a sound cache entry, else ``None`` (a damaged entry is moved aside)."""
    if not js.exists():  # never finished (the JSON is written last): rebuild and overwrite
        return None
    key = js.stem
    try:
        metrics = json.loads(js.read_text())
        record = metrics.pop("cache", None)
        if not isinstance(record, dict) or record.get("key") != key:
            reason = "holds another entry's key" if isinstance(record, dict) else "no cache record"
        elif record.get("extxyz_sha256") != file_digest(xyz):
            reason = "checksum mismatch of the .extxyz (content changed since it was written)"
        else:
            m = AtomicModel.read(xyz)
            return m, metrics
    except FileNotFoundError:
        reason = f"{xyz.name} is missing"
    except Exception as e:  # noqa: BLE001 - unreadable JSON or extxyz: a damaged entry
        reason = f"unreadable ({type(e).__name__})"
    move_aside(js, reason)
    if xyz.exists():
        move_aside(xyz, "its metrics entry is bad")
    return None


def build_from_recipe(rec: Recipe, seed: int, log: dict | None = None) -> AtomicModel:
    """Build the particle described by ``rec`` (no caching)."""
    from .build import build_network

    s = rec.schedule
    kw = {k: s[k] for k in ("t_melt", "melt_fs", "quench_fs", "t_end", "dt", "anneal_T", "anneal_fs",
                            "friction") if k in s}
    if rec.potential == "silica-network":
        from .silica import build_silica

        kw.update(density=rec.density, min_distance=rec.min_distance, sw_variants=rec.variants, name=rec.name)
        network = str(rec.raw.get("potential", {}).get("network", "www"))
        if network not in ("www", "sw"):
            raise AetbenchError(f"{rec.path}: potential.network: expected 'www' or 'sw', got {network!r}")
        return build_silica(rec.composition["Si"], seed=seed, network_kw=kw, log=log, name=rec.name, network=network)
    return build_network(rec.composition, density=rec.density, seed=seed, min_distance=rec.min_distance,
                         sw_variants=rec.variants, potential=rec.potential, relabel=rec.relabel or None,
                         name=rec.name, log=log, **kw)


def _analyse(rec: Recipe, model: AtomicModel) -> dict:
    from .analysis import analyse

    a = rec.analysis
    out = analyse(model, cutoffs=a.get("cutoffs"), shell=float(a.get("shell", 3.0)),
                   rings=bool(a.get("rings", rec.potential not in METALLIC)),
                   max_ring=int(a.get("max_ring", 10)),
                   crystal_like=bool(a.get("crystal_like", rec.potential in METALLIC)))
    if rec.potential == "silica-network" and "rings" in out:
        # rings of the Si–O graph alternate Si and O: report them by Si count as well
        out["rings_si"] = {k // 2: v for k, v in out["rings"].items()}
    return out


def _build_cached(recipe, seed, cache_dir, progress):
    rec = load_recipe(recipe)
    seed = rec.seed if seed is None else int(seed)
    xyz, js = _cache_paths(rec, seed, cache_dir)
    hit = _load_cached(xyz, js)
    if hit is not None:
        m, metrics = hit
        return AtomicModel(m.positions, m.elements, name=rec.name), metrics, xyz
    if progress:
        print(f"building {rec.name} ({rec.n_atoms} atoms, seed {seed}) …", file=sys.stderr)
    log: dict = {}
    t0 = time.perf_counter()
    model = build_from_recipe(rec, seed, log)
    metrics = _analyse(rec, model)
    metrics.update({"recipe": rec.name, "material": rec.material, "target": rec.target, "seed": seed,
                    "build": log, "analysis_seconds": time.perf_counter() - t0 - log.get("build_seconds", 0.0)})
    model.write(xyz)
    record = {"key": js.stem, "extxyz_sha256": file_digest(xyz)}
    atomic_write_text(js, json.dumps({**metrics, "cache": record}, indent=1, sort_keys=True))
    # hand on the coordinates as the file holds them (extxyz text rounds at ~1e-10 Å): a rerun served from the cache
    # then sees the same bits, so every downstream cache key and seeded noise draw matches the first run's
    m = AtomicModel.read(xyz)
    return AtomicModel(m.positions, m.elements, name=rec.name), metrics, xyz


def build_structure(recipe: str, seed: int | None = None, cache_dir=None, progress: bool = False) -> AtomicModel:
    """Build (or load from the cache) the particle of a recipe.

    Parameters
    ----------
    recipe : str
        Recipe name (``asi208``, see :mod:`aetbench.data`) or path to a ``.toml``.
    seed : int, optional
        Seed (default: the recipe's); same seed → identical coordinates.
    cache_dir : path, optional
        Cache root (default :func:`aetbench.cache.default_cache_dir`).
    progress : bool
        Print a line to stderr when building.

    Returns
    -------
    AtomicModel
        Positions [Å] centred on the origin.
    """
    return _build_cached(recipe, seed, cache_dir, progress)[0]


def structure_metrics(recipe: str, seed: int | None = None, cache_dir=None) -> dict:
    """Realism metrics (dict) of a recipe's particle, building it if needed."""
    return _build_cached(recipe, seed, cache_dir, False)[1]


def _fmt(v):
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, dict):
        return ", ".join(f"{k}: {_fmt(x)}" for k, x in v.items())
    return str(v)


def _table(m: dict) -> str:
    keys = ["recipe", "material", "target", "seed", "n_atoms", "counts", "radius_A", "density_per_A3",
            "n_interior", "min_distance_A", "first_peak_A", "coordination", "fourfold_fraction",
            "coordination_histogram", "angle_mean_deg", "angle_sd_deg", "rings", "rings_si", "crystal_like_fraction"]
    w = max(len(k) for k in keys)
    lines = [f"{k:<{w}}  {_fmt(m[k])}" for k in keys if k in m]
    b = m.get("build", {})
    if b:
        lines.append(f"{'build_seconds':<{w}}  {b.get('build_seconds', float('nan')):.1f}")
    return "\n".join(lines)


def _png(model: AtomicModel, metrics: dict, path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..io.files import atomic_write_path
    from .analysis import rdf

    el = model.elements
    fig, ax = plt.subplots(figsize=(6, 4))
    r, g = rdf(model.positions, dr=0.05)
    ax.plot(r, g, "k-", lw=1.5, label="all")
    sp = model.species
    if len(sp) > 1:
        for i, a in enumerate(sp):
            for b in sp[i:]:
                r, g = rdf(model.positions, dr=0.05, mask_a=el == a, mask_b=el == b)
                ax.plot(r, g, lw=1, label=f"{a}-{b}")
    ax.set_xlabel("r (Å)")
    ax.set_ylabel("g(r) (finite particle)")
    ax.set_title(f"{metrics.get('recipe', '')}: {len(model)} atoms")
    ax.legend(fontsize=8)
    fig.tight_layout()
    with atomic_write_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)


def cmd_build(args) -> int:
    model, metrics, xyz = _build_cached(args.name, args.seed, args.cache_dir, progress=True)
    if args.out:
        model.write(args.out)
        atomic_write_text(Path(args.out).with_suffix(".json"), json.dumps(metrics, indent=1, sort_keys=True))
        print(f"wrote {args.out}")
    else:
        print(f"{xyz}")
    return 0


def cmd_show(args) -> int:
    if args.name in ("", "list"):
        print("\n".join(list_recipes()))
        return 0
    model, metrics, _ = _build_cached(args.name, args.seed, args.cache_dir, progress=not args.json)
    if args.json:
        print(json.dumps(metrics, indent=1, sort_keys=True))
    else:
        print(_table(metrics))
    if args.png:
        _png(model, metrics, args.png)
    return 0


def add_arguments(subparsers) -> None:
    """Add ``structure build|show`` to the top-level ``aetbench`` sub-parsers."""
    p = subparsers.add_parser("structure", help="build and inspect nanoparticle structures from recipes")
    sub = p.add_subparsers(dest="structure_cmd", required=True)
    b = sub.add_parser("build", help="build a recipe's particle (cached) and print its path")
    b.add_argument("name", help="recipe name (e.g. asi208; structure show list) or path to a .toml")
    b.add_argument("--seed", type=int, default=None, help="seed (default: the recipe's)")
    b.add_argument("--out", default=None, help="also write the particle here (extxyz) with metrics beside it")
    b.add_argument("--cache-dir", default=None, help="cache folder (default: $AETBENCH_CACHE or .cache/aetbench)")
    b.set_defaults(func=cmd_build)
    s = sub.add_parser("show", help="realism metrics of a recipe's particle (builds it if needed)")
    s.add_argument("name", help="recipe name or path ('list' lists the recipes)")
    s.add_argument("--seed", type=int, default=None, help="seed (default: the recipe's)")
    s.add_argument("--json", action="store_true", help="print the metrics as JSON")
    s.add_argument("--png", default=None, help="write a g(r) plot here")
    s.add_argument("--cache-dir", default=None, help="cache folder (default: $AETBENCH_CACHE or .cache/aetbench)")
    s.set_defaults(func=cmd_show)
