"""Gap and failure accounting: which UT hours and minutes of a download the archive did not have
(gaps: it says so) or did not give (failures: it answered wrongly, after every retry).

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
    """Counts of what a set of download manifests holds, lacks (gaps) and failed to get.

    Returns ``files_present`` (downloaded or already present), ``files_missing`` (gap rows: what
    the archive positively says it does not have: a 404, a file or folder a listing lacks),
    ``files_failed`` (rows of files or listings that stayed broken after the retries; some keep a
    salvaged part), ``hours_expected`` (UT hours the rows cover), ``hours_missing`` and
    ``hours_failed`` (of those, hours without any data: with only gaps, and with a failure among
    their rows) and ``minutes_missing`` and ``minutes_failed`` (1 per stream0 minute file, 60 per
    hourly file or hour folder). One stream0 minute holds 20 frames (3 s cadence).
    """
    rows = list(rows)
    hours, hours_with_data, hours_with_failure = set(), set(), set()
    minutes = {"missing": 0, "failed": 0}
    for row in rows:
        span = span_of(row.url)
        if span is None:
            continue
        hours.add(span[0])
        if row.status in PRESENT or (row.status == "failed" and row.path):
            hours_with_data.add(span[0])
        if row.status in minutes:
            minutes[row.status] += span[1]
        if row.status == "failed":
            hours_with_failure.add(span[0])
    without_data = hours - hours_with_data
    return {
        "files_present": sum(row.status in PRESENT for row in rows),
        "files_missing": sum(row.status == "missing" for row in rows),
        "files_failed": sum(row.status == "failed" for row in rows),
        "hours_expected": len(hours),
        "hours_missing": len(without_data - hours_with_failure),
        "hours_failed": len(without_data & hours_with_failure),
        "minutes_missing": minutes["missing"],
        "minutes_failed": minutes["failed"],
    }


def gap_reasons(rows: Iterable[ManifestRow]) -> dict[str, int]:
    """Gap rows by reason (their ``detail``)."""
    reasons: dict[str, int] = {}
    for row in rows:
        if row.status == "missing":
            reason = row.detail or "not in the archive"
            reasons[reason] = reasons.get(reason, 0) + 1
    return dict(sorted(reasons.items()))


def failures(rows: Iterable[ManifestRow]) -> list[dict[str, str]]:
    """Every ``failed`` row: its URL, the fault and the salvaged part's path (empty if none)."""
    return [
        {"url": row.url, "reason": row.detail, "salvaged": row.path}
        for row in rows
        if row.status == "failed"
    ]
