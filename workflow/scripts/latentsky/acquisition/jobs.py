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
from latentsky.acquisition.http import DownloadError, Fetcher, is_safe_name
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
    """UCalgary stream0: the imager folders (<site>_themisNN) are discovered from the day listing.

    Returns the download jobs and the rows of what cannot be downloaded: a gap (status
    ``missing``) only where the archive positively says so (a day or hour folder answered 404, a
    listing that parses and lacks the site's folder or a minute's file), and a failure (status
    ``failed``, with ``fetcher.skip_failures``; otherwise :class:`DownloadError`) where a listing
    stayed broken. Gaps are one row per missing minute file, or one per hour (the hour folder's
    URL; ``themisNN`` literally when the day lists no imager folder of the site). When several
    imagers of the site have folders on a day (an imager swapped), the files of all are fetched.
    """
    jobs: list[Job] = []
    rows: list[ManifestRow] = []
    imagers: dict[dt.date, list[str] | tuple[str, str]] = {}
    for day in sorted({hour.date() for hour in hours}):
        url = layouts.join_url(base_url, layouts.ucalgary_stream0_day(day))
        listing = _listing(fetcher, url)
        if isinstance(listing, tuple):
            imagers[day] = listing
            continue
        found = sorted(
            match["imager"]
            for name in listing
            if (match := layouts.IMAGER_FOLDER.match(name)) and match["site"] == site
        )
        imagers[day] = found or ("missing", f"no {site}_themisNN folder in the day's listing")
    for hour in hours:
        found = imagers[hour.date()]
        if isinstance(found, tuple):
            status, detail = found
            folder = layouts.join_url(base_url, _stream0_hour_folder(site, "themisNN", hour))
            rows.append(ManifestRow(url=folder, path="", status=status, detail=detail))
            continue
        covered: dict[int, str] = {}  # minute -> imager that has it
        broken: list[ManifestRow] = []
        absent: list[str] = []
        for imager in found:
            folder = _stream0_hour_folder(site, imager, hour)
            folder_url = layouts.join_url(base_url, folder)
            listing = _listing(fetcher, folder_url)
            if isinstance(listing, tuple):
                status, detail = listing
                if status == "failed":
                    broken.append(
                        ManifestRow(url=folder_url, path="", status=status, detail=detail)
                    )
                else:
                    absent.append(folder_url)
                continue
            for name in listing:
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
        rows += broken
        if broken:
            continue  # what the broken listings held is unknown: no minute is a gap
        if not covered:
            folder_url = layouts.join_url(base_url, _stream0_hour_folder(site, found[0], hour))
            detail = (
                "hour folder not in the archive"
                if len(absent) == len(found)
                else "hour folder lists no minute file"
            )
            rows.append(ManifestRow(url=folder_url, path="", status="missing", detail=detail))
            continue
        imager = max(set(covered.values()), key=list(covered.values()).count)
        for minute in sorted(set(range(60)) - set(covered)):
            relative = layouts.ucalgary_stream0_minute(site, imager, hour.replace(minute=minute))
            rows.append(_gap(layouts.join_url(base_url, relative), "minute not in the listing"))
    return jobs, rows


def _listing(fetcher: Fetcher, url: str) -> list[str] | tuple[str, str]:
    """The names of a listing, or (status, detail) of a manifest row when there is none: a gap
    for a folder that is not in the archive, a failure (with ``skip_failures``; otherwise the
    DownloadError is raised) for a listing that stayed broken."""
    try:
        names = fetcher.read_listing(url)
    except DownloadError as error:
        if not fetcher.skip_failures:
            raise
        return "failed", f"listing failed: {error.reason}"
    if names is None:
        return "missing", "folder not in the archive"
    return names


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
    """The UCalgary skymaps that cover ``dates``: for each date the newest dated on or before it,
    and the one before the first of those.

    A skymap belongs to one imager (its IMAGER_UID). When an imager is swapped, the new one's
    skymap is dated from the swap, and on that day (or on the first date of the run) frames of the
    old imager may still come: the skymap before is fetched too so that each file can be projected
    with its own imager's skymap (chosen at projection). Skymaps are needed whatever
    ``on_bad_input`` says: a listing or file that stays broken stops the job, naming the URL.
    """
    site_url = layouts.join_url(base_url, layouts.ucalgary_skymap_site(site))
    listing = fetcher.read_listing(site_url)
    if listing is None:
        raise ValueError(f"{site_url}: no skymap folder of site {site} in the archive (404)")
    valid_from = sorted(
        dt.datetime.strptime(match["date"], "%Y%m%d").date()
        for name in listing
        if (match := layouts.SKYMAP_FOLDER.match(name)) and match["site"] == site
    )
    chosen = {day: layouts.newest_on_or_before(valid_from, day) for day in dates}
    uncovered = sorted(day for day, skymap in chosen.items() if skymap is None)
    if uncovered:
        raise ValueError(
            f"{site_url}: no skymap dated on or before {uncovered[0]} "
            f"({len(uncovered)} dates uncovered; skymaps listed: {valid_from})"
        )
    wanted = set(chosen.values())
    earlier = [day for day in valid_from if day < min(wanted)]
    if earlier:
        wanted.add(earlier[-1])  # an imager swapped out on the first date
    jobs: list[Job] = []
    for day in sorted(wanted):
        folder = f"{site}/{site}_{day:%Y%m%d}/"
        folder_url = layouts.join_url(base_url, folder)
        names = [
            name
            for name in fetcher.read_listing(folder_url) or []
            if (m := layouts.SKYMAP_FILE.match(name))
            and (m["site"], m["date"]) == (site, f"{day:%Y%m%d}")
        ]
        if not names:
            raise ValueError(f"{folder_url}: no skymap file listed")
        relative = folder + sorted(names, key=_version_order)[-1]  # the highest version
        jobs.append(
            (layouts.join_url(base_url, relative), inside(root, relative), check_idl_save("SKYMAP"))
        )
    return jobs, []


def _version_order(name: str) -> tuple:
    """Sort key of skymap file names by version: numeric versions by number (v10 after v9)."""
    version = layouts.SKYMAP_FILE.match(name)["version"]
    return (version.isdigit(), int(version) if version.isdigit() else 0, version)


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
