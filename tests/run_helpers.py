"""Interrupt, resume and compare real workflow runs (tests/test_resume.py and tests/test_slurm.py).

A run is interrupted the way a crash or an out-of-time node does it: SIGKILL to Snakemake *and* the
job processes it started (its whole process group), so nothing gets a chance to clean up.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import psutil
import torch
import xarray as xr
import yaml
from filelock import FileLock
from workflow_helpers import ROOT, SNAKEMAKE, copy_workflow, run_snakemake

DATASET = "tiny"
RESULTS = Path("results") / DATASET
CONFIG = "config/resume.yaml"
#: Training epochs of the test config (tiny.yaml trains 2): a kill can land between checkpoints.
EPOCHS = 4

# Every result the comparisons cover (relative to results/<dataset>/).
ZARR_STORES = ["images.zarr", "sigma_phi.zarr", "latents.zarr"]
CSV_TABLES = [
    "embedding/coordinates.csv",
    "embedding.csv",
    "sigma_phi_fits.csv",
    "model/metrics.csv",
]
TIMING_COLUMNS = ["seconds"]  # wall-clock columns: never reproducible

_reference: dict[str, Path] = {}


def write_test_config(work: Path, name: str = CONFIG, **training) -> str:
    """tests/data/tiny.yaml with ``EPOCHS`` epochs and ``training`` overrides, written to ``name``."""
    config = yaml.safe_load((ROOT / "tests" / "data" / "tiny.yaml").read_text())
    config["training"].update({"epochs": EPOCHS, **training})
    (work / name).parent.mkdir(parents=True, exist_ok=True)
    (work / name).write_text(yaml.safe_dump(config, sort_keys=False))
    return name


def fresh_workdir(destination: Path, with_profile: bool = False) -> Path:
    """A clean copy of the workflow with the test config (and the Slurm profile, if asked)."""
    work = copy_workflow(destination)
    if with_profile:
        shutil.copytree(ROOT / "slurm", work / "slurm")
    write_test_config(work)
    return work


def reference_run(tmp_path_factory) -> Path:
    """One uninterrupted local run of the test config, made once and shared by the whole session.

    Under pytest-xdist the test processes share it too: the first that needs it makes it in the
    session's common temporary folder while the others wait on a file lock (four test files use
    it; each process making its own cost a minute or more of CI per copy). Read it, never write
    to it: tests that need to change something copy it first.
    """
    if "local" not in _reference:
        # Under xdist getbasetemp() is this process's own folder inside the session's
        # (pytest-N/popen-gwK); without it, the session's folder itself. Either is new per session.
        shared = tmp_path_factory.getbasetemp()
        if os.environ.get("PYTEST_XDIST_WORKER") is not None:
            shared = shared.parent
        work, done = shared / "reference", shared / "reference.done"
        with FileLock(shared / "reference.lock"):
            if not done.exists():
                shutil.rmtree(work, ignore_errors=True)  # a process that failed half-way
                fresh_workdir(work)
                run_snakemake(work, "--cores", "2", "--configfile", CONFIG)
                done.touch()
        _reference["local"] = work
    return _reference["local"]


# --------------------------------------------------------------------------------------------
# Running and killing


def start_snakemake(work: Path, *args: str, output) -> subprocess.Popen:
    """Start Snakemake in ``work``, writing to the open file ``output``, in a session of its own
    (a process group that can be killed whole)."""
    return subprocess.Popen(
        [*SNAKEMAKE, *args],
        cwd=work,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        stdout=output,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def kill_run(proc: subprocess.Popen) -> None:
    """SIGKILL Snakemake and every process it started, as a crash would; wait until all are gone."""
    try:
        children = psutil.Process(proc.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        children = []
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    for child in children:  # also those that left the process group
        try:
            child.kill()
        except psutil.NoSuchProcess:
            pass
    proc.wait(timeout=30)
    deadline = time.monotonic() + 30
    while any(_alive(child) for child in children):
        assert time.monotonic() < deadline, f"processes survived SIGKILL: {children}"
        time.sleep(0.1)


def _alive(process: psutil.Process) -> bool:
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def run_until(
    work: Path,
    args: list[str],
    condition: Callable[[Path], bool],
    what: str,
    timeout: float = 600,
) -> str:
    """Run Snakemake in ``work`` and SIGKILL it as soon as ``condition(work)`` holds.

    Returns Snakemake's output. Fails if the run ends, or ``timeout`` passes, before the condition.
    """
    log = work / f"killed-{time.time_ns()}.log"
    with open(log, "w") as output:
        proc = start_snakemake(work, *args, output=output)
        deadline = time.monotonic() + timeout
        try:
            while not condition(work):
                if proc.poll() is not None:
                    raise AssertionError(
                        f"snakemake ended (exit {proc.returncode}) before {what}:\n"
                        f"{log.read_text()[-4000:]}"
                    )
                if time.monotonic() > deadline:
                    raise AssertionError(
                        f"no {what} within {timeout} s:\n{log.read_text()[-4000:]}"
                    )
                time.sleep(0.05)
        finally:
            kill_run(proc)
    return log.read_text()


def unlock(work: Path, config: str = CONFIG) -> None:
    """``snakemake --unlock``: a killed Snakemake leaves its lock behind (documented in the README)."""
    run_snakemake(work, "--unlock", "--configfile", config)


def copy_run(source: Path, destination: Path) -> Path:
    """A copy of a finished run, results and Snakemake's metadata included (mtimes preserved)."""
    shutil.copytree(source, destination, symlinks=True)
    return destination


# --------------------------------------------------------------------------------------------
# Comparing results


def _decoded(attrs: dict) -> dict:
    """Attributes with JSON-encoded strings decoded (their key order is not part of the result)."""
    out = {}
    for key, value in attrs.items():
        try:
            out[key] = json.loads(value) if isinstance(value, str) else value
        except json.JSONDecodeError:
            out[key] = value
    return out


def _read_table(path: Path) -> pd.DataFrame:
    return pd.read_csv(path).drop(columns=TIMING_COLUMNS, errors="ignore")


def _assert_close_json(a, b, rtol: float, where: str) -> None:
    if isinstance(a, dict) and isinstance(b, dict):
        assert a.keys() == b.keys(), f"{where}: keys differ: {sorted(a)} vs {sorted(b)}"
        for key in a:
            _assert_close_json(a[key], b[key], rtol, f"{where}.{key}")
    elif isinstance(a, list) and isinstance(b, list):
        assert len(a) == len(b), f"{where}: lengths differ"
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _assert_close_json(x, y, rtol, f"{where}[{i}]")
    elif isinstance(a, float) or isinstance(b, float):
        np.testing.assert_allclose(a, b, rtol=rtol, atol=1e-12, err_msg=where)
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"


def _assert_state_dicts(a: dict, b: dict, exact: bool, rtol: float, where: str) -> None:
    assert a.keys() == b.keys(), f"{where}: different tensors"
    for key in a:
        if exact:
            assert torch.equal(a[key], b[key]), f"{where}.{key} differs"
        else:
            torch.testing.assert_close(a[key], b[key], rtol=rtol, atol=1e-6, msg=f"{where}.{key}")


def assert_same_results(a: Path, b: Path, exact: bool = True, rtol: float = 1e-5) -> None:
    """The results of two runs (workdirs ``a`` and ``b``) agree.

    ``exact``: bitwise (Zarr stores identical, attributes included; tables equal; same weights),
    as two CPU runs of one config must be. Otherwise floats agree to ``rtol``; cluster labels and
    counts must still be equal.
    """
    ra, rb = a / RESULTS, b / RESULTS
    dates_a = sorted(str(p.relative_to(ra)) for p in (ra / "projected").glob("*/*.zarr"))
    assert dates_a == sorted(str(p.relative_to(rb)) for p in (rb / "projected").glob("*/*.zarr"))
    for name in [*ZARR_STORES, *dates_a]:
        x, y = xr.open_zarr(ra / name), xr.open_zarr(rb / name)
        if exact:
            xr.testing.assert_identical(x, y)
        else:
            xr.testing.assert_allclose(x, y, rtol=rtol, atol=1e-6)
            assert _decoded(x.attrs) == _decoded(y.attrs), f"{name}: attributes differ"
    for name in CSV_TABLES:
        x, y = _read_table(ra / name), _read_table(rb / name)
        if "cluster" in x:
            pd.testing.assert_series_equal(x["cluster"], y["cluster"], check_exact=True)
        pd.testing.assert_frame_equal(x, y, check_exact=exact, rtol=rtol, obj=name)
    checkpoints = [torch.load(r / "model/checkpoint.pt", weights_only=True) for r in (ra, rb)]
    for part in ("model_state", "best_model_state"):
        _assert_state_dicts(checkpoints[0][part], checkpoints[1][part], exact, rtol, part)
    for key in ("epoch", "best_epoch", "model_config", "normalisation", "n_samples", "seed"):
        assert checkpoints[0][key] == checkpoints[1][key], f"checkpoint {key} differs"
    summaries = [json.loads((r / "summary.json").read_text()) for r in (ra, rb)]
    _assert_close_json(summaries[0], summaries[1], 0.0 if exact else rtol, "summary")
    with (
        np.load(ra / "model/reconstructions.npz") as x,
        np.load(rb / "model/reconstructions.npz") as y,
    ):
        for key in x.files:
            if exact or x[key].dtype.kind not in "fc":
                np.testing.assert_array_equal(x[key], y[key], err_msg=key)
            else:
                np.testing.assert_allclose(x[key], y[key], rtol=rtol, atol=1e-6, err_msg=key)
