"""Archives that answer wrong, through the real workflow: `snakemake` downloads from a real HTTP
server on 127.0.0.1 that misbehaves (a day's listing answered by a maintenance page, a file cut
short at its source, a body that never ends, a malformed Content-Length, a redirect), serving real
GILL stream0 minutes (one with a frame time out of its file's minute) and the real GAKO skymap made
GILL's.

Skip mode runs on to summary.json and the report: every verified file byte-identical, no partial
file, gaps and failures apart and exact in the manifests, summary.json and the report, the culprit
frames counted, nothing written outside the dataset's folders. Fail mode stops each download job,
naming the URL and the fault.
"""

from __future__ import annotations

import datetime as dt
import gzip
import json
from pathlib import Path

import pytest
import yaml
from http_mirror import MirrorServer
from test_ingest_bad_input import (
    GAKO_SKYMAP_FILE,
    gill_minute,
    shared_or_none,
    with_frame_time,
    write_gill_skymap,
)
from workflow_helpers import ROOT, copy_workflow, html_tables, report_file, run_snakemake

from latentsky.acquisition import layouts
from latentsky.acquisition.manifest import read_manifest
from latentsky.instruments.themis import read_themis_pgm_frames

pytestmark = pytest.mark.slow

DAY, BROKEN_DAY = dt.date(2014, 3, 10), dt.date(2014, 3, 11)
MINUTES = range(10)  # 06:00-06:09 in the archive; 06:10-06:59 and the 07 UT folder are not
TRUNCATED, ENDLESS, BAD_LENGTH, REDIRECTED, OUT_OF_PLACE = 2, 5, 3, 4, 8
RETRIES = 2


def minute_path(minute: int, day: dt.date = DAY) -> str:
    when = dt.datetime.combine(day, dt.time(6, minute))
    return "stream0/" + layouts.ucalgary_stream0_minute("gill", "themis19", when)


def build_mirror(shared: Path, root: Path) -> dict[str, bytes]:
    """Ten real GILL minutes (frame 3 of 06:08 stamped 06:31) and the skymap; path -> bytes."""
    template = gzip.decompress((shared / "20140310_0600_gill_themis19_full.pgm.gz").read_bytes())
    files = {}
    for minute in MINUTES:
        data = gill_minute(template, minute)
        if minute == OUT_OF_PLACE:
            data = with_frame_time(data, 3, b"2014-03-10 06:31:00.063119 UTC")
        files[minute_path(minute)] = gzip.compress(data, mtime=0)
    files["moved/elsewhere.pgm.gz"] = files[minute_path(REDIRECTED)]
    for relative, data in files.items():
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_bytes(data)
    skymap = root / "skymaps/gill/gill_20140101/themis_skymap_gill_20140101-+_vXX.sav"
    write_gill_skymap(GAKO_SKYMAP_FILE(shared), skymap)
    files[str(skymap.relative_to(root))] = skymap.read_bytes()
    (root / f"stream0/{BROKEN_DAY:%Y/%m/%d}").mkdir(parents=True)
    return files


def misbehave(server: MirrorServer) -> None:
    """What the archive gets wrong; persistent faults outlast every retry of every job."""
    server.faults.update(
        {
            "/" + minute_path(TRUNCATED): ["truncate"] * 20,
            "/" + minute_path(ENDLESS): ["endless"] * 20,
            "/" + minute_path(BAD_LENGTH): ["badlength"],
            "/" + minute_path(REDIRECTED): ["redirect:/moved/elsewhere.pgm.gz"],
            f"/stream0/{BROKEN_DAY:%Y/%m/%d}/": ["maintenance"] * 20,
        }
    )


def write_config(work: Path, url: str, on_bad_input: str) -> str:
    config = yaml.safe_load((ROOT / "tests" / "data" / "tiny.yaml").read_text())
    config["datasets"] = {
        "gill": {
            "kind": "asi",
            "site": "gill",
            "dates": {"start": str(DAY), "end": str(BROKEN_DAY)},
            "hours_ut": [6, 7],
            "image_source": "ucalgary_stream0",
            "skymap_source": "ucalgary_sav",
            "base_urls": {
                "ucalgary_stream0": f"{url}/stream0",
                "ucalgary_skymaps": f"{url}/skymaps",
            },
        }
    }
    config["embedding"]["subset"] = "all"
    config["on_bad_input"] = on_bad_input
    # A GILL minute file is about 2.1 MB, the skymap 3.5 MB: an endless body is cut at 8 MB.
    config["download"] = {"retries": RETRIES, "backoff_s": 0.01, "max_file_mb": 8}
    (work / "config" / "http.yaml").write_text(yaml.safe_dump(config))
    return "config/http.yaml"


def files_under(folder: Path) -> set[Path]:
    return {p.relative_to(folder) for p in folder.rglob("*") if p.is_file()}


@pytest.fixture(scope="module")
def shared() -> Path:
    folder = shared_or_none()
    if folder is None:
        pytest.skip("real GILL files not found in ../shared/data")
    return folder


@pytest.fixture(scope="module")
def skip_run(shared, tmp_path_factory):
    root = tmp_path_factory.mktemp("mirror")
    files = build_mirror(shared, root)
    work = copy_workflow(tmp_path_factory.mktemp("skip"))
    before = files_under(work)
    with MirrorServer(root) as server:
        misbehave(server)
        config = write_config(work, server.url, "skip")
        run_snakemake(work, "results/gill/summary.json", "--cores", "2", "--configfile", config)
        requests = dict(server.requests)
        url = server.url
    run_snakemake(
        work,
        "results/gill/summary.json",
        "--cores",
        "1",
        "--configfile",
        config,
        "--report",
        "results/gill/report.html",
    )
    return {"work": work, "files": files, "url": url, "requests": requests, "before": before}


def test_skip_mode_keeps_verified_files_whole_and_records_failures_apart_from_gaps(skip_run):
    work, url = skip_run["work"], skip_run["url"]
    manifests = work / "resources/gill/manifests/gill"
    rows = read_manifest(manifests / f"images_{DAY}.tsv")
    by_url = {row.url: row for row in rows}
    raw = work / "resources/gill/raw/ucalgary_stream0"
    for minute in MINUTES:
        row = by_url[f"{url}/{minute_path(minute)}"]
        if minute in (TRUNCATED, ENDLESS):
            assert row.status == "failed", row
            continue
        assert row.status == "downloaded", row
        local = raw / minute_path(minute).removeprefix("stream0/")
        assert Path(work / row.path) == local or Path(row.path) == local
        assert local.read_bytes() == skip_run["files"][minute_path(minute)], minute
    redirected = by_url[f"{url}/{minute_path(REDIRECTED)}"]
    assert redirected.final_url == f"{url}/moved/elsewhere.pgm.gz"
    assert skip_run["requests"]["/" + minute_path(BAD_LENGTH)] == 2  # malformed, then whole
    truncated = by_url[f"{url}/{minute_path(TRUNCATED)}"]
    assert f"still broken after {RETRIES} tries" in truncated.detail
    assert (work / truncated.path).parent.name == "salvaged"
    endless = by_url[f"{url}/{minute_path(ENDLESS)}"]
    assert "max_file_mb" in endless.detail and endless.path == ""
    # The hour folder 07 UT is not in the archive's listing: a gap, one row for the hour.
    gaps = [row for row in rows if row.status == "missing"]
    assert len(gaps) == 50 + 1 and any(row.url.endswith("/ut07/") for row in gaps)
    # The day answered by a maintenance page: its hours failed, not gaps.
    broken = read_manifest(manifests / f"images_{BROKEN_DAY}.tsv")
    assert [row.status for row in broken] == ["failed", "failed"]
    assert all("no recognisable file index" in row.detail for row in broken)
    # No partial file anywhere; under the archive's names only verified files.
    resources = work / "resources"
    assert not [p for p in resources.rglob("*") if ".part-" in p.name or ".tmp" in p.name]
    assert not (raw / minute_path(TRUNCATED).removeprefix("stream0/")).exists()
    assert not (raw / minute_path(ENDLESS).removeprefix("stream0/")).exists()


def test_skip_mode_counts_are_exact_in_the_summary_and_the_report(skip_run):
    work, url = skip_run["work"], skip_run["url"]
    summary = json.loads((work / "results/gill/summary.json").read_text())
    expected_gaps = {
        "files_present": 8,
        "files_missing": 51,  # 06:10-06:59, and the 07 UT folder
        "files_failed": 4,  # two files, two hours of the broken day
        "hours_expected": 4,
        "hours_missing": 1,
        "hours_failed": 2,
        "minutes_missing": 50 + 60,
        "minutes_failed": 1 + 1 + 2 * 60,
    }
    gaps = dict(summary["gaps"]["images"])
    reasons = gaps.pop("reasons")
    assert gaps == expected_gaps
    assert sum(reasons.values()) == 51
    failed = {f["url"]: f for f in summary["failures"]["images"]}
    assert set(failed) == {
        f"{url}/{minute_path(TRUNCATED)}",
        f"{url}/{minute_path(ENDLESS)}",
        f"{url}/stream0/{BROKEN_DAY:%Y/%m/%d}/gill_themisNN/ut06/",
        f"{url}/stream0/{BROKEN_DAY:%Y/%m/%d}/gill_themisNN/ut07/",
    }
    salvaged = read_themis_pgm_frames(
        work / failed[f"{url}/{minute_path(TRUNCATED)}"]["salvaged"], skip_bad_frames=True
    )
    assert 0 < len(salvaged.frames) < 20
    assert summary["bad_input"]["images"] == {
        "files_read": 9,  # 8 whole, 1 salvaged
        "files_unreadable": 0,
        "frames_skipped": 1,  # the frame cut off at the source
        "duplicate_times": 0,
        "times_out_of_order": 0,
        "times_outside_file": 1,  # frame 3 of 06:08, stamped 06:31: the one culprit
    }
    assert summary["n_images"] == 8 * 20 + len(salvaged.frames) - 1
    log = (work / f"results/logs/project_images/gill_gill_{DAY}.log").read_text()
    assert "20140310_0608_gill_themis19_full.pgm.gz (frame 3): time 2014-03-10T06:31" in log
    # The report: the same numbers, gaps, failures and bad input in tables apart.
    report = (work / "results/gill/report.html").read_text(errors="replace")
    tables = html_tables(report_file(report, "data_quality.html"))
    assert {key: int(n) for _, key, n in tables["gaps"][1:]} == expected_gaps
    assert {row[1] for row in tables["failures"][1:]} == set(failed)
    shown = {key: int(n) for _, key, n in tables["bad-input"][1:]}
    assert shown == summary["bad_input"]["images"]


def test_nothing_is_written_outside_the_dataset_s_folders(skip_run):
    work = skip_run["work"]
    new = files_under(work) - skip_run["before"]
    outside = [
        p
        for p in new
        if p.parts[0] != ".snakemake"
        and "__pycache__" not in p.parts  # Python's and numba's compiled code
        and p.parts[:2] not in (("resources", "gill"), ("results", "gill"))
        and p.parts[:2] not in (("results", "logs"), ("results", "benchmarks"))
        and p != Path("config/http.yaml")
    ]
    assert outside == [], outside
    logs = [p for p in new if p.parts[:2] in (("results", "logs"), ("results", "benchmarks"))]
    assert all(p.name.startswith("gill") for p in logs), logs
    slots = work / ".snakemake" / "connection-slots"
    names = {p.name for p in slots.iterdir()}
    assert names and names <= {f"127.0.0.1.{k}.lock" for k in range(4)}, names


def test_fail_mode_stops_each_download_naming_the_url_and_the_fault(shared, tmp_path):
    root = tmp_path / "mirror"
    build_mirror(shared, root)
    work = copy_workflow(tmp_path / "fail")
    with MirrorServer(root) as server:
        misbehave(server)
        config = write_config(work, server.url, "fail")
        result = run_snakemake(
            work, "download", "--cores", "2", "--keep-going", "--configfile", config, check=False
        )
        url = server.url
    assert result.returncode != 0
    logs = work / "results/logs/download_images"
    day = (logs / f"gill_gill_{DAY}.log").read_text()
    # The first of the two broken files (fetched in parallel) stops the job, naming its URL.
    named = [
        m for m in (TRUNCATED, ENDLESS) if f"DownloadError: {url}/{minute_path(m)}: still" in day
    ]
    assert named, day[-3000:]
    assert "broken gzip stream" in day or "max_file_mb" in day
    broken = (logs / f"gill_gill_{BROKEN_DAY}.log").read_text()
    listing = f"{url}/stream0/{BROKEN_DAY:%Y/%m/%d}/"
    assert f"DownloadError: {listing}: still broken after {RETRIES} tries" in broken
    assert "no recognisable file index" in broken
    manifests = work / "resources/gill/manifests/gill"
    assert not (manifests / f"images_{DAY}.tsv").exists()
    assert not (manifests / f"images_{BROKEN_DAY}.tsv").exists()
    raw = work / "resources/gill/raw"
    assert not [p for p in raw.rglob("*") if ".part-" in p.name]
    for minute in (TRUNCATED, ENDLESS):
        assert not (
            raw / "ucalgary_stream0" / minute_path(minute).removeprefix("stream0/")
        ).exists()
