"""Remote archive layouts: where each file lives on the real hosts (and on any mirror of them).

The same functions build URLs for the real archives (``https://...``), for local mirrors
(``file://...`` or a relative ``file:`` path) and for test servers on 127.0.0.1, so the code that
runs against the demo mirror is exactly the code that runs against the real hosts. Each function
returns the path *relative to a base URL*; :func:`join_url` puts them together.

Layouts (from the archives' own folder structure):

* Berkeley THEMIS ASI level-1 CDF, one file per site and hour:
  ``<site>/YYYY/MM/thg_l1_asf_<site>_YYYYMMDDHH_v01.cdf``
* Berkeley calibration ("skymap") CDF, one per site: ``thg_l2_asc_<site>_19700101_v01.cdf``
* UCalgary stream0 raw PGM, one file per minute:
  ``YYYY/MM/DD/<site>_themisNN/utHH/YYYYMMDD_HHMM_<site>_themisNN_full.pgm.gz``
  (the imager folder ``<site>_themisNN`` changes when an imager is swapped, so it is discovered from
  the day's directory listing)
* UCalgary skymaps: ``<site>/<site>_YYYYMMDD/themis_skymap_<site>_YYYYMMDD-+_vXX.sav``
* CHAIN hourly ISMR: ``YYYY/DDD/HH/<sss>c<YY><DDD><h>.ismr.gz`` with hour letter a=00 .. x=23
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from urllib.parse import urlsplit


def join_url(base: str, relative: str) -> str:
    """Join a base URL (``https://``, ``http://``, ``file://`` or relative ``file:``) and a path."""
    return base.rstrip("/") + "/" + relative.lstrip("/")


def local_path_of_file_url(url: str) -> str:
    """The filesystem path of a ``file://`` (absolute) or ``file:`` (relative) URL."""
    parts = urlsplit(url)
    if parts.scheme != "file":
        raise ValueError(f"not a file URL: {url}")
    if parts.netloc not in ("", "localhost"):
        raise ValueError(f"file URL with a host is not supported: {url}")
    return parts.path


def berkeley_l1_cdf(site: str, hour: dt.datetime) -> str:
    """Relative path of a Berkeley level-1 full-resolution ASI CDF for one site and UT hour."""
    return f"{site}/{hour:%Y}/{hour:%m}/thg_l1_asf_{site}_{hour:%Y%m%d%H}_v01.cdf"


def berkeley_calibration_cdf(site: str) -> str:
    """Relative path of the Berkeley calibration CDF of a site (elevation, azimuth, site position)."""
    return f"thg_l2_asc_{site}_19700101_v01.cdf"


def ucalgary_stream0_day(day: dt.date) -> str:
    """Relative folder of one UT day in UCalgary stream0; it lists ``<site>_themisNN/`` folders."""
    return f"{day:%Y}/{day:%m}/{day:%d}/"


IMAGER_FOLDER = re.compile(r"^(?P<site>[a-z]{4})_(?P<imager>themis\d{2})/?$")


def ucalgary_stream0_minute(site: str, imager: str, minute: dt.datetime) -> str:
    """Relative path of one minute of UCalgary stream0 raw frames (``imager`` like ``themis19``)."""
    return (
        f"{minute:%Y}/{minute:%m}/{minute:%d}/{site}_{imager}/ut{minute:%H}/"
        f"{minute:%Y%m%d_%H%M}_{site}_{imager}_full.pgm.gz"
    )


def ucalgary_skymap_site(site: str) -> str:
    """Relative folder listing a site's skymap folders ``<site>_YYYYMMDD/``."""
    return f"{site}/"


SKYMAP_FOLDER = re.compile(r"^(?P<site>[a-z]{4})_(?P<date>\d{8})/?$")
SKYMAP_FILE = re.compile(
    r"^themis_skymap_(?P<site>[a-z]{4})_(?P<date>\d{8})-\+_v(?P<version>\w+)\.sav$"
)


def ucalgary_skymap(site: str, valid_from: dt.date, version: str = "XX") -> str:
    """Relative path of a UCalgary skymap valid from ``valid_from``."""
    stamp = f"{valid_from:%Y%m%d}"
    return f"{site}/{site}_{stamp}/themis_skymap_{site}_{stamp}-+_v{version}.sav"


def chain_hour_letter(hour: int) -> str:
    """CHAIN's hour letter: a = 00 UT ... x = 23 UT."""
    if not 0 <= hour <= 23:
        raise ValueError(f"hour must be 0..23, got {hour}")
    return chr(ord("a") + hour)


def chain_ismr(station: str, hour: dt.datetime) -> str:
    """Relative path of a CHAIN hourly ISMR file (``station`` is the 3-letter code, e.g. ``fsi``)."""
    doy = hour.timetuple().tm_yday
    return (
        f"{hour:%Y}/{doy:03d}/{hour:%H}/"
        f"{station}c{hour:%y}{doy:03d}{chain_hour_letter(hour.hour)}.ismr.gz"
    )


def hours_of_night(date: dt.date, first_hour: int, last_hour: int) -> list[dt.datetime]:
    """UT hours ``first_hour..last_hour`` (inclusive) of one UT date."""
    if not 0 <= first_hour <= last_hour <= 23:
        raise ValueError(f"need 0 <= first_hour <= last_hour <= 23, got {first_hour}, {last_hour}")
    start = dt.datetime.combine(date, dt.time())
    return [start + dt.timedelta(hours=h) for h in range(first_hour, last_hour + 1)]


def newest_on_or_before(candidates: list[dt.date], day: dt.date) -> dt.date | None:
    """The latest of ``candidates`` that is on or before ``day`` (None if none is)."""
    earlier = [c for c in candidates if c <= day]
    return max(earlier) if earlier else None


def skymap_date(path: str | Path) -> dt.date | None:
    """Validity date of a UCalgary skymap file (None for files without one, e.g. Berkeley CDF)."""
    match = SKYMAP_FILE.match(Path(path).name)
    return dt.datetime.strptime(match["date"], "%Y%m%d").date() if match else None


def skymap_for_date(paths: list[str], day: dt.date) -> str:
    """The skymap (path) to use for images of ``day``: the newest dated on or before it."""
    dated = {p: skymap_date(p) for p in paths}
    undated = [p for p, d in dated.items() if d is None]
    if undated:
        return undated[0]
    best = newest_on_or_before([d for d in dated.values() if d], day)
    if best is None:
        raise ValueError(f"no skymap valid on {day} among {sorted(paths)}")
    return next(p for p, d in dated.items() if d == best)
