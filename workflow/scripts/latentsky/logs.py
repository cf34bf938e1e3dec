"""Logging for rule scripts: everything, uncaught exceptions included, goes to the rule's log file.

A job stopped from outside (SIGTERM: ``scancel``, a Slurm job at its time limit, a cluster
shutting down) ends its log with one line that says so, and for Slurm whether the time limit was
the cause, so that a log cut off mid-work never leaves the reader guessing.

Only one process at a time runs a given job: when Snakemake alone is killed, the job it started
goes on as an orphan and writes its outputs; a rerun's copy of that job first waits for it (a lock
per log file under ``.snakemake/job-locks/``, which the kernel releases when its holder ends), so
the two never write the same outputs at once.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import re
import signal
import subprocess
import sys
from pathlib import Path


def log_to_file(path: str | Path, name: str = "latentsky") -> logging.Logger:
    """Send the root logger (and warnings and uncaught exceptions) to ``path``; return a named
    logger.

    Snakemake shows the log file of a failed job, so the traceback must land there rather than on a
    stderr that a cluster scheduler may throw away.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    wait_for_earlier_run(path)
    handler = logging.FileHandler(path, mode="w")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler, logging.StreamHandler(sys.stderr)]
    root.setLevel(logging.INFO)
    # Warnings (zarr's about types other readers may not know, numerical ones) go to the log as
    # well, where the job's other messages are, rather than only to a stderr that may be lost.
    logging.captureWarnings(True)
    logger = logging.getLogger(name)

    def excepthook(kind, value, traceback):
        logger.error("uncaught exception", exc_info=(kind, value, traceback))
        sys.__excepthook__(kind, value, traceback)

    sys.excepthook = excepthook
    note_termination(logger)
    return logger


#: Where the job locks live: in the project (Snakemake runs every job in the project's folder).
JOB_LOCKS = Path(".snakemake") / "job-locks"
_held: list[int] = []  # the lock's descriptor, open for the life of the process


def wait_for_earlier_run(log: Path) -> None:
    """Hold the lock of the job that logs to ``log``, first waiting (and saying so on stderr)
    while another process holds it: an orphan of a killed Snakemake still running the same job."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX: no lock
        return
    JOB_LOCKS.mkdir(parents=True, exist_ok=True)
    name = re.sub(r"[^A-Za-z0-9._-]", "_", os.path.normpath(log).lstrip("./"))
    descriptor = os.open(JOB_LOCKS / f"{name}.lock", os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(descriptor, 32, 0).decode(errors="replace").strip()
        print(
            f"{log}: an earlier run of this job (pid {holder or '?'}) is still running, an orphan "
            "of a killed Snakemake; waiting for it to end",
            file=sys.stderr,
            flush=True,
        )
        fcntl.flock(descriptor, fcntl.LOCK_EX)
    os.ftruncate(descriptor, 0)
    os.pwrite(descriptor, str(os.getpid()).encode(), 0)
    _held.append(descriptor)


def note_termination(logger: logging.Logger) -> None:
    """On SIGTERM, log one last line saying why the job stops, then exit at once (143).

    Exiting without unwinding keeps that line the last one: cleanup code would only add to the
    log, and every output is written atomically anyway (a temporary name, then a rename), so a
    job cut off leaves no partial output under a final name. Only the main thread can install a
    handler; elsewhere this does nothing.
    """

    installer = os.getpid()

    def stop(signum, frame):
        if os.getpid() != installer:  # a forked worker (a data loader's) ends quietly
            os._exit(128 + signum)
        logger.error(termination_note(signum))
        logging.shutdown()  # flush the log file
        os._exit(128 + signum)

    try:
        signal.signal(signal.SIGTERM, stop)
    except ValueError:  # not the main thread
        pass


def termination_note(signum: int) -> str:
    """What a SIGTERM means here: the Slurm job's time limit (``Reason=TimeLimit``), another stop
    of a Slurm job, or a plain kill; with what to do next."""
    name = signal.Signals(signum).name
    when = dt.datetime.now().isoformat(timespec="seconds")
    job = os.environ.get("SLURM_JOB_ID")
    if not job:
        return f"stopped by {name} at {when}; outputs of this job are incomplete: rerun to resume"
    info = _slurm_job(job)
    limit = info.get("TimeLimit", "?")
    if info.get("Reason") == "TimeLimit" or info.get("JobState") == "TIMEOUT":
        return (
            f"stopped by {name} at {when}: Slurm job {job} reached its time limit "
            f"(TimeLimit={limit}); rerun to resume, with more time for this rule "
            "(--set-resources <rule>:runtime=<minutes>)"
        )
    state = info.get("JobState", "unknown")
    return (
        f"stopped by {name} at {when}: Slurm job {job} was stopped before its time limit "
        f"(state {state}, reason {info.get('Reason', 'unknown')}, TimeLimit={limit}); "
        "rerun to resume"
    )


def _slurm_job(job: str) -> dict[str, str]:
    """``scontrol show job`` of ``job`` as a dict (empty when Slurm does not answer in time)."""
    try:
        text = subprocess.run(
            ["scontrol", "show", "job", "--oneliner", job],
            capture_output=True,
            text=True,
            timeout=5,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return {}
    return dict(item.split("=", 1) for item in text.split() if "=" in item)
