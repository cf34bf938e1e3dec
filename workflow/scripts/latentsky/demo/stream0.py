"""Raw UCalgary THEMIS stream0 files of any size, fast and seeded (for benchmarks at study scale).

The files are in the real layout (``YYYY/MM/DD/<site>_<imager>/utHH/YYYYMMDD_HHMM_<site>_<imager>_
full.pgm.gz``), one per minute with 20 frames at a 3-s cadence, each frame a big-endian 16-bit PGM
of THEMIS-sized counts behind the same ``#"Key" value`` comment header as the real imagers write, so
that decoding them costs what decoding real files costs. The scene is simple: a ~3,300-count bias,
a vignetted sky disc, an east-west arc that drifts and brightens through each hour, and photon
noise drawn once into a pool of noise frames (drawing fresh noise for 35,000 frames would take
longer than the benchmark it serves).
"""

from __future__ import annotations

import datetime as dt
import gzip
from pathlib import Path

import numpy as np

from latentsky.acquisition.layouts import ucalgary_stream0_minute
from latentsky.instruments.themis import IMAGE_SHAPE

FRAME_SHAPE = IMAGE_SHAPE
FRAMES_PER_MINUTE = 20
CADENCE_S = 3
BIAS_COUNTS = 3300


def pgm_header(time: np.datetime64, site: str, imager: str) -> bytes:
    """The comment header of one stream0 frame, as the real imagers write it (time in UTC)."""
    stamp = np.datetime_as_string(time, unit="us").replace("T", " ")
    lines = [
        "P5",
        '#"Revised" 2006-05-22',
        '#"Project unique ID" themis-gbo',
        f'#"Site unique ID" {site}',
        f'#"Imager unique ID" {imager}',
        '#"Imager model" starlight Xpress MX716 with THEMIS all-sky optics',
        '#"Ccd type" Sony ICX249AL',
        '#"Ccd xsize" 752 pixels',
        '#"Ccd ysize" 290 pixels',
        f'#"Ccd background" {BIAS_COUNTS}',
        '#"Pixel depth" 16 bits',
        '#"Pixel aspect ratio" 0.5181',
        '#"Optical type" THEMIS all-sky',
        '#"Optical projection" a1=1.5,a3=0.0,b2=0.0,b4=0.0',
        '#"Optical center" x0=382,y0=150',
        '#"Computer name" synthetic i686',
        '#"Operating system" Linux',
        '#"Project unique ID" THEMIS',
        f'#"Site unique ID" {site}',
        '#"Mode unique ID" full',
        '#"CCD device" /dev/ccdA',
        f'#"Exposure options" WIDTH={2 * FRAME_SHAPE[1]} HEIGHT={FRAME_SHAPE[0]} XBIN=2 YBIN=1 '
        "XOFFSET=126 YOFFSET=22 MSEC=999",
        f'#"Image request start" {stamp} UTC',
        f'#"Image readout start" {stamp} UTC',
        '#"Exposure plus initial readout"    985.07 ms',
        f"{FRAME_SHAPE[1]} {FRAME_SHAPE[0]}",
        "65535",
    ]
    return ("\n".join(lines) + "\n").encode("ascii")


def write_minute(
    path: Path,
    frames: np.ndarray,
    times: np.ndarray,
    site: str,
    imager: str,
    compresslevel: int = 6,
) -> None:
    """Write one stream0 minute file: ``frames`` (N, rows, columns) uint16 at ``times`` (N,)."""
    body = b"".join(
        pgm_header(t, site, imager) + frame.astype(">u2").tobytes()
        for frame, t in zip(frames, times, strict=True)
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(path, "wb", compresslevel=compresslevel) as handle:
        handle.write(body)


def archive(
    root: str | Path,
    n_frames: int,
    site: str = "fsim",
    imager: str = "themis07",
    start: dt.datetime = dt.datetime(2015, 1, 1, 3),
    hours_per_night: int = 10,
    seed: int = 0,
    compresslevel: int = 1,
    noise_pool: int = 64,
) -> list[Path]:
    """Write ``n_frames`` frames as minute files under ``root``; return the paths in time order.

    Nights of ``hours_per_night`` hours start at ``start``'s hour on consecutive dates. Frame
    times jitter by up to 20 ms around the 3-s cadence, as real request times do.
    ``compresslevel`` 1 writes fast; real files (level 6 or so) are a few percent smaller and
    decode at about the same speed.
    """
    root = Path(root)
    rng = np.random.default_rng(seed)
    rows, cols = np.mgrid[0 : FRAME_SHAPE[0], 0 : FRAME_SHAPE[1]].astype(np.float32)
    radius = np.hypot(rows - 127.5, cols - 127.5) / 128.0
    sky = np.where(radius < 1.0, 1.0 - 0.5 * radius**2, 0.0).astype(np.float32)
    noise = rng.poisson(60.0, size=(noise_pool, *FRAME_SHAPE)).astype(np.int32) - 60
    minutes_per_night = 60 * hours_per_night
    paths = []
    n_minutes = -(-n_frames // FRAMES_PER_MINUTE)
    for m in range(n_minutes):
        night, minute_of_night = divmod(m, minutes_per_night)
        minute = start + dt.timedelta(days=night, minutes=minute_of_night)
        count = min(FRAMES_PER_MINUTE, n_frames - m * FRAMES_PER_MINUTE)
        offsets = np.arange(count) * CADENCE_S * 1000 + rng.integers(40, 80, count)
        times = np.datetime64(minute, "ms") + offsets.astype("timedelta64[ms]")
        phase = minute_of_night / 60.0
        centre = 60.0 + 130.0 * ((phase * 0.37) % 1.0)
        brightness = 2000.0 * (0.5 + 0.5 * np.sin(2 * np.pi * phase))
        arc = brightness * np.exp(-(((rows - centre) / 6.0) ** 2)) * sky
        scene = BIAS_COUNTS + 400.0 * sky + arc
        frames = np.empty((count, *FRAME_SHAPE), np.uint16)
        for k in range(count):
            frames[k] = np.clip(scene + noise[(m * FRAMES_PER_MINUTE + k) % noise_pool], 0, 65535)
        path = root / ucalgary_stream0_minute(site, imager, minute)
        write_minute(path, frames, times, site, imager, compresslevel)
        paths.append(path)
    return paths
