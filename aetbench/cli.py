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

from .io.files import AetbenchError

__all__ = ["main"]


def _scenario_dirs() -> list[Path]:
    here = Path.cwd() / "scenarios"
    pkg = Path(__file__).resolve().parents[1] / "scenarios"
    return [d for d in dict.fromkeys([here, pkg]) if d.is_dir()]


def _resolve_scenario(name: str) -> Path:
    p = Path(name)
    if p.exists() or p.suffix == ".toml":
        return p
    for d in _scenario_dirs():
        for cand in (d / f"{name}.toml", *d.glob(f"**/{name}.toml")):
            if cand.exists():
                return cand
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

    from .methods import METHODS

    print("scenarios:")
    for d in _scenario_dirs():
        for p in sorted(d.rglob("*.toml")):
            try:
                desc = tomllib.loads(p.read_text()).get("description", "")
            except Exception:  # noqa: BLE001 - listing must not fail on one bad file
                desc = "(invalid TOML)"
            print(f"  {p.relative_to(d.parent)}  {desc}")
    print("methods:")
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
    import subprocess

    tests = Path(__file__).resolve().parents[1] / "tests" / "bench"
    cmd = [sys.executable, "-m", "pytest", str(tests), "--benchmark-enable", "-q", *args.pytest_args]
    if args.heavy:
        os.environ["AETBENCH_BENCH_HEAVY"] = "1"
        cmd += ["-m", "slow or not slow"]  # the default selection deselects the slow (paper-size) runs
    return subprocess.call(cmd)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="aetbench", description="Atomic electron tomography benchmark suite")
    sub = p.add_subparsers(dest="command", required=True)

    r = sub.add_parser("run", help="run a scenario and write a report")
    r.add_argument("scenario", help="scenario TOML file (or a name under scenarios/)")
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
    lim.add_argument("scenario", help="scenario TOML file (or a name under scenarios/)")
    lim.add_argument("--json", action="store_true", help="machine-readable output")
    lim.add_argument("--doses", help="grid of doses [e/Å²], comma-separated, e.g. 4e3,1.6e4,3.2e5")
    lim.add_argument("--tilts", help="grid of tilt counts, comma-separated, e.g. 15,30,60,90")
    lim.add_argument("--tilt-range", help="START:STOP [deg] of the grid's tilts (default: the data's range)")
    lim.add_argument("--report", help="finished report folder: overlay its precisions, write limits.png/json there")
    lim.add_argument("--out", help="PNG path of the map (default: REPORT/limits.png or limits_<scenario>.png)")
    lim.add_argument("--cache-dir", default=None, help="cache folder (default: $AETBENCH_CACHE or .cache/aetbench)")
    lim.set_defaults(func=cmd_limits)

    b = sub.add_parser("bench", help="run the benchmarks (pytest-benchmark)")
    b.add_argument("--heavy", action="store_true", help="include the long benchmarks (large builds, full series)")
    b.add_argument("pytest_args", nargs="*", help="extra pytest arguments")
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


def main(argv=None) -> int:
    import signal

    try:
        previous = signal.signal(signal.SIGTERM, _on_sigterm)
    except ValueError:  # not the main thread: leave signals alone
        previous = None
    try:
        args = build_parser().parse_args(argv)
        return int(args.func(args) or 0)
    except AetbenchError as e:
        print(f"aetbench: error: {e}", file=sys.stderr)
        return 2
    except _Terminated:
        print("aetbench: terminated (finished results are kept; rerun to resume)", file=sys.stderr)
        return 143
    except BaseException as e:
        if not _interrupted(e):
            raise
        print("aetbench: interrupted (finished results are kept; rerun to resume)", file=sys.stderr)
        return 130
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
