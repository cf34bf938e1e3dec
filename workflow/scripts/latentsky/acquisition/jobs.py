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

from latentsky.acquisition import layouts
from latentsky.acquisition.checks import check_cdf, check_idl_save, check_ismr_gz, check_pgm_gz
from latentsky.acquisition.http import Fetcher, is_safe_name
from latentsky.acquisition.manifest import ManifestRow

Job = tuple[str, Path, Callable[[Path], None] | None]

STREAM0_MINUTE = re.compile(
    r"^(?P<stamp>\d{8}_\d{2})(?P<minute>\d{2})_(?P<site>[a-z]{4})_(?P<imager>themis\d{2})"
    r"_full\.pgm\.gz$"
)


def inside(root: Path, relative: str) -> Path:
    """``root / relative``, refusing any path that would leave ``root`` (defence in depth).

    The path is returned as given (relative paths stay relative, so manifests do not depend on
    where the workflow folder lives); the check is made on the resolved paths.
    """
    resolved_root = Path(root).resolve()
    resolved = (resolved_root / relative).resolve()
    if resolved != resolved_root and resolved_root not in resolved.parents:
        raise ValueError(f"refusing to write outside {root}: {relative}")
    return Path(root) / relative


def berkeley_l1_jobs(
    base_url: str, site: str, hours: list[dt.datetime], root: Path
) -> tuple[list[Job], list[ManifestRow]]:
    """Berkeley level-1 CDFs: one file per hour, at a known path (gaps show as 404s)."""
    jobs = []
    for hour in hours:
        relative = layouts.berkeley_l1_cdf(site, hour)
        url = layouts.join_url(base_url, relative)
        jobs.append((url, inside(root, relative), check_cdf(f"thg_asf_{site}")))
    return jobs, []


def stream0_jobs(
    fetcher: Fetcher, base_url: str, site: str, hours: list[dt.datetime], root: Path
) -> tuple[list[Job], list[ManifestRow]]:
    """UCalgary stream0: the imager folder (<site>_themisNN) is discovered from the day listing.

    A gap row is written for every minute of the requested hours that the archive lacks: one per
    minute file missing from an hour's listing, and one for a whole hour (its folder URL; with
    ``themisNN`` literally when the day lists no imager folder of the site).
    """
    jobs: list[Job] = []
    gaps: list[ManifestRow] = []
    imagers = {}
    for day in sorted({hour.date() for hour in hours}):
        listing = fetcher.list_folder(layouts.join_url(base_url, layouts.ucalgary_stream0_day(day)))
        imagers[day] = sorted(
            match["imager"]
            for name in listing
            if (match := layouts.IMAGER_FOLDER.match(name)) and match["site"] == site
        )
    for hour in hours:
        found = imagers[hour.date()]
        if not found:
            folder = _stream0_hour_folder(site, "themisNN", hour)
            gaps.append(
                _gap(
                    layouts.join_url(base_url, folder),
                    f"no {site}_themisNN folder listed for {hour:%Y-%m-%d}",
                )
            )
            continue
        covered: dict[int, str] = {}  # minute -> imager that has it
        for imager in found:
            folder = _stream0_hour_folder(site, imager, hour)
            for name in fetcher.list_folder(layouts.join_url(base_url, folder)):
                match = STREAM0_MINUTE.match(name)
                if not (
                    is_safe_name(name)
                    and match
                    and (match["site"], match["imager"]) == (site, imager)
                    and match["stamp"] == f"{hour:%Y%m%d_%H}"
                    and int(match["minute"]) < 60
                ):
                    continue
                covered.setdefault(int(match["minute"]), imager)
                relative = folder + name
                jobs.append(
                    (layouts.join_url(base_url, relative), inside(root, relative), check_pgm_gz())
                )
        if not covered:
            folder = _stream0_hour_folder(site, found[0], hour)
            gaps.append(
                _gap(layouts.join_url(base_url, folder), "hour folder missing or without files")
            )
            continue
        imager = max(set(covered.values()), key=list(covered.values()).count)
        for minute in sorted(set(range(60)) - set(covered)):
            relative = layouts.ucalgary_stream0_minute(site, imager, hour.replace(minute=minute))
            gaps.append(_gap(layouts.join_url(base_url, relative), "minute not in the listing"))
    return jobs, gaps


def _stream0_hour_folder(site: str, imager: str, hour: dt.datetime) -> str:
    return layouts.ucalgary_stream0_minute(site, imager, hour).rsplit("/", 1)[0] + "/"


def berkeley_calibration_jobs(
    base_url: str, site: str, root: Path
) -> tuple[list[Job], list[ManifestRow]]:
    """The Berkeley calibration CDF of a site (one for all dates)."""
    relative = layouts.berkeley_calibration_cdf(site)
    url = layouts.join_url(base_url, relative)
    return [(url, inside(root, relative), check_cdf(f"thg_asf_{site}_elev"))], []


def ucalgary_skymap_jobs(
    fetcher: Fetcher, base_url: str, site: str, dates: list[dt.date], root: Path
) -> tuple[list[Job], list[ManifestRow]]:
    """The UCalgary skymaps that cover ``dates``: for each date the newest dated on or before it."""
    site_url = layouts.join_url(base_url, layouts.ucalgary_skymap_site(site))
    valid_from = sorted(
        dt.datetime.strptime(match["date"], "%Y%m%d").date()
        for name in fetcher.list_folder(site_url)
        if (match := layouts.SKYMAP_FOLDER.match(name)) and match["site"] == site
    )
    chosen = {day: layouts.newest_on_or_before(valid_from, day) for day in dates}
    uncovered = sorted(day for day, skymap in chosen.items() if skymap is None)
    if uncovered:
        raise ValueError(
            f"{site_url}: no skymap dated on or before {uncovered[0]} "
            f"({len(uncovered)} dates uncovered; skymaps listed: {valid_from})"
        )
    jobs: list[Job] = []
    for day in sorted(set(chosen.values())):
        folder = f"{site}/{site}_{day:%Y%m%d}/"
        names = [
            name
            for name in fetcher.list_folder(layouts.join_url(base_url, folder))
            if (m := layouts.SKYMAP_FILE.match(name))
            and (m["site"], m["date"]) == (site, f"{day:%Y%m%d}")
        ]
        if not names:
            raise ValueError(f"{layouts.join_url(base_url, folder)}: no skymap file listed")
        relative = folder + sorted(names)[-1]  # the highest version
        jobs.append(
            (layouts.join_url(base_url, relative), inside(root, relative), check_idl_save("SKYMAP"))
        )
    return jobs, []


def ismr_jobs(
    base_url: str,
    station: str,
    hours: list[dt.datetime],
    root: Path,
    expected_columns: int | None = 62,
) -> list[Job]:
    """Download jobs for CHAIN hourly ISMR files."""
    check = check_ismr_gz(expected_columns)
    return [
        (layouts.join_url(base_url, rel), inside(root, rel), check)
        for rel in (layouts.chain_ismr(station, hour) for hour in hours)
    ]


def _gap(url: str, detail: str) -> ManifestRow:
    return ManifestRow(url=url, path="", status="missing", detail=detail)
