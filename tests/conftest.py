"""Shared fixtures.

Tests that need the paper's data use the ``paper_data`` fixture: the folder
given by ``AETBENCH_PAPER_DATA`` (default ``../shared/paper-data`` next to the
repository).  Outside CI they skip with a reason when it is missing; with
``CI=true`` a missing folder is a failure, so CI can never pass without them.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def paper_data_dir() -> Path:
    return Path(os.environ.get("AETBENCH_PAPER_DATA", REPO.parent / "shared" / "paper-data")).resolve()


@pytest.fixture(scope="session")
def paper_data() -> Path:
    d = paper_data_dir()
    if not (d / "README.md").exists():
        msg = f"paper data not found at {d} (set AETBENCH_PAPER_DATA)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(msg + "; these tests are mandatory in CI")
        pytest.skip(msg)
    return d


def pytest_collection_modifyitems(config, items):
    for item in items:
        if "paper_data" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.paper_data)


def tiny_scenario(name: str, methods=("fbp",), *, seed: int = 0, n_atoms: int = 12, image_size: int = 24,
                  step_deg: float = 12.0, doses=(1e7,), background: float = 0.0, extra: str = "") -> str:
    """Scenario text of the smallest run through the whole pipeline: ``n_atoms`` random Si atoms, linear tier,
    0.4 Å pixels, tilts −60…60° in ``step_deg`` steps; ``extra`` is appended (e.g. a ``[method_options.X]`` table)."""
    return (f'name = "{name}"\nmethods = {list(methods)!r}\nseed = {seed}\n'
            f'[structure]\nsource = "random"\nn_atoms = {n_atoms}\n'
            f'[simulation]\npixel_size = 0.4\nimage_size = {image_size}\n'
            f'tilt = {{ start = -60.0, stop = 60.0, step = {step_deg} }}\n'
            f'doses = {list(doses)!r}\nbackground = {background}\n{extra}\n').replace("'", '"')
