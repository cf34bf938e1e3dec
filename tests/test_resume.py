"""Interrupt, resume, repeat: SIGKILL real runs mid-projection and mid-training, resume, compare.

Every test compares results (Zarr stores, tables, weights, summary) with one uninterrupted run of
the same config, not just exit codes; bitwise, so the killed-and-resumed run is also the proof that
two runs of one config give identical results on the CPU. The config is tests/data/tiny.yaml with 4
training epochs.
"""

from __future__ import annotations

import shutil

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
