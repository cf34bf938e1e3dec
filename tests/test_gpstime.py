"""GPS time <-> UTC: known values worked out by hand, leap-second steps, round trips."""

from __future__ import annotations

import numpy as np
import pytest

from latentsky.instruments.gpstime import SECONDS_PER_WEEK, gps_minus_utc, gps_to_utc, utc_to_gps


def utc(text: str) -> np.datetime64:
    return np.datetime64(text, "ns")


# Days from the GPS epoch (Sunday 1980-01-06) to 2017-01-01, by hand: 1980-01-06 -> 2017-01-06 is
# 37 years of 365 days plus the leap days 1980 (Feb 29 1980 falls after Jan 6), 1984, ..., 2016
# (10 of them) = 13,515 days; 2017-01-01 is 5 days earlier: 13,510 days = 1930 weeks exactly
# (1930 * 7 = 13,510), so 2017-01-01 (a Sunday) starts GPS week 1930 in calendar terms.
WEEK_OF_2017_01_01 = 1930


@pytest.mark.parametrize(
    ("text", "week", "tow"),
    [
        # The epoch itself: GPS and UTC agreed.
        ("1980-01-06T00:00:00", 0, 0.0),
        # 2017-01-01T00:00:00 UTC: the 18 s offset applies from this instant, so GPS reads
        # 00:00:18 of the first day of week 1930.
        ("2017-01-01T00:00:00", WEEK_OF_2017_01_01, 18.0),
        # One UTC second earlier the offset is still 17 s: GPS 2016-12-31T23:59:59 + 17 s =
        # 2017-01-01T00:00:16, i.e. TOW 16 of week 1930 (TOW 17 is the leap second 23:59:60).
        ("2016-12-31T23:59:59", WEEK_OF_2017_01_01, 16.0),
        # 2016-12-31T23:59:00 UTC + 17 s = 23:59:17 GPS, 43 s before the week starts:
        # TOW 604,800 - 43 = 604,757 of week 1929.
        ("2016-12-31T23:59:00", WEEK_OF_2017_01_01 - 1, 604_757.0),
        # Second week rollover: week 2048 starts 2019-04-07T00:00:00 GPS (1980-01-06 -> 2019-01-06
        # is 39 * 365 + 10 = 14,245 days, + 91 days to 2019-04-07 = 14,336 = 2048 * 7), which is
        # 18 s earlier in UTC.
        ("2019-04-06T23:59:42", 2048, 0.0),
        # Mid-week with a fractional second: 2019-04-07T12:34:56.25 UTC is 45,296.25 s into the
        # UTC day, plus 18 s.
        ("2019-04-07T12:34:56.25", 2048, 45_314.25),
    ],
)
def test_known_values(text, week, tow):
    got_week, got_tow = utc_to_gps(utc(text))
    assert int(got_week) == week
    assert float(got_tow) == pytest.approx(tow, abs=1e-9)
    assert gps_to_utc(week, tow) == utc(text)


@pytest.mark.parametrize(
    ("last_second_before", "offset_before"),
    [
        ("1981-06-30T23:59:59", 0),
        ("2008-12-31T23:59:59", 14),
        ("2012-06-30T23:59:59", 15),
        ("2015-06-30T23:59:59", 16),
        ("2016-12-31T23:59:59", 17),
    ],
)
def test_leap_second_steps(last_second_before, offset_before):
    before = utc(last_second_before)
    after = before + np.timedelta64(1, "s")
    assert int(gps_minus_utc(before)) == offset_before
    assert int(gps_minus_utc(after)) == offset_before + 1


def test_offsets_quoted_in_the_brief():
    # 15 s from 2009-01-01, 16 s from 2012-07-01, 17 s from 2015-07-01, 18 s from 2017-01-01 on.
    days = np.array(["2009-06-01", "2013-01-01", "2016-01-01", "2017-06-01", "2030-01-01"])
    assert gps_minus_utc(days.astype("datetime64[ns]")).tolist() == [15, 16, 17, 18, 18]


def test_gps_minute_ends_across_the_2017_leap_second():
    # ISMR time stamps are whole GPS minutes. In UTC the minute ends sit at :43 before the leap
    # second and at :42 after it, so two consecutive records are only 59 UTC-calendar seconds apart.
    week = np.array([1929, 1930, 1930])
    tow = np.array([SECONDS_PER_WEEK - 60, 0, 60])
    expected = np.array(
        ["2016-12-31T23:58:43", "2016-12-31T23:59:43", "2017-01-01T00:00:42"],
        dtype="datetime64[ns]",
    )
    np.testing.assert_array_equal(gps_to_utc(week, tow), expected)


def test_round_trip_every_second_around_the_leap_second():
    start = utc("2016-12-31T23:59:00")
    times = start + np.arange(120).astype("timedelta64[s]")
    week, tow = utc_to_gps(times)
    np.testing.assert_array_equal(gps_to_utc(week, tow), times)
    # GPS time never stalls or jumps: 18 s after the step, GPS runs one second further than UTC.
    gps_seconds = week * SECONDS_PER_WEEK + tow
    steps = np.diff(gps_seconds)
    assert set(steps.tolist()) == {1.0, 2.0}
    assert np.count_nonzero(steps == 2.0) == 1


def test_round_trip_random_instants():
    rng = np.random.default_rng(1)
    lo, hi = utc("1981-01-01").astype(np.int64), utc("2035-01-01").astype(np.int64)
    # Whole milliseconds: a float64 TOW resolves 1 ms exactly at any time of week.
    ms = rng.integers(lo // 1_000_000, hi // 1_000_000, size=2000)
    times = (ms * 1_000_000).astype("datetime64[ns]")
    week, tow = utc_to_gps(times)
    assert np.all((tow >= 0) & (tow < SECONDS_PER_WEEK))
    np.testing.assert_array_equal(gps_to_utc(week, tow), times)
    # And from the GPS side: whole-second GPS times map back onto themselves.
    week_in = rng.integers(100, 2500, size=500)
    tow_in = rng.integers(0, SECONDS_PER_WEEK, size=500).astype(np.float64)
    week_out, tow_out = utc_to_gps(gps_to_utc(week_in, tow_in))
    np.testing.assert_array_equal(week_out, week_in)
    np.testing.assert_array_equal(tow_out, tow_in)
