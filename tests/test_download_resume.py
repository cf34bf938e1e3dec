"""Kill a real `snakemake download` run mid-way, start it again: it completes, every file verified,
and no file that was complete at the kill is downloaded a second time.

The mirror is UCalgary stream0 + UCalgary skymaps + CHAIN ISMR in their real layouts, served by a real
HTTP server on 127.0.0.1 that answers each file slowly, so that the kill lands mid-run.
"""

from __future__ import annotations

import datetime as dt
import gzip
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import yaml
from http_mirror import MirrorServer, idl_save, ismr_text, pgm_minute
from workflow_helpers import SNAKEMAKE, copy_workflow, run_snakemake

from latentsky.acquisition import layouts
from latentsky.acquisition.checks import (
    VerificationError,
    check_idl_save,
    check_ismr_gz,
    check_pgm_gz,
)
from latentsky.acquisition.manifest import read_manifest

pytestmark = pytest.mark.slow

DATES = [dt.date(2015, 1, 15), dt.date(2015, 1, 16)]
HOURS = [hour for day in DATES for hour in layouts.hours_of_night(day, 6, 7)]
MINUTES = range(12)  # minute files per hour in the mirror


def build_mirror(root: Path) -> dict[str, bytes]:
    """Relative URL path -> bytes of every file in the mirror."""
    files = {}
    for hour in HOURS:
        for minute in MINUTES:
            when = hour.replace(minute=minute)
            relative = "stream0/" + layouts.ucalgary_stream0_minute("fsim", "themis07", when)
            files[relative] = gzip.compress(pgm_minute(when), mtime=0)
        relative = "chain/" + layouts.chain_ismr("fsi", hour)
        files[relative] = gzip.compress(ismr_text(hour.hour).encode(), mtime=0)
    files["skymaps/fsim/fsim_20141001/themis_skymap_fsim_20141001-+_v01.sav"] = idl_save(
        {"skymap": 20141001}
    )
    for relative, data in files.items():
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_bytes(data)
    return files


def write_config(work: Path, server_url: str) -> str:
    config = {
        "datasets": {
            "study": {
                "kind": "asi",
                "site": "fsim",
                "gnss_station": "fsi",
                "dates": {"start": str(DATES[0]), "end": str(DATES[-1])},
                "hours_ut": [6, 7],
                "image_source": "ucalgary_stream0",
                "skymap_source": "ucalgary_sav",
                "base_urls": {
                    "ucalgary_stream0": f"{server_url}/stream0",
                    "ucalgary_skymaps": f"{server_url}/skymaps",
                    "chain_ismr": f"{server_url}/chain",
                },
            }
        },
        "embedding": {"subset": "all"},
        "download": {"retries": 3, "backoff_s": 0.05, "max_connections_per_host": 2},
    }
    (work / "config" / "resume.yaml").write_text(yaml.safe_dump(config))
    return "config/resume.yaml"


def check_for(relative: str):
    if relative.endswith(".pgm.gz"):
        return check_pgm_gz(2)
    if relative.endswith(".ismr.gz"):
        return check_ismr_gz(62)
    return check_idl_save("SKYMAP")


def local_path(work: Path, relative: str) -> Path:
    source, rest = relative.split("/", 1)
    folder = {"stream0": "ucalgary_stream0", "skymaps": "ucalgary_sav", "chain": "chain_ismr"}
    return work / "resources" / "study" / "raw" / folder[source] / rest


def test_killed_download_resumes_without_refetching_complete_files(tmp_path):
    work = copy_workflow(tmp_path / "repo")
    files = build_mirror(tmp_path / "mirror")
    with MirrorServer(tmp_path / "mirror", delay_s=0.12) as server:
        config = write_config(work, server.url)
        command = [*SNAKEMAKE, "--cores", "2", "download", "--configfile", config]
        first = subprocess.Popen(
            command,
            cwd=work,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # its own process group: the kill takes the job scripts too
        )
        deadline = time.monotonic() + 120
        while sum(server.completed.values()) < len(files) // 3:
            assert first.poll() is None, "the first run ended before it could be killed"
            assert time.monotonic() < deadline, "the first run made no progress"
            time.sleep(0.02)
        os.killpg(first.pid, signal.SIGKILL)
        first.wait(timeout=30)

        # After the kill: every file under its final name is complete (no partial file there).
        complete = {r for r in files if local_path(work, r).exists()}
        assert 0 < len(complete) < len(files), "the kill must land mid-run"
        for relative in complete:
            assert local_path(work, relative).read_bytes() == files[relative]

        run_snakemake(work, "--unlock", "--configfile", config)
        second = run_snakemake(work, "--cores", "2", "download", "--configfile", config)
        requests = server.file_requests()

    assert "Finished job" in second.stdout or "steps (100%) done" in second.stdout
    for relative, data in files.items():
        path = local_path(work, relative)
        assert path.read_bytes() == data, relative
        try:
            check_for(relative)(path)
        except VerificationError as error:  # pragma: no cover - the assertion explains
            pytest.fail(f"{relative} does not verify: {error}")
        assert requests["/" + relative] <= 2, relative
    twice = sorted(r for r in complete if requests["/" + r] != 1)
    assert twice == [], f"complete at the kill, yet fetched again: {twice}"

    rows = [
        row
        for manifest in (work / "resources" / "study" / "manifests").glob("*/*.tsv")
        for row in read_manifest(manifest)
    ]
    fetched = [row for row in rows if row.status in ("downloaded", "present")]
    assert sorted(work / row.path for row in fetched) == sorted(local_path(work, r) for r in files)
    # The mirror holds minutes 00-11 of each hour: the other 48 are gaps, one row each.
    gaps = [row for row in rows if row.status == "missing"]
    assert len(gaps) == len(HOURS) * 48 and len(rows) == len(fetched) + len(gaps)
    assert all(row.url.endswith("_fsim_themis07_full.pgm.gz") for row in gaps)
    by_path = {work / row.path: row for row in fetched}
    for relative in complete:
        row = by_path[local_path(work, relative)]
        assert row.bytes == len(files[relative])
    assert any(by_path[local_path(work, r)].status == "present" for r in complete)
    leftovers = [p for p in (work / "resources").rglob("*") if ".part-" in p.name]
    assert leftovers == [], "temporary files of the killed run must be cleaned up"
    outside = {p.relative_to(work).parts[0] for p in work.iterdir()} - {
        "Snakefile",
        "workflow",
        "config",
        "envs",
        "pyproject.toml",
        "resources",
        "results",
        ".snakemake",
    }
    assert outside == set()
    written = {p.relative_to(work / "results").parts[0] for p in (work / "results").iterdir()}
    assert written <= {"logs", "benchmarks"}
    # The per-host connection slots (one lock file per allowed connection) live in the project.
    slots = sorted(p.name for p in (work / ".snakemake" / "connection-slots").iterdir())
    assert slots == ["127.0.0.1.0.lock", "127.0.0.1.1.lock"]
