"""Frame thinning to a cadence."""

import numpy as np
import pytest

from latentsky.instruments.themis import read_themis_l1_cdf, read_themis_pgm
from latentsky.samples.cadence import keep_at_interval

START = np.datetime64("2014-03-10T06:00:00.063", "ns")


def three_second_frames(n, start=START):
    return start + np.arange(n) * np.timedelta64(3, "s")


def test_one_frame_per_minute_from_three_second_cadence():
    times = three_second_frames(20 * 10)  # ten minutes of stream0
    keep, _ = keep_at_interval(times, 60)
    assert keep.sum() == 10
    kept = times[keep]
    assert np.all(np.diff(kept) == np.timedelta64(60, "s"))
    assert kept[0] == times[0]


def test_state_carries_across_files_of_a_night():
    first, second = (
        three_second_frames(20),
        three_second_frames(20, START + np.timedelta64(60, "s")),
    )
    keep_a, state = keep_at_interval(first, 45)
    keep_b, _ = keep_at_interval(second, 45, state)
    # 0 s kept, then 45 s is in the first file; the next is due at 90 s, in the second file
    np.testing.assert_array_equal(first[keep_a], first[[0, 15]])
    assert second[keep_b][0] - first[15] == np.timedelta64(45, "s")


def test_zero_interval_keeps_everything_and_irregular_gaps_are_respected():
    times = np.array(
        [
            "2024-01-08T04:00:00",
            "2024-01-08T04:00:50",
            "2024-01-08T04:01:10",
            "2024-01-08T04:03:00",
        ],
        dtype="datetime64[ns]",
    )
    assert keep_at_interval(times, 0)[0].all()
    assert keep_at_interval(times, 60)[0].tolist() == [True, False, True, True]


def jittered_frames(n, seed=0, start=START):
    """A 3-s cadence whose frame times jitter as real THEMIS frames do: consecutive frames
    2.959 to 3.049 s apart (the sample stream0 and level-1 files), i.e. each frame time off its
    slot by up to about +-45 ms."""
    rng = np.random.default_rng(seed)
    offsets = rng.uniform(-45e6, 45e6, n).astype(np.int64)  # ns
    return start + np.arange(n) * np.timedelta64(3, "s") + offsets.astype("timedelta64[ns]")


def test_three_seconds_on_a_jittered_three_second_cadence_keeps_every_frame():
    times = jittered_frames(20 * 60)  # an hour of stream0
    keep, _ = keep_at_interval(times, 3)
    assert keep.all()  # a strict >= 3 s kept about 65% of them


@pytest.mark.parametrize("interval_s", [6, 60])
def test_longer_intervals_on_jittered_frames_keep_one_frame_per_interval(interval_s):
    times = jittered_frames(20 * 60, seed=1)
    keep, _ = keep_at_interval(times, interval_s)
    per_interval = interval_s // 3
    assert keep.sum() == len(times) // per_interval
    gaps = np.diff(times[keep]) / np.timedelta64(1, "s")
    assert np.all(np.abs(gaps - interval_s) < 0.1)


def test_real_frame_times_keep_every_frame_at_their_own_cadence(shared_data):
    # The sample files' own frame times, across two stream0 files and one level-1 hour.
    gill = shared_data / "themis" / "gill"
    _, first = read_themis_pgm(gill / "20140310_0600_gill_themis19_full.pgm.gz")
    _, second = read_themis_pgm(gill / "20140310_0605_gill_themis19_full.pgm")
    keep_a, state = keep_at_interval(first, 3)
    keep_b, _ = keep_at_interval(second, 3, state)
    assert keep_a.all() and keep_b.all()
    cdf = next((shared_data / "themis" / "gako").glob("thg_l1_asf_gako_*.cdf"))
    _, times = read_themis_l1_cdf(cdf, "gako")
    assert keep_at_interval(times, 3)[0].all()
    # One a minute from 20 frames a minute: the first frame of the file.
    assert keep_at_interval(first, 60)[0].sum() == 1
