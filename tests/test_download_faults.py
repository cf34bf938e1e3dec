"""Archives that answer wrong, against a real HTTP server on 127.0.0.1: listings in every dialect
and pages that are no listing, files corrupt at their source (skip and fail), size limits,
redirects, malformed headers, and the connection slots kept in the project."""

from __future__ import annotations

import datetime as dt
import gzip
from pathlib import Path

import numpy as np
import pytest
from http_mirror import MirrorServer, pgm_minute
from workflow_helpers import html_tables

from latentsky.acquisition import layouts
from latentsky.acquisition.checks import check_cdf, check_ismr_gz, check_pgm_gz
from latentsky.acquisition.gaps import gap_summary
from latentsky.acquisition.http import (
    PROJECT_SLOT_DIR,
    DownloadError,
    DownloadSettings,
    Fetcher,
    fetch_all,
    parse_listing,
    salvaged_path,
    workflow_settings,
)
from latentsky.acquisition.manifest import ManifestRow, read_manifest, usable_paths, write_manifest
from latentsky.acquisition.sources import SOURCES
from latentsky.analysis.quality import quality_page
from latentsky.errors import BadInputError
from latentsky.instruments.chain import read_ismr
from latentsky.instruments.themis import read_themis_pgm_frames

DAY = dt.date(2015, 1, 15)
HOUR = dt.datetime(2015, 1, 15, 6)


@pytest.fixture
def settings(tmp_path):
    return DownloadSettings(
        retries=3,
        backoff_s=0.01,
        connect_timeout_s=2,
        read_timeout_s=2,
        slot_dir=str(tmp_path / "slots"),
    )


def files_under(folder: Path) -> set[Path]:
    return {p for p in folder.rglob("*") if p.is_file()} if folder.exists() else set()


def stream0_mirror(root: Path, minutes=range(5), frames: int = 4) -> dict[str, bytes]:
    """Minutes of fsim_themis07 stream0 at 06 UT, in the archive's layout; relative path -> bytes."""
    written = {}
    for minute in minutes:
        when = HOUR.replace(minute=minute)
        relative = layouts.ucalgary_stream0_minute("fsim", "themis07", when)
        written[relative] = gzip.compress(pgm_minute(when, frames=frames), mtime=0)
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_bytes(written[relative])
    return written


# --- 1. listings: any dialect parses; a page with no file index is a fault -------------------------


@pytest.mark.parametrize("style", ["apache", "nginx", "quirky", "bare"])
def test_listings_of_every_dialect_give_the_same_names(tmp_path, settings, style):
    written = stream0_mirror(tmp_path / "m")
    with MirrorServer(tmp_path / "m") as server:
        server.listing_style = style
        fetcher = Fetcher(settings)
        day = fetcher.read_listing(f"{server.url}/2015/01/15/")
        hour = fetcher.read_listing(f"{server.url}/2015/01/15/fsim_themis07/ut06/")
        jobs, rows = SOURCES["ucalgary_stream0"].jobs(
            fetcher, server.url, "fsim", [HOUR], tmp_path / "raw"
        )
    assert day == ["fsim_themis07/"]
    assert hour == sorted(Path(r).name for r in written)
    assert len(jobs) == 5 and len(rows) == 55  # the other 55 minutes: gaps


def test_listing_parser_resolves_links_and_ignores_what_is_not_a_child():
    url = "https://a.example/x/2015/01/15/"
    page = """<html><head><base href="https://a.example/x/2015/01/15/"><TITLE>Index of /x/2015/01/15</TITLE>
    <A HREF='fsim_themis07/'>a</A> <a href=/x/2015/01/15/gill_themis19/?C=M>b</a>
    <a href="https://a.example/x/2015/01/15/rank_themis08/#x">c</a>
    <a href="?C=N;O=D">sort</a> <a href="sub/deeper/">d</a> <a href="mailto:x@y">m</a>
    <a href="https://b.example/x/2015/01/15/evil/">e</a> <a href="%2e%2e/">f</a>
    <a href="a%2Fb">g</a> <a href="f&amp;g.pgm.gz">h</a></html>"""
    assert parse_listing(page, url) == [
        "f&g.pgm.gz",
        "fsim_themis07/",
        "gill_themis19/",
        "rank_themis08/",
    ]


INDEX_OF = "<html><title>Index of /x/2015/01/15</title>"


@pytest.mark.parametrize(
    "page",
    [
        # Python's http.server
        "<html><head><title>Directory listing for /x/2015/01/15/</title></head><body><ul>"
        '<li><a href="fsim_themis07/">fsim_themis07/</a></li></ul></body></html>',
        # IIS: absolute paths, upper case, the parent
        '<pre><A HREF="/x/2015/01/">[To Parent Directory]</A><br> 1/1/2015 &lt;dir&gt; '
        '<A HREF="/x/2015/01/15/fsim_themis07/">fsim_themis07</A><br></pre>',
        INDEX_OF + '<a href="./fsim_themis07/">.</a><A HREF=fsim_themis07/>unquoted</A>',
        # served over http behind a proxy, linking to https (and the host in capitals)
        INDEX_OF + '<a href="https://A.example:443/x/2015/01/15/fsim_themis07/">x</a>',
    ],
)
def test_listings_of_other_servers_give_their_entries(page):
    assert parse_listing(page, "http://a.example/x/2015/01/15/") == ["fsim_themis07/"]


@pytest.mark.parametrize(
    "page",
    [
        "",
        "<html><body><h1>Down for maintenance</h1></body></html>",
        '<html><title>Error</title><a href="/">home</a> <a href="status.html">s</a></html>',
        "<html><body>Service unavailable</body></html>",
        "not html at all",
    ],
)
def test_a_page_without_a_file_index_is_no_listing(page):
    from latentsky.acquisition.http import ListingFault

    with pytest.raises(ListingFault, match="no recognisable file index"):
        parse_listing(page, "https://a.example/2015/01/15/")


@pytest.mark.parametrize(
    "links",
    [
        '<a href="ftp://a.example/x/2015/01/15/fsim_themis07/">x</a>',
        '<a href="https://mirror.example/x/2015/01/15/fsim_themis07/">x</a>',
        '<a href="http://[::1/x/">x</a> <a href="../">Parent</a>',
    ],
)
def test_an_index_that_links_only_elsewhere_is_no_empty_folder(links):
    """Not a gap: which files the folder holds is unknown, so the listing is a fault."""
    from latentsky.acquisition.http import ListingFault

    with pytest.raises(ListingFault, match="links elsewhere but to no entry"):
        parse_listing(INDEX_OF + links, "http://a.example/x/2015/01/15/")


def test_an_index_of_another_folder_is_no_listing_of_this_one():
    from latentsky.acquisition.http import ListingFault

    page = '<title>Index of /2015/01</title><a href="../">up</a><a href="15/">15/</a>'
    with pytest.raises(ListingFault, match="another folder"):
        parse_listing(page, "https://a.example/2015/01/15/")


def test_an_empty_folder_is_a_listing_of_nothing():
    page = '<html><title>Index of /2015/01/15</title><a href="../">Parent</a></html>'
    assert parse_listing(page, "https://a.example/2015/01/15/") == []


def test_a_maintenance_page_for_a_listing_is_retried_then_a_failure_naming_the_url(
    tmp_path, settings
):
    stream0_mirror(tmp_path / "m")
    with MirrorServer(tmp_path / "m") as server:
        server.faults["/2015/01/15/"] = ["maintenance", "ok"]
        assert Fetcher(settings).read_listing(f"{server.url}/2015/01/15/") == ["fsim_themis07/"]
        assert server.requests["/2015/01/15/"] == 2
        server.faults["/2015/01/15/"] = ["maintenance"] * settings.retries
        with pytest.raises(DownloadError) as failure:
            Fetcher(settings).read_listing(f"{server.url}/2015/01/15/")
    assert str(failure.value).startswith(f"{server.url}/2015/01/15/: still broken after 3 tries")
    assert "no recognisable file index" in str(failure.value)


@pytest.mark.parametrize("broken", ["/2015/01/15/", "/2015/01/15/fsim_themis07/ut06/"])
def test_a_broken_listing_is_a_failure_not_a_gap(tmp_path, settings, broken):
    """Skip mode: the hour is recorded failed (with the fault), no gap, no file; fail mode: the
    job stops naming the URL. Once the archive answers right, the same call gets every file."""
    written = stream0_mirror(tmp_path / "m")
    raw = tmp_path / "raw"
    with MirrorServer(tmp_path / "m") as server:
        server.faults[broken] = ["maintenance"] * settings.retries
        with pytest.raises(DownloadError, match=f"{server.url}{broken}: still broken"):
            SOURCES["ucalgary_stream0"].jobs(Fetcher(settings), server.url, "fsim", [HOUR], raw)
        server.faults[broken] = ["maintenance"] * settings.retries
        fetcher = Fetcher(settings, skip_failures=True)
        jobs, rows = SOURCES["ucalgary_stream0"].jobs(fetcher, server.url, "fsim", [HOUR], raw)
        assert jobs == []
        assert [(row.status, row.url) for row in rows] == [
            (
                "failed",
                f"{server.url}/2015/01/15/fsim_themis{'NN' if broken.count('/') == 4 else '07'}/ut06/",
            )
        ]
        assert "no recognisable file index" in rows[0].detail
        summary = gap_summary(rows)
        assert summary["files_missing"] == summary["hours_missing"] == 0
        assert summary["files_failed"] == summary["hours_failed"] == 1
        jobs, rows = SOURCES["ucalgary_stream0"].jobs(fetcher, server.url, "fsim", [HOUR], raw)
    assert len(jobs) == len(written) and all(row.status == "missing" for row in rows)


# --- 2. a file corrupt at its source ---------------------------------------------------------------


def test_a_pgm_truncated_at_its_source_fails_and_keeps_its_complete_frames(tmp_path, settings):
    written = stream0_mirror(tmp_path / "m", frames=6)
    relatives = sorted(written)
    bad = "/" + relatives[2]
    raw = tmp_path / "raw"
    with MirrorServer(tmp_path / "m") as server:
        jobs = [(f"{server.url}/{r}", raw / r, check_pgm_gz()) for r in relatives]
        server.faults[bad] = ["truncate"] * settings.retries
        with pytest.raises(DownloadError) as failure:
            fetch_all(Fetcher(settings), jobs, threads=1)
        assert f"{server.url}{bad}: still broken after 3 tries" in str(failure.value)
        assert "broken gzip stream" in str(failure.value)
        server.faults[bad] = ["truncate"] * settings.retries
        rows = fetch_all(Fetcher(settings, skip_failures=True), jobs, threads=2)
        assert server.requests[bad] == 2 * settings.retries
    statuses = [row.status for row in rows]
    assert statuses[2] == "failed"
    assert all(status in ("downloaded", "present") for k, status in enumerate(statuses) if k != 2)
    failed = rows[2]
    assert failed.url == server.url + bad and "still broken after 3 tries" in failed.detail
    target = raw / relatives[2]
    assert not target.exists(), "no partial file under the archive's name"
    assert failed.path == str(salvaged_path(target)) and Path(failed.path).is_file()
    salvaged = read_themis_pgm_frames(failed.path, skip_bad_frames=True)
    assert 0 < len(salvaged.frames) < 6
    assert "complete frame(s) before the damage are readable" in failed.detail
    for row, relative in zip(rows, relatives, strict=True):
        if row.status != "failed":
            assert Path(row.path).read_bytes() == written[relative]
    assert not [p for p in files_under(raw) if ".part-" in p.name]
    # The file comes right at the source: a rerun fetches it and drops the salvaged part.
    with MirrorServer(tmp_path / "m") as server:
        jobs = [(f"{server.url}/{r}", raw / r, check_pgm_gz()) for r in relatives]
        again = fetch_all(Fetcher(settings, skip_failures=True), jobs, threads=1)
    assert again[2].status == "downloaded" and target.read_bytes() == written[relatives[2]]
    assert not salvaged_path(target).exists()


def test_ismr_truncated_at_source_keeps_its_rows_and_a_cdf_keeps_nothing(tmp_path, settings):
    from latentsky.demo.aurora import write_l1_cdf

    root = tmp_path / "m"
    ismr = layouts.chain_ismr("fsi", HOUR)
    (root / ismr).parent.mkdir(parents=True)
    (root / ismr).write_bytes(gzip.compress(hour_of_ismr(HOUR).encode(), mtime=0))
    cdf = layouts.berkeley_l1_cdf("fsim", HOUR)
    times = np.datetime64(HOUR, "ms") + np.arange(4) * np.timedelta64(3000, "ms")
    frames = np.random.default_rng(0).integers(2000, 6000, (4, 256, 256)).astype(np.uint16)
    write_l1_cdf(root / cdf, "fsim", HOUR, frames, times)
    raw = tmp_path / "raw"
    with MirrorServer(root) as server:
        jobs = [
            (f"{server.url}/{ismr}", raw / ismr, check_ismr_gz(62)),
            (f"{server.url}/{cdf}", raw / cdf, check_cdf("thg_asf_fsim")),
        ]
        server.faults["/" + ismr] = ["truncate"] * settings.retries
        server.faults["/" + cdf] = ["truncate"] * settings.retries
        rows = fetch_all(Fetcher(settings, skip_failures=True), jobs, threads=2)
    assert [row.status for row in rows] == ["failed", "failed"]
    assert rows[0].path and rows[0].bytes > 0 and len(rows[0].sha256) == 64
    frame, counts = read_ismr(rows[0].path)
    assert len(frame) > 0 and counts["corrupt_files"] == 1
    assert rows[1].path == "" and "not a readable CDF" in rows[1].detail
    assert files_under(raw) == {Path(rows[0].path)}


def test_ingest_uses_salvaged_parts_in_skip_mode_and_refuses_failures_in_fail_mode(tmp_path):
    rows = [
        ManifestRow("u1", "a.pgm.gz", status="downloaded"),
        ManifestRow("u2", "b.pgm.gz", status="present"),
        ManifestRow("u3", "", status="missing", detail="not in the archive"),
        ManifestRow("u4", "salvaged/d.pgm.gz", status="failed", detail="broken gzip stream"),
        ManifestRow("u5", "", status="failed", detail="HTTP 403 Forbidden (not retried)"),
    ]
    write_manifest(rows, tmp_path / "m.tsv")
    rows = read_manifest(tmp_path / "m.tsv")
    assert usable_paths(rows) == ["a.pgm.gz", "b.pgm.gz", "salvaged/d.pgm.gz"]
    with pytest.raises(BadInputError, match="^u4: download failed: broken gzip stream"):
        usable_paths(rows, skip=False)


def test_the_report_page_shows_gaps_failures_and_bad_input_apart():
    """The report's data-quality page: the summary's gaps, failures and bad input, number for
    number, in tables of their own (names from the archive are escaped)."""
    rows = [
        ManifestRow("https://a/x/20150115_0600_fsim_themis07_full.pgm.gz", "a", status="present"),
        ManifestRow("https://a/x/20150115_0601_fsim_themis07_full.pgm.gz", "", status="missing"),
        ManifestRow(
            "https://a/x/20150115_0602_fsim_themis07_full.pgm.gz?<b>",
            "salvaged/c",
            status="failed",
            detail="broken gzip stream",
        ),
    ]
    summary = {
        "gaps": {"images": {**gap_summary(rows), "reasons": {"not in the archive": 1}}},
        "failures": {"images": [{"url": rows[2].url, "reason": rows[2].detail, "salvaged": "c"}]},
        "bad_input": {"images": {"frames_skipped": 3, "times_out_of_order": 1}, "ismr": {}},
    }
    tables = html_tables(quality_page("d<1>", summary))
    gaps = {(role, key): int(n) for role, key, n in tables["gaps"][1:]}
    assert gaps == {
        ("images", k): v for k, v in summary["gaps"]["images"].items() if k != "reasons"
    }
    assert gaps["images", "files_missing"] == 1 and gaps["images", "files_failed"] == 1
    assert tables["gap-reasons"][1:] == [["images", "not in the archive", "1"]]
    assert tables["failures"][1:] == [["images", rows[2].url, "broken gzip stream", "c"]]
    assert tables["bad-input"][1:] == [
        ["images", "frames_skipped", "3"],
        ["images", "times_out_of_order", "1"],
    ]
    page = quality_page("d", {"gaps": {}, "failures": {"images": []}, "bad_input": {}})
    assert html_tables(page) == {} and 'id="failures-none"' in page


def hour_of_ismr(hour: dt.datetime, satellites: int = 30) -> str:
    """An hour of Septentrio-style ISMR rows (62 columns) whose minutes end within ``hour``."""
    from latentsky.instruments.gpstime import utc_to_gps

    ends = np.datetime64(hour, "s") + np.arange(1, 61) * np.timedelta64(60, "s")
    weeks, tows = utc_to_gps(ends)
    fields = ["45"] * 59  # columns 4-62
    fields[14 - 4] = "0.1"  # sigma_phi (rad)
    return "\n".join(
        ",".join([str(w), f"{t:.0f}", str(s), *fields])
        for w, t in zip(weeks, tows, strict=True)
        for s in range(1, satellites + 1)
    )


# --- 5. bounded, accountable downloads -------------------------------------------------------------


def test_an_endless_body_is_cut_at_the_limit_and_a_huge_one_refused_at_once(tmp_path, settings):
    written = stream0_mirror(tmp_path / "m", minutes=[0])
    path = "/" + next(iter(written))
    settings.max_file_mb = 0.5
    raw = tmp_path / "raw"
    with MirrorServer(tmp_path / "m") as server:
        server.faults[path] = ["endless"] * settings.retries
        with pytest.raises(DownloadError, match="runs past download.max_file_mb") as failure:
            Fetcher(settings).fetch(server.url + path, raw / "f.pgm.gz")
        assert server.url + path in str(failure.value)
        assert server.requests[path] == settings.retries
        server.faults[path] = ["huge"]
        with pytest.raises(DownloadError, match=r"exceed download.max_file_mb.*not retried"):
            Fetcher(settings).fetch(server.url + path, raw / "f.pgm.gz")
        assert server.requests[path] == settings.retries + 1
        settings.max_listing_mb = 0.0001
        with pytest.raises(DownloadError, match="max_listing_mb"):
            Fetcher(settings).read_listing(server.url + "/2015/01/15/fsim_themis07/ut06/")
    assert files_under(raw) == set()


def test_malformed_content_length_is_a_retried_fault_naming_the_url(tmp_path, settings):
    written = stream0_mirror(tmp_path / "m", minutes=[0])
    relative = next(iter(written))
    with MirrorServer(tmp_path / "m") as server:
        server.faults["/" + relative] = ["badlength", "ok"]
        row = Fetcher(settings).fetch(f"{server.url}/{relative}", tmp_path / "raw" / relative)
        assert server.requests["/" + relative] == 2
        server.faults["/" + relative] = ["badlength"] * settings.retries
        with pytest.raises(DownloadError, match="malformed Content-Length header 'twelve'") as e:
            Fetcher(settings).fetch(f"{server.url}/{relative}", tmp_path / "raw2" / relative)
    assert row.status == "downloaded"
    assert (tmp_path / "raw" / relative).read_bytes() == written[relative]
    assert str(e.value).startswith(f"{server.url}/{relative}: still broken")


@pytest.mark.parametrize(
    "location", ["http://[::1/moved", "http://127.0.0.1:99999999/moved", "http://h:port/x"]
)
def test_a_malformed_location_is_a_retried_fault_naming_the_url(tmp_path, settings, location):
    written = stream0_mirror(tmp_path / "m", minutes=[0])
    relative = next(iter(written))
    with MirrorServer(tmp_path / "m") as server:
        server.faults["/" + relative] = [f"redirect:{location}", "ok"]
        row = Fetcher(settings).fetch(f"{server.url}/{relative}", tmp_path / "a" / "f.pgm.gz")
        assert row.status == "downloaded" and server.requests["/" + relative] == 2
        server.faults["/" + relative] = [f"redirect:{location}"] * settings.retries
        with pytest.raises(DownloadError) as failure:
            Fetcher(settings).fetch(f"{server.url}/{relative}", tmp_path / "b" / "f.pgm.gz")
    assert str(failure.value).startswith(f"{server.url}/{relative}: still broken after 3 tries")
    # requests itself parses some Locations (and says why it refuses them); ours, the rest.
    reason = str(failure.value)
    assert f"malformed Location {location!r}" in reason or "Invalid IPv6 URL" in reason, reason
    assert (tmp_path / "a" / "f.pgm.gz").read_bytes() == written[relative]
    assert files_under(tmp_path / "b") == set()


def test_a_charset_that_does_not_exist_changes_no_listing_and_no_file(tmp_path, settings):
    written = stream0_mirror(tmp_path / "m", minutes=[0, 1])
    relative = sorted(written)[0]
    folder = "/" + relative.rsplit("/", 1)[0] + "/"
    with MirrorServer(tmp_path / "m") as server:
        server.faults[folder] = ["charset:no-such-charset"]
        server.faults["/" + relative] = ["charset:no-such-charset"]
        names = Fetcher(settings).read_listing(server.url + folder)
        row = Fetcher(settings).fetch(f"{server.url}/{relative}", tmp_path / "f.pgm.gz")
        assert server.requests[folder] == 1 and server.requests["/" + relative] == 1
    assert names == sorted(Path(r).name for r in written)
    assert row.status == "downloaded"
    assert (tmp_path / "f.pgm.gz").read_bytes() == written[relative]


def test_redirects_stay_on_allowed_hosts_and_the_manifest_records_the_final_url(tmp_path, settings):
    written = stream0_mirror(tmp_path / "m", minutes=[0])
    relative = next(iter(written))
    (tmp_path / "m" / "moved").mkdir()
    (tmp_path / "m" / "moved" / "file.pgm.gz").write_bytes(written[relative])
    with MirrorServer(tmp_path / "m") as server:
        other = server.url.replace("127.0.0.1", "localhost")
        # Same host: followed; the manifest row names where the bytes came from.
        server.faults["/" + relative] = ["redirect:/moved/file.pgm.gz"]
        row = Fetcher(settings).fetch(f"{server.url}/{relative}", tmp_path / "a" / "f.pgm.gz")
        assert row.status == "downloaded" and row.final_url == f"{server.url}/moved/file.pgm.gz"
        assert row.url == f"{server.url}/{relative}"
        # Another host: refused at once, naming both URLs.
        server.faults["/" + relative] = [f"redirect:{other}/moved/file.pgm.gz"] * 3
        with pytest.raises(DownloadError, match="to another host.*redirect_hosts") as refused:
            Fetcher(settings).fetch(f"{server.url}/{relative}", tmp_path / "b" / "f.pgm.gz")
        assert str(refused.value).startswith(f"{server.url}/{relative}: ")
        assert server.requests["/moved/file.pgm.gz"] == 1  # only the same-host one
        # Unless the config allows it.
        settings.redirect_hosts = ["localhost"]
        row = Fetcher(settings).fetch(f"{server.url}/{relative}", tmp_path / "c" / "f.pgm.gz")
        assert row.final_url == f"{other}/moved/file.pgm.gz"
        # Never to anything but http(s).
        server.faults["/" + relative] = [f"redirect:file://{tmp_path}/m/moved/file.pgm.gz"]
        with pytest.raises(DownloadError, match="not an http"):
            Fetcher(settings).fetch(f"{server.url}/{relative}", tmp_path / "d" / "f.pgm.gz")
    assert (tmp_path / "c" / "f.pgm.gz").read_bytes() == written[relative]
    assert not (tmp_path / "b").exists() or files_under(tmp_path / "b") == set()
    assert not (tmp_path / "d").exists() or files_under(tmp_path / "d") == set()


def test_the_workflow_keeps_connection_slots_in_the_project(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    settings = workflow_settings({"retries": 2, "max_connections_per_host": 2})
    assert settings.slot_dir == PROJECT_SLOT_DIR == ".snakemake/connection-slots"
    root = tmp_path / "m"
    stream0_mirror(root, minutes=[0, 1])
    with MirrorServer(root) as server:
        fetcher = Fetcher(settings)
        jobs, _ = SOURCES["ucalgary_stream0"].jobs(
            fetcher, server.url, "fsim", [HOUR], tmp_path / "r"
        )
        fetch_all(fetcher, jobs, threads=2)
    # Slot files in the project, never more than the limit (whether the second thread ever
    # needed the second slot depends on timing: the first may be free again by then).
    slots = {p.name for p in (tmp_path / PROJECT_SLOT_DIR).iterdir()}
    assert "127.0.0.1.0.lock" in slots and slots <= {"127.0.0.1.0.lock", "127.0.0.1.1.lock"}
