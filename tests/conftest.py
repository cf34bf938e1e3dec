"""Shared fixtures: the real instrument files in ../shared/data and the library on sys.path."""

from __future__ import annotations

import os

# Idle OpenMP threads spinning on a shared 2-core machine made small t-SNE runs ten times slower.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "workflow" / "scripts"))

SHARED_DATA = ROOT.parent / "shared" / "data"

# The longest test files, longest first. Under `make test` (pytest-xdist, whole files per process)
# the first two start at once on different processes: the Slurm run, which mostly waits on the
# scheduler, overlaps the demo run, which keeps both cores busy.
LONGEST_FIRST = [
    "test_demo_science.py",
    "test_slurm.py",
    "test_resume.py",
    "test_ingest_bad_input.py",
    "test_multisite.py",
    "test_photometer_workflow.py",
]


def pytest_collection_modifyitems(items):
    def rank(item):
        name = item.path.name
        return LONGEST_FIRST.index(name) if name in LONGEST_FIRST else len(LONGEST_FIRST)

    items.sort(key=rank)  # stable: tests keep their order within a file


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The folder of real THEMIS files; skip (or fail under REQUIRE_SHARED_FIXTURES=1) if absent."""
    if not (SHARED_DATA / "themis").is_dir():
        message = f"real instrument files not found at {SHARED_DATA} (see ../shared/data/README.md)"
        if os.environ.get("REQUIRE_SHARED_FIXTURES") == "1":
            pytest.fail(message + " and REQUIRE_SHARED_FIXTURES=1 is set")
        pytest.skip(message)
    return SHARED_DATA


@pytest.fixture
def one_torch_thread():
    """Torch on one thread: the machine is shared, and small test models gain nothing from more."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
