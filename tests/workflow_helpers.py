"""Run the real workflow (real Snakemake, real files) in a scratch copy of the repository."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from report_helpers import table_rows

ROOT = Path(__file__).resolve().parents[1]
SNAKEMAKE = [sys.executable, "-m", "snakemake"]
WORKFLOW_PARTS = ("Snakefile", "workflow", "config", "envs", "pyproject.toml")


def copy_workflow(destination: Path) -> Path:
    """A clean copy of the workflow (no results/resources), as a fresh clone would have it."""
    destination.mkdir(parents=True, exist_ok=True)
    for part in WORKFLOW_PARTS:
        source = ROOT / part
        if source.is_dir():
            shutil.copytree(
                source, destination / part, ignore=shutil.ignore_patterns("__pycache__")
            )
        else:
            shutil.copy2(source, destination / part)
    return destination


def run_snakemake(workdir: Path, *args: str, timeout: float = 900, check: bool = True):
    """Run snakemake in ``workdir``; returns the CompletedProcess (stdout+stderr merged)."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    result = subprocess.run(
        [*SNAKEMAKE, *args],
        cwd=workdir,
        env=env,
        timeout=timeout,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(args)} failed:\n{result.stdout[-6000:]}")
    return result


def scheduled_rules(output: str) -> dict[str, int]:
    """Rule -> job count from the 'Job stats' table of a (dry) run."""
    match = re.search(r"Job stats:\n.*?\n-+\s+-+\n(.*?)\ntotal", output, re.S)
    if not match:
        return {}
    rows = (line.split() for line in match.group(1).strip().splitlines())
    return {row[0]: int(row[1]) for row in rows if len(row) == 2}


#: Every rule that reruns when the clustering settings change (what reads the clusters, the
#: report's configuration table), and ``all``.
AFTER_CLUSTERING = {
    "cluster_embedding",
    "fit_sigma_phi",
    "summarise_results",
    "plot_clusters",
    "plot_cluster_label_table",
    "plot_sigma_phi_distributions",
    "report_configuration",
    "report_summary",
    "report_sigma_phi_fits",
    "all",
}


def html_tables(page: str) -> dict[str, list[list[str]]]:
    """The rows (header first) of each ``<table id=...>`` of an HTML page, as text cells."""
    return table_rows(page, "id")


def report_file(report: str, name: str) -> str:
    """The text of the file ``name`` embedded (as a base64 data URI) in a Snakemake report."""
    import base64

    match = re.search(rf"filename={re.escape(name)};base64,([A-Za-z0-9+/=]+)", report)
    if not match:
        raise AssertionError(f"{name} is not in the report")
    return base64.b64decode(match.group(1)).decode()
