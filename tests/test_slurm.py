"""The workflow on a real Slurm cluster, through the shipped profile: `snakemake --profile slurm`.

Needs a running Slurm: `sudo bash .ci/slurm-up.sh` sets up a single-node cluster on this machine
(CI does). Without one these tests skip, saying why, and fail instead under REQUIRE_SLURM=1.
The run is the test config of tests/run_helpers.py, in a scratch copy of the repository (profile
included), compared with a local run of the same config.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from collections import Counter

import pytest
import yaml
from run_helpers import (
    CONFIG,
    assert_same_results,
    fresh_workdir,
    kill_run,
    reference_run,
    start_snakemake,
)
from workflow_helpers import ROOT, run_snakemake

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]

INIT_SECONDS = 1  # then every 1, 11, 21 ... s: the plugin adds 10 s per round without news
HARD_TIMEOUT_S = 720  # a stuck snakemake (e.g. waiting on a status it never gets) is SIGKILLed

# What the test command line adds to the profile, and why.
TEST_CLUSTER_ARGS = [
    # The test cluster has no accounting database, so the plugin's default status check (sacct)
    # never sees a job and the run waits forever. squeue shows finished jobs for MinJobAge seconds,
    # which must be at least 3 x the initial wait, or the plugin falls back to sacct.
    "--slurm-status-command",
    "squeue",
    "--slurm-init-seconds-before-status-checks",
    str(INIT_SECONDS),
    # The test cluster has no GPU: train_autoencoder's gpu=1 would make sbatch refuse the job.
    "--set-resources",
    "train_autoencoder:gpu=0",
    # Its one node has 2 CPUs: with one thread each, two dates are projected at a time.
    "--set-threads",
    "project_images=1",
    # Conda channels are out of reach here, so instead of the profile's conda environments every
    # job runs in this Python environment, as the local run does (no rule has envmodules, so
    # env-modules changes nothing else).
    "--software-deployment-method",
    "env-modules",
    # Keep Slurm's log of every job (deleted after success by default), to check where jobs ran.
    "--slurm-keep-successful-logs",
]
# No account or partition is passed: on the test cluster the plugin's account guess fails and it
# submits without one, and it picks the default partition from sinfo.

LOCAL_RULES = {
    "generate_demo_mirror",
    "download_images",
    "download_skymaps",
    "download_scintillation",
    # The report's small HTML tables: a second each, not worth a queue wait.
    "report_configuration",
    "report_summary",
    "report_sigma_phi_fits",
}
PER_DATE_RULES = {"project_images"}
SLURM_RULES = {
    "build_projection_operator",
    "project_images",
    "stack_images",
    "extract_sigma_phi",
    "train_autoencoder",
    "encode_latents",
    "embed_latents",
    "cluster_embedding",
    "fit_sigma_phi",
    "summarise_results",
    "plot_reconstructions",
    "plot_training_curves",
    "plot_embeddings_by_label",
    "plot_clusters",
    "plot_cluster_label_table",
    "plot_sigma_phi_distributions",
}


def _command(*args: str) -> str | None:
    """Output of a Slurm command, or None if it is missing or fails."""
    try:
        result = subprocess.run(args, capture_output=True, text=True, timeout=20)
    except (FileNotFoundError, subprocess.TimeoutExpired):
        return None
    return result.stdout if result.returncode == 0 else None


def slurm_problem() -> str | None:
    """Why no test run can go through Slurm here, or None if one can."""
    if shutil.which("sbatch") is None:
        return (
            "no Slurm here (sbatch not found); `sudo bash .ci/slurm-up.sh` sets up a test cluster"
        )
    if "UP" not in (_command("scontrol", "ping") or ""):
        return "slurmctld does not answer `scontrol ping`; `sudo bash .ci/slurm-up.sh` starts it"
    states = (_command("sinfo", "--noheader", "--format=%T") or "").split()
    if not any(s.rstrip("*") in ("idle", "mixed", "allocated", "completing") for s in states):
        return f"no Slurm node is up (sinfo states: {states})"
    config = _command("scontrol", "show", "config") or ""
    match = re.search(r"^MinJobAge\s*=\s*(\d+)", config, re.M)
    if not match or int(match.group(1)) < 3 * INIT_SECONDS:
        return (
            f"MinJobAge must be at least {3 * INIT_SECONDS} s for squeue status checks "
            f"(scontrol show config: {match.group(0) if match else 'no MinJobAge'})"
        )
    return None


@pytest.fixture(scope="module")
def slurm():
    problem = slurm_problem()
    if problem:
        if os.environ.get("REQUIRE_SLURM") == "1":
            pytest.fail(f"{problem}, and REQUIRE_SLURM=1 is set")
        pytest.skip(problem)


def cancel_jobs_of(work) -> None:
    """scancel the Slurm jobs whose working directory is ``work`` (after a killed run)."""
    for line in (_command("squeue", "--noheader", "--format=%i %Z") or "").splitlines():
        job, _, workdir = line.partition(" ")
        if workdir.strip() == str(work):
            subprocess.run(["scancel", job], check=False)


TIME_LIMIT_JOB = """
import sys, time
sys.path.insert(0, {scripts!r})
from latentsky.logs import log_to_file
log = log_to_file(sys.argv[1])
log.info("working")
time.sleep(600)
"""


@pytest.fixture(scope="module")
def timed_out_job(slurm, tmp_path_factory):
    """A job that logs like every rule script and runs into its Slurm time limit (the shortest
    Slurm enforces: a minute), submitted before the workflow run so that the two overlap."""
    folder = tmp_path_factory.mktemp("timelimit")
    (folder / "job.py").write_text(TIME_LIMIT_JOB.format(scripts=str(ROOT / "workflow/scripts")))
    batch = folder / "job.sh"
    batch.write_text(
        f"#!/bin/bash\nexec {sys.executable} {folder / 'job.py'} {folder / 'job.log'}\n"
    )
    batch.chmod(0o755)
    submitted = subprocess.run(
        ["sbatch", "--parsable", "--time=0:05", "--cpus-per-task=1", "--mem=200"]
        + ["--chdir", str(folder), "--output", str(folder / "slurm.log"), str(batch)],
        capture_output=True,
        text=True,
        check=True,
    )
    return folder, submitted.stdout.strip().split(";")[0]


@pytest.fixture(scope="module")
def slurm_run(slurm, timed_out_job, tmp_path_factory):
    """`snakemake --profile slurm` in the repository root of a scratch copy, under a hard timeout."""
    work = fresh_workdir(tmp_path_factory.mktemp("slurm"), with_profile=True)
    log = work / "slurm-run.log"
    with open(log, "w") as output:
        proc = start_snakemake(
            work, "--profile", "slurm", "--configfile", CONFIG, *TEST_CLUSTER_ARGS, output=output
        )
        try:
            proc.wait(timeout=HARD_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            kill_run(proc)  # a stuck snakemake stops on SIGKILL only
            cancel_jobs_of(work)
            pytest.fail(
                f"snakemake --profile slurm was still running after {HARD_TIMEOUT_S} s; "
                f"killed it:\n{log.read_text()[-6000:]}"
            )
    output = log.read_text()
    assert proc.returncode == 0, output[-6000:]
    return work, output


def submitted_jobs(output: str) -> dict[int, int]:
    """Snakemake job id -> Slurm job id, from the plugin's submission messages."""
    found = re.findall(r"Job (\d+) has been submitted with SLURM jobid (\d+) ", output)
    return {int(job): int(slurm_job) for job, slurm_job in found}


def finished_jobs(output: str) -> dict[int, str]:
    """Snakemake job id -> rule, for every job that finished."""
    found = re.findall(r"Finished jobid: (\d+) \(Rule: (\w+)\)", output)
    return {int(job): rule for job, rule in found}


def job_block(log: str, rule: str) -> dict[str, int]:
    """Threads and mem_mb of the job block that Snakemake printed for ``rule`` in ``log``."""
    match = re.search(rf"^rule {rule}:\n((?:    .*\n)+)", log, re.M)
    assert match, f"no job block of rule {rule} in its Slurm log"
    body = match.group(1)
    threads = re.search(r"threads: (\d+)", body)
    return {
        "threads": int(threads.group(1)) if threads else 1,
        "mem_mb": int(re.search(r"mem_mb=(\d+)", body).group(1)),
    }


def scontrol_job(slurm_job: int) -> dict[str, str]:
    text = _command("scontrol", "show", "job", "--oneliner", str(slurm_job))
    assert text, f"scontrol knows no job {slurm_job} (MinJobAge too short?)"
    return dict(item.split("=", 1) for item in text.split() if "=" in item)


def test_profile_is_documented_and_asks_for_what_the_issue_says():
    text = (ROOT / "slurm" / "config.yaml").read_text()
    profile = yaml.safe_load(text)
    assert profile["executor"] == "slurm"
    assert profile["software-deployment-method"] == "conda"
    assert {"mem_mb", "runtime"} <= set(profile["default-resources"])
    # Account and partition are the user's to fill in: present, commented out.
    assert re.search(r"^\s*#\s*slurm_account:", text, re.M)
    assert re.search(r"^\s*#\s*slurm_partition:", text, re.M)
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if re.match(r"^[a-z-]+:", line):
            assert i > 0 and lines[i - 1].startswith("#"), (
                f"profile entry without a comment: {line}"
            )


def test_profile_dry_run_needs_no_cluster(tmp_path):
    work = fresh_workdir(tmp_path / "dry", with_profile=True)
    out = run_snakemake(
        work, "--profile", "slurm", "--configfile", CONFIG, "--sdm", "env-modules", "--dry-run"
    ).stdout
    assert "Using profile slurm" in out
    assert "train_autoencoder" in out


def test_every_job_went_through_slurm(slurm_run):
    work, output = slurm_run
    assert "Using profile slurm for setting default command line arguments" in output
    finished = finished_jobs(output)
    submitted = submitted_jobs(output)
    n_dates = len(list((work / "results/tiny/projected").glob("*/*.zarr")))

    assert Counter(finished[job] for job in submitted) == Counter(
        {rule: n_dates if rule in PER_DATE_RULES else 1 for rule in SLURM_RULES}
    )
    # Everything else ran on the submitting host: the downloads, the report tables (and all).
    assert {finished[job] for job in set(finished) - set(submitted)} == LOCAL_RULES | {"all"}
    assert set(re.findall(r"^localrule (\w+):", output, re.M)) == LOCAL_RULES | {"all"}

    for job, slurm_job in submitted.items():
        rule = finished[job]
        where = f"{rule} (Slurm job {slurm_job})"
        info = scontrol_job(slurm_job)
        assert info["JobState"] == "COMPLETED" and info["ExitCode"] == "0:0", where
        assert info["WorkDir"] == str(work), where
        assert info["Comment"].startswith(f"rule_{rule}"), where
        assert "gres" not in info["TRES"], where
        # Slurm's log of the job shows the rule running inside it, with the resources the rule
        # declares, which are those Slurm allocated.
        declared = job_block(open(info["StdOut"]).read(), rule)
        assert int(info["NumCPUs"]) == declared["threads"], where
        assert info["MinMemoryNode"] == f"{declared['mem_mb']}M", where


def test_results_equal_a_local_run(slurm_run, tmp_path_factory):
    work, _ = slurm_run
    assert_same_results(reference_run(tmp_path_factory), work, exact=False, rtol=1e-5)


def test_a_job_killed_at_its_time_limit_says_so_in_its_last_log_line(timed_out_job):
    folder, job = timed_out_job
    deadline = time.monotonic() + 300
    while job in (_command("squeue", "--noheader", "--format=%i") or "").split():
        assert time.monotonic() < deadline, f"Slurm job {job} outlived its time limit"
        time.sleep(2)
    last = (folder / "job.log").read_text().splitlines()[-1]
    assert f"Slurm job {job} reached its time limit (TimeLimit=00:01:00)" in last, last
    assert "rerun to resume" in last
    assert "DUE TO TIME LIMIT" in (folder / "slurm.log").read_text()
