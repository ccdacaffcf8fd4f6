"""``aetbench compare``: every method of a scenario over N independent noise realisations, with statistics.

A realisation is the scenario run with ``noise_seed = k`` (k = 0 … N−1 added to the scenario's seed): new
Poisson draws, new experimental-error draws and new random choices inside the methods, the structure and the
noise-free simulation held fixed (``vary_structure=True`` changes the structure's seed instead, so every
realisation is a new particle).  Each realisation is a full report in ``seed-<k>/`` of the comparison folder;
the cache is shared, so the noise-free series is simulated once.

Statistics, per structure × dose × method × element × protocol and metric (rate_pct, precision_pm, f1_pct):

- mean ± the half-width of its 95 % confidence interval, Student t with N−1 degrees of freedom
  (:func:`summarise`);
- paired differences between every two methods on the same realisations: mean difference, its 95 % CI and
  the two-sided paired t-test p-value (:func:`paired_differences`).

Realisations run in parallel: local processes (``jobs``, default one per core) or, with ``scheduler``, the
tasks of a ``dask.distributed`` cluster (reconstruction included; the workers must share the cache and
report folders).  The first realisation runs alone first, so the noise-free series and the numba caches are
made once.
"""
from __future__ import annotations

import os
import sys
from dataclasses import replace
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd

from .io.files import AetbenchError, atomic_write_path, atomic_write_text, safe_join

__all__ = ["METRICS", "summarise", "paired_differences", "run_compare", "mean_ci"]

METRICS = ("rate_pct", "precision_pm", "f1_pct")
KEY = ["structure", "dose", "method", "element", "protocol"]


def mean_ci(values, level: float = 0.95) -> tuple[float, float, int]:
    """Mean, half-width of its ``level`` confidence interval (Student t, n−1 dof) and n of the finite values.

    >>> m, h, n = mean_ci([9.0, 10.0, 11.0])
    >>> round(m, 3), round(h, 3), n
    (10.0, 2.484, 3)
    """
    from scipy import stats

    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    n = int(v.size)
    if n == 0:
        return float("nan"), float("nan"), 0
    if n == 1:
        return float(v[0]), float("nan"), 1
    half = float(stats.t.ppf(0.5 + level / 2, n - 1) * v.std(ddof=1) / np.sqrt(n))
    return float(v.mean()), half, n


def summarise(df: pd.DataFrame, level: float = 0.95) -> pd.DataFrame:
    """Mean ± CI half-width per row key and metric over the ``seed`` column of score rows."""
    out = []
    for key, g in df.groupby(KEY, sort=True):
        row = dict(zip(KEY, key))
        row["seeds"] = int(g["seed"].nunique())
        for m in METRICS:
            if m in g:
                row[m], row[f"{m}_ci"], _ = mean_ci(g[m], level)
        out.append(row)
    return pd.DataFrame(out)


def paired_differences(df: pd.DataFrame, level: float = 0.95) -> pd.DataFrame:
    """Method A − method B on the same realisations (seed), per structure × dose × element × protocol and metric.

    Columns: ``a``, ``b``, ``metric``, ``mean_diff``, ``ci`` (half-width), ``n`` (paired seeds) and ``p_value``
    (two-sided paired t-test; NaN below two pairs or when every difference is equal).
    """
    from scipy import stats

    rows = []
    methods = list(dict.fromkeys(df["method"]))
    for key, g in df.groupby(["structure", "dose", "element", "protocol"], sort=True):
        wide = {m: g[g["method"] == m].set_index("seed") for m in methods}
        for i, a in enumerate(methods):
            for b in methods[i + 1:]:
                seeds = wide[a].index.intersection(wide[b].index)
                for metric in METRICS:
                    if metric not in g:
                        continue
                    d = (wide[a].loc[seeds, metric] - wide[b].loc[seeds, metric]).astype(float).to_numpy()
                    d = d[np.isfinite(d)]
                    mean, half, n = mean_ci(d, level)
                    p = float("nan")
                    if n >= 2 and np.ptp(d) > 0:
                        p = float(stats.ttest_1samp(d, 0.0).pvalue)
                    elif n >= 2 and d[0] == 0:
                        p = 1.0
                    rows.append({"structure": key[0], "dose": key[1], "element": key[2], "protocol": key[3],
                                 "a": a, "b": b, "metric": metric, "mean_diff": mean, "ci": half, "n": n,
                                 "p_value": p})
    return pd.DataFrame(rows)


def _one(sc, seed: int, vary_structure: bool, folder: str, cache_dir: str | None, device: str) -> str:
    """Run one realisation (in a worker process or on a dask worker); returns its scores.csv path."""
    from .pipeline import run_scenario

    s = replace(sc, seed=sc.seed + seed) if vary_structure else replace(sc, noise_seed=sc.seed + seed)
    out = run_scenario(s, out_dir=folder, cache_dir=cache_dir, quiet=True, device=device)
    return str(Path(out) / "scores.csv")


def run_compare(scenario, *, seeds: int = 5, vary_structure: bool = False, reports_root="reports", cache_dir=None,
                jobs: int | None = None, scheduler: str | None = None, device: str = "cpu", quiet: bool = False,
                level: float = 0.95) -> Path:
    """Run ``scenario`` over ``seeds`` realisations and write the comparison; returns its folder."""
    from tqdm.auto import tqdm

    from .methods import METHODS
    from .methods.registry import scenario_methods
    from .pipeline import progress_enabled
    from .scenario import Scenario, load_scenario

    if not (isinstance(seeds, int) and seeds >= 1):
        raise AetbenchError(f"--seeds: expected a whole number ≥ 1, got {seeds!r}")
    sc = scenario if isinstance(scenario, Scenario) else load_scenario(scenario, known_methods=METHODS)
    scenario_methods(sc)  # every method the scenario runs, its own [methods.NAME] tables included: bad ones stop here
    root = safe_join(reports_root, sc.name)
    root.mkdir(parents=True, exist_ok=True)
    folder = root / f"compare-{datetime.now():%Y%m%d-%H%M%S}-{os.urandom(3).hex()}"
    folder.mkdir()
    cache_dir = str(cache_dir) if cache_dir else None
    progress = progress_enabled(quiet)
    bar = tqdm(total=seeds, desc=f"{sc.name} realisations", unit="seed", disable=not progress)
    args = [(sc, k, vary_structure, str(folder / f"seed-{k}"), cache_dir, device) for k in range(seeds)]
    paths = [_one(*args[0])]  # alone first: the noise-free series and the compiled kernels are made once
    bar.update(1)
    if seeds > 1:
        if scheduler:
            from distributed import Client

            try:
                client = Client(scheduler, timeout="10s")
            except (OSError, TimeoutError) as e:
                raise AetbenchError(f"--scheduler {scheduler}: cannot reach the dask scheduler ({e})") from None
            with client:
                futures = [client.submit(_one, *a, pure=False) for a in args[1:]]
                for f in futures:
                    paths.append(f.result())
                    bar.update(1)
        else:
            from concurrent.futures import ProcessPoolExecutor
            from multiprocessing import get_context

            n = max(1, min(jobs or (os.cpu_count() or 1), seeds - 1))
            with ProcessPoolExecutor(n, mp_context=get_context("spawn")) as pool:
                for p in pool.map(_one, *zip(*args[1:])):
                    paths.append(p)
                    bar.update(1)
    bar.close()
    frames = []
    for k, p in enumerate(paths):
        if Path(p).is_file():
            frames.append(pd.read_csv(p).assign(seed=sc.seed + k))
    if not frames:
        raise AetbenchError(f"{sc.path or sc.name}: no scores (the scenario has no ground truth to compare against)")
    df = pd.concat(frames, ignore_index=True)
    summary, paired = summarise(df, level), paired_differences(df, level)
    for name, table in (("seeds.csv", df), ("summary.csv", summary), ("paired.csv", paired)):
        with atomic_write_path(folder / name) as tmp:
            table.to_csv(tmp, index=False, float_format="%.6g")
    text = render(sc, summary, paired, seeds, vary_structure, level)
    figures = []
    from .report.plots import plot_compare

    for protocol in dict.fromkeys(summary["protocol"]):
        png = f"compare_{protocol}.png"
        plot_compare(summary[summary["protocol"] == protocol], folder / png, title=f"{sc.name} — {protocol} protocol, "
                     f"mean ± {int(level * 100)} % CI over {seeds} realisations")
        figures.append(png)
    text += "\n## Figures\n\n" + "\n".join(f"![{f}]({f})" for f in figures) + "\n"
    atomic_write_text(folder / "compare.md", text)
    return folder


def _pm(mean: float, half: float, digits: int = 2) -> str:
    if not np.isfinite(mean):
        return "–"
    return f"{mean:.{digits}f}" + (f" ± {half:.{digits}f}" if np.isfinite(half) else "")


def render(sc, summary: pd.DataFrame, paired: pd.DataFrame, seeds: int, vary_structure: bool, level: float) -> str:
    """The comparison as markdown (also printed by the CLI)."""
    from .report.markdown import markdown_table

    what = "new structure per realisation" if vary_structure else "structure and noise-free series fixed"
    parts = [f"# aetbench compare — {sc.name}\n",
             f"{seeds} noise realisations ({what}); mean ± half-width of the {int(level * 100)} % confidence "
             f"interval (Student t). Scenario `{sc.path}`.\n"]
    for protocol in dict.fromkeys(summary["protocol"]):
        s = summary[summary["protocol"] == protocol]
        t = pd.DataFrame({"structure": s["structure"], "dose": s["dose"], "method": s["method"],
                          "element": s["element"], "rate %": [_pm(m, h) for m, h in zip(s["rate_pct"], s["rate_pct_ci"])],
                          "precision pm": [_pm(m, h) for m, h in zip(s["precision_pm"], s["precision_pm_ci"])]})
        if protocol == "strict" and "f1_pct" in s:
            t["F1 %"] = [_pm(m, h) for m, h in zip(s["f1_pct"], s["f1_pct_ci"])]
        parts.append(f"\n## {protocol} protocol\n\n" + markdown_table(t))
    if not paired.empty:
        p = paired[paired["metric"].isin(["rate_pct", "precision_pm"]) & paired["mean_diff"].notna()]
        t = pd.DataFrame({"structure": p["structure"], "dose": p["dose"], "element": p["element"],
                          "protocol": p["protocol"], "A − B": p["a"] + " − " + p["b"], "metric": p["metric"],
                          "difference": [_pm(m, h, 3) for m, h in zip(p["mean_diff"], p["ci"])],
                          "n": p["n"], "p (paired t)": [f"{v:.3g}" if np.isfinite(v) else "–" for v in p["p_value"]]})
        parts.append("\n## Paired differences (same realisations)\n\n" + markdown_table(t))
    return "".join(parts)


def cmd_compare(args) -> int:
    folder = run_compare(args.scenario, seeds=args.seeds, vary_structure=args.vary_structure,
                         reports_root=args.reports, cache_dir=args.cache_dir, jobs=args.jobs,
                         scheduler=args.scheduler, device=args.device, quiet=args.quiet)
    text = (folder / "compare.md").read_text()
    print(text.split("\n## Figures")[0])
    print(f"compare: {folder / 'compare.md'}", file=sys.stderr if args.quiet else sys.stdout)
    return 0
