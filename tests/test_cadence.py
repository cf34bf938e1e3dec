"""Frame thinning to a cadence."""

import numpy as np

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
