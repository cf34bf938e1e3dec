"""Downloads against a real HTTP server on 127.0.0.1 (and file: mirrors): retries, gaps, verification."""

from __future__ import annotations

import datetime as dt
import gzip

import pytest
from http_mirror import MirrorServer

from latentsky import archive, layouts
from latentsky.download import DownloadError, DownloadSettings, Fetcher, check_gzip
from latentsky.manifest import read_manifest, write_manifest

FAST = DownloadSettings(retries=3, backoff_s=0.01, connect_timeout_s=2, read_timeout_s=1)


@pytest.fixture
def mirror(tmp_path):
    root = tmp_path / "mirror"
    hours = layouts.hours_of_night(dt.date(2024, 1, 8), 6, 8)
    for n, hour in enumerate(hours):
        path = root / layouts.chain_ismr("fsi", hour)
        path.parent.mkdir(parents=True, exist_ok=True)
        rows = "\n".join(",".join([str(2300 + n), str(1000 * k)] + ["1"] * 60) for k in range(50))
        path.write_bytes(gzip.compress(rows.encode(), mtime=0))
    return root, hours


def test_fetches_byte_identical_files_and_records_them(mirror, tmp_path):
    root, hours = mirror
    with MirrorServer(root) as server:
        fetcher = Fetcher(FAST)
        jobs = archive.ismr_jobs(server.url, "fsi", hours, tmp_path / "raw")
        rows = [fetcher.fetch(*job) for job in jobs]
    assert [row.status for row in rows] == ["downloaded"] * 3
    for row, hour in zip(rows, hours, strict=True):
        source = root / layouts.chain_ismr("fsi", hour)
        assert open(row.path, "rb").read() == source.read_bytes()
        assert row.bytes == source.stat().st_size and len(row.sha256) == 64
    assert all("latentsky" in agent for agent in server.user_agents)
    write_manifest(rows, tmp_path / "manifest.tsv")
    assert read_manifest(tmp_path / "manifest.tsv") == rows


def test_retries_5xx_and_broken_bodies_then_succeeds(mirror, tmp_path):
    root, hours = mirror
    (url, destination, check), *_ = archive.ismr_jobs("", "fsi", hours, tmp_path / "raw")
    with MirrorServer(root) as server:
        server.faults["/" + url.lstrip("/")] = ["500", "short", "ok"]
        row = Fetcher(FAST).fetch(server.url + url, destination, check)
        assert server.requests["/" + url.lstrip("/")] == 3
    assert row.status == "downloaded"
    assert destination.read_bytes() == (root / url.lstrip("/")).read_bytes()


def test_a_404_is_a_gap_not_a_failure(mirror, tmp_path):
    root, hours = mirror
    with MirrorServer(root) as server:
        row = Fetcher(FAST).fetch(
            server.url + "/2024/008/09/fsic24008j.ismr.gz", tmp_path / "x.ismr.gz", check_gzip
        )
    assert row.status == "missing"
    assert not (tmp_path / "x.ismr.gz").exists()


def test_persistently_broken_file_fails_naming_the_url_and_leaves_nothing(mirror, tmp_path):
    root, hours = mirror
    (url, destination, check), *_ = archive.ismr_jobs("", "fsi", hours, tmp_path / "raw")
    with MirrorServer(root) as server:
        server.faults["/" + url.lstrip("/")] = ["truncate"] * 3
        with pytest.raises(DownloadError, match=url.lstrip("/").replace(".", r"\.")):
            Fetcher(FAST).fetch(server.url + url, destination, check)
    assert not destination.exists()
    assert not list(destination.parent.glob("*")), "no partial file may be left behind"


def test_present_verified_files_are_not_fetched_again(mirror, tmp_path):
    root, hours = mirror
    with MirrorServer(root) as server:
        jobs = archive.ismr_jobs(server.url, "fsi", hours, tmp_path / "raw")
        fetcher = Fetcher(FAST)
        [fetcher.fetch(*job) for job in jobs]
        jobs[1][1].write_bytes(b"corrupt")  # a damaged local copy is fetched again
        rows = [fetcher.fetch(*job) for job in jobs]
    assert [row.status for row in rows] == ["present", "downloaded", "present"]
    assert sum(server.requests.values()) == 4


def test_hostile_listing_names_are_refused(tmp_path):
    (tmp_path / "2024/01/08/fsim_themis07").mkdir(parents=True)
    with MirrorServer(tmp_path) as server:
        server.listing_extra = ["../", "../../etc/", "/etc/passwd", "a/b", "..", "ok_name"]
        names = Fetcher(FAST).list_folder(server.url + "/2024/01/08/")
    assert names == ["fsim_themis07/", "ok_name"]


def test_paths_can_never_leave_the_raw_folder(tmp_path):
    with pytest.raises(ValueError, match="outside"):
        archive.inside(tmp_path, "../escape.cdf")


def test_file_urls_use_the_same_verification(mirror, tmp_path, monkeypatch):
    root, hours = mirror
    monkeypatch.chdir(tmp_path)
    relative = f"file:{root.relative_to(tmp_path)}"
    jobs = archive.ismr_jobs(relative, "fsi", hours, tmp_path / "raw")
    rows = [Fetcher(FAST).fetch(*job) for job in jobs]
    assert [row.status for row in rows] == ["downloaded"] * 3
    gap = Fetcher(FAST).fetch(f"{relative}/nope.gz", tmp_path / "nope.gz", check_gzip)
    assert gap.status == "missing"
