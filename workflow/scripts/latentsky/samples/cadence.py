"""Thinning a frame sequence to a chosen cadence (the study used about one image per minute).

THEMIS imagers take a frame every 3 s; consecutive frames are nearly identical, so a study of two
months keeps one frame per minute (about 35,000 images) rather than all 20 (about 700,000).
"""

from __future__ import annotations

import numpy as np


def keep_at_interval(
    times, interval_s: float, last_kept: np.datetime64 | None = None
) -> tuple[np.ndarray, np.datetime64 | None]:
    """Mask of the frames to keep so that kept frames are at least ``interval_s`` apart.

    Greedy in time order: a frame is kept when it is ``interval_s`` or more after the last kept one.
    ``last_kept`` carries the state across files of one night; the new state is returned with the
    mask. ``interval_s <= 0`` keeps every frame. ``times`` is (N,) datetime64, sorted.
    """
    times = np.asarray(times, dtype="datetime64[ns]")
    keep = np.zeros(len(times), dtype=bool)
    if interval_s <= 0:
        keep[:] = True
        return keep, (times[-1] if len(times) else last_kept)
    step = np.timedelta64(int(round(interval_s * 1e9)), "ns")
    for i, time in enumerate(times):
        if last_kept is None or time - last_kept >= step:
            keep[i] = True
            last_kept = time
    return keep, last_kept
