"""Gap accounting: which UT hours and minutes of a download the archive did not have.

Every download manifest row names the archive file (or, for a whole missing hour of UCalgary
stream0, the hour's folder) in its URL, and each layout puts the time in the name, so the hour and
the minutes a row stands for are read back from the URL. Kept free of HTTP libraries: the summary
rule reads manifests without them.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable

from latentsky.acquisition.manifest import ManifestRow

PRESENT = ("downloaded", "present")

_BERKELEY_L1 = re.compile(r"thg_l1_asf_[a-z]{4}_(?P<stamp>\d{10})_v\w+\.cdf$")
_STREAM0_MINUTE = re.compile(
    r"(?P<day>\d{8})_(?P<hh>\d{2})(?P<mm>\d{2})_[a-z]{4}_themis\d{2}_full\.pgm(?:\.gz|\.bz2)?$"
)
# A whole stream0 hour: .../YYYY/MM/DD/<site>_themisNN/utHH/ (NN literally when the day had no
# imager folder at all).
_STREAM0_HOUR = re.compile(
    r"/(?P<y>\d{4})/(?P<m>\d{2})/(?P<d>\d{2})/[a-z]{4}_themis(?:\d{2}|NN)/ut(?P<hh>\d{2})/$"
)
_CHAIN_ISMR = re.compile(r"[a-z]{3}c(?P<yy>\d{2})(?P<doy>\d{3})(?P<letter>[a-x])\.ismr(?:\.gz)?$")


def span_of(url: str) -> tuple[dt.datetime, int] | None:
    """(UT hour, minutes of data) that a manifest URL stands for; None for files without a time
    (skymaps, calibration files)."""
    if match := _BERKELEY_L1.search(url):
        return dt.datetime.strptime(match["stamp"], "%Y%m%d%H"), 60
    if match := _STREAM0_MINUTE.search(url):
        return dt.datetime.strptime(match["day"] + match["hh"], "%Y%m%d%H"), 1
    if match := _STREAM0_HOUR.search(url):
        return dt.datetime(int(match["y"]), int(match["m"]), int(match["d"]), int(match["hh"])), 60
    if match := _CHAIN_ISMR.search(url):
        day = dt.datetime(2000 + int(match["yy"]), 1, 1) + dt.timedelta(int(match["doy"]) - 1)
        return day + dt.timedelta(hours=ord(match["letter"]) - ord("a")), 60
    return None


def gap_summary(rows: Iterable[ManifestRow]) -> dict[str, int]:
    """Counts of what a set of download manifests holds and lacks.

    Returns ``files_present`` (downloaded or already present), ``files_missing`` (gap rows: files
    the archive answered 404 for or did not list, or whole hour folders), ``hours_expected`` (UT
    hours the rows cover), ``hours_missing`` (of those, hours without a single present file) and
    ``minutes_missing`` (minutes without data: 1 per missing stream0 minute file, 60 per missing
    hourly file or hour folder). One stream0 minute holds 20 frames (3 s cadence).
    """
    rows = list(rows)
    hours, hours_with_data = set(), set()
    minutes_missing = 0
    for row in rows:
        span = span_of(row.url)
        if span is None:
            continue
        hours.add(span[0])
        if row.status in PRESENT:
            hours_with_data.add(span[0])
        elif row.status == "missing":
            minutes_missing += span[1]
    return {
        "files_present": sum(row.status in PRESENT for row in rows),
        "files_missing": sum(row.status == "missing" for row in rows),
        "hours_expected": len(hours),
        "hours_missing": len(hours - hours_with_data),
        "minutes_missing": minutes_missing,
    }
