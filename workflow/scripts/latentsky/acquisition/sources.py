"""The archive sources: everything that depends on where a dataset's files come from, declared once.

A dataset names its ``image_source`` (``berkeley_l1``, ``ucalgary_stream0``), its
``skymap_source`` (``berkeley_cal``, ``ucalgary_sav``) and, with a GNSS station, takes CHAIN ISMR
files (``chain_ismr``). Each source here says which ``base_urls`` key holds its address and its
real host, how a download job finds its files (URL layout, listings, format check) and how its
files are read. Rules and scripts ask this table; nothing else compares source names.

Only the standard library is imported at the top: the Snakefile imports this module. The work
itself (HTTP, checks, readers) is imported when a method runs.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path
from typing import ClassVar


class Source:
    """One archive.

    Attributes:
        name: the config value (``image_source: berkeley_l1``).
        role: ``images``, ``skymaps`` or ``scintillation``.
        base_url_key: the key of ``datasets.<name>.base_urls`` that holds its base URL.
        real_base_url: the real host, the default of that key.
        description: one line for the docs.
    """

    name: ClassVar[str]
    role: ClassVar[str]
    base_url_key: ClassVar[str]
    real_base_url: ClassVar[str]
    description: ClassVar[str]

    def folder(self, raw_dir: str | Path) -> Path:
        """Where its files land: ``<raw_dir>/<name>/`` plus the remote relative path."""
        return Path(raw_dir) / self.name


class BerkeleyL1(Source):
    name = "berkeley_l1"
    role = "images"
    base_url_key = "berkeley_l1"
    real_base_url = "https://themis.ssl.berkeley.edu/data/themis/thg/l1/asi"
    description = "Berkeley THEMIS ASI level-1 CDF, one file of ~1,200 frames per site and hour"

    def jobs(self, fetcher, base_url: str, site: str, hours: list[dt.datetime], raw_dir):
        from latentsky.acquisition.jobs import berkeley_l1_jobs

        return berkeley_l1_jobs(base_url, site, hours, self.folder(raw_dir))

    def frame_reader(self, site: str, skip_bad_frames: bool) -> Callable:
        """A function reading one file into a :class:`~latentsky.instruments.themis.FrameRead`
        (a CDF is read whole or not at all, so ``skip_bad_frames`` does not apply)."""
        from latentsky.instruments.themis import FrameRead, file_span, read_themis_l1_cdf

        def read(path):
            # The file's variables are named by site (the reader needs thg_asf_<site>); a CDF
            # does not name its imager.
            frames, times = read_themis_l1_cdf(path, site)
            return FrameRead(frames, times, span=file_span(path), site=site)

        return read


class UCalgaryStream0(Source):
    name = "ucalgary_stream0"
    role = "images"
    base_url_key = "ucalgary_stream0"
    real_base_url = "https://data.phys.ucalgary.ca/sort_by_project/THEMIS/asi/stream0"
    description = "UCalgary THEMIS stream0 raw frames, one gzipped PGM file of 20 frames a minute"

    def jobs(self, fetcher, base_url: str, site: str, hours: list[dt.datetime], raw_dir):
        from latentsky.acquisition.jobs import stream0_jobs

        return stream0_jobs(fetcher, base_url, site, hours, self.folder(raw_dir))

    def frame_reader(self, site: str, skip_bad_frames: bool) -> Callable:
        """A function reading one file into a :class:`~latentsky.instruments.themis.FrameRead`,
        damaged frames skipped and counted (``skip_bad_frames``) or raised."""
        from latentsky.instruments.themis import read_themis_pgm_frames

        def read(path):
            return read_themis_pgm_frames(path, skip_bad_frames=skip_bad_frames)

        return read


class BerkeleyCalibration(Source):
    name = "berkeley_cal"
    role = "skymaps"
    base_url_key = "berkeley_cal"
    real_base_url = "https://themis.ssl.berkeley.edu/data/themis/thg/l2/asi/cal"
    description = "Berkeley THEMIS ASI calibration CDF, one per site"

    def jobs(self, fetcher, base_url: str, site: str, dates: list[dt.date], raw_dir):
        from latentsky.acquisition.jobs import berkeley_calibration_jobs

        return berkeley_calibration_jobs(base_url, site, self.folder(raw_dir))

    def read_skymap(self, path, site: str):
        from latentsky.instruments.themis import read_berkeley_calibration

        return read_berkeley_calibration(path, site)


class UCalgarySkymaps(Source):
    name = "ucalgary_sav"
    role = "skymaps"
    base_url_key = "ucalgary_skymaps"
    real_base_url = "https://data.phys.ucalgary.ca/sort_by_project/THEMIS/asi/skymaps"
    description = (
        "UCalgary THEMIS skymaps (IDL save files), the newest dated on or before each date"
    )

    def jobs(self, fetcher, base_url: str, site: str, dates: list[dt.date], raw_dir):
        from latentsky.acquisition.jobs import ucalgary_skymap_jobs

        return ucalgary_skymap_jobs(fetcher, base_url, site, dates, self.folder(raw_dir))

    def read_skymap(self, path, site: str):
        from latentsky.instruments.themis import read_ucalgary_skymap

        return read_ucalgary_skymap(path)


class ChainIsmr(Source):
    name = "chain_ismr"
    role = "scintillation"
    base_url_key = "chain_ismr"
    real_base_url = "https://www.chain-project.net/data/gps/ismr"
    description = "CHAIN hourly Septentrio ISMR files of a GNSS receiver"

    def jobs(self, base_url: str, station: str, hours, raw_dir, expected_columns: int | None):
        from latentsky.acquisition.jobs import ismr_jobs

        return ismr_jobs(base_url, station, hours, self.folder(raw_dir), expected_columns)


#: Every source, by name.
SOURCES: dict[str, Source] = {
    source.name: source
    for source in (
        BerkeleyL1(),
        UCalgaryStream0(),
        BerkeleyCalibration(),
        UCalgarySkymaps(),
        ChainIsmr(),
    )
}


def source(name: str, role: str) -> Source:
    """The source ``name`` of ``role``; ValueError naming the known ones otherwise."""
    known = sorted(n for n, s in SOURCES.items() if s.role == role)
    if name not in known:
        raise ValueError(f"unknown {role} source {name!r}; known: {', '.join(known)}")
    return SOURCES[name]


#: The dataset key that names each role's source (scintillation has one source).
SOURCE_KEYS = {"images": "image_source", "skymaps": "skymap_source"}


def dataset_source(entry: dict, role: str) -> dict:
    """The source of ``role`` a dataset's config ``entry`` uses: its name and base URL."""
    chosen = source(entry.get(SOURCE_KEYS.get(role, ""), "chain_ismr"), role)
    return {"source": chosen.name, "base_url": entry["base_urls"][chosen.base_url_key]}
