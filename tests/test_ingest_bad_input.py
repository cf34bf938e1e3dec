"""Bad input at ingest, through the real rule scripts: skipped and counted (default) or stopping the
run naming the file and the frame, variable or line (``on_bad_input: fail``).

Mirrors in the real layouts are built from the demo generator's Berkeley CDFs and CHAIN ISMR files
and, when ``../shared/data`` is there, from the real GILL stream0 file and the real GAKO skymap, then
damaged: PGM frames with a broken header, a truncated frame, an unreadable time stamp; a CDF without
its time variable; frames with a repeated time and times out of order; ISMR rows with the wrong
column count, a non-numeric field, negative and sentinel sigma_phi, a duplicate record and a record
out of order. The workflow downloads them through its download rules (``file:`` URLs) and runs
projection, stacking and scintillation; for the Berkeley dataset it runs on to summary.json, where
the counts and the gaps must land.
"""

from __future__ import annotations

import datetime as dt
import gzip
import json
import os
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
import yaml
from cdflib.cdfwrite import CDF
from workflow_helpers import ROOT, copy_workflow, html_tables, report_file, run_snakemake

from latentsky.acquisition import layouts
from latentsky.acquisition.gaps import gap_summary
from latentsky.acquisition.manifest import read_manifest
from latentsky.demo.aurora import DemoParams, generate_demo_mirror, write_l1_cdf
from latentsky.errors import BadInputError
from latentsky.instruments.chain import read_ismr_files
from latentsky.instruments.themis import read_themis_l1_cdf, read_themis_pgm_frames

pytestmark = pytest.mark.slow

NIGHTS = [dt.date(2024, 1, 8) + dt.timedelta(days=k) for k in range(5)]
HOURS = (6, 7)
FRAMES_PER_HOUR = 12  # cadence 300 s
GILL_DAY = dt.date(2014, 3, 10)
GILL_MINUTES = range(10)


# --- the demo's archive files, and ways to damage them ----------------------------------------------


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Path:
    """A small demo mirror: Berkeley L1 CDFs (12 frames an hour), calibration CDF, CHAIN ISMR."""
    folder = tmp_path_factory.mktemp("demo")
    params = DemoParams(
        nights=NIGHTS, first_hour=HOURS[0], last_hour=HOURS[1], cadence_s=300, seed=5
    )
    generate_demo_mirror(folder / "mirror", folder / "labels.csv", folder / "truth", params)
    return folder / "mirror"


def l1_relative(day: dt.date, hour: int) -> str:
    return layouts.berkeley_l1_cdf("fsim", dt.datetime.combine(day, dt.time(hour)))


def ismr_relative(day: dt.date, hour: int) -> str:
    return layouts.chain_ismr("fsi", dt.datetime.combine(day, dt.time(hour)))


def rewrite_cdf_times(source: Path, target: Path, edit) -> None:
    """A copy of a level-1 CDF whose frame times went through ``edit(times) -> times``."""
    frames, times = read_themis_l1_cdf(source, "fsim")
    hour = dt.datetime.strptime(source.name.split("_")[4], "%Y%m%d%H")
    # The reader rotated the frames to canonical orientation; store them as Berkeley does.
    write_l1_cdf(target, "fsim", hour, frames[:, ::-1, ::-1], edit(times.copy()))


def cdf_without_epoch(source: Path, target: Path) -> None:
    """A copy of a level-1 CDF that holds its images but not their time variable."""
    frames, _ = read_themis_l1_cdf(source, "fsim")
    target.parent.mkdir(parents=True, exist_ok=True)
    cdf = CDF(str(target), cdf_spec={"Majority": "row_major", "Encoding": 6}, delete=True)
    spec = {
        "Variable": "thg_asf_fsim",
        "Data_Type": 12,  # CDF_UINT2
        "Num_Elements": 1,
        "Rec_Vary": True,
        "Dim_Sizes": [256, 256],
    }
    cdf.write_var(spec, var_data=np.ascontiguousarray(frames[:, ::-1, ::-1]))
    cdf.close()


def read_rows(path: Path) -> list[list[str]]:
    return [line.split(",") for line in gzip.decompress(path.read_bytes()).decode().splitlines()]


def write_rows(path: Path, rows: list[list[str]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(("\n".join(",".join(r) for r in rows) + "\n").encode()))


def damaged_ismr_rows(rows: list[list[str]]) -> list[list[str]]:
    """One of each ISMR fault, each on its own record (line numbers are 1-based)."""
    rows = [list(row) for row in rows]
    rows[3] = rows[3][:-1]  # 61 columns
    rows[5][5] = "abc"  # elevation (column 6) is not a number
    rows[7][13] = "-0.100"  # negative sigma_phi (column 14)
    rows[9][13] = "99.990"  # a fill value
    rows.insert(12, list(rows[11]))  # the same satellite and minute twice
    rows.append(rows.pop(0))  # the first minute's first record, moved to the end
    return rows


ISMR_SKIPPED = {
    "wrong_column_count": 1,
    "non_numeric": 1,
    "invalid_sigma_phi": 2,
    "duplicates": 1,
    "out_of_order": 1,
}


def copy(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, target)


def cdf_mirror(demo: Path, target: Path, nights: list[dt.date], damage: dict) -> None:
    """Images, calibration and ISMR of ``nights`` in their layouts under ``target``; ``damage``
    maps (night index, hour, "images"/"ismr") to a function (source, target) or None (absent)."""
    copy(
        demo / "themis_cal" / layouts.berkeley_calibration_cdf("fsim"),
        target / "themis_cal" / layouts.berkeley_calibration_cdf("fsim"),
    )
    for n, night in enumerate(nights):
        for hour in HOURS:
            for kind, relative in (
                ("images", "themis_l1/" + l1_relative(night, hour)),
                ("ismr", "chain_ismr/" + ismr_relative(night, hour)),
            ):
                action = damage.get((n, hour, kind), copy)
                if action is not None:
                    (target / relative).parent.mkdir(parents=True, exist_ok=True)
                    action(demo / relative, target / relative)


def cdf_dataset(name: str, nights: list[dt.date], hours=HOURS, station: bool = True) -> dict:
    base = f"file:mirror/{name}"
    dataset = {
        "kind": "asi",
        "site": "fsim",
        "dates": {"start": str(nights[0]), "end": str(nights[-1])},
        "hours_ut": list(hours),
        "image_source": "berkeley_l1",
        "skymap_source": "berkeley_cal",
        "base_urls": {
            "berkeley_l1": f"{base}/themis_l1",
            "berkeley_cal": f"{base}/themis_cal",
            "chain_ismr": f"{base}/chain_ismr",
        },
    }
    if station:
        dataset["gnss_station"] = "fsi"
    return dataset


# --- real GILL stream0 frames, damaged -------------------------------------------------------------


def gill_minute(template: bytes, minute: int) -> bytes:
    """The real 06:00 GILL minute (decompressed) with its frame times moved to 06:MM."""
    return template.replace(b"2014-03-10 06:00:", f"2014-03-10 06:{minute:02d}:".encode())


def frame_starts(data: bytes) -> list[int]:
    starts, position = [], data.find(b'P5\n#"')
    while position >= 0:
        starts.append(position)
        position = data.find(b'P5\n#"', position + 1)
    return starts


def frame_time(data: bytes, index: int) -> bytes:
    start = frame_starts(data)[index]
    key = data.index(b'"Image request start" ', start) + len(b'"Image request start" ')
    return data[key : data.index(b"\n", key)]


def with_frame_time(data: bytes, index: int, stamp: bytes) -> bytes:
    start = frame_starts(data)[index]
    key = data.index(b'"Image request start" ', start) + len(b'"Image request start" ')
    return data[:key] + stamp + data[data.index(b"\n", key) :]


def broken_header(data: bytes, index: int) -> bytes:
    start = frame_starts(data)[index]
    size = data.index(b"\n256 256\n", start)
    return data[:size] + b"\n256 2x6\n" + data[size + len(b"\n256 256\n") :]


GILL_DAMAGE = {
    1: ("frames_skipped", lambda d: broken_header(d, 3)),
    2: ("frames_skipped", lambda d: d[:-1000]),  # the last frame's pixels cut short
    3: ("frames_skipped", lambda d: with_frame_time(d, 0, b"2014-03-1X 06:03:00.063119 UTC")),
    4: ("duplicate_times", lambda d: with_frame_time(d, 5, frame_time(d, 4))),
    5: (
        "times_out_of_order",
        lambda d: with_frame_time(with_frame_time(d, 7, frame_time(d, 8)), 8, frame_time(d, 7)),
    ),
}


def gill_mirror(
    shared: Path,
    target: Path,
    damaged: dict,
    truncated: tuple[int, ...] = (),
    swapped_in: tuple[int, ...] = (),
    skymaps: dict[str, bytes] | None = None,
) -> None:
    """Ten minutes of GILL stream0 (06:00-06:09) of imager themis19 and its skymap: the real GAKO
    one, renamed, its site and imager IDs (SITE_UID, IMAGER_UID) made GILL's themis19 so that it
    passes as the GILL imager's own (the projection checks them against the frames' headers).

    ``truncated``: minutes whose gzip file the archive holds cut in half. ``swapped_in``: minutes
    after 06:09 that another imager (themis20, in its own folder and headers) recorded the same
    day. ``skymaps``: folder date -> imager ID of each skymap (default: one of themis19; None:
    GAKO's skymap as it is, site and imager IDs included).
    """
    template = gzip.decompress((shared / "20140310_0600_gill_themis19_full.pgm.gz").read_bytes())
    for minute in [*GILL_MINUTES, *swapped_in]:
        data = gill_minute(template, minute)
        imager = "themis19"
        if minute in swapped_in:
            imager = "themis20"
            data = data.replace(b"themis19", b"themis20")
        if minute in damaged:
            data = damaged[minute](data)
        when = dt.datetime.combine(GILL_DAY, dt.time(6, minute))
        path = target / "stream0" / layouts.ucalgary_stream0_minute("gill", imager, when)
        path.parent.mkdir(parents=True, exist_ok=True)
        packed = gzip.compress(data, mtime=0)
        path.write_bytes(packed[: len(packed) // 2] if minute in truncated else packed)
    for day, imager in (skymaps or {"20140101": b"themis19"}).items():
        skymap = target / f"skymaps/gill/gill_{day}/themis_skymap_gill_{day}-+_vXX.sav"
        if imager is None:  # GAKO's own skymap, under GILL's name
            copy(GAKO_SKYMAP_FILE(shared), skymap)
        else:
            write_gill_skymap(GAKO_SKYMAP_FILE(shared), skymap, imager)


def GAKO_SKYMAP_FILE(shared: Path) -> Path:  # noqa: N802 - a path, read like a constant
    return shared.parent / "gako" / "themis_skymap_gako_20110305-+_vXX.sav"


def write_gill_skymap(gako: Path, target: Path, imager: bytes = b"themis19") -> None:
    """The real GAKO skymap with its site ID made ``gill`` and its imager ID ``imager`` (the
    strings have the same lengths, so the IDL save file stays valid)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(gako.read_bytes().replace(b"gako", b"gill").replace(b"themis20", imager))


def gill_dataset(name: str) -> dict:
    return {
        "kind": "asi",
        "site": "gill",
        "dates": {"start": str(GILL_DAY), "end": str(GILL_DAY)},
        "hours_ut": [6, 6],
        "image_source": "ucalgary_stream0",
        "skymap_source": "ucalgary_sav",
        "base_urls": {
            "ucalgary_stream0": f"file:mirror/{name}/stream0",
            "ucalgary_skymaps": f"file:mirror/{name}/skymaps",
        },
    }


def shared_or_none() -> Path | None:
    folder = ROOT.parent / "shared" / "data" / "themis" / "gill"
    if folder.is_dir():
        return folder
    if os.environ.get("REQUIRE_SHARED_FIXTURES") == "1":
        pytest.fail(f"{folder} is missing and REQUIRE_SHARED_FIXTURES=1 is set")
    return None


def write_config(work: Path, name: str, datasets: dict, on_bad_input: str) -> str:
    config = yaml.safe_load((ROOT / "tests" / "data" / "tiny.yaml").read_text())
    config["datasets"] = datasets
    config["embedding"]["subset"] = "all"  # no labels here
    config["on_bad_input"] = on_bad_input
    config["download"] = {"retries": 2, "backoff_s": 0.01}  # files broken at the source
    (work / "config" / name).write_text(yaml.safe_dump(config))
    return f"config/{name}"


# --- skip mode: everything counted, through to summary.json -----------------------------------------


@pytest.fixture(scope="module")
def skip_run(demo, tmp_path_factory):
    work = copy_workflow(tmp_path_factory.mktemp("skip"))
    damage = {
        (1, 6, "images"): cdf_without_epoch,
        (2, 6, "images"): lambda s, t: rewrite_cdf_times(s, t, repeat_and_swap),
        (3, 6, "ismr"): lambda s, t: write_rows(t, damaged_ismr_rows(read_rows(s))),
        (4, 7, "images"): None,  # not in the archive: a gap
        (4, 7, "ismr"): None,
        (0, 7, "images"): cut_in_half,  # broken at the source: failed, nothing readable
        (0, 7, "ismr"): cut_in_half,  # broken at the source: failed, its first rows salvaged
    }
    cdf_mirror(demo, work / "mirror" / "berkeley", NIGHTS, damage)
    datasets = {"berkeley": cdf_dataset("berkeley", NIGHTS)}
    shared = shared_or_none()
    if shared is not None:
        gill_mirror(
            shared,
            work / "mirror" / "gill",
            {m: f for m, (_, f) in GILL_DAMAGE.items()},
            truncated=(GILL_TRUNCATED,),
            swapped_in=GILL_SWAPPED_IN,
            skymaps={"20140101": b"themis19", "20140301": b"themis20"},
        )
        datasets["gill"] = gill_dataset("gill")
    config = write_config(work, "skip.yaml", datasets, "skip")
    # The whole pipeline for one dataset (the counts must reach summary.json); the stream0 one up to
    # its image store, whose bad-input counts summarise_results copies as they are.
    targets = ["results/berkeley/summary.json"]
    if shared is not None:
        targets.append("results/gill/images.zarr")
    run_snakemake(work, *targets, "--cores", "2", "--configfile", config)
    return work, shared


#: A GILL minute the archive holds cut in half (complete frames before the cut are salvaged).
GILL_TRUNCATED = 6
#: Minutes that another imager (themis20) took on the same day, in its own folder.
GILL_SWAPPED_IN = (10, 11)


def cut_in_half(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    data = source.read_bytes()
    target.write_bytes(data[: len(data) // 2])


def repeat_and_swap(times: np.ndarray) -> np.ndarray:
    """Frame 2 repeats frame 1's time; frames 5 and 6 swap theirs (frame 6 goes backwards)."""
    times[2] = times[1]
    times[[5, 6]] = times[[6, 5]]
    return times


def test_skip_mode_counts_bad_berkeley_input_and_gaps_in_summary(skip_run):
    work, _ = skip_run
    summary = json.loads((work / "results/berkeley/summary.json").read_text())
    images = summary["bad_input"]["images"]
    assert images == {
        "files_read": 7,
        "files_unreadable": 1,  # the CDF without its time variable
        "frames_skipped": 0,
        "duplicate_times": 1,
        "times_out_of_order": 1,  # of two swapped frames, the later one
        "times_outside_file": 0,
    }
    # 8 hourly files downloaded, 1 unreadable, 1 repeated time and 1 culprit of the swap dropped.
    assert summary["n_images"] == 7 * FRAMES_PER_HOUR - 2
    stored = xr.open_zarr(work / "results/berkeley/images.zarr")["time"].to_numpy()
    assert np.all(np.diff(stored) > np.timedelta64(0))
    ismr = summary["bad_input"]["ismr"]
    for counter, expected in ISMR_SKIPPED.items():
        assert ismr[counter] == expected, counter
    # 8 files whole and the salvaged part of the one broken at the source (its rows before the
    # cut are read, the file counted corrupt).
    assert ismr["files"] == 9 and ismr["corrupt_files"] == 1 and ismr["invalid_time_or_svid"] == 0
    # Gaps (the archive lacks 2024-01-12 07 UT) and failures (2024-01-08 07 UT stays broken) apart.
    gaps = {"files_present": 8, "files_missing": 1, "files_failed": 1, "hours_expected": 10}
    gaps.update(hours_missing=1, minutes_missing=60, minutes_failed=60)
    gaps["reasons"] = {"not in the archive": 1}
    assert summary["gaps"]["images"] == {**gaps, "hours_failed": 1}
    assert summary["gaps"]["ismr"] == {**gaps, "hours_failed": 0}  # its part was salvaged
    failures = summary["failures"]
    assert [f["url"] for f in failures["images"]] == [
        "file:mirror/berkeley/themis_l1/" + l1_relative(NIGHTS[0], 7)
    ]
    assert "still broken after 2 tries" in failures["images"][0]["reason"]
    assert "not a readable CDF" in failures["images"][0]["reason"]
    assert failures["images"][0]["salvaged"] == ""
    assert [f["url"] for f in failures["ismr"]] == [
        "file:mirror/berkeley/chain_ismr/" + ismr_relative(NIGHTS[0], 7)
    ]
    salvaged = work / failures["ismr"][0]["salvaged"]
    assert salvaged.parent.name == "salvaged" and salvaged.is_file()
    assert "broken gzip stream" in failures["ismr"][0]["reason"]
    # Under the archive's own name: only whole, verified files.
    raw = work / "resources/berkeley/raw"
    assert not (raw / "berkeley_l1" / l1_relative(NIGHTS[0], 7)).exists()
    assert not (raw / "chain_ismr" / ismr_relative(NIGHTS[0], 7)).exists()
    assert not [p for p in raw.rglob("*") if ".part-" in p.name]
    manifest = read_manifest(work / f"resources/berkeley/manifests/fsim/images_{NIGHTS[0]}.tsv")
    assert [row.status for row in manifest] == ["downloaded", "failed"]
    # The report says the same, gaps, failures and bad input each in a table of its own.
    run_snakemake(
        work,
        "results/berkeley/summary.json",
        "--cores",
        "1",
        "--configfile",
        "config/skip.yaml",
        "--report",
        "results/berkeley/report.html",
    )
    report = (work / "results/berkeley/report.html").read_text(errors="replace")
    tables = html_tables(report_file(report, "data_quality.html"))
    shown = {(role, key): int(n) for role, key, n in tables["gaps"][1:]}
    assert shown == {
        (role, key): n
        for role, counts in summary["gaps"].items()
        for key, n in counts.items()
        if key != "reasons"
    }
    assert ("images", "files_missing") in shown and shown["images", "files_failed"] == 1
    assert tables["gap-reasons"][1:] == [
        ["images", "not in the archive", "1"],
        ["ismr", "not in the archive", "1"],
    ]
    assert [row[:3] for row in tables["failures"][1:]] == [
        [role, f["url"], f["reason"]] for role in ("images", "ismr") for f in failures[role]
    ]
    bad = {(store, key): n for store, key, n in tables["bad-input"][1:]}
    assert bad["images", "times_out_of_order"] == "1" and bad["ismr", "out_of_order"] == "1"
    assert len(bad) == sum(len(counts) for counts in summary["bad_input"].values())


def test_skip_mode_counts_damaged_stream0_frames(skip_run):
    work, shared = skip_run
    if shared is None:
        pytest.skip("real GILL files not found in ../shared/data")
    images = xr.open_zarr(work / "results/gill/images.zarr")
    manifest = read_manifest(work / f"resources/gill/manifests/gill/images_{GILL_DAY}.tsv")
    (failed,) = [row for row in manifest if row.status == "failed"]
    assert failed.url.endswith(f"/ut06/20140310_06{GILL_TRUNCATED:02d}_gill_themis19_full.pgm.gz")
    salvaged = read_themis_pgm_frames(work / failed.path, skip_bad_frames=True)
    assert 0 < len(salvaged.frames) < 20
    assert json.loads(images.attrs["bad_input"]) == {
        "files_read": 12,  # ten minutes of themis19 (one of them salvaged), two of themis20
        "files_unreadable": 0,
        # broken header, truncated pixels, unreadable time stamp, the frames cut off at the source
        "frames_skipped": 4,
        "duplicate_times": 1,
        "times_out_of_order": 1,
        "times_outside_file": 0,
    }
    assert images.sizes["time"] == 11 * 20 + len(salvaged.frames) - 3 - 1 - 1
    assert gap_summary(manifest) == {
        "files_present": 11,
        "files_missing": 48,  # minutes 06:12-06:59 are not in the archive
        "hours_expected": 1,
        "hours_missing": 0,
        "minutes_missing": 48,
        "files_failed": 1,
        "hours_failed": 0,
        "minutes_failed": 1,
    }
    # Each imager's files took their own imager's skymap.
    assert json.loads(images.attrs["skymaps"]) == [
        "themis_skymap_gill_20140101-+_vXX.sav",
        "themis_skymap_gill_20140301-+_vXX.sav",
    ]
    log = (work / "results/logs/project_images/gill_gill_2014-03-10.log").read_text()
    assert "20140310_0601_gill_themis19_full.pgm.gz (frame 3)" in log
    assert "20140310_0604_gill_themis19_full.pgm.gz (frame 5)" in log


# --- fail mode: the run stops, naming the file and the frame, variable or line ----------------------


@pytest.fixture(scope="module")
def fail_run(demo, tmp_path_factory):
    work = copy_workflow(tmp_path_factory.mktemp("fail"))
    night = [NIGHTS[0]]
    cases = {
        "fail_variable": ({(0, 6, "images"): cdf_without_epoch}, False),
        "fail_duplicate": (
            {(0, 6, "images"): lambda s, t: rewrite_cdf_times(s, t, repeat_and_swap)},
            False,
        ),
        "fail_order": (
            {
                (0, 6, "images"): lambda s, t: rewrite_cdf_times(
                    s, t, lambda x: x[[0, 1, 3, 2, *range(4, len(x))]]
                )
            },
            False,
        ),
        "fail_ismr": (
            {(0, 6, "ismr"): lambda s, t: write_rows(t, damaged_ismr_rows(read_rows(s)))},
            True,
        ),
        "fail_download": ({(0, 6, "images"): cut_in_half}, False),
    }
    datasets = {}
    for name, (damage, station) in cases.items():
        cdf_mirror(demo, work / "mirror" / name, night, damage)
        datasets[name] = cdf_dataset(name, night, hours=(6, 6), station=station)
    targets = [f"results/{name}/projected/fsim/{night[0]}.zarr" for name in datasets]
    targets.append("results/fail_ismr/sigma_phi.zarr")
    shared = shared_or_none()
    if shared is not None:
        gill_mirror(shared, work / "mirror" / "fail_header", {1: GILL_DAMAGE[1][1]})
        # Another imager's files, and only the first imager's skymap.
        gill_mirror(shared, work / "mirror" / "fail_imager", {}, swapped_in=(10,))
        # GAKO's skymap (its SITE_UID says so) where GILL's should be.
        gill_mirror(shared, work / "mirror" / "fail_skymap_site", {}, skymaps={"20140101": None})
        for name in ("fail_header", "fail_imager", "fail_skymap_site"):
            datasets[name] = gill_dataset(name)
            targets.append(f"results/{name}/projected/gill/{GILL_DAY}.zarr")
    config = write_config(work, "fail.yaml", datasets, "fail")
    result = run_snakemake(
        work, *targets, "--cores", "2", "--keep-going", "--configfile", config, check=False
    )
    assert result.returncode != 0
    return work, shared


def project_log(work: Path, name: str, site: str, day) -> str:
    return (work / f"results/logs/project_images/{name}_{site}_{day}.log").read_text()


@pytest.mark.parametrize(
    ("name", "where"),
    [
        ("fail_variable", "(thg_asf_fsim_epoch): variable missing"),
        ("fail_duplicate", "(frame 2): time 2024-01-08T06:05:03"),
        ("fail_order", "(frame 3): time 2024-01-08T06:10:03"),
    ],
)
def test_fail_mode_stops_projection_naming_file_and_place(fail_run, name, where):
    work, _ = fail_run
    log = project_log(work, name, "fsim", NIGHTS[0])
    assert "BadInputError" in log
    assert f"thg_l1_asf_fsim_2024010806_v01.cdf {where}" in log
    assert not (work / f"results/{name}/projected/fsim/{NIGHTS[0]}.zarr").exists()


def test_fail_mode_stops_scintillation_naming_file_and_line(fail_run):
    work, _ = fail_run
    log = (work / "results/logs/extract_sigma_phi/fail_ismr.log").read_text()
    assert "fsic24008g.ismr.gz (line 3): 61 comma-separated fields, expected 62" in log
    assert not (work / "results/fail_ismr/sigma_phi.zarr").exists()
    assert (work / "results/fail_ismr/images.zarr").exists()  # the images were fine


def test_fail_mode_stops_a_download_naming_the_url_and_the_fault(fail_run):
    work, _ = fail_run
    log = (work / f"results/logs/download_images/fail_download_fsim_{NIGHTS[0]}.log").read_text()
    url = "file:mirror/fail_download/themis_l1/" + l1_relative(NIGHTS[0], 6)
    assert f"DownloadError: {url}: still broken after 2 tries" in log
    assert "not a readable CDF" in log
    raw = work / "resources/fail_download/raw/berkeley_l1"
    assert not [p for p in raw.rglob("*") if p.is_file()], "no partial file"
    assert not (work / f"resources/fail_download/manifests/fsim/images_{NIGHTS[0]}.tsv").exists()


def test_a_file_of_an_imager_without_its_skymap_is_refused_by_name(fail_run):
    work, shared = fail_run
    if shared is None:
        pytest.skip("real GILL files not found in ../shared/data")
    log = project_log(work, "fail_imager", "gill", GILL_DAY)
    assert "20140310_0610_gill_themis20_full.pgm.gz: no skymap of imager themis20" in log
    assert "refusing to project it with another imager's" in log
    assert not (work / f"results/fail_imager/projected/gill/{GILL_DAY}.zarr").exists()


def test_a_skymap_of_another_site_is_refused_by_name(fail_run):
    work, shared = fail_run
    if shared is None:
        pytest.skip("real GILL files not found in ../shared/data")
    log = (work / "results/logs/build_projection_operator/fail_skymap_site.log").read_text()
    assert "themis_skymap_gill_20140101-+_vXX.sav: skymap of site 'gako' (SITE_UID)" in log


def test_fail_mode_stops_at_a_broken_pgm_header(fail_run):
    work, shared = fail_run
    if shared is None:
        pytest.skip("real GILL files not found in ../shared/data")
    log = project_log(work, "fail_header", "gill", GILL_DAY)
    assert "20140310_0601_gill_themis19_full.pgm.gz (frame 3): image size line" in log


# --- each kind of bad input, in both modes, through the readers the rule scripts call --------------


def test_every_ismr_fault_is_named_in_fail_mode_and_counted_in_skip_mode(demo, tmp_path):
    source = demo / "chain_ismr" / ismr_relative(NIGHTS[0], 6)
    good = read_rows(source)
    faults = {
        "wrong_column_count": (lambda r: r[:-1], "61 comma-separated fields"),
        "non_numeric": (lambda r: [*r[:5], "abc", *r[6:]], "column 6 (elevation) is not a number"),
        "negative": (lambda r: [*r[:13], "-0.100", *r[14:]], "= -0.1 rad is outside"),
        "sentinel": (lambda r: [*r[:13], "99.990", *r[14:]], "= 99.99 rad is outside"),
    }
    for name, (edit, phrase) in faults.items():
        rows = [list(r) for r in good]
        rows[4] = edit(rows[4])
        path = tmp_path / f"{name}.ismr.gz"
        write_rows(path, rows)
        pattern = rf"{name}\.ismr\.gz \(line 5\): .*{re.escape(phrase)}"
        with pytest.raises(BadInputError, match=pattern):
            read_ismr_files([path], on_bad_input="fail")
        _, counts = read_ismr_files([path], on_bad_input="skip")
        counter = "invalid_sigma_phi" if name in ("negative", "sentinel") else name
        assert counts[counter] == 1
        assert counts["rows"] == len(good) - 1
    rows = [list(r) for r in good]
    rows.insert(5, list(rows[4]))
    rows.append(rows.pop(0))
    write_rows(tmp_path / "both.ismr.gz", rows)
    with pytest.raises(BadInputError, match=r"both\.ismr\.gz \(line 5\): second record"):
        read_ismr_files([tmp_path / "both.ismr.gz"], on_bad_input="fail")
    rows.pop(4)  # the duplicate gone, the moved record is the first fault left
    write_rows(tmp_path / "order.ismr.gz", rows)
    with pytest.raises(BadInputError, match=rf"order\.ismr\.gz \(line {len(rows)}\): time goes"):
        read_ismr_files([tmp_path / "order.ismr.gz"], on_bad_input="fail")


def test_every_pgm_fault_is_named_in_fail_mode_and_counted_in_skip_mode(shared_data, tmp_path):
    template = gzip.decompress(
        (shared_data / "themis/gill/20140310_0600_gill_themis19_full.pgm.gz").read_bytes()
    )
    expected = {1: "(frame 3): image size line", 2: "(frame 19): pixel data truncated"}
    expected[3] = "(frame 0): time '2014-03-1X 06:03:00.063119 UTC'"
    for minute, message in expected.items():
        path = tmp_path / f"20140310_06{minute:02d}_gill_themis19_full.pgm.gz"
        path.write_bytes(gzip.compress(GILL_DAMAGE[minute][1](gill_minute(template, minute))))
        with pytest.raises(BadInputError) as caught:
            read_themis_pgm_frames(path, skip_bad_frames=False)
        assert f"{path} {message}" in str(caught.value)
        read = read_themis_pgm_frames(path, skip_bad_frames=True)
        assert read.n_skipped == 1 and len(read.frames) == 19
