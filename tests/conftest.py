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
