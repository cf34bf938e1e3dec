"""Downloads against a real HTTP server on 127.0.0.1 (and file: mirrors): retries, gaps, verification,
hostile listings, discovery of stream0 imager folders and skymaps, politeness."""

from __future__ import annotations

import datetime as dt
import gzip
import os
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from http_mirror import MirrorServer, idl_save, ismr_text, pgm_minute

from latentsky.acquisition import layouts
from latentsky.acquisition.checks import (
    VerificationError,
    check_cdf,
    check_gzip,
    check_idl_save,
    check_ismr_gz,
    check_pgm_gz,
)
from latentsky.acquisition.gaps import gap_summary
from latentsky.acquisition.http import (
    USER_AGENT,
    DownloadError,
    DownloadSettings,
    Fetcher,
    fetch_all,
    is_safe_name,
)
from latentsky.acquisition.jobs import inside
from latentsky.acquisition.manifest import read_manifest, write_manifest
from latentsky.acquisition.sources import SOURCES
from latentsky.demo.aurora import write_l1_cdf


@pytest.fixture
def settings(tmp_path):
    """Fast settings: short timeouts and backoff, connection slots private to the test."""
    return DownloadSettings(
        retries=3,
        backoff_s=0.01,
        connect_timeout_s=2,
        read_timeout_s=0.5,
        slot_dir=str(tmp_path / "slots"),
    )


#: The failure counts of gap_summary for downloads where nothing failed.
NO_FAILURES = {"files_failed": 0, "hours_failed": 0, "minutes_failed": 0}


def files_under(folder: Path) -> set[Path]:
    return {p for p in folder.rglob("*") if p.is_file()} if folder.exists() else set()


@pytest.fixture
def mirror(tmp_path):
    root = tmp_path / "mirror"
    hours = layouts.hours_of_night(dt.date(2024, 1, 8), 6, 8)
    for n, hour in enumerate(hours):
        path = root / layouts.chain_ismr("fsi", hour)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(gzip.compress(ismr_text(n).encode(), mtime=0))
    return root, hours


# One archive file of each format, at its real relative path, with the check its job uses.
HOUR = dt.datetime(2015, 1, 15, 6)


def make_file(root: Path, kind: str):
    if kind == "ismr":
        relative = layouts.chain_ismr("fsi", HOUR)
        data = gzip.compress(ismr_text(1, rows=400).encode(), mtime=0)
        check = check_ismr_gz(62)
    elif kind == "pgm":
        relative = layouts.ucalgary_stream0_minute("fsim", "themis07", HOUR)
        data = gzip.compress(pgm_minute(HOUR, frames=3), mtime=0)
        check = check_pgm_gz()
    elif kind == "cdf":
        relative = layouts.berkeley_l1_cdf("fsim", HOUR)
        rng = np.random.default_rng(0)
        frames = rng.integers(2000, 6000, (4, 256, 256)).astype(np.uint16)
        times = np.datetime64(HOUR, "ms") + np.arange(4) * np.timedelta64(3000, "ms")
        write_l1_cdf(root / relative, "fsim", HOUR, frames, times)
        data = (root / relative).read_bytes()
        check = check_cdf("thg_asf_fsim")
    else:  # a UCalgary skymap (IDL save file)
        relative = "fsim/fsim_20140101/themis_skymap_fsim_20140101-+_v01.sav"
        data = idl_save({"skymap": 1, **{f"pad{k}": k for k in range(40)}})
        check = check_idl_save("SKYMAP")
    (root / relative).parent.mkdir(parents=True, exist_ok=True)
    (root / relative).write_bytes(data)
    return "/" + relative, data, check


def test_fetches_byte_identical_files_and_records_them(mirror, tmp_path, settings):
    root, hours = mirror
    with MirrorServer(root) as server:
        jobs = SOURCES["chain_ismr"].jobs(server.url, "fsi", hours, tmp_path / "raw", 62)
        rows = fetch_all(Fetcher(settings), jobs, threads=2)
    assert [row.status for row in rows] == ["downloaded"] * 3
    for row, hour in zip(rows, hours, strict=True):
        source = root / layouts.chain_ismr("fsi", hour)
        assert Path(row.path).read_bytes() == source.read_bytes()
        assert row.bytes == source.stat().st_size and len(row.sha256) == 64
    assert server.user_agents == {USER_AGENT}
    assert USER_AGENT.startswith("latentsky/") and "+https://" in USER_AGENT
    write_manifest(rows, tmp_path / "manifest.tsv")
    assert read_manifest(tmp_path / "manifest.tsv") == rows


# Each fault once, then a good answer: the file must arrive byte-identical after exactly one retry.
RECOVERABLE = [
    ("500", "ismr"),
    ("503", "pgm"),
    ("reset", "ismr"),
    ("reset", "cdf"),
    ("short", "pgm"),
    ("stall", "ismr"),
    ("hang", "sav"),
    ("truncate", "ismr"),
    ("truncate", "pgm"),
    ("truncate", "cdf"),
    ("truncate", "sav"),
    ("corrupt", "ismr"),
    ("corrupt", "pgm"),
    ("corrupt", "cdf"),
]


@pytest.mark.parametrize(("fault", "kind"), RECOVERABLE)
def test_a_fault_is_retried_and_the_file_arrives_intact(fault, kind, tmp_path, settings):
    path, data, check = make_file(tmp_path / "mirror", kind)
    raw = tmp_path / "raw"
    with MirrorServer(tmp_path / "mirror", stall_s=4) as server:
        server.faults[path] = [fault, "ok"]
        started = time.monotonic()
        row = Fetcher(settings).fetch(server.url + path, raw / path.lstrip("/"), check)
        elapsed = time.monotonic() - started
        assert server.requests[path] == 2
    assert row.status == "downloaded"
    assert (raw / path.lstrip("/")).read_bytes() == data
    assert files_under(raw) == {raw / path.lstrip("/")}, "no temporary file may be left behind"
    assert elapsed < 3, "a stalled transfer must time out, not wait for the server"


@pytest.mark.parametrize(
    ("fault", "reason"),
    [
        ("500", "HTTP 500"),
        ("reset", "Connection"),
        ("short", "IncompleteRead|Content-Length"),
        ("stall", "timed out"),
        ("hang", "timed out"),
        ("truncate", "broken gzip stream"),
        ("corrupt", "CRC check failed"),
    ],
)
def test_a_file_that_stays_broken_fails_naming_url_and_fault(fault, reason, tmp_path, settings):
    path, _, check = make_file(tmp_path / "mirror", "pgm")
    raw = tmp_path / "raw"
    with MirrorServer(tmp_path / "mirror", stall_s=2) as server:
        server.faults[path] = [fault] * settings.retries
        with pytest.raises(DownloadError, match=reason) as failure:
            Fetcher(settings).fetch(server.url + path, raw / path.lstrip("/"), check)
        assert server.requests[path] == settings.retries  # bounded
    assert server.url + path in str(failure.value)
    assert f"after {settings.retries} tries" in str(failure.value)
    assert files_under(raw) == set(), "no partial file may be left behind"


def test_a_job_stops_at_a_file_that_stays_broken_and_keeps_the_good_ones(mirror, tmp_path):
    root, hours = mirror
    settings = DownloadSettings(retries=2, backoff_s=0.01, slot_dir=str(tmp_path / "slots"))
    with MirrorServer(root) as server:
        jobs = SOURCES["chain_ismr"].jobs(server.url, "fsi", hours, tmp_path / "raw", 62)
        bad = jobs[1][0].removeprefix(server.url)
        server.faults[bad] = ["truncate"] * 2
        with pytest.raises(DownloadError, match="fsic24008h.ismr.gz"):
            fetch_all(Fetcher(settings), jobs, threads=1)
    assert not jobs[1][1].exists()
    assert jobs[0][1].read_bytes() == (root / layouts.chain_ismr("fsi", hours[0])).read_bytes()


def test_backoff_grows_exponentially(tmp_path):
    path, data, check = make_file(tmp_path / "mirror", "ismr")
    settings = DownloadSettings(retries=3, backoff_s=0.2, slot_dir=str(tmp_path / "slots"))
    with MirrorServer(tmp_path / "mirror") as server:
        server.faults[path] = ["500", "500", "ok"]
        started = time.monotonic()
        Fetcher(settings).fetch(server.url + path, tmp_path / "raw" / "f", check)
    assert time.monotonic() - started >= 0.2 + 0.4


def test_a_forbidden_file_fails_at_once(tmp_path, settings):
    path, _, check = make_file(tmp_path / "mirror", "ismr")
    with MirrorServer(tmp_path / "mirror") as server:
        server.faults[path] = ["403"] * 5
        with pytest.raises(DownloadError, match="HTTP 403.*not retried"):
            Fetcher(settings).fetch(server.url + path, tmp_path / "raw" / "f", check)
        assert server.requests[path] == 1


def test_gzip_content_encoding_keeps_the_archive_bytes(tmp_path, settings):
    path, data, check = make_file(tmp_path / "mirror", "pgm")
    with MirrorServer(tmp_path / "mirror", gzip_encoding=True) as server:
        row = Fetcher(settings).fetch(server.url + path, tmp_path / "raw" / "f.pgm.gz", check)
    assert row.status == "downloaded"
    assert (tmp_path / "raw" / "f.pgm.gz").read_bytes() == data


def test_a_404_is_a_gap_not_a_failure(mirror, tmp_path, settings):
    root, hours = mirror
    with MirrorServer(root) as server:
        row = Fetcher(settings).fetch(
            server.url + "/2024/008/09/fsic24008j.ismr.gz", tmp_path / "x.ismr.gz", check_gzip
        )
    assert row.status == "missing"
    assert not (tmp_path / "x.ismr.gz").exists()


def test_missing_hours_are_gaps_counted_in_hours_and_minutes(tmp_path, settings):
    """Berkeley hourly CDFs and CHAIN ISMR files: the archive lacks 07 UT; the job goes on."""
    root = tmp_path / "mirror"
    hours = layouts.hours_of_night(dt.date(2015, 1, 15), 6, 8)
    frames = np.full((2, 256, 256), 3000, np.uint16)
    for hour in (hours[0], hours[2]):
        times = np.datetime64(hour, "ms") + np.arange(2) * np.timedelta64(3000, "ms")
        write_l1_cdf(
            root / "l1" / layouts.berkeley_l1_cdf("fsim", hour), "fsim", hour, frames, times
        )
        ismr = root / "chain" / layouts.chain_ismr("fsi", hour)
        ismr.parent.mkdir(parents=True, exist_ok=True)
        ismr.write_bytes(gzip.compress(ismr_text(0).encode()))
    with MirrorServer(root) as server:
        fetcher = Fetcher(settings)
        jobs, gaps = SOURCES["berkeley_l1"].jobs(
            fetcher, server.url + "/l1", "fsim", hours, tmp_path / "raw"
        )
        images = fetch_all(fetcher, jobs, threads=2) + gaps
        ismr = fetch_all(
            fetcher,
            SOURCES["chain_ismr"].jobs(server.url + "/chain", "fsi", hours, tmp_path / "raw", 62),
            2,
        )
    assert [row.status for row in images] == ["downloaded", "missing", "downloaded"]
    assert images[1].url.endswith("/l1/fsim/2015/01/thg_l1_asf_fsim_2015011507_v01.cdf")
    expected = {"files_present": 2, "files_missing": 1, "hours_expected": 3}
    expected.update(NO_FAILURES, hours_missing=1, minutes_missing=60)
    assert gap_summary(images) == expected
    assert gap_summary(ismr) == expected


def test_present_verified_files_are_not_fetched_again(mirror, tmp_path, settings):
    root, hours = mirror
    with MirrorServer(root) as server:
        jobs = SOURCES["chain_ismr"].jobs(server.url, "fsi", hours, tmp_path / "raw", 62)
        fetcher = Fetcher(settings)
        fetch_all(fetcher, jobs, threads=2)
        jobs[1][1].write_bytes(b"corrupt")  # a damaged local copy is fetched again
        stale = jobs[2][1].with_name(f".{jobs[2][1].name}.part-deadbeef")  # left by a killed run
        stale.write_bytes(b"half")
        rows = fetch_all(fetcher, jobs, threads=2)
        assert sum(server.file_requests().values()) == 4
    assert [row.status for row in rows] == ["present", "downloaded", "present"]
    assert not stale.exists()


def test_per_host_connection_limit_holds_across_threads_and_jobs(tmp_path):
    root = tmp_path / "mirror"
    for k in range(16):
        (root / f"f{k:02d}.bin").parent.mkdir(parents=True, exist_ok=True)
        (root / f"f{k:02d}.bin").write_bytes(os.urandom(1000))
    settings = DownloadSettings(max_connections_per_host=2, slot_dir=str(tmp_path / "slots"))
    with MirrorServer(root, delay_s=0.15) as server:

        def batch(folder, numbers):
            return [
                (f"{server.url}/f{k:02d}.bin", tmp_path / folder / f"f{k:02d}.bin", None)
                for k in numbers
            ]

        jobs = batch("a", range(8))
        fetch_all(Fetcher(settings), jobs, threads=8)
        # One fetch_all keeps one keep-alive connection per slot: two connections in all.
        assert len(server.client_ports) == 2
        assert server.in_flight_max == 2
        # Two jobs at once (two Fetchers, as two Snakemake jobs would have) share the limit.
        server.in_flight_max = 0
        jobs, second = batch("b", range(8)), batch("c", range(8, 16))
        threads = [
            threading.Thread(target=fetch_all, args=(Fetcher(settings), work, 4))
            for work in (jobs, second)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert server.in_flight_max == 2
    assert [len(files_under(tmp_path / folder)) for folder in "abc"] == [8, 8, 8]


def test_listings_are_retried(tmp_path, settings):
    (tmp_path / "2015/01/15/fsim_themis07").mkdir(parents=True)
    with MirrorServer(tmp_path) as server:
        server.faults["/2015/01/15/"] = ["500", "hang", "ok"]
        names = Fetcher(settings).list_folder(server.url + "/2015/01/15/")
    assert names == ["fsim_themis07/"]


HOSTILE = [
    "../",
    "../../etc/",
    "..",
    "/etc/passwd",
    "/tmp/20150115_0600_fsim_themis07_full.pgm.gz",
    "..%2F..%2F20150115_0601_fsim_themis07_full.pgm.gz",
    "%2e%2e/",
    "fsim_themis07%2F..%2F..%2F",
    "..\\20150115_0603_fsim_themis07_full.pgm.gz",
    "http://evil.example/20150115_0604_fsim_themis07_full.pgm.gz",
    "/fsim_themis66/",
    "fsim_themis99/../../",
    "20150115_0605_fsim_themis07_full.pgm.gz%00.txt",
]


def test_hostile_listing_names_are_refused(tmp_path, settings):
    (tmp_path / "2024/01/08/fsim_themis07").mkdir(parents=True)
    with MirrorServer(tmp_path) as server:
        server.listing_extra = [*HOSTILE, "ok_name"]
        names = Fetcher(settings).list_folder(server.url + "/2024/01/08/")
    assert names == ["fsim_themis07/", "ok_name"]
    assert not any(is_safe_name(name) for name in ("../", "a/b", "/x", "..\\x", "a\nb", "a\x00"))


def test_paths_can_never_leave_the_raw_folder(tmp_path):
    with pytest.raises(ValueError, match="outside"):
        inside(tmp_path, "../escape.cdf")


@pytest.fixture
def stream0_mirror(tmp_path):
    """UCalgary stream0 in its layout. 2015-01-15: fsim_themis07 with ut06 lacking minutes 17 and
    42, no ut07, and another site's folder; 2015-01-16: the imager was swapped (fsim_themis12),
    ut06 has three minutes; 2015-01-17: no fsim folder at all."""
    root = tmp_path / "mirror" / "stream0"
    written = {}

    def minute_file(imager, when):
        relative = layouts.ucalgary_stream0_minute("fsim", imager, when)
        data = gzip.compress(pgm_minute(when, imager=imager), mtime=0)
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_bytes(data)
        written[relative] = data

    for minute in sorted(set(range(60)) - {17, 42}):
        minute_file("themis07", dt.datetime(2015, 1, 15, 6, minute))
    (root / "2015/01/15/gill_themis19/ut06").mkdir(parents=True)
    (root / "2015/01/15/gill_themis19/ut06/20150115_0600_gill_themis19_full.pgm.gz").write_bytes(
        b"not fetched"
    )
    for minute in (0, 1, 59):
        minute_file("themis12", dt.datetime(2015, 1, 16, 6, minute))
    (root / "2015/01/17/gill_themis19").mkdir(parents=True)
    return root, written


def test_stream0_imager_folders_are_discovered_and_hostile_names_refused(
    stream0_mirror, tmp_path, settings
):
    root, written = stream0_mirror
    raw = tmp_path / "resources" / "ds" / "raw"
    hours = [
        hour for day in (15, 16, 17) for hour in layouts.hours_of_night(dt.date(2015, 1, day), 6, 7)
    ]
    before = files_under(tmp_path)
    with MirrorServer(tmp_path / "mirror") as server:
        # Hostile names in every listing; one more, well formed but in the wrong hour's folder.
        server.listing_extra = [*HOSTILE, "20150115_0700_fsim_themis07_full.pgm.gz"]
        base = server.url + "/stream0"
        fetcher = Fetcher(settings)
        jobs, gaps = SOURCES["ucalgary_stream0"].jobs(fetcher, base, "fsim", hours, raw)
        rows = fetch_all(fetcher, jobs, threads=4) + gaps
        requested = set(server.requests)
    assert sorted(url.removeprefix(base + "/") for url, _, _ in jobs) == sorted(written)
    assert {url.removeprefix(base) for url, _, _ in jobs if "20150116" in url} == {
        "/2015/01/16/fsim_themis12/ut06/20150116_0600_fsim_themis12_full.pgm.gz",
        "/2015/01/16/fsim_themis12/ut06/20150116_0601_fsim_themis12_full.pgm.gz",
        "/2015/01/16/fsim_themis12/ut06/20150116_0659_fsim_themis12_full.pgm.gz",
    }
    for row in rows:
        if row.status == "downloaded":
            relative = Path(row.path).relative_to(raw / "ucalgary_stream0").as_posix()
            assert Path(row.path).read_bytes() == written[relative]
    # Gaps: two minutes, whole hours by folder (themisNN where the day has no imager folder).
    gap_urls = sorted(row.url.removeprefix(base) for row in gaps)
    assert gap_urls[:2] == [
        "/2015/01/15/fsim_themis07/ut06/20150115_0617_fsim_themis07_full.pgm.gz",
        "/2015/01/15/fsim_themis07/ut06/20150115_0642_fsim_themis07_full.pgm.gz",
    ]
    assert "/2015/01/15/fsim_themis07/ut07/" in gap_urls
    assert "/2015/01/16/fsim_themis12/ut07/" in gap_urls
    assert "/2015/01/17/fsim_themisNN/ut06/" in gap_urls
    assert "/2015/01/17/fsim_themisNN/ut07/" in gap_urls
    assert gap_summary(rows) == {
        "files_present": 58 + 3,
        "files_missing": 2 + 1 + 57 + 1 + 2,
        "hours_expected": 6,
        "hours_missing": 4,
        "minutes_missing": 2 + 60 + 57 + 60 + 120,
        **NO_FAILURES,
    }
    # Nothing written outside the dataset's raw folder; nothing hostile was ever requested.
    # (bar the empty lock files of the connection slots, kept where the settings say)
    outside = {p for p in files_under(tmp_path) - before if raw not in p.parents}
    slots = Path(settings.slot_dir)
    assert {p for p in outside if p.parent != slots or p.stat().st_size} == set()
    assert not [p for p in requested if ".." in p or "etc" in p or "evil" in p or "//" in p]
    assert not [p for p in requested if "gill" in p]


def test_skymap_is_the_newest_dated_on_or_before_each_date(tmp_path, settings):
    root = tmp_path / "mirror" / "skymaps"
    written = {}
    for folder, version in [
        ("fsim_20140101", "01"),
        ("fsim_20150105", "01"),
        ("fsim_20150105", "02"),
        ("fsim_20160101", "01"),
    ]:
        stamp = folder.split("_")[1]
        relative = f"fsim/{folder}/themis_skymap_fsim_{stamp}-+_v{version}.sav"
        written[relative] = idl_save({"skymap": int(stamp), "version": int(version)})
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_bytes(written[relative])
    (root / "gill/gill_20150104").mkdir(parents=True)
    dates = [dt.date(2015, 1, day) for day in range(3, 8)]
    raw = tmp_path / "raw"
    with MirrorServer(tmp_path / "mirror") as server:
        server.listing_extra = HOSTILE
        base = server.url + "/skymaps"
        fetcher = Fetcher(settings)
        jobs, _ = SOURCES["ucalgary_sav"].jobs(fetcher, base, "fsim", dates, raw)
        rows = fetch_all(fetcher, jobs, threads=1)
        with pytest.raises(ValueError, match="no skymap dated on or before 2013-12-31"):
            SOURCES["ucalgary_sav"].jobs(fetcher, base, "fsim", [dt.date(2013, 12, 31)], raw)
    assert [url.removeprefix(base) for url, _, _ in jobs] == [
        "/fsim/fsim_20140101/themis_skymap_fsim_20140101-+_v01.sav",
        "/fsim/fsim_20150105/themis_skymap_fsim_20150105-+_v02.sav",
    ]
    paths = [row.path for row in rows]
    for path in paths:
        relative = Path(path).relative_to(raw / "ucalgary_sav").as_posix()
        assert Path(path).read_bytes() == written[relative]
    chosen = [Path(layouts.skymap_for_date(paths, day)).name for day in dates]
    assert (
        chosen
        == ["themis_skymap_fsim_20140101-+_v01.sav"] * 2
        + ["themis_skymap_fsim_20150105-+_v02.sav"] * 3
    )


def test_format_checks_accept_real_files_and_refuse_damaged_copies(shared_data, tmp_path):
    """The checks against the real THEMIS files: each passes whole and fails cut short."""
    themis = shared_data / "themis"
    cases = [
        (themis / "gill/20140310_0600_gill_themis19_full.pgm.gz", check_pgm_gz(20)),
        (themis / "gako/thg_l1_asf_gako_2011010617_v01.cdf", check_cdf("thg_asf_gako")),
        (themis / "gako/themis_skymap_gako_20110305-+_vXX.sav", check_idl_save("SKYMAP")),
    ]
    for source, check in cases:
        check(source)
        damaged = tmp_path / source.name
        damaged.write_bytes(source.read_bytes()[: int(source.stat().st_size * 0.9)])
        with pytest.raises(VerificationError):
            check(damaged)
    with pytest.raises(VerificationError, match="lacks variable 'thg_asf_gill'"):
        check_cdf("thg_asf_gill")(themis / "gako/thg_l1_asf_gako_2011010617_v01.cdf")
    with pytest.raises(VerificationError, match="19 PGM frames, expected 20"):
        data = gzip.decompress(cases[0][0].read_bytes())
        second = data.index(b'P5\n#"', 1)
        (tmp_path / "cut.pgm.gz").write_bytes(gzip.compress(data[second:]))
        check_pgm_gz(20)(tmp_path / "cut.pgm.gz")


def test_format_checks_refuse_other_content(tmp_path):
    page = tmp_path / "page.gz"
    page.write_bytes(gzip.compress(b"<html><body>Service unavailable</body></html>\n"))
    with pytest.raises(VerificationError, match="no ISMR row parses"):
        check_ismr_gz(62)(page)
    with pytest.raises(VerificationError, match="no P5 magic"):
        check_pgm_gz()(page)
    with pytest.raises(VerificationError, match="not an IDL save file"):
        check_idl_save()(page)
    with pytest.raises(VerificationError, match="not a readable CDF"):
        check_cdf("thg_asf_fsim")(page)
    (tmp_path / "other.sav").write_bytes(idl_save({"notskymap": 1}))
    with pytest.raises(VerificationError, match="lacks variable 'SKYMAP'"):
        check_idl_save()(tmp_path / "other.sav")
    # An ISMR file with one bad row still verifies: the row is ingest's to skip and count.
    text = ismr_text(0).split("\n")
    text[0] = "garbage,row"
    (tmp_path / "ok.ismr.gz").write_bytes(gzip.compress("\n".join(text).encode()))
    check_ismr_gz(62)(tmp_path / "ok.ismr.gz")


def test_file_urls_use_the_same_verification(mirror, tmp_path, monkeypatch, settings):
    root, hours = mirror
    monkeypatch.chdir(tmp_path)
    relative = f"file:{root.relative_to(tmp_path)}"
    jobs = SOURCES["chain_ismr"].jobs(relative, "fsi", hours, tmp_path / "raw", 62)
    rows = [Fetcher(settings).fetch(*job) for job in jobs]
    assert [row.status for row in rows] == ["downloaded"] * 3
    gap = Fetcher(settings).fetch(f"{relative}/nope.gz", tmp_path / "nope.gz", check_gzip)
    assert gap.status == "missing"
