"""Interrupt, resume, repeat: SIGKILL real runs mid-projection and mid-training, resume, compare.

Every test compares results (Zarr stores, tables, weights, summary) with one uninterrupted run of
the same config, not just exit codes; bitwise, so the killed-and-resumed run is also the proof that
two runs of one config give identical results on the CPU. The config is tests/data/tiny.yaml with 4
training epochs.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import time

import psutil
import pytest
import torch
import xarray as xr
from run_helpers import (
    CONFIG,
    EPOCHS,
    RESULTS,
    assert_same_results,
    copy_run,
    fresh_workdir,
    reference_run,
    run_until,
    start_snakemake,
    unlock,
    write_test_config,
)
from workflow_helpers import run_snakemake

pytestmark = pytest.mark.slow

PROJECTED = RESULTS / "projected" / "fsim"  # the test config's one site
RESUME_CHECKPOINT = RESULTS / "model" / "resume" / "last.pt"
TRAIN_LOG = "results/logs/train_autoencoder/tiny.log"


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    return reference_run(tmp_path_factory)


def complete_stores(work):
    """Stores under their final names (a store being written is a hidden .<name>.tmp-* folder)."""
    return sorted(p for p in (work / PROJECTED).glob("*.zarr") if not p.name.startswith("."))


def projection_in_progress(work):
    if not (work / PROJECTED).is_dir():
        return False
    being_written = list((work / PROJECTED).glob(".*.tmp-*"))
    return bool(being_written) or len(complete_stores(work)) >= 2


def training_checkpointed(work):
    """At least one epoch done and checkpointed, so a resume has something to resume from."""
    return (work / RESUME_CHECKPOINT).exists()


def test_kill_mid_projection_then_mid_training_and_resume(reference, tmp_path):
    work = fresh_workdir(tmp_path / "killed")
    run = ["--cores", "2", "--configfile", CONFIG]
    n_dates = len(complete_stores(reference))

    run_until(work, run, projection_in_progress, "projection in progress")
    stores = complete_stores(work)
    assert len(stores) < n_dates, "the kill came too late: every date was projected"
    assert not (work / RESULTS / "images.zarr").exists()
    # No half-written store where a complete one is expected: each store under its final name is
    # exactly the uninterrupted run's.
    for store in stores:
        xr.testing.assert_identical(
            xr.open_zarr(store), xr.open_zarr(reference / PROJECTED / store.name)
        )

    unlock(work)  # a killed Snakemake leaves its lock behind
    run_until(work, [*run, "--rerun-incomplete"], training_checkpointed, "a training checkpoint")
    assert len(complete_stores(work)) == n_dates and (work / RESULTS / "images.zarr").exists()
    assert not (work / RESULTS / "model/checkpoint.pt").exists(), (
        "the kill came too late: training had finished"
    )

    unlock(work)
    # metrics.csv, rewritten after every epoch, is left behind by the killed training job:
    # without --rerun-incomplete Snakemake refuses to go on.
    refused = run_snakemake(work, *run, "--dry-run", check=False)
    assert refused.returncode != 0, refused.stdout[-3000:]
    assert "--rerun-incomplete" in refused.stdout, refused.stdout[-3000:]
    run_snakemake(work, *run, "--rerun-incomplete")

    assert "starting from scratch" in (work / TRAIN_LOG).read_text()  # training.resume: false
    assert_same_results(reference, work)


def test_training_resumes_from_its_last_checkpoint(reference, tmp_path):
    work = copy_run(reference, tmp_path / "resumed")
    # A finished run may leave its resume checkpoint (all epochs done) behind: train anew here.
    shutil.rmtree(work / RESUME_CHECKPOINT.parent, ignore_errors=True)
    config = write_test_config(work, "config/resume_on.yaml", resume=True)
    run = ["--cores", "2", "--configfile", config]

    # training.resume changed, so Snakemake retrains (and redoes everything downstream).
    run_until(work, run, training_checkpointed, "a training checkpoint")
    assert not (work / RESULTS / "model/checkpoint.pt").exists(), (
        "the kill came too late: training had finished"
    )
    epoch = torch.load(work / RESUME_CHECKPOINT, weights_only=True)["epoch"]
    assert 1 <= epoch < EPOCHS

    unlock(work, config)
    run_snakemake(work, *run, "--rerun-incomplete")

    log = (work / TRAIN_LOG).read_text()
    assert f"resuming from epoch {epoch} of {EPOCHS}" in log, log
    assert "starting from scratch" not in log
    # Resumed training repeats exactly what the uninterrupted one did (CPU: bitwise).
    assert_same_results(reference, work)


def test_snakemake_alone_killed_its_orphan_writes_on_and_the_recipe_resumes(reference, tmp_path):
    """Only Snakemake's own process is killed (a lost terminal): the training job it started goes
    on as an orphan, writing its outputs. The README's recipe (unlock, rerun with
    --rerun-incomplete), run while the orphan still works: the rerun's training waits for the
    orphan to end, then redoes it, and the results are the uninterrupted run's."""
    work = copy_run(reference, tmp_path / "orphan")
    shutil.rmtree(work / RESUME_CHECKPOINT.parent, ignore_errors=True)
    run = ["--cores", "2", "--configfile", CONFIG]
    with open(work / "first.log", "w") as output:
        # Training again (and what follows), on the data the reference run left.
        proc = start_snakemake(work, *run, "--forcerun", "train_autoencoder", output=output)
        deadline = time.monotonic() + 600
        while not training_checkpointed(work):
            assert proc.poll() is None, (work / "first.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "no training checkpoint in time"
            time.sleep(0.05)
        jobs = psutil.Process(proc.pid).children(recursive=True)
        os.kill(proc.pid, signal.SIGKILL)  # Snakemake alone
        proc.wait(timeout=30)
    orphans = [job for job in jobs if job.is_running()]
    assert orphans, "the job must outlive Snakemake"
    # Held still until the rerun's job is waiting for it, so that the two certainly overlap.
    for job in orphans:
        job.suspend()
    try:
        unlock(work)
        with open(work / "rerun.log", "w") as output:
            rerun = start_snakemake(work, *run, "--rerun-incomplete", output=output)
            deadline = time.monotonic() + 300
            while "is still running, an orphan" not in (work / "rerun.log").read_text():
                assert rerun.poll() is None, (work / "rerun.log").read_text()[-3000:]
                assert time.monotonic() < deadline, "the rerun did not wait for the orphan"
                time.sleep(0.1)
            for job in orphans:
                job.resume()
            assert rerun.wait(timeout=900) == 0, (work / "rerun.log").read_text()[-3000:]
    finally:
        for job in orphans:  # long done by now; never leave one behind
            with contextlib.suppress(psutil.NoSuchProcess):
                job.kill()
    assert_same_results(reference, work)
