"""GPS time <-> UTC with the leap-second table (GPS time runs ahead of UTC by a changing offset).

A constant offset would shift every scintillation record of older data by up to three seconds, enough
to pair images with the wrong one-minute record at minute boundaries, so the offset comes from a table.
"""

from __future__ import annotations

import numpy as np

#: GPS epoch, 1980-01-06 00:00:00 UTC (GPS and UTC agreed then).
GPS_EPOCH = np.datetime64("1980-01-06T00:00:00", "ns")
SECONDS_PER_WEEK = 604_800

#: (first UTC instant the offset applies, GPS - UTC in seconds). Source: IERS Bulletin C; no leap second
#: has been announced after 2017-01-01 as of this table's writing.
LEAP_SECONDS = (
    ("1981-07-01", 1),
    ("1982-07-01", 2),
    ("1983-07-01", 3),
    ("1985-07-01", 4),
    ("1988-01-01", 5),
    ("1990-01-01", 6),
    ("1991-01-01", 7),
    ("1992-07-01", 8),
    ("1993-07-01", 9),
    ("1994-07-01", 10),
    ("1996-01-01", 11),
    ("1997-07-01", 12),
    ("1999-01-01", 13),
    ("2006-01-01", 14),
    ("2009-01-01", 15),
    ("2012-07-01", 16),
    ("2015-07-01", 17),
    ("2017-01-01", 18),
)
_STEPS_UTC = np.array([np.datetime64(day, "ns") for day, _ in LEAP_SECONDS])
_OFFSETS = np.array([0] + [offset for _, offset in LEAP_SECONDS], dtype=np.int64)


def gps_minus_utc(utc) -> np.ndarray:
    """GPS - UTC in whole seconds for UTC instants (``datetime64`` array-like)."""
    utc = np.asarray(utc, dtype="datetime64[ns]")
    return _OFFSETS[np.searchsorted(_STEPS_UTC, utc, side="right")]


def utc_to_gps(utc) -> tuple[np.ndarray, np.ndarray]:
    """UTC instants -> (GPS week, GPS time of week in seconds, float64)."""
    utc = np.asarray(utc, dtype="datetime64[ns]")
    gps_ns = (utc - GPS_EPOCH).astype(np.int64) + gps_minus_utc(utc) * 1_000_000_000
    week = gps_ns // (SECONDS_PER_WEEK * 1_000_000_000)
    tow = (gps_ns - week * SECONDS_PER_WEEK * 1_000_000_000) / 1e9
    return week.astype(np.int64), tow


def gps_to_utc(week, tow) -> np.ndarray:
    """(GPS week, time of week in s) -> UTC ``datetime64[ns]``; accepts arrays."""
    week = np.asarray(week, dtype=np.int64)
    tow_ns = np.round(np.asarray(tow, dtype=np.float64) * 1e9).astype(np.int64)
    gps = GPS_EPOCH + (week * SECONDS_PER_WEEK * 1_000_000_000 + tow_ns).astype("timedelta64[ns]")
    # The offset is looked up at the UTC instant; GPS - offset is close enough to UTC to pick the right
    # step everywhere except inside the leap second itself, which no one-minute record ends in.
    first_guess = gps - (gps_minus_utc(gps) * 1_000_000_000).astype("timedelta64[ns]")
    return gps - (gps_minus_utc(first_guess) * 1_000_000_000).astype("timedelta64[ns]")
