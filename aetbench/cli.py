"""Command line: ``aetbench run | list | score | structure | limits | bench``.

User errors (bad scenario, unreadable file, unknown method …) print one line
``aetbench: error: …`` and exit with status 2; no traceback.  Ctrl-C prints one
line and exits 130 (also inside a numba compile, where numba re-raises the
``KeyboardInterrupt`` as a ``SystemError``); SIGTERM exits 143 the same way, so
atomic writes remove their temporary files.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from .errors import AetbenchError

__all__ = ["main"]


def _resolve_scenario(name: str) -> Path:
    """An existing file as it is; else a scenario name (``quick``, ``paper/asi208``) in ``./scenarios`` or the
    shipped scenarios (:mod:`aetbench.data`); else the path, which the loader then reports as not found."""
    from .data import find_toml, scenario_dirs

    p = Path(name)
    if p.exists():
        return p
    try:
        hit = find_toml(name, scenario_dirs(), "scenarios")
    except LookupError as e:
        raise AetbenchError(f"scenario {e}") from None
    if hit is not None:
        return hit
    if p.suffix != ".toml" and len(p.parts) == 1:
        raise AetbenchError(f"scenario {name!r} not found: no such file, nor a scenario of that name in ./scenarios "
                            f"or the shipped ones (see 'aetbench list')")
    return p


_LOCAL_SCHEDULERS = ("threads", "synchronous", "sync", "single-threaded", "processes")


def _check_scheduler(address, timeout_s: float = 5.0) -> None:
    """Refuse a dask scheduler address that accepts no TCP connection within ``timeout_s`` seconds."""
    import socket
    from urllib.parse import urlsplit

    if not address or address in _LOCAL_SCHEDULERS:
        return
    u = urlsplit(address if "://" in address else f"tcp://{address}")
    if u.scheme not in ("tcp", "tls"):  # inproc://, ucx:// …: left to dask.distributed
        return
    try:
        host, port = u.hostname, u.port
    except ValueError:
        host = port = None
    if not host or not port:
        raise AetbenchError(f"--scheduler: expected 'threads', 'synchronous', 'processes' or an address like "
                            f"tcp://host:8786, got {address!r}")
    try:
        socket.create_connection((host, port), timeout=timeout_s).close()
    except OSError as e:
        why = "timed out" if isinstance(e, socket.timeout) else (e.strerror or str(e))
        raise AetbenchError(f"--scheduler {address}: no scheduler reachable ({why}; waited up to "
                            f"{timeout_s:g} s)") from None


def cmd_run(args) -> int:
    from .pipeline import run_scenario

    _check_scheduler(args.scheduler)

    out = run_scenario(_resolve_scenario(args.scenario), reports_root=args.reports, cache_dir=args.cache_dir,
                       quiet=args.quiet, scheduler=args.scheduler, device=args.device,
                       save_volumes=args.save_volumes, force=args.force)
    print(f"report: {out / 'report.md'}")
    if not args.quiet:
        text = (out / "report.md").read_text()
        print(text.split("## Figures")[0].rstrip())
    return 0


def cmd_list(args) -> int:
    import tomllib

    from .data import list_toml, scenario_dirs
    from .methods import METHODS

    print("scenarios:  (aetbench run NAME; ./scenarios first, then the shipped ones)")
    for name, p in list_toml(scenario_dirs()):
        try:
            desc = tomllib.loads(p.read_text()).get("description", "")
        except Exception:  # noqa: BLE001 - listing must not fail on one bad file
            desc = "(invalid TOML)"
        print(f"  {name:26s} {desc}")
    print("methods:")
    METHODS.scan()  # packages installed since the registry was first read list their methods too
    for name in sorted(METHODS):
        try:
            print(f"  {name:10s} {METHODS[name].description}")
        except AetbenchError as e:  # a broken outside entry point must not hide the others
            print(f"  {name:10s} (cannot load: {e})")
    return 0


def cmd_score(args) -> int:
    from .score.command import run

    return run(args)


def _floats(text: str) -> list[float]:
    try:
        return [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise AetbenchError(f"expected comma-separated numbers, got {text!r}") from None


def cmd_limits(args) -> int:
    from .report.limits import run_limits

    rng = _floats(args.tilt_range.replace(":", ",")) if args.tilt_range else None
    if rng is not None and len(rng) != 2:
        raise AetbenchError(f"--tilt-range: expected START:STOP in degrees, got {args.tilt_range!r}")
    print(run_limits(_resolve_scenario(args.scenario), doses=_floats(args.doses) if args.doses else None,
                     tilt_counts=[int(t) for t in _floats(args.tilts)] if args.tilts else None, tilt_range=rng,
                     report=args.report, out=args.out, as_json=args.json, cache_dir=args.cache_dir))
    return 0


def cmd_bench(args) -> int:
    """Run the benchmarks shipped in :mod:`aetbench.benchmarks` with pytest-benchmark (from any folder)."""
    import importlib.util
    import subprocess

    missing = [m for m in ("pytest", "pytest_benchmark") if importlib.util.find_spec(m) is None]
    if missing:
        raise AetbenchError(f"aetbench bench needs {' and '.join(missing)}: pip install 'aetbench[test]'")
    benches = Path(__file__).resolve().parent / "benchmarks"
    # -p no:cacheprovider: nothing written into an installed package; the marks are registered by its conftest
    cmd = [sys.executable, "-m", "pytest", str(benches), "--benchmark-enable", "-q", "-p", "no:cacheprovider",
           "-m", "slow or not slow" if args.heavy else "not slow", *args.pytest_args]
    if args.heavy:
        os.environ["AETBENCH_BENCH_HEAVY"] = "1"
    return subprocess.call(cmd)


def cmd_reproduce(args) -> int:
    from .reproduce import cmd_reproduce as reproduce

    return reproduce(args)


def cmd_compare(args) -> int:
    from .compare import cmd_compare as compare

    args.scenario = _resolve_scenario(args.scenario)
    return compare(args)


def cmd_validate(args) -> int:
    """The regression gate (:mod:`aetbench.report.gate`): 0 when nothing got worse, 1 on a regression."""
    from .report import gate

    cand = gate.read_scores(args.candidate)
    if args.write_baseline:
        gate.write_baseline(args.write_baseline, gate.baseline_from_scores(cand, source=str(args.candidate)))
        print(f"baseline: {args.write_baseline} ({cand.groupby(list(gate.KEY)).ngroups} rows)")
        return 0
    if not args.baseline:
        raise AetbenchError("validate: give --baseline (a report folder, scores.csv or baseline JSON) "
                            "or --write-baseline FILE")
    base = (gate.read_baseline(args.baseline) if str(args.baseline).endswith(".json")
            else gate.baseline_from_scores(gate.read_scores(args.baseline), source=str(args.baseline)))
    tols = {}
    for t in args.tolerance or []:
        metric, _, value = t.partition("=")
        try:
            tols[metric] = float(value)
        except ValueError:
            tols[metric] = float("nan")
        if metric not in gate.METRICS or not tols[metric] >= 0:
            raise AetbenchError(f"--tolerance {t!r}: expected METRIC=VALUE with METRIC one of "
                                f"{', '.join(gate.METRICS)} and VALUE ≥ 0 (in the metric's unit)")
    accepted = gate.read_accepted(args.accepted) if args.accepted else []
    res = gate.compare_runs(cand, base, accepted=accepted, tolerances=tols)
    for ch in res.accepted:
        print(f"accepted: {ch.line()} — {ch.accepted_reason}")
    for ch in res.improved:
        print(f"improved: {ch.line()}")
    print(res.summary())
    for key in res.missing:
        s, d, m, e, p = key
        print(f"aetbench: validate: missing: no row for {s} dose {float(d):g} {m} {e} ({p}) in {args.candidate}",
              file=sys.stderr)
    for ch in res.regressions:
        print(f"aetbench: validate: regression: {ch.line()}", file=sys.stderr)
    return 1 if res.failed else 0


def _workflow_options(p: argparse.ArgumentParser, scheduler_help: str) -> None:
    """Where a workflow runs and writes: --scheduler, --device, --reports, --cache-dir, --quiet."""
    p.add_argument("--scheduler", default=None, help=scheduler_help)
    p.add_argument("--device", default="cpu", choices=("cpu", "gpu"), help="device for abTEM and RESIRE")
    p.add_argument("--reports", default="reports", help="folder for reports (default: reports)")
    p.add_argument("--cache-dir", default=None, help="cache folder (default: $AETBENCH_CACHE or .cache/aetbench)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def build_parser() -> argparse.ArgumentParser:
    from ._version import __version__

    p = argparse.ArgumentParser(prog="aetbench", description="Atomic electron tomography benchmark suite")
    p.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    r = sub.add_parser("run", help="run a scenario and write a report")
    r.add_argument("scenario", help="scenario TOML file, or a name (quick, paper/asi208; see aetbench list)")
    r.add_argument("--reports", default="reports", help="folder for reports (default: reports)")
    r.add_argument("--cache-dir", default=None, help="cache folder (default: $AETBENCH_CACHE or .cache/aetbench)")
    r.add_argument("--quiet", action="store_true", help="no progress bars or tables")
    r.add_argument("--scheduler", default=None, help="dask.distributed scheduler address for simulations")
    r.add_argument("--device", default="cpu", choices=("cpu", "gpu"), help="abTEM device")
    r.add_argument("--save-volumes", action="store_true", help="also write reconstructed volumes (HDF5)")
    r.add_argument("--force", action="store_true",
                   help="run even when the memory/time estimate exceeds this machine")
    r.set_defaults(func=cmd_run)

    lst = sub.add_parser("list", help="list scenarios and methods")
    lst.set_defaults(func=cmd_list)

    s = sub.add_parser("score", help="score a traced model against a ground truth")
    try:
        from .score.command import add_arguments

        add_arguments(s)
    except ImportError:  # pragma: no cover - during development only
        pass
    s.set_defaults(func=cmd_score)

    try:
        from .structures.command import add_arguments as add_structure

        add_structure(sub)
    except ImportError:  # pragma: no cover - structures CLI is optional while it is being built
        pass

    lim = sub.add_parser("limits", help="physical limit (joint Cramér–Rao bound) per dose; limit maps")
    lim.add_argument("scenario", help="scenario TOML file, or a name (quick, paper/asi208; see aetbench list)")
    lim.add_argument("--json", action="store_true", help="machine-readable output")
    lim.add_argument("--doses", help="grid of doses [e/Å²], comma-separated, e.g. 4e3,1.6e4,3.2e5")
    lim.add_argument("--tilts", help="grid of tilt counts, comma-separated, e.g. 15,30,60,90")
    lim.add_argument("--tilt-range", help="START:STOP [deg] of the grid's tilts (default: the data's range)")
    lim.add_argument("--report", help="finished report folder: overlay its precisions, write limits.png/json there")
    lim.add_argument("--out", help="PNG path of the map (default: REPORT/limits.png or limits_<scenario>.png)")
    lim.add_argument("--cache-dir", default=None, help="cache folder (default: $AETBENCH_CACHE or .cache/aetbench)")
    lim.set_defaults(func=cmd_limits)

    c = sub.add_parser("compare", help="every method over N noise realisations: mean ± 95 %% CI, paired differences")
    c.add_argument("scenario", help="scenario TOML file (or a name under scenarios/)")
    c.add_argument("--seeds", type=int, default=5, help="number of noise realisations (default 5)")
    c.add_argument("--vary-structure", action="store_true", help="a new structure per realisation too")
    c.add_argument("--jobs", type=int, default=None, help="local worker processes (default: one per core)")
    _workflow_options(c, "dask.distributed scheduler address: realisations run there")
    c.set_defaults(func=cmd_compare)

    rp = sub.add_parser("reproduce", help="regenerate the paper's tables into one report, ours beside the published")
    rp.add_argument("tables", nargs="*", help="tables to run (default: all): " + ", ".join(
        ["asi208", "asi20k", "sigesn", "copdpt", "copdpt-defocus", "angles", "busch", "sio2"]))
    rp.add_argument("--tier", default="linear", choices=("linear", "abtem"), help="simulation tier (default linear)")
    rp.add_argument("--yes", action="store_true", help="run even when the estimate is beyond this machine")
    _workflow_options(rp, "dask.distributed scheduler address: simulations and reconstructions run there")
    rp.set_defaults(func=cmd_reproduce)

    v = sub.add_parser("validate", help="regression gate: compare a run with a baseline, exit 1 if anything got worse")
    v.add_argument("candidate", help="report folder, scores.csv or baseline JSON of the run to check")
    v.add_argument("--baseline", help="report folder, scores.csv or baseline JSON to compare with")
    v.add_argument("--accepted", help="accepted-changes TOML: [[accepted]] metric, reason and optional filters")
    v.add_argument("--tolerance", action="append", metavar="METRIC=VALUE",
                   help="tolerance for every row of a metric (rate_pct %%, precision_pm pm, f1_pct %%); repeatable")
    v.add_argument("--write-baseline", metavar="FILE", help="write CANDIDATE as a baseline JSON and exit")
    v.set_defaults(func=cmd_validate)

    b = sub.add_parser("bench", help="run the benchmarks (pytest-benchmark)")
    b.add_argument("--heavy", action="store_true", help="include the long benchmarks (large builds, full series)")
    b.add_argument("pytest_args", nargs="*", help="extra pytest arguments after --, e.g. aetbench bench -- -k score")
    b.set_defaults(func=cmd_bench)
    return p


class _Terminated(BaseException):
    """Raised by the SIGTERM handler of :func:`main` (unwinds like Ctrl-C, so temporary files are removed)."""


def _interrupted(e: BaseException | None) -> bool:
    """True when ``e`` is, wraps or was caused by a ``KeyboardInterrupt`` (numba turns one raised during a
    compile into ``SystemError``; the original is on the exception chain or named in the message)."""
    seen = set()
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if isinstance(e, KeyboardInterrupt) or (isinstance(e, SystemError) and "KeyboardInterrupt" in str(e)):
            return True
        e = e.__cause__ or e.__context__
    return False


def _on_sigterm(signum, frame):
    raise _Terminated()


class _CtrlC:
    """SIGINT handler of :func:`main` that cannot be lost.

    Python raises ``KeyboardInterrupt`` wherever the main thread happens to be, and a few C paths inside numba's
    compiler clear a pending exception (the compile then fails with an unrelated error, or carries on as if
    nothing happened).  So the handler records the interrupt, raises ``KeyboardInterrupt`` and, until
    :func:`main` has caught it, raises it again every :attr:`REPEAT_S` seconds; :func:`main` reports any exception
    that ends a run after a Ctrl-C as the interrupt (exit 130).
    """

    REPEAT_S = 2.0

    def __init__(self):
        self.hit = False
        self.done = False
        self._timer = None

    def __call__(self, signum, frame):
        self.hit = True
        self._arm()
        raise KeyboardInterrupt

    def _arm(self) -> None:
        import threading

        if self._timer is None and not self.done:
            self._timer = threading.Timer(self.REPEAT_S, self._again)
            self._timer.daemon = True
            self._timer.start()

    def _again(self) -> None:
        import _thread

        self._timer = None
        if not self.done:
            _thread.interrupt_main()  # calls __call__ in the main thread, which re-arms

    def finish(self) -> None:
        self.done = True
        if self._timer is not None:
            self._timer.cancel()

    def unraisable(self, hook):
        """A ``sys.unraisablehook`` that drops this handler's ``KeyboardInterrupt`` where Python cannot raise it
        (inside a C callback, e.g. llvmlite's object cache during a numba compile: Python would print "Exception
        ignored ..." and carry on) and hands anything else to ``hook``; the repeat timer delivers the interrupt."""
        def quiet(info):
            if self.hit and isinstance(info.exc_value, KeyboardInterrupt):
                return
            hook(info)
        return quiet


def main(argv=None) -> int:
    import signal

    ctrl_c = _CtrlC()
    try:
        previous = signal.signal(signal.SIGTERM, _on_sigterm)
        previous_int = signal.signal(signal.SIGINT, ctrl_c)
    except ValueError:  # not the main thread: leave signals alone
        previous = previous_int = None
    previous_hook = sys.unraisablehook
    sys.unraisablehook = ctrl_c.unraisable(previous_hook)
    try:
        args = build_parser().parse_args(argv)
        return int(args.func(args) or 0)
    except BaseException as e:
        ctrl_c.finish()
        if ctrl_c.hit or _interrupted(e):  # whatever a Ctrl-C turned into on its way up
            print("aetbench: interrupted (finished results are kept; rerun to resume)", file=sys.stderr)
            return 130
        if isinstance(e, AetbenchError):
            print(f"aetbench: error: {e}", file=sys.stderr)
            return 2
        if isinstance(e, _Terminated):
            print("aetbench: terminated (finished results are kept; rerun to resume)", file=sys.stderr)
            return 143
        raise
    finally:
        ctrl_c.finish()
        sys.unraisablehook = previous_hook
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
            signal.signal(signal.SIGINT, previous_int)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
