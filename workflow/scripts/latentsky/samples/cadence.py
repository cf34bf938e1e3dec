"""Thinning a frame sequence to a chosen cadence (the study used about one image per minute).

THEMIS imagers take a frame every 3 s; consecutive frames are nearly identical, so a study of two
months keeps one frame per minute (about 35,000 images) rather than all 20 (about 700,000).
"""

from __future__ import annotations

import numpy as np

#: Frame times jitter by tens of ms about the nominal 3-s cadence (real stream0 and level-1
#: files: consecutive frames 2.959 to 3.049 s apart). Frames this much closer than the interval
#: still count as far enough apart; it is well under half a 3-s frame step, so no extra frame
#: slips in.
JITTER_TOLERANCE_S = 0.5


def keep_at_interval(
    times,
    interval_s: float,
    last_kept: np.datetime64 | None = None,
    tolerance_s: float = JITTER_TOLERANCE_S,
) -> tuple[np.ndarray, np.datetime64 | None]:
    """Mask of the frames to keep so that kept frames are ``interval_s`` apart, give or take the
    jitter of frame times.

    Greedy in time order: a frame is kept when it is at least ``interval_s - tolerance`` after the
    last kept one, with ``tolerance = min(tolerance_s, interval_s / 2)``. Without the tolerance, a
    3-s interval on a 3-s cadence kept only frames that happened to come late (65% of real frames);
    with it, it keeps every frame, and 60 s keeps one frame a minute. Kept frames are real frame
    times, so the tolerance does not accumulate: over a night the mean spacing is the interval.
    ``last_kept`` carries the state across files of one night; the new state is returned with the
    mask. ``interval_s <= 0`` keeps every frame. ``times`` is (N,) datetime64, sorted.
    """
    times = np.asarray(times, dtype="datetime64[ns]")
    keep = np.zeros(len(times), dtype=bool)
    if interval_s <= 0:
        keep[:] = True
        return keep, (times[-1] if len(times) else last_kept)
    tolerance = min(max(tolerance_s, 0.0), interval_s / 2.0)
    step = np.timedelta64(int(round((interval_s - tolerance) * 1e9)), "ns")
    for i, time in enumerate(times):
        if last_kept is None or time - last_kept >= step:
            keep[i] = True
            last_kept = time
    return keep, last_kept
