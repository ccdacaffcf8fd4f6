"""Package data and the installed wheel: scenarios, recipes and benchmarks ship inside the package.

The wheel tests build a wheel from a copy of the sources (offline: ``--no-build-isolation``, needs the ``wheel``
package of the ``[test]`` extra), install it with ``--no-deps`` into a fresh venv made with
``--system-site-packages`` (the dependencies come from this interpreter) and run the ``aetbench`` console script of
that venv from an empty folder, with ``PYTHONPATH`` removed, so the installed copy, not this checkout, runs.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pandas as pd
import pytest

import aetbench
from aetbench.cli import _resolve_scenario, main
from aetbench.data import find_toml, list_toml, shipped_dir
from aetbench.io.files import AetbenchError
from aetbench.structures.recipe import list_recipes, resolve_recipe

REPO = Path(__file__).resolve().parents[1]
SCEN = shipped_dir("scenarios")


# ------------------------------------------------------------------------------------------------ name lookup

def test_shipped_folders_are_inside_the_package():
    pkg = Path(aetbench.__file__).resolve().parent
    assert SCEN == pkg / "data" / "scenarios" and (SCEN / "quick.toml").is_file()
    assert shipped_dir("structures") == pkg / "data" / "structures"
    assert not (REPO / "scenarios").exists() and not (REPO / "structures").exists()   # one copy, in the package


def test_scenario_names_resolve_to_shipped_files(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)                        # no ./scenarios here
    assert _resolve_scenario("quick") == SCEN / "quick.toml"
    assert _resolve_scenario("paper/asi208") == SCEN / "paper" / "asi208.toml"
    assert _resolve_scenario("asi208") == SCEN / "paper" / "asi208.toml"           # a stem in one subfolder
    # the source checkout's old form still works where no such file exists
    assert _resolve_scenario("scenarios/paper/asi208.toml") == SCEN / "paper" / "asi208.toml"
    with pytest.raises(AetbenchError, match=r"^scenario 'nope' not found: .*aetbench list"):
        _resolve_scenario("nope")
    assert _resolve_scenario("my/nope.toml") == Path("my/nope.toml")                # the loader reports it


def test_user_files_are_found_by_path_first(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    mine = tmp_path / "scenarios" / "quick.toml"
    mine.parent.mkdir()
    mine.write_text('name = "mine"\n')
    other = tmp_path / "my" / "scen.toml"
    other.parent.mkdir()
    other.write_text('name = "other"\n')
    assert _resolve_scenario("quick").resolve() == mine                             # ./scenarios before shipped
    assert _resolve_scenario("my/scen.toml") == Path("my/scen.toml")
    assert _resolve_scenario("paper/asi208") == SCEN / "paper" / "asi208.toml"      # not shadowed: still shipped
    rec = tmp_path / "structures" / "x.toml"
    rec.parent.mkdir()
    rec.write_text("")
    assert resolve_recipe("./structures/x.toml") == Path("./structures/x.toml")
    assert resolve_recipe("asi208") == shipped_dir("structures") / "asi208.toml"
    # $AETBENCH_STRUCTURES is searched before the shipped recipes, for names
    own = tmp_path / "own"
    own.mkdir()
    (own / "asi208.toml").write_text("")
    monkeypatch.setenv("AETBENCH_STRUCTURES", str(own))
    assert resolve_recipe("asi208") == own / "asi208.toml"
    assert "sio2_tiny" in list_recipes()                                            # the shipped ones stay listed
    with pytest.raises(AetbenchError, match=r"^structure recipe 'nope' not found in .*known: asi208"):
        resolve_recipe("nope")


def test_ambiguous_stem_is_refused(tmp_path):
    for sub in ("a", "b"):
        (tmp_path / sub).mkdir()
        (tmp_path / sub / "x.toml").write_text("")
    with pytest.raises(LookupError, match=r"'x' is ambiguous in .*: a/x, b/x"):
        find_toml("x", [tmp_path], "scenarios")
    assert find_toml("a/x", [tmp_path], "scenarios") == tmp_path / "a" / "x.toml"
    assert find_toml("../x", [tmp_path / "a"], "scenarios") is None                 # no escaping the folder
    assert [n for n, _ in list_toml([tmp_path])] == ["a/x", "b/x"]


def test_list_names_the_shipped_scenarios(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["list"]) == 0
    names = {ln.split()[0] for ln in capsys.readouterr().out.splitlines()[1:] if ln.startswith("  ")}
    assert {"quick", "smoke", "paper/asi208", "real/ta-film"} <= names


def test_version_is_set_in_one_place(capsys):
    from aetbench._version import __version__

    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0 and capsys.readouterr().out.strip() == f"aetbench {__version__}"
    assert aetbench.__version__ == __version__
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert "version" not in project["project"] and "version" in project["project"]["dynamic"]
    assert project["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "aetbench._version.__version__"}


# ------------------------------------------------------------------------------------------------ installed wheel

@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """A venv holding the wheel built from this checkout; returns (venv bin folder, empty work folder, env)."""
    try:
        import wheel  # noqa: F401 - setuptools < 70.1 builds wheels with it
    except ImportError:
        msg = "the 'wheel' package is needed to build a wheel offline: pip install -e '.[test]'"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(msg)
        pytest.skip(msg)
    base = tmp_path_factory.mktemp("wheel")
    src = base / "src"
    tracked = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "pyproject.toml", "README.md",
                              "aetbench"], cwd=REPO, capture_output=True, text=True, check=True).stdout.split()
    for rel in tracked:                               # a copy: the build writes build/ and *.egg-info beside it
        if (REPO / rel).is_file():
            (src / rel).parent.mkdir(parents=True, exist_ok=True)
            (src / rel).write_bytes((REPO / rel).read_bytes())
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP")}
    env.update(MPLBACKEND="Agg", AETBENCH_CACHE=str(base / "cache"), PIP_NO_INDEX="1",
               PIP_DISABLE_PIP_VERSION_CHECK="1")
    env.pop("CI", None)                               # progress output is not the point here; keep it quiet anyway

    def run(*cmd, cwd=base):
        p = subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
        assert p.returncode == 0, f"{cmd}: {p.stderr[-3000:]}"
        return p.stdout

    run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", base / "dist", src)
    (whl,) = (base / "dist").glob("aetbench-*.whl")
    run(sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", base / "venv")
    py = base / "venv" / "bin" / "python"
    run(py, "-m", "pip", "install", "--no-deps", "-q", whl)     # this interpreter's pip, seen through the venv
    work = base / "work"
    work.mkdir()
    return base / "venv" / "bin", work, run


def test_wheel_ships_the_data(installed):
    import zipfile

    (whl,) = (installed[1].parent / "dist").glob("aetbench-*.whl")
    names = set(zipfile.ZipFile(whl).namelist())
    shipped = {f"aetbench/data/{p.relative_to(SCEN.parent).as_posix()}" for p in SCEN.rglob("*.toml")}
    shipped |= {f"aetbench/data/structures/{n}.toml" for n in list_recipes()}
    assert shipped <= names, sorted(shipped - names)
    assert "aetbench/benchmarks/test_bench_score.py" in names and "aetbench/benchmarks/conftest.py" in names


def test_installed_wheel_runs_from_any_folder(installed):
    bin_, work, run = installed
    where = run(bin_ / "python", "-c", "import aetbench; print(aetbench.__file__)", cwd=work).strip()
    assert Path(where).is_relative_to(bin_.parent), where                          # the wheel's copy, not ours
    assert run(bin_ / "aetbench", "--version", cwd=work).strip() == f"aetbench {aetbench.__version__}"
    out = run(bin_ / "aetbench", "list", cwd=work)
    assert "  quick " in out and "  paper/asi208 " in out and "  liao2026 " in out
    assert "asi208" in run(bin_ / "aetbench", "structure", "show", "list", cwd=work).split()
    out = run(bin_ / "aetbench", "run", "smoke", "--quiet", cwd=work)
    report = Path(out.split("report: ")[1].strip())
    assert report.is_relative_to(work / "reports" / "smoke")
    scores = pd.read_csv(report.parent / "scores.csv")
    top = scores[(scores["dose"] == scores["dose"].max()) & (scores["protocol"] == "paper")]
    assert (scores["n_truth"] == 12).all() and (top["rate_pct"] >= 90).all()        # measured 100 % at 1e7 e/Å²


@pytest.mark.slow
def test_installed_wheel_builds_asi208_runs_quick_and_benches(installed):
    """The issue's commands (several minutes on 2 cores): ``structure show asi208``, ``run quick``, ``bench``."""
    bin_, work, run = installed
    out = run(bin_ / "aetbench", "structure", "show", "asi208", cwd=work)
    assert "recipe" in out and "asi208" in out and "coordination" in out
    out = run(bin_ / "aetbench", "run", "quick", "--quiet", cwd=work)
    report = Path(out.split("report: ")[1].strip())
    assert report.is_relative_to(work / "reports" / "quick")
    scores = pd.read_csv(report.parent / "scores.csv")
    assert set(scores["method"]) >= {"resire", "sirt"}
    out = run(bin_ / "aetbench", "bench", "--", "-k", "score", cwd=work)              # the shipped benchmarks
    assert re.search(r"\b[1-9]\d* passed", out), out[-2000:]
