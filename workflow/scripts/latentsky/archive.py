"""What to fetch for a dataset: the URLs and local paths of images, skymaps and ISMR files.

Local copies mirror the remote relative paths under ``<raw_dir>/<source>/``, so a user can see at a
glance which archive file each local file came from. Gaps (hours or files that the archive does not
have) come back as manifest rows with status ``missing`` rather than as errors.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from pathlib import Path

from . import layouts
from .download import (
    Fetcher,
    check_cdf,
    check_gzip,
    check_ismr_gz,
    check_pgm_gz,
    is_safe_name,
)
from .manifest import ManifestRow

Job = tuple[str, Path, Callable[[Path], None] | None]

STREAM0_MINUTE = re.compile(
    r"^\d{8}_\d{4}_(?P<site>[a-z]{4})_(?P<imager>themis\d{2})_full\.pgm\.gz$"
)


def inside(root: Path, relative: str) -> Path:
    """``root / relative``, refusing any path that would leave ``root`` (defence in depth)."""
    root = root.resolve()
    path = (root / relative).resolve()
    if path != root and root not in path.parents:
        raise ValueError(f"refusing to write outside {root}: {relative}")
    return path


def image_jobs(
    fetcher: Fetcher, source: str, base_url: str, site: str, hours: list[dt.datetime], raw_dir: Path
) -> tuple[list[Job], list[ManifestRow]]:
    """Download jobs for the image files of some UT hours, plus manifest rows for gaps."""
    root = Path(raw_dir) / source
    if source == "berkeley_l1":
        jobs = []
        for hour in hours:
            relative = layouts.berkeley_l1_cdf(site, hour)
            url = layouts.join_url(base_url, relative)
            jobs.append((url, inside(root, relative), check_cdf(f"thg_asf_{site}")))
        return jobs, []
    if source == "ucalgary_stream0":
        return _stream0_jobs(fetcher, base_url, site, hours, root)
    raise ValueError(f"unknown image source {source!r}")


def _stream0_jobs(fetcher, base_url, site, hours, root):
    """UCalgary stream0: the imager folder (<site>_themisNN) is discovered from the day listing."""
    jobs: list[Job] = []
    gaps: list[ManifestRow] = []
    days = sorted({hour.date() for hour in hours})
    imagers = {}
    for day in days:
        day_url = layouts.join_url(base_url, layouts.ucalgary_stream0_day(day))
        found = []
        for name in fetcher.list_folder(day_url):
            match = layouts.IMAGER_FOLDER.match(name)
            if match and match["site"] == site:
                found.append(match["imager"])
        imagers[day] = sorted(found)
    for hour in hours:
        if not imagers[hour.date()]:
            gaps.append(
                _gap(
                    layouts.join_url(base_url, layouts.ucalgary_stream0_day(hour.date())),
                    f"no {site}_themisNN folder for {hour.date()}",
                )
            )
            continue
        listed_any = False
        for imager in imagers[hour.date()]:
            folder = layouts.ucalgary_stream0_minute(site, imager, hour).rsplit("/", 1)[0] + "/"
            folder_url = layouts.join_url(base_url, folder)
            for name in fetcher.list_folder(folder_url):
                if not (is_safe_name(name) and STREAM0_MINUTE.match(name)):
                    continue
                listed_any = True
                relative = folder + name
                jobs.append(
                    (layouts.join_url(base_url, relative), inside(root, relative), check_pgm_gz())
                )
        if not listed_any:
            gaps.append(
                _gap(
                    layouts.join_url(
                        base_url,
                        layouts.ucalgary_stream0_minute(site, imagers[hour.date()][0], hour).rsplit(
                            "/", 1
                        )[0]
                        + "/",
                    ),
                    f"no minute files for {hour:%Y-%m-%d %H} UT",
                )
            )
    return jobs, gaps


def skymap_jobs(
    fetcher: Fetcher, source: str, base_url: str, site: str, dates: list[dt.date], raw_dir: Path
) -> tuple[list[Job], list[ManifestRow]]:
    """Download jobs for the skymap(s) that cover ``dates``."""
    root = Path(raw_dir) / source
    if source == "berkeley_cal":
        relative = layouts.berkeley_calibration_cdf(site)
        url = layouts.join_url(base_url, relative)
        return [(url, inside(root, relative), check_cdf(f"thg_asf_{site}_elev"))], []
    if source != "ucalgary_sav":
        raise ValueError(f"unknown skymap source {source!r}")
    site_url = layouts.join_url(base_url, layouts.ucalgary_skymap_site(site))
    valid_from = sorted(
        dt.datetime.strptime(match["date"], "%Y%m%d").date()
        for name in fetcher.list_folder(site_url)
        if (match := layouts.SKYMAP_FOLDER.match(name)) and match["site"] == site
    )
    needed = sorted({layouts.newest_on_or_before(valid_from, day) for day in dates} - {None})
    if not needed:
        raise ValueError(f"{site_url}: no skymap dated on or before {min(dates)}")
    jobs: list[Job] = []
    for day in needed:
        folder = f"{site}/{site}_{day:%Y%m%d}/"
        names = [
            name
            for name in fetcher.list_folder(layouts.join_url(base_url, folder))
            if (m := layouts.SKYMAP_FILE.match(name)) and m["site"] == site
        ]
        if not names:
            raise ValueError(f"{layouts.join_url(base_url, folder)}: no skymap file listed")
        relative = folder + sorted(names)[-1]  # the highest version
        jobs.append((layouts.join_url(base_url, relative), inside(root, relative), None))
    return jobs, []


def ismr_jobs(
    base_url: str,
    station: str,
    hours: list[dt.datetime],
    raw_dir: Path,
    expected_columns: int | None = 62,
) -> list[Job]:
    """Download jobs for CHAIN hourly ISMR files."""
    root = Path(raw_dir) / "chain_ismr"
    check = check_ismr_gz(expected_columns) if expected_columns else check_gzip
    return [
        (layouts.join_url(base_url, rel), inside(root, rel), check)
        for rel in (layouts.chain_ismr(station, hour) for hour in hours)
    ]


def _gap(url: str, detail: str) -> ManifestRow:
    return ManifestRow(url=url, path="", status="missing", detail=detail)
