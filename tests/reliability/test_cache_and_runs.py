"""Reliability matrix (issue 17): a cache that heals, report folders that never collide, names that cannot
escape, clean interrupts and dead schedulers.

Every case runs the real command (``aetbench.cli.main`` in-process, or ``python -m aetbench.cli`` where a
separate process is the point: concurrency, signals) and asserts the exit status, the one-line message on
stderr and that nothing partial is left behind (no ``.part`` files, no empty report folders).  The scenario
is the smallest that exercises the whole pipeline: 12 random Si atoms, 24×24 pixels, 11 tilts, FBP, two doses.
In-process runs skip rendering the report's PNGs (``fast_plots``: the files are still written atomically,
as placeholders); the subprocess runs (concurrency) render everything.
"""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from aetbench import cache
from aetbench.cli import main
from aetbench.io.files import AetbenchError, atomic_write_path, remove_stale_parts, safe_join

REPO = Path(__file__).resolve().parents[2]

TINY = """
name = "tiny"
methods = ["fbp"]
seed = {seed}
[structure]
source = "random"
n_atoms = 12
[simulation]
pixel_size = 0.4
image_size = 24
tilt = {{ start = -60.0, stop = 60.0, step = 12.0 }}
doses = [1e7, 1e6]
background = 0.0
"""


def _env() -> dict:
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""), MPLBACKEND="Agg")
    env.pop("CI", None)
    return env


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def _placeholder_png(fig, path):
    import matplotlib.pyplot as plt

    with atomic_write_path(path) as tmp:
        tmp.write_bytes(b"\x89PNG placeholder")
    plt.close(fig)


@pytest.fixture(autouse=True)
def fast_plots(monkeypatch):
    import aetbench.report.plots as plots

    monkeypatch.setattr(plots, "_save", _placeholder_png)


def _run(capsys, *argv) -> tuple[int, list[str]]:
    """``aetbench`` in-process; returns (exit status, stderr lines)."""
    capsys.readouterr()
    rc = main(list(map(str, argv)))
    return rc, capsys.readouterr().err.splitlines()


def _scores(folder: Path) -> pd.DataFrame:
    # the scores; timings (and whether a row came from the cache) vary from run to run
    return pd.read_csv(folder / "scores.csv").drop(columns=["seconds", "compile_s", "series_s", "cached"])


def _leftovers(*roots: Path) -> list[Path]:
    """Temporary files and empty folders under ``roots`` (what a failed or killed write leaves)."""
    bad = []
    for root in roots:
        if not root.exists():
            continue
        bad += [p for p in root.rglob("*.part*")]
        bad += [p for p in root.rglob("*") if p.is_dir() and not any(p.iterdir())]
    return bad


def _run_folder(reports: Path) -> Path:
    (run,) = [p for p in (reports / "tiny").iterdir()]
    return run


@pytest.fixture(scope="module")
def clean(tmp_path_factory):
    """A clean run of the tiny scenario (seed 4): its scenario file, warm cache and report folder."""
    import aetbench.report.plots as plots

    base = tmp_path_factory.mktemp("clean")
    sc = _write(base / "tiny.toml", TINY.format(seed=4))
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(plots, "_save", _placeholder_png)
        assert main(["run", str(sc), "--quiet", "--reports", str(base / "reports"), "--cache-dir", str(base / "cache")]) == 0
    run = _run_folder(base / "reports")
    assert len(_scores(run)) == 2 * 2   # two doses × two protocols
    return sc, base / "cache", run


def _entries(cache_dir: Path, sub: str) -> list[Path]:
    return sorted(p for p in (cache_dir / sub).iterdir() if p.suffix in (".npz", ".h5"))


# --------------------------------------------------------------------------- the cache heals

def _truncate(p: Path):
    p.write_bytes(p.read_bytes()[: p.stat().st_size // 2])


def _empty(p: Path):
    p.write_bytes(b"")


def _bitflip(p: Path):
    b = bytearray(p.read_bytes())
    b[len(b) * 2 // 3] ^= 0x10
    p.write_bytes(bytes(b))


def _edit_angle(p: Path):
    """An edited angle in a cached series, written back with the old header (what a hand edit leaves)."""
    from aetbench.io.hdf5 import tilt_series_from_bytes, tilt_series_to_bytes

    raw = p.read_bytes()
    head, body = raw[:512], raw[512:]
    ts = tilt_series_from_bytes(body)
    ts.angles[3, 1] += 1.0
    new = tilt_series_to_bytes(ts)
    assert tilt_series_from_bytes(new).angles[3, 1] == ts.angles[3, 1]
    p.write_bytes(head + new)


def _series_of_doses(c: Path) -> list[Path]:
    return [p for p in _entries(c, "tiltseries") if not p.stem.endswith("-clean")]


# each case damages two entries at once (one run per case keeps the matrix fast); a series is only read
# when its result is missing, so the series cases remove or damage the results too
DAMAGE = {
    "results-truncated+bitflipped": lambda c: [(_truncate, _entries(c, "results")[0]),
                                               (_bitflip, _entries(c, "results")[1])],
    "results-emptied+series-bitflipped+truncated": lambda c: [(_empty, _entries(c, "results")[0]),
                                                             (Path.unlink, _entries(c, "results")[1]),
                                                             (_bitflip, _series_of_doses(c)[0]),
                                                             (_truncate, _series_of_doses(c)[1])],
    "series-edited-angle": lambda c: [(Path.unlink, _entries(c, "results")[0]),
                                      (Path.unlink, _entries(c, "results")[1]),
                                      (_edit_angle, _series_of_doses(c)[0])],
}


@pytest.mark.parametrize("case", list(DAMAGE))
def test_damaged_entries_are_reported_moved_aside_and_recomputed(clean, tmp_path, capsys, case):
    sc, warm, ref = clean
    c = tmp_path / "cache"
    shutil.copytree(warm, c)
    plan = DAMAGE[case](c)
    for damage, p in plan:
        damage(p)
    damaged = [p for damage, p in plan if damage is not Path.unlink]
    rc, err = _run(capsys, "run", sc, "--quiet", "--reports", tmp_path / "r", "--cache-dir", c)
    assert rc == 0
    assert len(err) == len(damaged), err          # one line per damaged entry, naming it
    for p, line in zip(sorted(damaged), sorted(err)):
        assert line.startswith(f"aetbench: cache entry {p}: ") and line.endswith("recomputing"), line
        assert len(list(p.parent.glob(p.name + ".corrupt-*"))) == 1       # moved aside, not deleted
        assert cache.load_entry(p, p.stem) is not None                   # repaired in place
    pd.testing.assert_frame_equal(_scores(_run_folder(tmp_path / "r")), _scores(ref))   # identical numbers
    assert _leftovers(c, tmp_path / "r") == []
    if case == "series-edited-angle":   # the healed cache is then used silently
        rc, err = _run(capsys, "run", sc, "--quiet", "--reports", tmp_path / "r2", "--cache-dir", c)
        assert rc == 0 and err == []
        pd.testing.assert_frame_equal(_scores(_run_folder(tmp_path / "r2")), _scores(ref))


def test_swapped_result_files_are_detected(clean, tmp_path, capsys):
    sc, warm, ref = clean
    c = tmp_path / "cache"
    shutil.copytree(warm, c)
    a, b = _entries(c, "results")
    tmp = a.with_suffix(".swap")
    a.rename(tmp), b.rename(a), tmp.rename(b)
    rc, err = _run(capsys, "run", sc, "--quiet", "--reports", tmp_path / "r", "--cache-dir", c)
    assert rc == 0
    assert len(err) == 2 and all("holds the entry of another key" in line for line in err), err
    pd.testing.assert_frame_equal(_scores(_run_folder(tmp_path / "r")), _scores(ref))


def test_entry_checks_unit(tmp_path, capsys):
    p = tmp_path / "k.bin"
    cache.save_entry(p, "k", b"abc" * 100)
    assert cache.load_entry(p, "k") == b"abc" * 100
    assert cache.load_entry(tmp_path / "missing.bin", "k") is None and capsys.readouterr().err == ""
    # an undecodable body is bad too
    assert cache.load_entry(p, "k", decode=lambda b: int(b)) is None
    assert "cannot decode" in capsys.readouterr().err and not p.exists()


# --------------------------------------------------------------------------- .part files

def test_atomic_write_removes_its_part_on_failure(tmp_path):
    with pytest.raises(KeyboardInterrupt):
        with atomic_write_path(tmp_path / "x.npz") as tmp:
            tmp.write_bytes(b"half")
            raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []


def test_stale_parts_of_dead_writers_are_removed(clean, tmp_path, capsys):
    sc, warm, ref = clean
    c = tmp_path / "cache"
    shutil.copytree(warm, c)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    from aetbench.io.files import _host

    stale = c / "results" / f".abc.npz.{_host()}-{dead.pid}-q1w2e3.part.npz"
    live = c / "results" / f".abd.npz.{_host()}-{os.getpid()}-r4t5y6.part.npz"
    old = c / "tiltseries" / ".abe.h5.otherhost-1-u7i8o9.part.h5"
    for p in (stale, live, old):
        p.write_bytes(b"partial")
    os.utime(old, (time.time() - 2 * 86400,) * 2)
    rc, err = _run(capsys, "run", sc, "--quiet", "--reports", tmp_path / "r", "--cache-dir", c)
    assert rc == 0 and err == []
    assert not stale.exists() and not old.exists() and live.exists()   # a live writer's part is left alone
    assert remove_stale_parts(c / "results") == []


# --------------------------------------------------------------------------- report folders

def test_concurrent_runs_get_their_own_complete_folders(tmp_path):
    """Seeds 4 and 5 of the same scenario name, started together on one (empty) cache and reports root."""
    procs = []
    for seed in (4, 5):
        sc = _write(tmp_path / f"s{seed}" / "tiny.toml", TINY.format(seed=seed))
        procs.append(subprocess.Popen([sys.executable, "-m", "aetbench.cli", "run", str(sc), "--quiet", "--reports",
                                       str(tmp_path / "reports"), "--cache-dir", str(tmp_path / "cache")],
                                      env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    paths = [Path(o.splitlines()[0].removeprefix("report: ")).parent for o, _ in outs]
    assert paths[0] != paths[1] and sorted(paths) == sorted((tmp_path / "reports" / "tiny").iterdir())
    for seed, run in zip((4, 5), paths):
        assert f"seed {seed}." in (run / "report.md").read_text()
        assert {p.name for p in (run / "models").iterdir()} == {
            f"random-Si12_dose{d}_fbp.xyz" for d in ("1e+07", "1e+06")}
        assert (run / "stage_seconds.csv").exists()
        # each folder holds its own seed's numbers: a rerun of that seed alone (served by the shared cache) agrees
        assert main(["run", str(tmp_path / f"s{seed}" / "tiny.toml"), "--quiet", "--cache-dir", str(tmp_path / "cache"),
                     "--reports", str(tmp_path / f"alone{seed}")]) == 0
        pd.testing.assert_frame_equal(_scores(run), _scores(_run_folder(tmp_path / f"alone{seed}")))
    assert not _scores(paths[0]).equals(_scores(paths[1]))
    assert _leftovers(tmp_path / "reports", tmp_path / "cache") == []


def test_failed_run_leaves_no_report_folder(tmp_path, capsys):
    bad = tmp_path / "garbage.h5"
    bad.write_bytes(b"not hdf5 at all")
    sc = _write(tmp_path / "inp.toml", 'name = "inp"\nmethods = ["fbp"]\n[[input]]\nkind = "hdf5"\nprojections = "garbage.h5"\n'
                                       'elements = ["Si"]\n')
    rc, err = _run(capsys, "run", sc, "--quiet", "--reports", tmp_path / "reports", "--cache-dir", tmp_path / "c")
    assert rc == 2 and len(err) == 1 and err[0].startswith("aetbench: error: ") and "garbage.h5" in err[0], err
    assert not (tmp_path / "reports" / "inp").exists() or not any((tmp_path / "reports" / "inp").iterdir())
    assert _leftovers(tmp_path / "reports") in ([], [tmp_path / "reports" / "inp"])


def test_save_volumes_reruns_cached_cells(clean, tmp_path, capsys):
    sc, warm, ref = clean
    c = tmp_path / "cache"
    shutil.copytree(warm, c)
    rc, err = _run(capsys, "run", sc, "--quiet", "--save-volumes", "--reports", tmp_path / "r", "--cache-dir", c)
    assert rc == 0 and err == []
    run = _run_folder(tmp_path / "r")
    assert len(list((run / "volumes").glob("*.h5"))) == 2
    pd.testing.assert_frame_equal(_scores(run), _scores(ref))


# --------------------------------------------------------------------------- names cannot escape

@pytest.mark.parametrize("field, value", [("name", "../escape"), ("name", "/tmp/abs-escape"), ("name", "a/b"),
                                          ("name", ".."), ("label", "../../outside"), ("label", "x/y")])
def test_names_that_would_escape_are_refused(tmp_path, capsys, field, value):
    from aetbench.types import TiltSeries

    TiltSeries(np.ones((3, 8, 8)), np.array([-30.0, 0.0, 30.0]), 0.5).write(tmp_path / "data" / "p.h5")
    name = value if field == "name" else "ok"
    label = f'label = "{value}"\n' if field == "label" else ""
    sc = _write(tmp_path / "data" / "s.toml", f'name = "{name}"\nmethods = ["fbp"]\n[[input]]\nkind = "hdf5"\nprojections = "p.h5"\n'
                                              f'elements = ["Si"]\n{label}')
    rc, err = _run(capsys, "run", sc, "--quiet", "--reports", tmp_path / "reports", "--cache-dir", tmp_path / "c")
    where = "name" if field == "name" else "input[0].label"
    assert rc == 2 and err == [f"aetbench: error: {sc}: {where}: expected a plain name (no path separator, '..', "
                               f"leading '.' or control character), got {value!r}"]
    assert not (tmp_path / "reports").exists() and not Path("/tmp/abs-escape").exists()


def test_recipe_name_that_would_escape_is_refused(tmp_path, capsys):
    text = (REPO / "aetbench" / "data" / "structures" / "asi208.toml").read_text()
    lines = [ln for ln in text.splitlines() if not ln.startswith("name")]
    rec = _write(tmp_path / "r.toml", 'name = "../../evil"\n' + "\n".join(lines) + "\n")
    rc, err = _run(capsys, "structure", "build", rec, "--cache-dir", tmp_path / "c")
    assert rc == 2 and err == [f"aetbench: error: {rec}: name: expected a plain name (no path separator, '..', "
                               "leading '.' or control character), got '../../evil'"]
    assert not (tmp_path / "c").exists() and not (tmp_path / "evil-").exists()


def test_safe_join_keeps_paths_inside(tmp_path):
    assert safe_join(tmp_path, "models", "a.xyz") == (tmp_path / "models" / "a.xyz").resolve()
    for parts in (("..", "x"), ("models", "../../x"), ("/etc/passwd",)):
        with pytest.raises(AetbenchError, match="leaves its folder"):
            safe_join(tmp_path, *parts)


# --------------------------------------------------------------------------- interrupts and schedulers

def test_ctrl_c_inside_a_c_callback_is_not_printed():
    """A Ctrl-C that lands in a C callback (llvmlite's object cache while numba compiles) cannot be raised there:
    Python would print "Exception ignored ..." on stderr. The handler's unraisable hook drops only that one; the
    repeat timer delivers the interrupt, and everything else still reaches the previous hook."""
    from types import SimpleNamespace

    from aetbench.cli import _CtrlC

    seen = []
    c = _CtrlC()
    hook = c.unraisable(seen.append)
    ki = SimpleNamespace(exc_value=KeyboardInterrupt())
    other = SimpleNamespace(exc_value=ValueError("x"))
    hook(ki)                       # no Ctrl-C yet: not ours
    c.hit = True
    hook(ki)
    hook(other)
    assert seen == [ki, other]


def test_ctrl_c_mid_run_exits_130_with_one_line(tmp_path):
    slow = TINY.format(seed=4).replace('doses = [1e7, 1e6]', 'doses = [1e7]').replace(
        'methods = ["fbp"]', 'methods = ["sirt"]') + "[method_options.sirt]\niterations = 10000000\n"
    sc = _write(tmp_path / "tiny.toml", slow)
    p = subprocess.Popen([sys.executable, "-m", "aetbench.cli", "run", str(sc), "--quiet", "--reports",
                          str(tmp_path / "reports"), "--cache-dir", str(tmp_path / "cache")],
                         env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while time.time() < deadline and p.poll() is None and len(list((tmp_path / "cache").rglob("*.h5"))) < 2:
        time.sleep(0.2)   # both series (clean, dosed) written: SIRT is iterating now
    assert p.poll() is None, p.communicate()
    time.sleep(0.5)
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=30)
    assert p.returncode == 130
    assert err.splitlines() == ["aetbench: interrupted (finished results are kept; rerun to resume)"], err
    assert _leftovers(tmp_path / "cache") == [] and not (tmp_path / "reports").exists()


def test_ctrl_c_inside_a_numba_compile_exits_130_with_one_line(tmp_path):
    """numba turns a KeyboardInterrupt raised while it compiles into SystemError; it still is Ctrl-C."""
    script = """
import os, signal, sys, threading
import numpy as np
from aetbench import cli

def compile_forever(args):
    import numba
    threading.Timer(0.5, lambda: os.kill(os.getpid(), signal.SIGINT)).start()
    for i in range(1000):
        src = "def f(x):\\n" + "".join(f"    x = x * {j}.5 + np.sin(x)\\n" for j in range(60 + i)) + "    return x\\n"
        ns = {"np": np}
        exec(src, ns)
        numba.njit(ns["f"])(1.0)
    return 0

cli.cmd_run = compile_forever
sys.exit(cli.main(["run", "anything"]))
"""
    p = subprocess.run([sys.executable, "-c", script], env=_env(), capture_output=True, text=True, timeout=120)
    assert p.returncode == 130, p.stderr[-2000:]
    assert p.stderr.splitlines() == ["aetbench: interrupted (finished results are kept; rerun to resume)"]


@pytest.mark.parametrize("then", ["carries_on", "fails"])
def test_ctrl_c_that_a_library_swallows_still_exits_130(then):
    """A C path inside numba's compiler can clear a pending KeyboardInterrupt; the run must still stop (the
    interrupt is raised again) and whatever error the lost interrupt turned into is reported as the interrupt."""
    script = f"""
import os, signal, sys, threading, time
from aetbench import cli

def swallow(args):
    threading.Timer(0.3, lambda: os.kill(os.getpid(), signal.SIGINT)).start()
    try:
        time.sleep(10)
    except KeyboardInterrupt:
        pass                      # cleared, as by a library that drops the pending exception
    if {then!r} == "fails":
        raise RuntimeError("compilation failed for an unrelated reason")
    while True:
        time.sleep(0.05)

cli.cmd_run = swallow
sys.exit(cli.main(["run", "anything"]))
"""
    t0 = time.time()
    p = subprocess.run([sys.executable, "-c", script], env=_env(), capture_output=True, text=True, timeout=60)
    assert p.returncode == 130, p.stderr[-2000:]
    assert p.stderr.splitlines() == ["aetbench: interrupted (finished results are kept; rerun to resume)"]
    assert time.time() - t0 < 30


def test_interrupt_detection_follows_the_exception_chain():
    from aetbench.cli import _interrupted

    try:
        try:
            raise KeyboardInterrupt
        except KeyboardInterrupt as e:
            raise SystemError("<built-in method> returned a result with an exception set") from e
    except SystemError as e:
        assert _interrupted(e)
    assert _interrupted(SystemError("KeyboardInterrupt"))
    assert not _interrupted(SystemError("something else")) and not _interrupted(ValueError("x"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("address", [f"tcp://127.0.0.1:{_free_port()}", "tcp://192.0.2.1:8786", "tcp://nohost"],
                         ids=["refused", "unroutable", "no-port"])
def test_dead_scheduler_is_one_line_within_seconds(clean, tmp_path, capsys, address):
    sc, warm, _ = clean
    t0 = time.perf_counter()
    rc, err = _run(capsys, "run", sc, "--quiet", "--scheduler", address, "--reports", tmp_path / "r",
                   "--cache-dir", tmp_path / "c")
    assert time.perf_counter() - t0 < 10
    assert rc == 2 and len(err) == 1 and err[0].startswith("aetbench: error: --scheduler") and address in err[0], err
    assert not (tmp_path / "r").exists() and not (tmp_path / "c").exists()


def test_numba_cache_goes_to_a_user_folder(tmp_path):
    env = {k: v for k, v in _env().items() if k not in ("NUMBA_CACHE_DIR", "AETBENCH_CACHE", "XDG_CACHE_HOME")}
    env["HOME"] = str(tmp_path)
    code = "import aetbench, numba; print(numba.config.CACHE_DIR)"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == str(tmp_path / ".cache" / "aetbench" / "numba"), out.stderr
    env["NUMBA_CACHE_DIR"] = str(tmp_path / "mine")   # the user's own setting wins
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == str(tmp_path / "mine")


def test_structure_cache_entry_heals(tmp_path, monkeypatch, capsys):
    """A built particle (.extxyz + .json with key and checksum) that was edited, or whose JSON belongs to another
    entry, is moved aside and rebuilt (the build itself is stubbed: this checks the cache, not the physics)."""
    from aetbench.structures import command
    from aetbench.types import AtomicModel

    builds = []

    def fake_build(rec, seed, log=None):
        builds.append(seed)
        rng = np.random.default_rng(seed)
        return AtomicModel(rng.uniform(-5, 5, (20, 3)), np.array(["Si"] * 20))

    monkeypatch.setattr(command, "build_from_recipe", fake_build)
    monkeypatch.setattr(command, "_analyse", lambda rec, model: {"n_atoms": len(model)})
    rec = _write(tmp_path / "tinyrec.toml", 'name = "tinyrec"\nseed = 7\n[composition]\nSi = 20\n[packing]\n'
                                            'density = 0.05\n[potential]\nkind = "stillinger-weber"\n')
    first = command.build_structure(str(rec), cache_dir=tmp_path / "c")
    (xyz,) = (tmp_path / "c" / "structures").glob("*.extxyz")
    assert command.build_structure(str(rec), cache_dir=tmp_path / "c").positions.tolist() == first.positions.tolist()
    assert builds == [7] and capsys.readouterr().err == ""
    text = xyz.read_text().splitlines()
    text[2] = text[2].replace(text[2].split()[1], "9.99999999", 1)   # one edited coordinate
    xyz.write_text("\n".join(text) + "\n")
    again = command.build_structure(str(rec), cache_dir=tmp_path / "c")
    err = capsys.readouterr().err.splitlines()
    assert builds == [7, 7] and np.array_equal(again.positions, first.positions)
    assert len(err) == 2 and "checksum mismatch" in err[0] and str(xyz.with_suffix(".json")) in err[0], err
    # a JSON record copied from another entry (another seed) is refused too
    command.build_structure(str(rec), seed=8, cache_dir=tmp_path / "c")
    j7, j8 = sorted((tmp_path / "c" / "structures").glob("*.json"), key=lambda p: p.stat().st_mtime)
    shutil.copy(j8, j7)
    capsys.readouterr()
    command.build_structure(str(rec), cache_dir=tmp_path / "c")
    assert builds == [7, 7, 8, 7] and "holds another entry's key" in capsys.readouterr().err
