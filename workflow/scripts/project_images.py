"""Project one UT date of all-sky frames onto the grid, file by file, into a Zarr store."""

import datetime as dt
import json
from pathlib import Path

import numpy as np
import xarray as xr

from latentsky.cadence import keep_at_interval
from latentsky.errors import BadInputError
from latentsky.geometry import load_operator, project_frames
from latentsky.layouts import skymap_for_date
from latentsky.logs import log_to_file
from latentsky.manifest import read_manifest
from latentsky.readers import read_themis_l1_cdf, read_themis_pgm_frames
from latentsky.stores import ZarrAppender

log = log_to_file(snakemake.log[0])
params = snakemake.params
skip = params.on_bad_input == "skip"
rows = read_manifest(snakemake.input.images)
files = sorted(row.path for row in rows if row.status in ("downloaded", "present"))
skymaps = [row.path for row in read_manifest(snakemake.input.skymaps) if row.path]
skymap = skymap_for_date(skymaps, dt.date.fromisoformat(snakemake.wildcards.date))
operator, fov_mask, grid, meta = load_operator(
    Path(snakemake.input.operators) / f"{Path(skymap).name}.npz"
)
counts = {
    "files_read": 0,
    "files_unreadable": 0,
    "frames_skipped": 0,
    "duplicate_times": 0,
    "times_out_of_order": 0,
}
seen_times: set[int] = set()
latest_time = [np.iinfo(np.int64).min]


def read_frames(path):
    """Frames and times of one file; damaged parts are skipped and counted, or raise."""
    if params.image_source == "ucalgary_stream0":
        read = read_themis_pgm_frames(path, skip_bad_frames=skip)
        counts["frames_skipped"] += read.n_skipped
        for problem in read.problems:
            log.warning("skipped: %s", problem)
        return read.frames, read.times
    return read_themis_l1_cdf(path, params.site)


def checked_times(path, frames, times):
    """Drop (and count) frames whose time repeats an earlier frame's; count, and keep, frames whose
    time goes backwards (stack_images sorts them into place). Fail mode stops at either."""
    keep = np.ones(len(times), dtype=bool)
    for index, stamp in enumerate(times.astype("datetime64[ns]").astype(np.int64).tolist()):
        if stamp in seen_times:
            problem = BadInputError(
                path, f"time {times[index]} repeats an earlier frame's", where=f"frame {index}"
            )
            if not skip:
                raise problem
            log.warning("skipped: %s", problem)
            counts["duplicate_times"] += 1
            keep[index] = False
            continue
        if stamp < latest_time[0]:
            problem = BadInputError(
                path,
                f"time {times[index]} is earlier than a previous frame's",
                where=f"frame {index}",
            )
            if not skip:
                raise problem
            log.warning("kept, sorted into place: %s", problem)
            counts["times_out_of_order"] += 1
        seen_times.add(stamp)
        latest_time[0] = max(latest_time[0], stamp)
    return frames[keep], times[keep]


def as_dataset(projected, times):
    return xr.Dataset(
        {"image": (("time", "band", "lat", "lon"), projected[:, np.newaxis])},
        coords={"time": times, "band": ["white_light"], "lat": grid.lat, "lon": grid.lon},
    )


store = ZarrAppender(
    snakemake.output.projected,
    encoding={"image": {"chunks": (256, 1, len(grid.lat), len(grid.lon))}},
)
last_kept = None  # thinning to the configured cadence carries across the files of a date
try:
    for path in files:
        try:
            frames, times = read_frames(path)
        except BadInputError as error:
            if not skip:
                raise
            counts["files_unreadable"] += 1
            log.warning("skipped unreadable file: %s", error)
            continue
        counts["files_read"] += 1
        frames, times = checked_times(path, frames, times)
        keep, last_kept = keep_at_interval(times, params.frame_interval_s, last_kept)
        frames, times = frames[keep], times[keep]
        if len(frames):
            store.append(as_dataset(project_frames(operator, fov_mask, frames), times))
    empty = as_dataset(
        np.empty((0, len(grid.lat), len(grid.lon)), np.float32),
        np.array([], dtype="datetime64[ns]"),
    )
    store.commit(
        empty,
        {
            "site": params.site,
            "skymap": Path(skymap).name,
            "altitude_km": meta["altitude_km"],
            "min_elevation_deg": meta["min_elevation_deg"],
            "files_missing": sum(row.status == "missing" for row in rows),
            "bad_input": json.dumps(counts),
        },
    )
except BaseException:
    store.abort()
    raise
log.info("%s: %s from %d files via %s", snakemake.wildcards.date, counts, len(files), skymap)
