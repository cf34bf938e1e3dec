"""A job stopped from outside (SIGTERM) ends its log with a line that says so: for a Slurm job,
whether its time limit was the cause. Scripts are real subprocesses; Slurm's `scontrol` is a
stand-in here (tests/test_slurm.py runs a job into a real time limit)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

JOB = textwrap.dedent(
    f"""
    import sys, time
    sys.path.insert(0, {str(ROOT / "workflow" / "scripts")!r})
    from latentsky.logs import log_to_file
    log = log_to_file(sys.argv[1])
    log.info("working")
    print("ready", flush=True)
    time.sleep(60)
    """
)


def stopped_job(tmp_path: Path, env: dict) -> tuple[int, list[str]]:
    """Run a job script that logs through log_to_file, SIGTERM it; (exit code, log lines)."""
    script = tmp_path / "job.py"
    script.write_text(JOB)
    log = tmp_path / "job.log"
    proc = subprocess.Popen(
        [sys.executable, str(script), str(log)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={**os.environ, **env},
        cwd=tmp_path,
    )
    assert proc.stdout.readline().strip() == "ready"
    proc.send_signal(signal.SIGTERM)
    code = proc.wait(timeout=20)
    return code, log.read_text().splitlines()


def fake_scontrol(tmp_path: Path, fields: str) -> dict:
    """A `scontrol` on PATH that describes the job with ``fields``."""
    folder = tmp_path / "bin"
    folder.mkdir()
    tool = folder / "scontrol"
    tool.write_text(f"#!/bin/sh\necho 'JobId=77 JobName=x {fields}'\n")
    tool.chmod(0o755)
    return {"PATH": f"{folder}:{os.environ['PATH']}", "SLURM_JOB_ID": "77"}


def test_a_killed_job_says_so_in_its_last_log_line(tmp_path):
    env = {k: "" for k in ("SLURM_JOB_ID",)}
    code, lines = stopped_job(tmp_path, env)
    assert code == 128 + signal.SIGTERM
    assert "working" in lines[0]
    assert "stopped by SIGTERM" in lines[-1] and "rerun to resume" in lines[-1]


@pytest.mark.parametrize(
    ("fields", "phrase"),
    [
        (
            "JobState=COMPLETING Reason=TimeLimit TimeLimit=00:30:00",
            "Slurm job 77 reached its time limit (TimeLimit=00:30:00)",
        ),
        ("JobState=TIMEOUT Reason=None TimeLimit=00:30:00", "reached its time limit"),
        (
            "JobState=CANCELLED Reason=None TimeLimit=00:30:00",
            "Slurm job 77 was stopped before its time limit (state CANCELLED",
        ),
    ],
)
def test_a_slurm_job_s_last_log_line_says_whether_its_time_limit_stopped_it(
    tmp_path, fields, phrase
):
    code, lines = stopped_job(tmp_path, fake_scontrol(tmp_path, fields))
    assert code == 128 + signal.SIGTERM
    assert phrase in lines[-1], lines[-1]
    assert "--set-resources" in lines[-1] or "before its time limit" in lines[-1]


def test_a_rerun_of_a_job_waits_for_its_orphan(tmp_path):
    """Two processes of one job (an orphan of a killed Snakemake and the rerun's): the second
    starts its work only when the first has ended."""
    script = tmp_path / "job.py"
    script.write_text(JOB.replace("time.sleep(60)", "time.sleep(float(sys.argv[2]))"))
    log = tmp_path / "job.log"

    def start(seconds):
        return subprocess.Popen(
            [sys.executable, str(script), str(log), str(seconds)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=tmp_path,
        )

    orphan = start(1.5)
    assert orphan.stdout.readline().strip() == "ready"
    rerun = start(0)
    assert rerun.stdout.readline().strip() == "ready"  # only once the orphan is done
    assert orphan.poll() is not None
    assert "is still running, an orphan" in rerun.communicate(timeout=20)[1]
    orphan.communicate()
