"""sigma_phi per image: quality cuts on ISMR records, one value per minute, matched to image times.

Pipeline: :func:`latentsky.instruments.chain.read_ismr_files` -> :func:`apply_quality_cuts` ->
:func:`sigma_phi_per_minute` -> :func:`sigma_phi_for_times` -> :func:`sigma_phi_dataset`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr

from latentsky.instruments.chain import RECORD_SECONDS
from latentsky.jsonable import plain


def apply_quality_cuts(
    df: pd.DataFrame,
    min_elevation_deg: float = 30.0,
    min_lock_time_s: float = 200.0,
) -> tuple[pd.DataFrame, dict[str, int]]:
    """Keep records with elevation >= ``min_elevation_deg`` (degrees) and lock time >=
    ``min_lock_time_s`` (s).

    Low elevations add multipath and long paths through the ionosphere; short lock times leave the
    phase detrending filter unsettled. The cuts apply in that order, and each count is the number of
    records the cut removed from what the previous cut left (so the counts add up to the total
    removed). NaN elevation or lock time fails the cut.

    Returns (kept rows with a fresh index, ``{"elevation": n, "lock_time": n}``).
    """
    elevation_ok = (df["elevation"] >= min_elevation_deg).to_numpy()
    lock_ok = (df["lock_time"] >= min_lock_time_s).to_numpy()
    removed = {
        "elevation": int((~elevation_ok).sum()),
        "lock_time": int((elevation_ok & ~lock_ok).sum()),
    }
    return df[elevation_ok & lock_ok].reset_index(drop=True), removed


_STATISTICS = ("median", "mean", "max")


def sigma_phi_per_minute(df: pd.DataFrame, statistic: str = "median") -> pd.DataFrame:
    """One sigma_phi per ISMR minute, combined over the satellites in view.

    Records with missing sigma_phi are ignored. ``statistic`` is ``"median"`` (robust to one noisy
    satellite), ``"mean"`` or ``"max"``.

    Returns a frame indexed by ``time_utc`` (datetime64[ns], the minute's UTC end time, sorted) with
    columns ``sigma_phi`` (float64, rad) and ``n_satellites`` (int64, distinct SVIDs that
    contributed). Minutes with no valid sigma_phi are absent.
    """
    if statistic not in _STATISTICS:
        raise ValueError(f"statistic must be one of {_STATISTICS}, got {statistic!r}")
    valid = df[np.isfinite(df["sigma_phi"].to_numpy(dtype=np.float64))]
    grouped = valid.groupby("time_utc", sort=True)
    result = pd.DataFrame(
        {
            "sigma_phi": grouped["sigma_phi"].agg(statistic).astype(np.float64),
            "n_satellites": grouped["svid"].nunique().astype(np.int64),
        }
    )
    result.index = pd.DatetimeIndex(result.index.to_numpy(dtype="datetime64[ns]"), name="time_utc")
    return result


def sigma_phi_for_times(
    image_times, per_minute: pd.DataFrame
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The sigma_phi of the one-minute record that covers each image time.

    A record ending at T covers ``T - 60 s <= t < T``: an image taken exactly at T - 60 s belongs to
    the record ending at T, one taken exactly at T to the next record. Where two records overlap
    (UTC ends 59 s apart across a leap second) the earlier one wins, which is the one whose GPS
    minute holds the image.

    Parameters
    ----------
    image_times : (N,) datetime64 array-like, UTC (NaT allowed).
    per_minute : output of :func:`sigma_phi_per_minute`.

    Returns
    -------
    (sigma_phi, n_satellites, record_time): float32 (N,) in rad, NaN where no record covers the
    time; int32 (N,), 0 there; datetime64[ns] (N,), the UTC end of the covering record, NaT
    there. Images with the same record_time (at one station) share one measurement: up to 20
    stream0 frames do, and statistics must count the record once (see
    :mod:`latentsky.analysis.lognormal`).
    """
    times = np.asarray(image_times, dtype="datetime64[ns]").ravel()
    per_minute = per_minute.sort_index()
    ends = per_minute.index.to_numpy(dtype="datetime64[ns]")
    sigma = np.full(times.shape, np.nan, dtype=np.float32)
    n_sat = np.zeros(times.shape, dtype=np.int32)
    record = np.full(times.shape, np.datetime64("NaT"), dtype="datetime64[ns]")
    if ends.size == 0 or times.size == 0:
        return sigma, n_sat, record
    candidate = np.searchsorted(ends, times, side="right")  # first record ending after t
    inside = ~np.isnat(times) & (candidate < ends.size)
    safe = np.minimum(candidate, ends.size - 1)
    inside &= ends[safe] - np.timedelta64(RECORD_SECONDS, "s") <= times
    sigma[inside] = per_minute["sigma_phi"].to_numpy()[safe[inside]]
    n_sat[inside] = per_minute["n_satellites"].to_numpy()[safe[inside]]
    record[inside] = ends[safe[inside]]
    return sigma, n_sat, record


#: What the sigma_phi is measured on: Phi60 of the first signal block of a Septentrio ISMR row.
SIGNAL = (
    "first signal of each ISMR record (GPS L1 C/A for GPS satellites; every constellation "
    "the receiver tracks is used), Phi60: standard deviation of the detrended carrier phase "
    "over 60 s"
)


def sigma_phi_dataset(
    image_times,
    sigma_phi,
    n_satellites,
    attrs: dict | None = None,
    record_time=None,
    sites=None,
) -> xr.Dataset:
    """Per-image sigma_phi as an xarray Dataset on dimension ``time`` (the workflow writes it to Zarr).

    Parameters
    ----------
    image_times : (N,) datetime64, UTC image times (the ``time`` coordinate).
    sigma_phi : (N,) float, rad (NaN: no covering record). Stored as float32 with ``units="rad"``.
    n_satellites : (N,) int, satellites behind each value. Stored as int32.
    attrs : dataset attributes to record, e.g. the quality-cut settings, the per-minute statistic,
        the station and the bad-input counts; numpy values are converted to plain Python and
        structured ones stored as JSON strings when written.
    record_time : (N,) datetime64, the UTC end of the record behind each value (NaT: none); the
        independent unit of every statistic on sigma_phi. None: not stored.
    sites : (N,) site of each image (datasets of several sites), stored as the ``site``
        coordinate, as in the images store.
    """
    times = np.asarray(image_times, dtype="datetime64[ns]").ravel()
    sigma = np.asarray(sigma_phi, dtype=np.float32).ravel()
    n_sat = np.asarray(n_satellites, dtype=np.int32).ravel()
    if not sigma.shape == n_sat.shape == times.shape:
        raise ValueError(
            f"image_times, sigma_phi and n_satellites differ in length: "
            f"{times.shape}, {sigma.shape}, {n_sat.shape}"
        )
    dataset_attrs = {
        "title": "GNSS phase scintillation index sigma_phi at the image times",
        "description": (
            "GNSS phase scintillation index sigma_phi (Phi60: standard deviation of the detrended "
            "carrier phase over 60 s) of the one-minute ISMR record covering each image time, "
            "combined over the satellites that passed the quality cuts"
        ),
    }
    dataset_attrs.update(plain(dict(attrs or {}), "attrs"))
    variables = {
        "sigma_phi": (
            "time",
            sigma,
            {
                "units": "rad",
                "long_name": "phase scintillation index sigma_phi (60 s)",
                "description": "NaN where no ISMR record covers the image time",
            },
        ),
        "n_satellites": (
            "time",
            n_sat,
            {
                "units": "1",
                "long_name": "number of satellites combined into sigma_phi",
            },
        ),
    }
    if record_time is not None:
        record = np.asarray(record_time, dtype="datetime64[ns]").ravel()
        if record.shape != times.shape:
            raise ValueError(f"record_time has {record.shape}, image_times {times.shape}")
        variables["record_time"] = (
            "time",
            record,
            {
                "long_name": "end of the 60-s ISMR record covering the image (UTC)",
                "description": "images with the same record_time at one station share one "
                "measurement: statistics count it once",
            },
        )
    coords = {"time": ("time", times, {"long_name": "image time (UTC)"})}
    if sites is not None:
        coords["site"] = ("time", np.asarray(sites).astype(str))
    return xr.Dataset(variables, coords=coords, attrs=dataset_attrs)


def sigma_phi_of_images(
    paths_by_site: dict[str, list],
    image_times,
    settings: dict,
    image_sites=None,
    on_bad_input: str = "skip",
    hours_missing: int = 0,
    log=None,
    stations: dict[str, str] | None = None,
    site_descriptions: list[dict] | None = None,
) -> xr.Dataset:
    """The whole chain for one dataset: ISMR files -> quality cuts -> per minute -> per image.

    Args:
        paths_by_site: the ISMR files of each site's own station.
        image_times: ``(N,)`` UTC image times.
        settings: the config's ``scintillation`` section (``columns``, ``min_elevation_deg``,
            ``min_lock_time_s``, ``statistic``).
        image_sites: ``(N,)`` site of every image (None: every image is of the one site): an
            image takes the record of its own site's station.
        on_bad_input: ``skip`` (count bad rows and files) or ``fail``.
        hours_missing: hours the archives lacked (recorded in the attributes).
        stations: the CHAIN station of each site (recorded in the attributes).
        site_descriptions: each site's position and imager (the images store's ``sites``).

    Returns:
        :func:`sigma_phi_dataset`, with the settings and the counts (summed over stations) as
        attributes.
    """
    from latentsky.errors import Counts
    from latentsky.instruments.chain import IsmrColumns, read_ismr_files

    image_times = np.asarray(image_times, dtype="datetime64[ns]")
    sigma_phi = np.full(image_times.shape, np.nan, np.float32)
    n_satellites = np.zeros(image_times.shape, np.int32)
    record_time = np.full(image_times.shape, np.datetime64("NaT"), "datetime64[ns]")
    columns = IsmrColumns(**settings["columns"])
    counts, removed, n_files = Counts(), Counts(), 0
    for site, paths in paths_by_site.items():
        members = np.ones(len(image_times), bool) if image_sites is None else image_sites == site
        records, read = read_ismr_files(paths, columns, on_bad_input=on_bad_input)
        kept, cut = apply_quality_cuts(
            records, settings["min_elevation_deg"], settings["min_lock_time_s"]
        )
        per_minute = sigma_phi_per_minute(kept, settings["statistic"])
        sigma_phi[members], n_satellites[members], record_time[members] = sigma_phi_for_times(
            image_times[members], per_minute
        )
        counts, removed, n_files = counts + read, removed + cut, n_files + len(paths)
        if log is not None:
            log.info("%s: %d ISMR records from %d files; %s", site, len(records), len(paths), read)
            log.info("%s: quality cuts removed %s; %d records kept", site, cut, len(kept))
    if log is not None:
        log.info(
            "%d of %d images have a covering sigma_phi record",
            np.isfinite(sigma_phi).sum(),
            len(sigma_phi),
        )
    stations = dict(stations or {})
    attrs = {
        "source": "CHAIN (Canadian High Arctic Ionospheric Network) hourly ISMR files",
        "gnss_signal": SIGNAL,
        "ismr_phi60_column": columns.phi60,
        "min_elevation_deg": settings["min_elevation_deg"],
        "min_lock_time_s": settings["min_lock_time_s"],
        "statistic": settings["statistic"],
        "ismr_files": n_files,
        "ismr_hours_missing": hours_missing,
        "bad_input": dict(counts),
        "removed_by_cuts": dict(removed),
        "gnss_stations": stations,
        "sites": [
            {
                **site,
                **({"gnss_station": stations[site["site"]]} if site["site"] in stations else {}),
            }
            for site in site_descriptions or []
        ],
    }
    if len(stations) == 1:  # one site: its station, position and imager as plain attributes too
        ((site, station),) = stations.items()
        attrs.update(site=site, gnss_station=station)
        for description in site_descriptions or []:
            if description.get("site") == site:
                attrs.update({k: v for k, v in description.items() if k != "site"})
    return sigma_phi_dataset(
        image_times,
        sigma_phi,
        n_satellites,
        attrs,
        record_time=record_time,
        sites=image_sites,
    )


def record_keys(record_time, sites=None) -> np.ndarray:
    """The independent unit of each sample's sigma_phi: ``"<site>@<record end>"`` text, None
    where no record covers it. ``record_time`` (N,) datetime64 (NaT: none) as in the sigma_phi
    store; ``sites`` (N,) the site of each sample (its station's records are its own), or None
    for one site."""
    record = pd.Series(np.asarray(record_time, dtype="datetime64[ns]")).astype(str)
    site = pd.Series("" if sites is None else np.asarray(sites).astype(str), index=record.index)
    return np.where(record != "NaT", (site + "@" + record).to_numpy(), None)
