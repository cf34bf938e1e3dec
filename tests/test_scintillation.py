"""ISMR reading, quality cuts, per-minute sigma_phi and matching to image times.

The ISMR files are written by hand here, row by row, in the Septentrio layout (62 comma-separated
fields, no header, GPS week and time of week of the minute's end). Week and TOW are computed from the
calendar with Python's ``datetime`` and an explicit leap-second offset, not with the code under test.
"""

from __future__ import annotations

import datetime as dt
import gzip
import warnings
import zlib

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from latentsky.analysis.scintillation import (
    apply_quality_cuts,
    sigma_phi_dataset,
    sigma_phi_for_times,
    sigma_phi_per_minute,
)
from latentsky.errors import BadInputError
from latentsky.instruments.chain import (
    ISMR_FRAME_COLUMNS,
    IsmrColumns,
    dropped,
    ismr_counts,
    read_ismr,
    read_ismr_files,
)

GPS_EPOCH = dt.datetime(1980, 1, 6)


def week_tow(utc_end: str, gps_minus_utc: int) -> tuple[int, int]:
    """GPS week and TOW (s) of a UTC instant, given the GPS - UTC offset in force then."""
    seconds = (dt.datetime.fromisoformat(utc_end) - GPS_EPOCH).total_seconds() + gps_minus_utc
    week, tow = divmod(int(seconds), 604_800)
    return week, tow


def ismr_row(
    week,
    tow,
    svid,
    *,
    azimuth="180",
    elevation="45",
    cn0="45.5",
    s4="0.050",
    phi60="0.100",
    lock="1000",
    n_fields=62,
) -> str:
    """One Septentrio-style row; the columns that are not read hold plausible filler (and nan)."""
    fields = [" 0.031"] * n_fields
    fields[3] = "00000074"  # RxState
    fields[16] = "nan"  # a TEC column: nan in an unused column must not matter
    values = {
        1: week,
        2: tow,
        3: f"{svid:3d}" if isinstance(svid, int) else svid,
        5: azimuth,
        6: elevation,
        7: cn0,
        8: s4,
        14: phi60,
        25: lock,
    }
    for column, value in values.items():
        if column <= n_fields:
            fields[column - 1] = str(value)
    return ",".join(fields)


def write(path, rows, *, compress=None) -> str:
    """Write rows (one per line) to ``path``; gzip when the name ends in .gz (or compress=True)."""
    text = "".join(row + "\n" for row in rows).encode("ascii")
    compress = str(path).endswith(".gz") if compress is None else compress
    path.write_bytes(gzip.compress(text) if compress else text)
    return str(path)


# Records are stamped at whole GPS minutes. On 2017-06-01 GPS - UTC = 18 s, so the GPS minute end
# 02:03:00 is 02:02:42 UTC; the frames below therefore show UTC times ending in :42.
W, T = week_tow("2017-06-01T02:02:42", 18)
assert T % 60 == 0


def test_parse_gzip_and_plain_alike(tmp_path):
    rows = [
        ismr_row(W, T, 5, azimuth=" 27", elevation="55", cn0="48.2", s4=" 0.029", phi60="0.250"),
        ismr_row(W, T, 12, elevation="31", phi60="0.045", lock="3581"),
        ismr_row(W, T + 60, 5, elevation="56", phi60="1.234", lock="240"),
    ]
    frame, counts = read_ismr(write(tmp_path / "a.ismr.gz", rows))
    plain, plain_counts = read_ismr(write(tmp_path / "a.ismr", rows))
    pd.testing.assert_frame_equal(frame, plain)
    assert list(frame.columns) == list(ISMR_FRAME_COLUMNS)
    assert frame["time_utc"].dtype == np.dtype("datetime64[ns]")
    assert frame["time_utc"].tolist() == [
        pd.Timestamp("2017-06-01T02:02:42"),
        pd.Timestamp("2017-06-01T02:02:42"),
        pd.Timestamp("2017-06-01T02:03:42"),
    ]
    assert frame["svid"].tolist() == [5, 12, 5]
    assert frame["sigma_phi"].tolist() == [0.25, 0.045, 1.234]
    assert frame["azimuth"].iloc[0] == 27.0 and frame["elevation"].iloc[0] == 55.0
    assert frame["cn0"].iloc[0] == 48.2 and frame["s4"].iloc[0] == 0.029
    assert frame["lock_time"].tolist() == [1000.0, 3581.0, 240.0]
    assert counts == plain_counts
    assert counts == {**ismr_counts(), "files": 1, "lines": 3, "rows": 3}


@pytest.mark.parametrize(
    ("utc_end", "offset"),
    [
        ("2016-06-01T10:00:43", 17),  # GPS 10:01:00, 17 s ahead
        ("2017-06-01T10:00:42", 18),  # GPS 10:01:00, 18 s ahead
        ("2012-03-01T10:00:45", 15),  # GPS 10:01:00, 15 s ahead
    ],
)
def test_gps_to_utc_uses_the_offset_of_the_date(tmp_path, utc_end, offset):
    week, tow = week_tow(utc_end, offset)
    assert tow % 60 == 0  # each case is a whole GPS minute
    frame, _ = read_ismr(write(tmp_path / "x.ismr", [ismr_row(week, tow, 7)]))
    assert frame["time_utc"].iloc[0] == pd.Timestamp(utc_end)


def test_gps_to_utc_across_the_2016_12_31_leap_second(tmp_path):
    # GPS minutes 23:59:00, 00:00:00 and 00:01:00 (GPS). Before the leap second GPS - UTC = 17 s,
    # after it 18 s: UTC ends 23:58:43, 23:59:43 and 00:00:42 (only 59 calendar seconds apart).
    rows = [
        ismr_row(1929, 604_740, 3),
        ismr_row(1930, 0, 3),
        ismr_row(1930, 60, 3),
    ]
    frame, _ = read_ismr(write(tmp_path / "leap.ismr.gz", rows))
    assert frame["time_utc"].tolist() == [
        pd.Timestamp("2016-12-31T23:58:43"),
        pd.Timestamp("2016-12-31T23:59:43"),
        pd.Timestamp("2017-01-01T00:00:42"),
    ]


def test_nan_sigma_phi_is_missing_not_malformed(tmp_path):
    rows = [
        ismr_row(W, T, 1, phi60="nan", lock="30"),
        ismr_row(W, T, 2, s4="nan", phi60="0.2"),
        ismr_row(W, T, 3, phi60="0.3"),
    ]
    frame, counts = read_ismr(write(tmp_path / "m.ismr", rows), on_bad_input="fail")
    assert len(frame) == 3
    assert np.isnan(frame["sigma_phi"].iloc[0]) and np.isnan(frame["s4"].iloc[1])
    assert counts["missing_sigma_phi"] == 1
    assert counts["non_numeric"] == 0 and dropped(counts) == 0


def test_empty_file_gives_an_empty_frame(tmp_path):
    frame, counts = read_ismr(write(tmp_path / "empty.ismr", []))
    assert list(frame.columns) == list(ISMR_FRAME_COLUMNS) and len(frame) == 0
    assert frame["time_utc"].dtype == np.dtype("datetime64[ns]")
    assert counts["files"] == 1 and counts["rows"] == 0 and counts["corrupt_files"] == 0


# Each case: (rows, counter, 1-based line of the problem, phrase expected in the error message).
GOOD = ismr_row(W, T, 1)
BAD_CASES = {
    "wrong_column_count": (
        [GOOD, ismr_row(W, T, 2, n_fields=61), ismr_row(W, T, 3)],
        "wrong_column_count",
        2,
        "61 comma-separated fields",
    ),
    "non_numeric_elevation": (
        [GOOD, ismr_row(W, T, 2), ismr_row(W, T, 3, elevation="4x5")],
        "non_numeric",
        3,
        "column 6 (elevation)",
    ),
    "empty_sigma_phi_field": (
        [ismr_row(W, T, 2, phi60=""), GOOD],
        "non_numeric",
        1,
        "column 14 (phi60)",
    ),
    "nan_week": (
        [GOOD, ismr_row("nan", T, 2)],
        "invalid_time_or_svid",
        2,
        "invalid GPS week/TOW/SVID",
    ),
    "tow_beyond_the_week": (
        [GOOD, ismr_row(W, 604_800, 2)],
        "invalid_time_or_svid",
        2,
        "invalid GPS week/TOW/SVID",
    ),
    "negative_sigma_phi": (
        [GOOD, ismr_row(W, T, 2, phi60="-1.000")],
        "invalid_sigma_phi",
        2,
        "outside the valid range",
    ),
    "zero_sigma_phi": (
        [GOOD, ismr_row(W, T, 2, phi60="0.000")],
        "invalid_sigma_phi",
        2,
        "outside the valid range",
    ),
    "sentinel_sigma_phi": (
        [GOOD, ismr_row(W, T, 2, phi60="99.99")],
        "invalid_sigma_phi",
        2,
        "outside the valid range",
    ),
    "duplicate": (
        [GOOD, ismr_row(W, T, 2), ismr_row(W, T, 1, phi60="nan")],
        "duplicates",
        3,
        "first on line 1",
    ),
    "out_of_order": (
        [ismr_row(W, T + 60, 1), ismr_row(W, T + 60, 2), ismr_row(W, T, 1)],
        "out_of_order",
        3,
        "time goes backwards",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_CASES))
def test_bad_rows_fail_mode_names_file_and_line(tmp_path, case):
    rows, _, line, phrase = BAD_CASES[case]
    path = write(tmp_path / f"{case}.ismr.gz", rows)
    with pytest.raises(BadInputError) as caught:
        read_ismr(path, on_bad_input="fail")
    message = str(caught.value)
    assert path in message
    assert f"line {line})" in message
    assert phrase in message


@pytest.mark.parametrize("case", sorted(BAD_CASES))
def test_bad_rows_skip_mode_counts(tmp_path, case):
    rows, counter, _, _ = BAD_CASES[case]
    frame, counts = read_ismr(write(tmp_path / f"{case}.ismr", rows), on_bad_input="skip")
    expected = {**ismr_counts(), "files": 1, "lines": len(rows), counter: 1}
    kept = len(rows) - 1  # the culprit alone is dropped
    expected["rows"] = kept
    assert counts == expected
    assert len(frame) == kept
    assert frame["sigma_phi"].gt(0).all()


def test_duplicate_keeps_the_first_record(tmp_path):
    rows, *_ = BAD_CASES["duplicate"]
    frame, _ = read_ismr(write(tmp_path / "d.ismr", rows))
    assert frame.loc[frame["svid"] == 1, "sigma_phi"].tolist() == [0.1]


def test_an_out_of_order_record_is_the_culprit_dropped(tmp_path):
    rows, *_ = BAD_CASES["out_of_order"]
    frame, _ = read_ismr(write(tmp_path / "o.ismr", rows))
    assert frame["time_utc"].is_monotonic_increasing
    assert frame["svid"].tolist() == [1, 2]


def test_sentinel_threshold_is_a_parameter(tmp_path):
    rows = [ismr_row(W, T, 1, phi60="9.980"), ismr_row(W, T, 2, phi60="6.000")]
    path = write(tmp_path / "s.ismr", rows)
    frame, counts = read_ismr(path)  # default: anything below 9.99 rad is kept
    assert len(frame) == 2 and counts["invalid_sigma_phi"] == 0
    frame, counts = read_ismr(path, sigma_phi_sentinel_rad=5.0)
    assert len(frame) == 0 and counts["invalid_sigma_phi"] == 2


def test_garbage_in_an_unused_column_is_ignored(tmp_path):
    row = ismr_row(W, T, 1).split(",")
    row[39] = "garbage"  # column 40, not read
    frame, counts = read_ismr(write(tmp_path / "u.ismr", [",".join(row)]), on_bad_input="fail")
    assert len(frame) == 1 and dropped(counts) == 0


def many_rows(n_minutes: int) -> list[str]:
    """Rows for 10 satellites a minute with distinct sigma_phi values, in time order."""
    return [
        ismr_row(W, T + 60 * m, s, phi60=f"{0.001 * (10 * m + s + 1):.3f}")
        for m in range(n_minutes)
        for s in range(1, 11)
    ]


def test_truncated_gzip_keeps_the_rows_before_the_cut(tmp_path):
    rows = many_rows(30)
    text = "".join(row + "\n" for row in rows).encode()
    raw = gzip.compress(text)
    path = tmp_path / "cut.ismr.gz"
    path.write_bytes(raw[: len(raw) // 2])
    frame, counts = read_ismr(path)
    assert counts["corrupt_files"] == 1
    assert 0 < len(frame) < len(rows)
    # The rows returned are exactly the first rows of the file, none garbled.
    full, _ = read_ismr(write(tmp_path / "full.ismr", rows))
    pd.testing.assert_frame_equal(frame, full.iloc[: len(frame)])
    with pytest.raises(BadInputError) as caught:
        read_ismr(path, on_bad_input="fail")
    assert str(path) in str(caught.value) and "truncated" in str(caught.value)
    assert f"after line {len(frame)})" in str(caught.value)


def stored_block(data: bytes, final: bool) -> bytes:
    """A deflate "stored" block (RFC 1951, 3.2.4): header byte, LEN, NLEN = ~LEN, raw data."""
    size = len(data).to_bytes(2, "little")
    return bytes([1 if final else 0]) + size + bytes(b ^ 0xFF for b in size) + data


def test_corrupt_gzip_block_keeps_the_rows_before_it(tmp_path):
    # A gzip stream built by hand (RFC 1952): 10-byte header, two stored blocks, CRC32 and size.
    # The second block's NLEN is broken, a corruption zlib must report at that point, about 5 kB
    # into the file (inside the first piece any reader would decompress at once).
    rows = many_rows(3)
    text = "".join(row + "\n" for row in rows).encode()
    split = 5000
    header = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"
    block2 = bytearray(stored_block(text[split:], final=True))
    block2[3:5] = b"\x00\x00"
    trailer = zlib.crc32(text).to_bytes(4, "little") + len(text).to_bytes(4, "little")
    path = tmp_path / "bad.ismr.gz"
    path.write_bytes(header + stored_block(text[:split], final=False) + bytes(block2) + trailer)
    frame, counts = read_ismr(path)
    assert counts["corrupt_files"] == 1
    complete_lines = text[:split].count(b"\n")
    assert complete_lines >= 10
    assert len(frame) == complete_lines
    with pytest.raises(BadInputError, match="corrupt gzip stream"):
        read_ismr(path, on_bad_input="fail")
    # The same stream with NLEN intact is read whole: the construction itself is sound.
    good = tmp_path / "good.ismr.gz"
    good.write_bytes(
        header
        + stored_block(text[:split], final=False)
        + stored_block(text[split:], final=True)
        + trailer
    )
    assert gzip.decompress(good.read_bytes()) == text
    frame, counts = read_ismr(good, on_bad_input="fail")
    assert len(frame) == len(rows)


def test_not_gzip_and_trailing_garbage(tmp_path):
    rows = many_rows(2)
    not_gzip = tmp_path / "plain_named.ismr.gz"
    not_gzip.write_text("".join(r + "\n" for r in rows))  # a .gz that is not gzip
    frame, counts = read_ismr(not_gzip)
    assert len(frame) == 0 and counts["corrupt_files"] == 1

    trailing = tmp_path / "trailing.ismr.gz"
    trailing.write_bytes(gzip.compress("".join(r + "\n" for r in rows).encode()) + b"junk")
    frame, counts = read_ismr(trailing)
    assert len(frame) == len(rows) and counts["corrupt_files"] == 1

    # A second gzip member and zero padding are legal.
    members = tmp_path / "members.ismr.gz"
    half = len(rows) // 2
    members.write_bytes(
        gzip.compress("".join(r + "\n" for r in rows[:half]).encode())
        + gzip.compress("".join(r + "\n" for r in rows[half:]).encode())
        + b"\x00" * 16
    )
    frame, counts = read_ismr(members, on_bad_input="fail")
    assert len(frame) == len(rows) and counts["corrupt_files"] == 0


def test_counts_add_up():
    a = ismr_counts(files=1, rows=5, duplicates=2)
    b = ismr_counts(files=2, rows=1, corrupt_files=1, duplicates=1)
    total = a + b
    assert total == {
        **ismr_counts(),
        "files": 3,
        "rows": 6,
        "corrupt_files": 1,
        "duplicates": 3,
    }
    assert a["files"] == 1  # + makes a new object


def test_read_several_files_and_duplicates_across_them(tmp_path):
    first = write(tmp_path / "h1.ismr.gz", [ismr_row(W, T + 60, 1), ismr_row(W, T + 60, 2)])
    second = write(tmp_path / "h0.ismr.gz", [ismr_row(W, T, 1), ismr_row(W, T + 60, 2, phi60="9")])
    frame, counts = read_ismr_files([first, second])
    assert counts["files"] == 2 and counts["duplicates"] == 1 and counts["rows"] == 3
    assert frame["time_utc"].is_monotonic_increasing
    # The copy from the earlier path (first) wins.
    assert frame["sigma_phi"].tolist() == [0.1, 0.1, 0.1]
    with pytest.raises(BadInputError) as caught:
        read_ismr_files([first, second], on_bad_input="fail")
    assert second in str(caught.value) and first in str(caught.value)


def test_other_column_layouts(tmp_path):
    # A made-up short layout: week, tow, svid, elevation, azimuth, phi60, lock, s4, cn0 (9 fields).
    layout = IsmrColumns(
        week=1, tow=2, svid=3, elevation=4, azimuth=5, phi60=6, lock_time=7, s4=8, cn0=9,
        expected_count=None,
    )  # fmt: skip
    path = write(tmp_path / "short.ismr", [f"{W},{T},17,62.5,123.0,0.333,480,0.07,41.0"])
    frame, _ = read_ismr(path, columns=layout, on_bad_input="fail")
    row = frame.iloc[0]
    assert (row["svid"], row["elevation"], row["azimuth"]) == (17, 62.5, 123.0)
    assert (row["sigma_phi"], row["lock_time"], row["s4"], row["cn0"]) == (0.333, 480, 0.07, 41)
    with pytest.raises(ValueError, match="smaller than the largest used column"):
        IsmrColumns(expected_count=20)


def test_quality_cuts(tmp_path):
    rows = [
        ismr_row(W, T, 1, elevation="29.9", lock="5000"),  # elevation cut
        ismr_row(W, T, 2, elevation="30", lock="200"),  # kept: both limits are inclusive
        ismr_row(W, T, 3, elevation="60", lock="199"),  # lock cut
        ismr_row(W, T, 4, elevation="10", lock="10"),  # both: counted by the elevation cut
        ismr_row(W, T, 5, elevation="nan", lock="5000"),  # unknown elevation fails the cut
        ismr_row(W, T, 6, elevation="80", lock="900"),  # kept
    ]
    frame, _ = read_ismr(write(tmp_path / "q.ismr", rows))
    kept, removed = apply_quality_cuts(frame)
    assert kept["svid"].tolist() == [2, 6]
    assert removed == {"elevation": 3, "lock_time": 1}
    kept, removed = apply_quality_cuts(frame, min_elevation_deg=5.0, min_lock_time_s=0.0)
    assert kept["svid"].tolist() == [1, 2, 3, 4, 6]
    assert removed == {"elevation": 1, "lock_time": 0}


@pytest.mark.parametrize(
    ("statistic", "expected"),
    [("median", 0.2), ("mean", 0.3), ("max", 0.6)],
)
def test_per_minute_statistic(tmp_path, statistic, expected):
    rows = [
        ismr_row(W, T, 1, phi60="0.1"),
        ismr_row(W, T, 2, phi60="0.6"),
        ismr_row(W, T, 3, phi60="0.2"),
        ismr_row(W, T, 4, phi60="nan"),  # ignored, and not counted as a satellite
        ismr_row(W, T + 120, 9, phi60="0.05"),
        ismr_row(W, T + 180, 9, phi60="nan"),  # a minute with nothing valid is absent
    ]
    frame, _ = read_ismr(write(tmp_path / "p.ismr", rows))
    per_minute = sigma_phi_per_minute(frame, statistic)
    assert per_minute.index.name == "time_utc"
    assert per_minute.index.tolist() == [
        pd.Timestamp("2017-06-01T02:02:42"),
        pd.Timestamp("2017-06-01T02:04:42"),
    ]
    assert per_minute["sigma_phi"].tolist() == pytest.approx([expected, 0.05])
    assert per_minute["n_satellites"].tolist() == [3, 1]


def test_per_minute_rejects_unknown_statistic():
    with pytest.raises(ValueError, match="statistic"):
        sigma_phi_per_minute(pd.DataFrame(columns=list(ISMR_FRAME_COLUMNS)), "mode")


def test_per_minute_counts_distinct_satellites():
    # Two rows of one satellite in one minute (a frame not from read_ismr) are one satellite.
    frame = pd.DataFrame(
        {
            "time_utc": np.array(["2017-06-01T02:02:42"] * 3, dtype="datetime64[ns]"),
            "svid": [4, 4, 9],
            "sigma_phi": [0.1, 0.2, 0.3],
        }
    )
    assert sigma_phi_per_minute(frame)["n_satellites"].tolist() == [2]


def per_minute_table(ends, sigma, n):
    index = pd.DatetimeIndex(np.array(ends, dtype="datetime64[ns]"), name="time_utc")
    return pd.DataFrame({"sigma_phi": sigma, "n_satellites": n}, index=index)


def test_covering_record_at_minute_boundaries():
    # Records end at T1 = 02:02:42 and T2 = 02:03:42 (UTC); they cover [T - 60 s, T).
    per_minute = per_minute_table(
        ["2017-06-01T02:03:42", "2017-06-01T02:02:42"], [0.5, 0.25], [4, 3]
    )  # deliberately unsorted
    ns = np.timedelta64(1, "ns")
    t1 = np.datetime64("2017-06-01T02:02:42", "ns")
    t2 = np.datetime64("2017-06-01T02:03:42", "ns")
    times = np.array(
        [
            t1 - np.timedelta64(60, "s") - ns,  # just before record T1 starts: nothing
            t1 - np.timedelta64(60, "s"),  # exactly T1 - 60 s: record T1
            t1 - ns,  # last instant of record T1
            t1,  # exactly T1: the next record, T2
            t2 - ns,  # still T2
            t2,  # exactly T2: no record follows
            np.datetime64("NaT", "ns"),
        ]
    )
    sigma, n, record = sigma_phi_for_times(times, per_minute)
    assert sigma.dtype == np.float32 and n.dtype.kind == "i"
    np.testing.assert_array_equal(
        sigma, np.array([np.nan, 0.25, 0.25, 0.5, 0.5, np.nan, np.nan], "f4")
    )
    np.testing.assert_array_equal(n, [0, 3, 3, 4, 4, 0, 0])
    # Each image names the record behind its value (NaT where none): the independent unit.
    nat = np.datetime64("NaT", "ns")
    np.testing.assert_array_equal(record, np.array([nat, t1, t1, t2, t2, nat, nat]))


def test_covering_record_with_a_gap_and_the_leap_second(tmp_path):
    # Records end (UTC) 23:58:43, 23:59:43 and 00:00:42 across the leap second, then a gap of
    # one missing minute (GPS 00:02:00 -> UTC 00:01:42 absent) before 00:02:42.
    rows = [
        ismr_row(1929, 604_740, 3, phi60="0.1"),
        ismr_row(1930, 0, 3, phi60="0.2"),
        ismr_row(1930, 60, 3, phi60="0.3"),
        ismr_row(1930, 180, 3, phi60="0.5"),
    ]
    frame, _ = read_ismr(write(tmp_path / "g.ismr", rows))
    per_minute = sigma_phi_per_minute(frame)
    times = np.array(
        [
            "2016-12-31T23:59:42.5",  # inside both [23:58:43, 23:59:43) and [23:59:42, 00:00:42):
            # the earlier record is the one whose GPS minute holds it
            "2016-12-31T23:59:43",  # record ending 00:00:42
            "2017-01-01T00:00:41",  # same
            "2017-01-01T00:01:00",  # the missing minute
            "2017-01-01T00:01:42",  # first instant of the record ending 00:02:42
        ],
        dtype="datetime64[ns]",
    )
    sigma, n, record = sigma_phi_for_times(times, per_minute)
    np.testing.assert_allclose(sigma, [0.2, 0.3, 0.3, np.nan, 0.5], rtol=1e-6)
    assert record[1] == record[2] and np.isnat(record[3])
    assert n.tolist() == [1, 1, 1, 0, 1]


def test_no_records_at_all():
    sigma, n, record = sigma_phi_for_times(
        np.array(["2017-06-01T00:00:00"], dtype="datetime64[ns]"), per_minute_table([], [], [])
    )
    assert np.isnan(sigma[0]) and n[0] == 0 and np.isnat(record[0])


def test_sigma_phi_dataset_round_trips_through_zarr(tmp_path):
    times = np.array(["2017-06-01T02:02:10", "2017-06-01T02:02:13"], dtype="datetime64[ns]")
    attrs = {
        "min_elevation_deg": np.float64(30.0),
        "min_lock_time_s": 200.0,
        "statistic": "median",
        "bad_input": ismr_counts(files=2, duplicates=1),
    }
    records = np.array(["2017-06-01T02:02:42", "NaT"], dtype="datetime64[ns]")
    ds = sigma_phi_dataset(
        times, np.array([0.25, np.nan]), np.array([3, 0]), attrs, record_time=records
    )
    np.testing.assert_array_equal(ds["record_time"].to_numpy(), records)
    assert ds["sigma_phi"].dims == ("time",) and ds["sigma_phi"].dtype == np.float32
    assert ds["sigma_phi"].attrs["units"] == "rad"
    assert ds["n_satellites"].dtype == np.int32
    assert "description" in ds.attrs and ds.attrs["min_elevation_deg"] == 30.0
    assert type(ds.attrs["min_elevation_deg"]) is float
    store = tmp_path / "sigma_phi.zarr"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zarr's format-3 notices are not this test's concern
        ds.to_zarr(store, mode="w", consolidated=False)
    back = xr.open_zarr(store, consolidated=False).load()
    xr.testing.assert_identical(back, ds)
    with pytest.raises(ValueError, match="differ in length"):
        sigma_phi_dataset(times, np.array([0.25]), np.array([3, 0]))


# --- times out of place: each record against its file's hour; culprits, not their neighbours --------

# A CHAIN file for 2017-06-01 (day 152) 02 UT holds the records that end in 02:00-03:00 UT.
HOUR_FILE = "fsic17152c.ismr"
HOUR_START = week_tow("2017-06-01T02:00:42", 18)


def hour_rows(n_minutes: int = 20, satellites: int = 3) -> list[str]:
    """Records of ``n_minutes`` minutes from 02:01 GPS, in time order, 3 satellites a minute."""
    week, tow = HOUR_START
    return [
        ismr_row(week, tow + 60 * (m + 1), s, phi60=f"{0.01 * (m + 1):.3f}")
        for m in range(n_minutes)
        for s in range(1, satellites + 1)
    ]


def test_ten_bit_gps_weeks_are_corrected_into_the_file_s_hour(tmp_path):
    rows = hour_rows()
    week, _ = HOUR_START
    assert week > 1024 * 1  # 2017: week 1951, written with 10 bits as 927
    rolled = [row.replace(f"{week},", f"{week % 1024},", 1) for row in rows]
    frame, counts = read_ismr(write(tmp_path / HOUR_FILE, rolled), on_bad_input="fail")
    (tmp_path / "ref").mkdir()
    reference, _ = read_ismr(write(tmp_path / "ref" / HOUR_FILE, rows))
    pd.testing.assert_frame_equal(frame, reference)
    assert counts["week_rollover"] == len(rows) and dropped(counts) == 0
    assert frame["time_utc"].min() > np.datetime64("2017-06-01T02:00")


def test_a_record_outside_the_file_s_hour_is_named_and_dropped(tmp_path):
    rows = hour_rows()
    late_week, late_tow = week_tow("2017-06-01T05:10:42", 18)
    rows.insert(7, ismr_row(late_week, late_tow, 9))  # line 8: a record of 05 UT
    path = write(tmp_path / HOUR_FILE, rows)
    with pytest.raises(BadInputError, match=r"\(line 8\): record ends 2017-06-01T05:10:42 UTC"):
        read_ismr(path, on_bad_input="fail")
    frame, counts = read_ismr(path)
    assert counts["outside_file_hour"] == 1 and counts["out_of_order"] == 0
    assert dropped(counts) == 1 and len(frame) == len(rows) - 1 and 9 not in set(frame["svid"])


@pytest.mark.parametrize("where", ["first", "middle", "last"])
def test_one_displaced_record_is_the_one_culprit(tmp_path, where):
    """A record moved away from its place: it alone is dropped and counted, and fail mode names
    its line, not the good records it now stands among."""
    rows = hour_rows(20)
    source, target = {"first": (40, 0), "middle": (50, 10), "last": (2, len(rows) - 1)}[where]
    moved = rows.pop(source)
    rows.insert(target, moved)
    path = write(tmp_path / HOUR_FILE, rows)
    with pytest.raises(BadInputError) as caught:
        read_ismr(path, on_bad_input="fail")
    assert f"(line {target + 1}): time goes backwards" in str(caught.value)
    frame, counts = read_ismr(path)
    assert counts["out_of_order"] == 1 and dropped(counts) == 1
    assert len(frame) == len(rows) - 1


def test_swapped_neighbours_drop_the_later_one(tmp_path):
    rows = hour_rows(10, satellites=1)
    rows[4], rows[5] = rows[5], rows[4]
    path = write(tmp_path / HOUR_FILE, rows)
    with pytest.raises(BadInputError, match=r"\(line 6\): time goes backwards"):
        read_ismr(path, on_bad_input="fail")
    frame, counts = read_ismr(path)
    assert counts["out_of_order"] == 1 and len(frame) == 9
