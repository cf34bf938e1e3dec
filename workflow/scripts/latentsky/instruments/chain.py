"""CHAIN GNSS receivers: reading Septentrio ISMR files of phase scintillation records.

An ISMR file (one per receiver and hour, optionally gzip-compressed) has one comma-separated row per
satellite and minute and no header. The time stamp (GPS week, GPS time of week) marks the **end** of
the one-minute interval over which the indices were computed, in GPS time. Column numbers are
1-based, as in the receiver manual; :class:`IsmrColumns` holds them so that other layouts (older
NovAtel receivers wrote fewer columns) can be read by passing other numbers.

Missing values: Septentrio's ``sbf2ismr`` writes ``nan`` where an index could not be computed (for
example Phi60 during the first minutes after a satellite is acquired). That is *missing*, not
malformed, and is counted apart from parse errors. No numeric sentinel is documented for Septentrio,
but other receivers and reprocessing chains fill gaps with values such as -1, 9.999, 99.99 or 999;
any sigma_phi outside ``(0, sigma_phi_sentinel_rad)`` is therefore treated as invalid. Physical
values stay well below 10 rad (a few rad in the strongest storms), so the default threshold of
9.99 rad only catches fill values.

Times out of place: a CHAIN file holds one hour (its name says which: ``<sss>c<YY><DDD><h>``), so
every record must end within that hour (give or take two minutes, for the GPS - UTC offset and the
minute that ends on the hour). A record whose GPS week was written with 10 bits (a receiver that
counts weeks modulo 1024, so 2017 reads as 1997) lands 1024 weeks (19.6 years) early: when adding
1024 weeks once or more puts it in the file's hour, the week is corrected and counted
(``week_rollover``); otherwise the record is a culprit, named and dropped (``outside_file_hour``).
Within the file the records must not go back in time: the culprits are the fewest records whose
removal leaves the rest in order (the complement of a longest non-decreasing run of times), so one
displaced record is the one named and dropped, never the good records around it.

Reading: :func:`read_ismr` (or :func:`read_ismr_files`); what follows (quality cuts, one sigma_phi
per minute and per image) is in :mod:`latentsky.analysis.scintillation`.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
import re
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from latentsky.errors import BadInputError, Counts
from latentsky.instruments.gpstime import SECONDS_PER_WEEK, gps_to_utc
from latentsky.timeorder import in_order_culprits

#: Length of one ISMR record (s): indices are computed over the minute that ends at the time stamp.
RECORD_SECONDS = 60
#: Default upper bound (rad, exclusive) of a valid sigma_phi; values at or above it are fill values.
DEFAULT_SIGMA_PHI_SENTINEL_RAD = 9.99
#: Columns of the frame returned by :func:`read_ismr`, in order.
ISMR_FRAME_COLUMNS = (
    "time_utc",
    "svid",
    "azimuth",
    "elevation",
    "cn0",
    "s4",
    "sigma_phi",
    "lock_time",
)
_BAD_INPUT_MODES = ("skip", "fail")
_GZIP_MAGIC = b"\x1f\x8b"
_GZIP_CHUNK = 16 * 1024  # small, so that little decoded text is lost before a corrupt block


@dataclass(frozen=True)
class IsmrColumns:
    """1-based column numbers of the fields used, and the expected number of columns per row.

    Defaults are the Septentrio PolaRxS / PolaRx5S ``sbf2ismr`` layout (62 columns; Phi60 on the
    first signal in column 14, its lock time in column 25). ``expected_count=None`` accepts any row
    long enough to hold the used columns.
    """

    week: int = 1
    tow: int = 2
    svid: int = 3
    azimuth: int = 5
    elevation: int = 6
    cn0: int = 7
    s4: int = 8
    phi60: int = 14
    lock_time: int = 25
    expected_count: int | None = 62

    def __post_init__(self):
        used = self.used()
        if min(used.values()) < 1:
            raise ValueError(f"ISMR column numbers are 1-based, got {used}")
        if self.expected_count is not None and self.expected_count < max(used.values()):
            raise ValueError(
                f"expected_count={self.expected_count} is smaller than the largest used column "
                f"({max(used.values())})"
            )

    def used(self) -> dict[str, int]:
        """Name -> 1-based column number of every field read."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)[:-1]}


#: Counters of reading ISMR files, in the order they are reported. ``files``, ``lines`` (non-blank
#: lines seen) and ``rows`` (records returned) describe the input; ``missing_sigma_phi`` counts
#: records kept with sigma_phi = NaN (``nan`` in the file) and ``week_rollover`` records kept whose
#: 10-bit GPS week was corrected. Every other counter is a number of dropped records (culprits),
#: except ``corrupt_files`` (files whose gzip stream was truncated or corrupt; the records decoded
#: before the damage are kept).
ISMR_COUNTERS = (
    "files",
    "lines",
    "rows",
    "corrupt_files",
    "wrong_column_count",
    "non_numeric",
    "invalid_time_or_svid",
    "invalid_sigma_phi",
    "missing_sigma_phi",
    "week_rollover",
    "outside_file_hour",
    "duplicates",
    "out_of_order",
)
#: The counters of dropped records.
DROPPED = (
    "wrong_column_count",
    "non_numeric",
    "invalid_time_or_svid",
    "invalid_sigma_phi",
    "outside_file_hour",
    "duplicates",
    "out_of_order",
)
#: How far (s) a record's end may lie outside its file's hour: the GPS - UTC offset (18 s since
#: 2017) and the record that ends on the hour, with room to spare.
HOUR_SLACK_S = 120
#: Weeks in a 10-bit GPS week count.
WEEK_ROLLOVER = 1024
_CHAIN_NAME = re.compile(r"^[a-z]{3}c(?P<yy>\d{2})(?P<doy>\d{3})(?P<letter>[a-x])\.ismr(?:\.gz)?$")


def ismr_file_hour(path) -> dt.datetime | None:
    """The UT hour a CHAIN ISMR file covers, from its name (``fsic24008g.ismr.gz``: 2024, day 8,
    06 UT); None for a file named otherwise."""
    match = _CHAIN_NAME.match(Path(path).name)
    if not match:
        return None
    day = dt.datetime(2000 + int(match["yy"]), 1, 1) + dt.timedelta(days=int(match["doy"]) - 1)
    return day + dt.timedelta(hours=ord(match["letter"]) - ord("a"))


def ismr_counts(**values: int) -> Counts:
    """Counters of reading ISMR files (:data:`ISMR_COUNTERS`), all present, some set."""
    return Counts(*ISMR_COUNTERS, **values)


def dropped(counts: Counts) -> int:
    """Records dropped as bad input (not counting what a corrupt file hid)."""
    return sum(counts[name] for name in DROPPED)


def _gunzip_prefix(raw: bytes) -> tuple[bytes, str | None]:
    """Decompress as much of a gzip stream as is intact.

    Returns (decompressed bytes, None) for a sound file, or (the bytes decoded before the damage, a
    reason) for a truncated or corrupt one. Handles multi-member files and trailing zero padding,
    as ``gzip`` does; the CRC of each member is checked by zlib.
    """
    out: list[bytes] = []
    data = raw
    while True:
        decomp = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
        pos = 0
        while not decomp.eof and pos < len(data):
            chunk = data[pos : pos + _GZIP_CHUNK]
            before = decomp.copy()
            try:
                out.append(decomp.decompress(chunk))
            except zlib.error as exc:
                # Replay the failing chunk byte by byte to keep the text decoded before the damage.
                for start in range(len(chunk)):
                    try:
                        out.append(before.decompress(chunk[start : start + 1]))
                    except zlib.error:
                        break
                return b"".join(out), f"corrupt gzip stream ({exc})"
            pos += _GZIP_CHUNK
        if not decomp.eof:
            out.append(decomp.flush())
            return b"".join(out), "truncated gzip stream (it ends before its end-of-stream marker)"
        rest = decomp.unused_data + data[pos:]
        if not rest.strip(b"\x00"):
            return b"".join(out), None
        if rest[:2] != _GZIP_MAGIC:
            return b"".join(out), "unexpected data after the end of the gzip stream"
        data = rest


def _read_lines(path: Path) -> tuple[list[str], str | None]:
    """Text lines of a plain or gzip ISMR file, and the reason if the gzip stream is damaged."""
    raw = path.read_bytes()
    error = None
    if path.name.endswith(".gz") or raw[:2] == _GZIP_MAGIC:
        raw, error = _gunzip_prefix(raw)
    # latin-1 maps every byte to a character, so garbage surfaces as a non-numeric field with its
    # line number instead of a decoding error for the whole file.
    lines = raw.decode("latin-1").split("\n")
    if error is not None and lines and lines[-1] != "":
        lines.pop()  # the line cut by the damage cannot be trusted
    return lines, error


def _check_mode(on_bad_input: str) -> None:
    if on_bad_input not in _BAD_INPUT_MODES:
        raise ValueError(f"on_bad_input must be one of {_BAD_INPUT_MODES}, got {on_bad_input!r}")


def _empty_frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "time_utc": np.array([], dtype="datetime64[ns]"),
            "svid": np.array([], dtype=np.int64),
            **{name: np.array([], dtype=np.float64) for name in ISMR_FRAME_COLUMNS[2:]},
        }
    )


def read_ismr(
    path,
    columns: IsmrColumns = IsmrColumns(),
    on_bad_input: str = "skip",
    sigma_phi_sentinel_rad: float = DEFAULT_SIGMA_PHI_SENTINEL_RAD,
    hour: dt.datetime | None = None,
) -> tuple[pd.DataFrame, Counts]:
    """Read one ISMR file (``.ismr`` or ``.ismr.gz``) into a frame of one row per satellite-minute.

    Parameters
    ----------
    path : path of the file; gzip is recognised by the ``.gz`` suffix or the gzip magic bytes.
    columns : column layout (1-based numbers), Septentrio by default.
    on_bad_input : ``"skip"`` drops (and counts) bad records and keeps what a damaged gzip stream
        held before the damage; ``"fail"`` raises :class:`BadInputError` for the first culprit in
        the file, naming the file and its 1-based line number.
    sigma_phi_sentinel_rad : sigma_phi at or above this (rad) is a fill value. Values <= 0 are always
        invalid (sigma_phi is a standard deviation, and the log-normal fit needs positive values).
    hour : the UT hour the file covers; None: from a CHAIN file name (:func:`ismr_file_hour`), and
        no check of the records' times against an hour for files named otherwise.

    Problems detected: damaged gzip stream; wrong number of columns; a used field that is not a
    number (``nan`` is accepted as missing in the measurement columns, but not in week, TOW or SVID);
    week/TOW/SVID out of range; invalid sigma_phi; a record that ends outside the file's hour
    (after correcting a 10-bit GPS week); a second record for the same (time, SVID) (the first is
    kept); a record out of order (the culprits: see the module docstring). Each is dropped.

    Returns
    -------
    (frame, counts): frame with columns ``time_utc`` (datetime64[ns], UTC **end** of the minute,
    converted from GPS time with the leap-second table), ``svid`` (int64), ``azimuth`` and
    ``elevation`` (degrees), ``cn0`` (dB-Hz), ``s4`` (dimensionless), ``sigma_phi`` (rad, NaN where
    missing) and ``lock_time`` (s), sorted by (time_utc, svid); counts as :func:`ismr_counts`.
    """
    _check_mode(on_bad_input)
    path = Path(path)
    counts = ismr_counts(files=1)
    lines, gzip_error = _read_lines(path)
    hour = hour if hour is not None else ismr_file_hour(path)
    problems: list[tuple[int, str, str]] = []  # (line, counter, reason) of every culprit

    def bad(counter: str, lineno: int, reason: str) -> None:
        problems.append((lineno, counter, reason))

    used = columns.used()
    index = {name: number - 1 for name, number in used.items()}
    min_fields = max(used.values())
    expected = columns.expected_count
    measurement_names = ("azimuth", "elevation", "cn0", "s4", "phi60", "lock_time")

    parsed: list[tuple[int, float, float, float, dict]] = []  # (line, week, tow, svid, values)
    for lineno, line in enumerate(lines, start=1):
        if not line.strip():
            continue  # blank lines (a trailing newline, or padding) are not records
        counts.add("lines")
        fields = line.split(",")
        if (expected is not None and len(fields) != expected) or len(fields) < min_fields:
            wanted = expected if expected is not None else f"at least {min_fields}"
            bad(
                "wrong_column_count",
                lineno,
                f"{len(fields)} comma-separated fields, expected {wanted}",
            )
            continue
        try:
            values = {name: float(fields[i]) for name, i in index.items()}
        except ValueError:
            name, i = next((name, i) for name, i in index.items() if not _is_float(fields[i]))
            bad(
                "non_numeric",
                lineno,
                f"column {i + 1} ({name}) is not a number: {fields[i].strip()!r}",
            )
            continue
        week, tow, svid = values["week"], values["tow"], values["svid"]
        if not (
            math.isfinite(week)
            and week >= 0
            and week == int(week)
            and math.isfinite(tow)
            and 0 <= tow < SECONDS_PER_WEEK
            and math.isfinite(svid)
            and svid >= 1
            and svid == int(svid)
        ):
            bad(
                "invalid_time_or_svid",
                lineno,
                f"invalid GPS week/TOW/SVID: {fields[index['week']].strip()}, "
                f"{fields[index['tow']].strip()}, {fields[index['svid']].strip()}",
            )
            continue
        phi = values["phi60"]
        if not (math.isnan(phi) or 0.0 < phi < sigma_phi_sentinel_rad):
            bad(
                "invalid_sigma_phi",
                lineno,
                f"sigma_phi (column {index['phi60'] + 1}) = {phi} rad is outside the valid range "
                f"(0, {sigma_phi_sentinel_rad})",
            )
            continue
        parsed.append((lineno, week, tow, svid, values))

    if hour is not None:
        parsed = _within_hour(parsed, hour, counts, bad)

    records: list[tuple[int, float, tuple]] = []  # (line, GPS seconds, record)
    seen: dict[tuple[float, int], int] = {}  # (GPS seconds, SVID) -> line of the kept record
    for lineno, week, tow, svid, values in parsed:
        gps_seconds = week * SECONDS_PER_WEEK + tow
        key = (gps_seconds, int(svid))
        if key in seen:
            bad(
                "duplicates",
                lineno,
                f"second record for SVID {int(svid)} at GPS week {int(week)} TOW {tow:g} "
                f"(first on line {seen[key]})",
            )
            continue
        seen[key] = lineno
        record = (week, tow, svid, *(values[name] for name in measurement_names))
        records.append((lineno, gps_seconds, record))

    culprits = set(in_order_culprits([seconds for _, seconds, _ in records]))
    for k in sorted(culprits):
        lineno, _, (week, tow, *_rest) = records[k]
        bad(
            "out_of_order",
            lineno,
            f"time goes backwards (GPS week {int(week)} TOW {tow:g} is out of place among the "
            "records around it)",
        )
    records = [item for k, item in enumerate(records) if k not in culprits]

    if problems and on_bad_input == "fail":
        lineno, _, reason = min(problems)
        raise BadInputError(path, reason, where=f"line {lineno}")
    for _, counter, _ in problems:
        counts.add(counter)
    if gzip_error is not None:
        if on_bad_input == "fail":
            complete = len(lines) - (lines[-1] == "")  # split() leaves "" after a final newline
            raise BadInputError(path, gzip_error, where=f"after line {complete}")
        counts.add("corrupt_files")

    if not records:
        return _empty_frame(), counts
    table = np.array([record for _, _, record in records], dtype=np.float64)
    counts.add("missing_sigma_phi", int(np.isnan(table[:, 7]).sum()))
    frame = pd.DataFrame(
        {
            "time_utc": gps_to_utc(table[:, 0].astype(np.int64), table[:, 1]),
            "svid": table[:, 2].astype(np.int64),
            "azimuth": table[:, 3],
            "elevation": table[:, 4],
            "cn0": table[:, 5],
            "s4": table[:, 6],
            "sigma_phi": table[:, 7],
            "lock_time": table[:, 8],
        }
    )
    frame = frame.sort_values(["time_utc", "svid"], kind="stable").reset_index(drop=True)
    counts["rows"] = len(frame)
    return frame, counts


def _within_hour(parsed: list, hour: dt.datetime, counts: Counts, bad) -> list:
    """The parsed records that end within ``hour`` (UT, with :data:`HOUR_SLACK_S` either side),
    10-bit GPS weeks corrected; the others reported to ``bad`` as outside the file's hour."""
    start = np.datetime64(hour, "ns") - np.timedelta64(HOUR_SLACK_S, "s")
    end = np.datetime64(hour, "ns") + np.timedelta64(3600 + HOUR_SLACK_S, "s")
    if not parsed:
        return parsed
    weeks = np.array([item[1] for item in parsed], dtype=np.int64)
    tows = np.array([item[2] for item in parsed])
    all_ends = gps_to_utc(weeks, tows)
    kept = []
    for k, item in enumerate(parsed):
        lineno, week, tow, svid, values = item
        ends = all_ends[k]
        if not start <= ends <= end and week < WEEK_ROLLOVER:
            for turns in (1, 2, 3):
                corrected = week + turns * WEEK_ROLLOVER
                moved = gps_to_utc(np.array([corrected], dtype=np.int64), tows[k : k + 1])[0]
                if start <= moved <= end:
                    counts.add("week_rollover")
                    week, ends = float(corrected), moved
                    values = {**values, "week": week}
                    break
        if start <= ends <= end:
            kept.append((lineno, week, tow, svid, values))
            continue
        bad(
            "outside_file_hour",
            lineno,
            f"record ends {str(ends)[:19]} UTC (GPS week {int(week)} TOW {tow:g}), outside the "
            f"hour its file covers ({hour:%Y-%m-%d %H}:00-{hour.hour + 1:02d}:00 UT)",
        )
    return kept


def _is_float(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def read_ismr_files(
    paths: Iterable,
    columns: IsmrColumns = IsmrColumns(),
    on_bad_input: str = "skip",
    sigma_phi_sentinel_rad: float = DEFAULT_SIGMA_PHI_SENTINEL_RAD,
) -> tuple[pd.DataFrame, Counts]:
    """Read several ISMR files (e.g. the hours of a night) into one frame, as :func:`read_ismr`.

    Records of the same (time, SVID) in two files count as ``duplicates`` (the one from the earlier
    path is kept; in fail mode the error names both files). The order of ``paths`` does not matter
    otherwise: the result is sorted by (time_utc, svid).
    """
    _check_mode(on_bad_input)
    paths = [Path(p) for p in paths]
    frames, sources = [], []
    total = ismr_counts()
    for k, path in enumerate(paths):
        frame, counts = read_ismr(path, columns, on_bad_input, sigma_phi_sentinel_rad)
        frames.append(frame)
        sources.append(np.full(len(frame), k))
        total = total + counts
    if not frames:
        return _empty_frame(), total
    frame = pd.concat(frames, ignore_index=True)
    source = np.concatenate(sources)
    keys = ["time_utc", "svid"]
    repeated = frame.duplicated(keys, keep="first").to_numpy()
    if repeated.any():
        if on_bad_input == "fail":
            i = int(np.flatnonzero(repeated)[0])
            row = frame.iloc[i]
            same = (frame["time_utc"] == row["time_utc"]) & (frame["svid"] == row["svid"])
            first = int(source[int(np.flatnonzero(same.to_numpy())[0])])
            raise BadInputError(
                paths[int(source[i])],
                f"record for SVID {row['svid']} ending {row['time_utc']} UTC is also in "
                f"{paths[first]}",
            )
        total.add("duplicates", int(repeated.sum()))
        frame = frame[~repeated]
    frame = frame.sort_values(keys, kind="stable").reset_index(drop=True)
    total["rows"] = len(frame)
    return frame, total
