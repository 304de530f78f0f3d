"""Shared fixtures: tiny checkpoints built once per session; the slow tier is opt-in."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


def pytest_addoption(parser):
    parser.addoption("--runslow", action="store_true", default=False, help="run slow tests (real weights)")


def pytest_collection_modifyitems(config, items):
    if config.getoption("--runslow") or os.environ.get("EDGEVLM_SLOW") == "1":
        return
    skip = pytest.mark.skip(reason="slow tier: run with --runslow or EDGEVLM_SLOW=1")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def tiny_root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("tiny")


@pytest.fixture(scope="session")
def tiny(tiny_root):
    """tiny(name) -> path of that tiny checkpoint, written once per test session."""
    from edgevlm.families.tiny import make_tiny

    made: dict[str, Path] = {}

    def get(name: str) -> Path:
        if name not in made:
            made[name] = make_tiny(name, tiny_root / name)
        return made[name]

    return get
