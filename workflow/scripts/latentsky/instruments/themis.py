"""Readers for THEMIS all-sky imager files: raw PGM frames, level-1 CDFs and skymaps.

Every reader returns arrays in one **canonical orientation**: that of the UCalgary skymap ``.sav``
arrays as :func:`scipy.io.readsav` returns them (``FULL_ELEVATION[row, col]``). In that orientation
the GAKO skymap has north roughly towards row 0 and east roughly towards column 0 (the sky seen
from below; the imager is turned by ~23 degrees).

* Berkeley files (level-1 CDF frames and the calibration CDF arrays) are stored rotated by 180
  degrees relative to canonical; :func:`read_themis_l1_cdf` and :func:`read_berkeley_calibration`
  reverse both image axes. This was verified by star registration on the GAKO sample files (see
  ``../shared/data/README.md`` and ``tests/test_geometry.py``).
* UCalgary stream0 PGM frames are returned with rows in file order, unflipped. The public UCalgary
  readers flip the image rows *and* the skymap rows alike before display, so raw PGM rows line up
  with raw ``.sav`` rows, which are canonical. No skymap for the GILL sample exists here, so this
  cannot be star-checked; but the Moon's motion across the two GILL sample files turns the way
  azimuth turns in canonical skymap arrays, which rules out the four mirrored orientations (see
  ``tests/test_readers.py``). A rotation by 90/180/270 degrees would not show in that check; the
  Moon's position puts the GILL imager's turn within ~20 degrees of GAKO's, which favours none.

Every reader raises :class:`~latentsky.errors.BadInputError` naming the file (and the frame or
variable) for truncated or corrupt files, missing variables and wrong shapes. Times are
``datetime64[ns]`` in UTC (naive, as numpy has no time zones).
"""

from __future__ import annotations

import bz2
import datetime as dt
import functools
import re
import warnings
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from latentsky.errors import BadInputError

#: Frame shape of the THEMIS imagers (rows, columns). Readers take the shape from each file
#: (another imager's frames, a 512 x 512 red-line camera's say, read the same way); this is what
#: the demo generators draw.
IMAGE_SHAPE = (256, 256)
#: A frame starts with the PGM magic and its first metadata comment; used to resynchronise after a
#: damaged frame (5 specific bytes are very unlikely to occur by chance inside pixel data).
PGM_FRAME_MARK = b'P5\n#"'
_PGM_TIME_KEY = "Image request start"
_PGM_SITE_KEY = "Site unique ID"
_PGM_IMAGER_KEY = "Imager unique ID"
_PGM_NAME = re.compile(r"(\d{8})_(\d{4})_(?:(?P<site>[a-z]{4})_(?P<imager>themis\d{2})_)?")
_L1_NAME = re.compile(r"thg_l1_asf_(?P<site>[a-z]{4})_(?P<stamp>\d{10})_v\w+\.cdf$")
#: How far (half the 3 s cadence) a frame time may lie outside the span its file covers.
FRAME_SLACK = np.timedelta64(1500, "ms")


# --------------------------------------------------------------------------------------------
# UCalgary stream0 PGM
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FrameRead:
    """Frames read from one file, with an account of what had to be skipped.

    Attributes:
        frames: (N, 256, 256) uint16 counts, canonical orientation.
        times: (N,) datetime64[ns] UTC frame times.
        n_skipped: number of damaged frames (or damaged stretches of the file) left out.
        problems: one message per skipped frame/stretch, naming the file and frame.
        span: (first, last) datetime64[ns]: the times the file covers, from its name (a stream0
            file one minute, a level-1 CDF one hour; half a cadence of slack either side), or
            None when the name does not say. Ingest checks every frame time against it.
        site, imager: what the file's own metadata says it is (PGM ``Site unique ID`` and
            ``Imager unique ID``, else the file name); empty where nothing says.
    """

    frames: np.ndarray
    times: np.ndarray
    n_skipped: int = 0
    problems: tuple[str, ...] = field(default_factory=tuple)
    span: tuple[np.datetime64, np.datetime64] | None = None
    site: str = ""
    imager: str = ""


def file_span(path) -> tuple[np.datetime64, np.datetime64] | None:
    """The times a THEMIS file covers, from its name, with :data:`FRAME_SLACK` either side:
    a stream0 minute file (``YYYYMMDD_HHMM_...``) one minute, a level-1 CDF
    (``thg_l1_asf_<site>_YYYYMMDDHH_v01.cdf``) one hour; None for other names."""
    name = Path(path).name
    if match := _L1_NAME.search(name):
        stamp = match["stamp"]
        start = np.datetime64(f"{stamp[:4]}-{stamp[4:6]}-{stamp[6:8]}T{stamp[8:]}:00", "ns")
        length = np.timedelta64(3600, "s")
    elif match := _PGM_NAME.search(name):
        day, hhmm = match.group(1), match.group(2)
        start = np.datetime64(f"{day[:4]}-{day[4:6]}-{day[6:]}T{hhmm[:2]}:{hhmm[2:]}", "ns")
        length = np.timedelta64(60, "s")
    else:
        return None
    return start - FRAME_SLACK, start + length + FRAME_SLACK


def _decompress(path: Path, raw: bytes) -> tuple[bytes, str | None]:
    """Decompress as much of a .gz/.bz2 file as possible (plain files are returned as they are).

    Returns (bytes, problem): ``problem`` is None for an intact stream, or says that it is
    truncated; what was decompressed up to the cut is exact, so a truncated download keeps its
    complete leading frames. A corrupt stream (bad checksum, invalid data) raises BadInputError.
    """
    name = path.name.lower()
    if name.endswith(".gz"):
        new = functools.partial(zlib.decompressobj, wbits=31)  # 31: gzip header and trailer
    elif name.endswith(".bz2"):
        new = bz2.BZ2Decompressor
    else:
        return raw, None
    out: list[bytes] = []
    data = raw
    chunk = 1 << 16  # feed in pieces so that a corrupt block loses only what follows it
    try:
        while True:  # one pass per member: gzip and bzip2 allow concatenated members
            decomp = new()
            for start in range(0, len(data), chunk):
                out.append(decomp.decompress(data[start : start + chunk]))
                if decomp.eof:
                    break
            if not decomp.eof:
                return b"".join(out), "compressed stream is truncated"
            data = decomp.unused_data
            if not data.strip(b"\0"):
                return b"".join(out), None
    except (zlib.error, OSError, EOFError, ValueError) as exc:
        # Not salvageable frame by frame: a failed checksum or an invalid code is detected only
        # after corrupt bytes may already have been written into earlier, well-formed frames.
        raise BadInputError(path, f"compressed stream is corrupt ({exc})") from exc


def _parse_pgm_time(value: str) -> np.datetime64:
    """'2014-03-10 06:00:00.063119 UTC' -> datetime64[ns]; ValueError if it does not parse."""
    text = value.strip()
    if not text.endswith("UTC"):
        raise ValueError(f"time {value!r} is not marked UTC")
    text = text[:-3].strip().replace(" ", "T", 1)
    if not re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?", text):
        raise ValueError(f"time {value!r} is not YYYY-MM-DD hh:mm:ss[.ffffff] UTC")
    return np.datetime64(text, "ns")


def _parse_one_pgm_frame(
    buf: bytes, start: int
) -> tuple[np.ndarray, np.datetime64, int, dict[str, str]]:
    """Parse the frame at byte ``start``: returns (image (rows, columns) uint16, time, end offset,
    its ``#"Key" value`` metadata).

    Raises ValueError with the reason when the frame is damaged.
    """
    if not buf.startswith(b"P5\n", start):
        raise ValueError("no 'P5' PGM magic at frame start")
    pos = start + 3
    meta: dict[str, str] = {}
    header: list[bytes] = []
    # Comment lines (#"Key" value), then the dimensions and the maximum value lines.
    while len(header) < 2:
        end = buf.find(b"\n", pos)
        if end < 0:
            raise ValueError("frame header is truncated")
        line = buf[pos:end]
        pos = end + 1
        if line.startswith(b"#"):
            match = re.fullmatch(rb'#"([^"]*)"\s*(.*?)\s*', line)
            if match:
                meta[match.group(1).decode("ascii", "replace")] = match.group(2).decode(
                    "ascii", "replace"
                )
            continue
        header.append(line)
    size = header[0].split()
    if len(size) != 2 or not all(v.isdigit() and int(v) > 0 for v in size):
        raise ValueError(f"image size line is {header[0][:40]!r}, expected 'width height'")
    columns, rows = (int(v) for v in size)
    if header[1].strip() != b"65535":
        raise ValueError(f"maximum value line is {header[1][:40]!r}, expected b'65535'")
    n_bytes = rows * columns * 2  # big-endian uint16
    if len(buf) - pos < n_bytes:
        raise ValueError(f"pixel data truncated ({len(buf) - pos} of {n_bytes} bytes)")
    if _PGM_TIME_KEY not in meta:
        raise ValueError(f'no "{_PGM_TIME_KEY}" time stamp')
    time = _parse_pgm_time(meta[_PGM_TIME_KEY])
    image = np.frombuffer(buf, dtype=">u2", count=rows * columns, offset=pos)
    return image.reshape(rows, columns), time, pos + n_bytes, meta


def pgm_frame_problem(data: bytes, start: int) -> str | None:
    """Why the PGM frame at byte ``start`` of ``data`` does not parse, or None when it does."""
    try:
        _parse_one_pgm_frame(data, start)
    except ValueError as error:
        return str(error)
    return None


def read_themis_pgm_frames(path, *, skip_bad_frames: bool = False) -> FrameRead:
    """Read a UCalgary THEMIS stream0 file (``.pgm``, ``.pgm.gz`` or ``.pgm.bz2``) frame by frame.

    Each frame is a 16-bit PGM image (256 x 256 for THEMIS, big-endian; the size is read from each
    frame's header, and all frames of a file must share it) preceded by ``#"Key" value`` comment
    lines; its time is the ``"Image request start"`` entry of its own header.

    This is a strict parser of its own rather than a call to ``themis_imager_readfile.read``: that
    reader (1.4.1) drops the whole file for a single damaged frame, and when a frame's header is
    damaged it returns the remaining images paired with the *wrong* metadata (shifted by one frame)
    without reporting a problem. Here, each frame is checked on its own.

    Args:
        path: the file.
        skip_bad_frames: if False, any damaged frame raises; if True, damaged frames (truncated
            pixel data, malformed header, missing or unparseable time stamp, a site or imager
            that differs from the file's first frame, the frames lost where a compressed stream
            is cut short) are left out and counted in ``n_skipped``. Whether a frame's time
            belongs to the file (its ``span``) is ingest's check, with those of the other files.

    Returns:
        FrameRead with frames (N, rows, columns) uint16 in canonical orientation (file row order, see
        the module docstring) and times (N,) datetime64[ns] UTC.

    Raises:
        BadInputError: the file cannot be read, its compressed stream is corrupt (a failed
            checksum cannot be pinned to a frame, so no frame of it is trusted), it holds no valid
            frame, or (with ``skip_bad_frames=False``) it holds any damaged frame.
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise BadInputError(path, f"cannot read file ({exc})") from exc
    buf, stream_problem = _decompress(path, raw)

    name_match = _PGM_NAME.search(path.name)
    identity: dict[str, str] = {}  # the first good frame's site and imager
    images: list[np.ndarray] = []
    times: list[np.datetime64] = []
    problems: list[str] = []
    pos = 0
    end_of_data = len(buf.rstrip())  # trailing whitespace is harmless
    index = 0  # frame number in the file, counting damaged ones, for the messages
    tail_damaged = False  # did the last frame attempt fail (e.g. cut by a truncated stream)?
    while pos < end_of_data:
        try:
            image, time, end, meta = _parse_one_pgm_frame(buf, pos)
            if images and image.shape != images[0].shape:
                raise ValueError(f"frame is {image.shape}, the file's first is {images[0].shape}")
            # The first frame of a file carries the site's and imager's IDs, later frames
            # usually not; a frame that names another one does not belong here.
            for key in (_PGM_SITE_KEY, _PGM_IMAGER_KEY):
                value = meta.get(key, "").strip().lower()
                if value and identity.get(key) and value != identity[key]:
                    raise ValueError(
                        f'"{key}" is {value!r}, an earlier frame of the file says {identity[key]!r}'
                    )
                if value:
                    identity.setdefault(key, value)
        except ValueError as exc:
            problem = BadInputError(path, str(exc), where=f"frame {index}")
            if not skip_bad_frames:
                raise problem from exc
            problems.append(str(problem))
            # Resynchronise on the next frame start after this one.
            nxt = buf.find(PGM_FRAME_MARK, pos + 1)
            if nxt < 0:
                tail_damaged = True
                break
            pos = nxt
            index += 1
            continue
        images.append(image)
        times.append(time)
        pos = end
        index += 1

    if stream_problem is not None:
        problem = BadInputError(path, stream_problem, where=f"after frame {index - 1}")
        if not skip_bad_frames:
            raise problem
        if tail_damaged:  # the partial frame at the break is already counted: add the cause
            problems[-1] += f"; {stream_problem}"
        else:
            problems.append(str(problem))
    if not images:
        reason = "no valid PGM frame" + (f" ({problems[0]})" if problems else "")
        raise BadInputError(path, reason)
    frames = np.stack(images).astype(np.uint16)  # big-endian -> native
    named = name_match.groupdict() if name_match else {}
    return FrameRead(
        frames,
        np.array(times, dtype="datetime64[ns]"),
        len(problems),
        tuple(problems),
        span=file_span(path),
        site=identity.get(_PGM_SITE_KEY) or named.get("site") or "",
        imager=identity.get(_PGM_IMAGER_KEY) or named.get("imager") or "",
    )


def read_themis_pgm(path) -> tuple[np.ndarray, np.ndarray]:
    """Read a UCalgary stream0 PGM file strictly (any damaged frame raises BadInputError).

    Returns:
        frames (N, rows, columns) uint16 in canonical orientation; times (N,) datetime64[ns] UTC
        (``"Image request start"`` of each frame).
    """
    read = read_themis_pgm_frames(path, skip_bad_frames=False)
    return read.frames, read.times


# --------------------------------------------------------------------------------------------
# CDF helpers
# --------------------------------------------------------------------------------------------


def _open_cdf(path: Path):
    import cdflib

    try:
        return cdflib.CDF(str(path))
    except Exception as exc:  # cdflib raises many types (OSError, ValueError, struct.error...)
        raise BadInputError(path, f"not a readable CDF file ({exc})") from exc


def _cdf_var(cdf, path: Path, name: str, *, required: bool = True) -> np.ndarray | None:
    """A CDF variable as a numpy array; BadInputError naming it when absent or unreadable."""
    try:
        info = cdf.cdf_info()
        names = set(info.zVariables) | set(info.rVariables)
    except Exception as exc:
        raise BadInputError(path, f"cannot list CDF variables ({exc})") from exc
    if name not in names:
        if not required:
            return None
        raise BadInputError(path, "variable missing", where=name)
    try:
        value = cdf.varget(name)
    except Exception as exc:  # corrupt/truncated data blocks surface here
        raise BadInputError(path, f"cannot read variable ({exc})", where=name) from exc
    if value is None:
        raise BadInputError(path, "variable has no records", where=name)
    return np.asarray(value)


def _squeeze_leading(arr: np.ndarray, ndim: int) -> np.ndarray:
    """Drop leading record dimensions down to ``ndim`` dims, keeping the last record.

    cdflib returns a record dimension of length 1 for single-record variables; a calibration file
    with several records keeps the newest (last) one.
    """
    while arr.ndim > ndim:
        arr = arr[-1]
    return arr


# --------------------------------------------------------------------------------------------
# Berkeley level-1 CDF
# --------------------------------------------------------------------------------------------


def read_themis_l1_cdf(path, site: str) -> tuple[np.ndarray, np.ndarray]:
    """Read a Berkeley THEMIS ASI level-1 full-resolution CDF (``thg_l1_asf_<site>_YYYYMMDDHH``).

    Args:
        path: the CDF file.
        site: four-letter site code (case-insensitive), e.g. ``"gako"``.

    Returns:
        frames (N, rows, columns) uint16 counts (256 x 256 for THEMIS), rotated 180 degrees so that they are in
        canonical (UCalgary skymap) orientation; times (N,) datetime64[ns] UTC from
        ``thg_asf_<site>_epoch``.

    Raises:
        BadInputError: unreadable/truncated file, missing variable, wrong shape or type, frame and
            time counts that disagree, or invalid (fill) times.
    """
    import cdflib

    path = Path(path)
    site = site.lower()
    cdf = _open_cdf(path)
    name = f"thg_asf_{site}"
    frames = _cdf_var(cdf, path, name)
    epoch = np.atleast_1d(_cdf_var(cdf, path, f"{name}_epoch"))
    if frames.ndim == 2:  # cdflib drops the record axis of a one-record variable
        frames = frames[np.newaxis]
    if frames.ndim != 3:
        raise BadInputError(path, f"shape {frames.shape}, expected (N, rows, columns)", where=name)
    if frames.dtype != np.uint16:
        if frames.dtype.kind not in "ui" or (
            frames.size and (frames.min() < 0 or frames.max() > np.iinfo(np.uint16).max)
        ):
            raise BadInputError(path, f"type {frames.dtype}, expected 16-bit counts", where=name)
        frames = frames.astype(np.uint16)
    if epoch.shape != (frames.shape[0],):
        raise BadInputError(
            path, f"{epoch.size} times for {frames.shape[0]} frames", where=f"{name}_epoch"
        )
    try:
        times = np.asarray(cdflib.cdfepoch.to_datetime(epoch), dtype="datetime64[ns]")
    except Exception as exc:
        raise BadInputError(path, f"cannot convert times ({exc})", where=f"{name}_epoch") from exc
    bad = np.isnat(times) | (times < np.datetime64("1990-01-01")) | (times > np.datetime64("2100"))
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        raise BadInputError(
            path, f"{bad.sum()} invalid times (first: {times[first]})", where=f"frame {first}"
        )
    # Berkeley storage is rotated 180 degrees relative to canonical (star-verified).
    return np.ascontiguousarray(frames[:, ::-1, ::-1]), times


# --------------------------------------------------------------------------------------------
# Skymaps
# --------------------------------------------------------------------------------------------


@dataclass
class Skymap:
    """Pixel geometry of one imager, in canonical orientation.

    Attributes:
        elevation: (256, 256) pixel-centre elevation, degrees (NaN outside the field of view).
        azimuth: (256, 256) pixel-centre azimuth, degrees from geographic north through east.
        site_lat: site geodetic latitude, degrees.
        site_lon: site longitude, degrees in -180..180.
        site_alt_km: site altitude, km.
        corner_lat: {emission altitude km: (257, 257) pixel-corner latitude, degrees}; may be empty.
        corner_lon: same keys: (257, 257) pixel-corner longitude, degrees in -180..180.
        imager: imager name, e.g. ``"themis20"`` (empty when the file does not say).
        source: the file name it came from.
        valid_from: first day the skymap applies to, or None when unknown.
        site: the site the file says it belongs to (``SITE_UID``; empty when it does not say).
        valid_to: last day it applies to, or None (open-ended, ``+``, or unknown).
    """

    elevation: np.ndarray
    azimuth: np.ndarray
    site_lat: float
    site_lon: float
    site_alt_km: float
    corner_lat: dict[float, np.ndarray] = field(default_factory=dict)
    corner_lon: dict[float, np.ndarray] = field(default_factory=dict)
    imager: str = ""
    source: str = ""
    valid_from: dt.date | None = None
    site: str = ""
    valid_to: dt.date | None = None


def _wrap_lon(lon):
    """Longitude(s) into -180..180 degrees (NaN stays NaN)."""
    return (np.asarray(lon, dtype=np.float64) + 180.0) % 360.0 - 180.0


def _nan_outside(arr: np.ndarray, low: float, high: float) -> np.ndarray:
    """NaN for values outside [low, high]: CDF fill values (e.g. -1e31) become NaN like the
    .sav files' out-of-view pixels."""
    arr = np.array(arr, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        arr[~((arr >= low) & (arr <= high))] = np.nan
    return arr


def _as_text(value) -> str:
    if isinstance(value, bytes):
        return value.decode("ascii", "replace").strip()
    return str(value).strip()


def _check_shape(path: Path, arr: np.ndarray, shape: tuple, where: str) -> np.ndarray:
    if arr.shape != shape:
        raise BadInputError(path, f"shape {arr.shape}, expected {shape}", where=where)
    return arr


def read_ucalgary_skymap(path) -> Skymap:
    """Read a UCalgary THEMIS skymap IDL save file (``themis_skymap_<site>_YYYYMMDD-+_vXX.sav``).

    Uses the ``skymap`` structure: FULL_ELEVATION / FULL_AZIMUTH (256, 256) degrees,
    FULL_MAP_LATITUDE / FULL_MAP_LONGITUDE (n_alt, 257, 257) pixel corners at FULL_MAP_ALTITUDE
    (metres in the file), SITE_MAP_LATITUDE / LONGITUDE / ALTITUDE (degrees, degrees 0..360,
    metres), IMAGER_UID and GENERATION_INFO.VALID_INTERVAL_START (``YYYYMMDDHH``). Arrays are kept
    exactly as :func:`scipy.io.readsav` returns them: that is the canonical orientation.

    Returns:
        Skymap with longitudes converted to -180..180 and altitudes to km.

    Raises:
        BadInputError: unreadable/truncated file, no ``skymap`` structure, missing fields, wrong
            shapes.
    """
    import scipy.io

    path = Path(path)
    try:
        with warnings.catch_warnings():
            # The THEMIS skymap writer leaves record lengths unset; readsav warns but reads fine.
            warnings.simplefilter("ignore", UserWarning)
            content = scipy.io.readsav(str(path), python_dict=True, verbose=False)
    except Exception as exc:  # readsav raises struct.error, ValueError, EOFError...
        raise BadInputError(path, f"not a readable IDL save file ({exc})") from exc
    if "skymap" not in content:
        raise BadInputError(path, f"no 'skymap' structure (found {sorted(content)})")
    rec = content["skymap"]
    names = set(rec.dtype.names or ())

    def get(key: str):
        if key not in names:
            raise BadInputError(path, "field missing", where=f"skymap.{key}")
        return rec[key][0]

    elevation = np.asarray(get("FULL_ELEVATION"), np.float64)
    if elevation.ndim != 2:
        raise BadInputError(path, f"shape {elevation.shape}, expected 2-D", where="FULL_ELEVATION")
    shape = elevation.shape  # the imager's frame shape
    azimuth = _check_shape(path, np.asarray(get("FULL_AZIMUTH"), np.float64), shape, "FULL_AZIMUTH")
    alt_m = np.atleast_1d(np.asarray(get("FULL_MAP_ALTITUDE"), np.float64))
    n_alt = alt_m.size
    corner_shape = (n_alt, shape[0] + 1, shape[1] + 1)
    lat = _check_shape(
        path, np.asarray(get("FULL_MAP_LATITUDE"), np.float64), corner_shape, "FULL_MAP_LATITUDE"
    )
    lon = _check_shape(
        path, np.asarray(get("FULL_MAP_LONGITUDE"), np.float64), corner_shape, "FULL_MAP_LONGITUDE"
    )
    try:
        site_lat = float(np.asarray(get("SITE_MAP_LATITUDE")).item())
        site_lon = float(_wrap_lon(np.asarray(get("SITE_MAP_LONGITUDE")).item()))
        site_alt_km = float(np.asarray(get("SITE_MAP_ALTITUDE")).item()) / 1000.0
    except (ValueError, TypeError) as exc:
        raise BadInputError(path, f"site position is not a scalar ({exc})") from exc

    valid_from = valid_to = None
    if "GENERATION_INFO" in names:
        info = rec["GENERATION_INFO"][0]
        info_names = info.dtype.names or ()
        if "VALID_INTERVAL_START" in info_names:
            start = _as_text(info["VALID_INTERVAL_START"][0])
            if re.fullmatch(r"\d{8}\d*", start):
                valid_from = dt.date(int(start[:4]), int(start[4:6]), int(start[6:8]))
        if "VALID_INTERVAL_STOP" in info_names:
            stop = _as_text(info["VALID_INTERVAL_STOP"][0])  # "+": still valid
            if re.fullmatch(r"\d{8}\d*", stop):
                valid_to = dt.date(int(stop[:4]), int(stop[4:6]), int(stop[6:8]))
    if valid_from is None:  # fall back on the date in the file name
        match = re.search(r"_(\d{8})-", path.name)
        if match:
            valid_from = dt.datetime.strptime(match.group(1), "%Y%m%d").date()

    altitudes_km = [float(a) / 1000.0 for a in alt_m]
    return Skymap(
        elevation=elevation,
        azimuth=azimuth,
        site_lat=site_lat,
        site_lon=site_lon,
        site_alt_km=site_alt_km,
        corner_lat={a: lat[i] for i, a in enumerate(altitudes_km)},
        corner_lon={a: _wrap_lon(lon[i]) for i, a in enumerate(altitudes_km)},
        imager=_as_text(get("IMAGER_UID")).lower() if "IMAGER_UID" in names else "",
        source=path.name,
        valid_from=valid_from,
        site=_as_text(get("SITE_UID")).lower() if "SITE_UID" in names else "",
        valid_to=valid_to,
    )


def read_berkeley_calibration(path, site: str) -> Skymap:
    """Read a Berkeley THEMIS ASI calibration CDF (``thg_l2_asc_<site>_19700101_v01.cdf``).

    Variables: ``thg_asf_<site>_elev`` / ``_azim`` (256, 256) degrees; ``thg_asc_<site>_glat`` /
    ``_glon`` / ``_alti`` (site position, degrees and metres); optional pixel-corner maps
    ``thg_asf_<site>_glat`` / ``_glon`` (n_alt, 257, 257) degrees at altitudes
    ``thg_asf_<site>_alti`` (metres). Leading record dimensions are dropped (the last record is
    used), and every image-shaped array is rotated 180 degrees into canonical orientation.

    Args:
        path: the CDF file.
        site: four-letter site code (case-insensitive).

    Returns:
        Skymap (``imager`` empty, ``valid_from`` None: the file does not carry them).

    Raises:
        BadInputError: unreadable file, missing variables, wrong shapes.
    """
    path = Path(path)
    site = site.lower()
    cdf = _open_cdf(path)

    def image_var(name: str, low: float, high: float, shape=None) -> np.ndarray:
        arr = _squeeze_leading(_cdf_var(cdf, path, name).astype(np.float64), 2)
        if arr.ndim != 2:
            raise BadInputError(path, f"shape {arr.shape}, expected 2-D", where=name)
        if shape is not None:
            _check_shape(path, arr, shape, name)
        return np.ascontiguousarray(_nan_outside(arr, low, high)[::-1, ::-1])  # -> canonical

    def scalar_var(name: str) -> float:
        arr = np.asarray(_cdf_var(cdf, path, name), np.float64).ravel()
        if arr.size < 1:
            raise BadInputError(path, "empty", where=name)
        return float(arr[-1])

    elevation = image_var(f"thg_asf_{site}_elev", -90.0, 90.0)
    azimuth = image_var(f"thg_asf_{site}_azim", -360.0, 360.0, shape=elevation.shape)
    site_lat = scalar_var(f"thg_asc_{site}_glat")
    site_lon = float(_wrap_lon(scalar_var(f"thg_asc_{site}_glon")))
    site_alt_km = scalar_var(f"thg_asc_{site}_alti") / 1000.0

    corner_lat: dict[float, np.ndarray] = {}
    corner_lon: dict[float, np.ndarray] = {}
    glat = _cdf_var(cdf, path, f"thg_asf_{site}_glat", required=False)
    if glat is not None:
        glon = _cdf_var(cdf, path, f"thg_asf_{site}_glon")
        alti = np.asarray(_cdf_var(cdf, path, f"thg_asf_{site}_alti"), np.float64)
        alti = _squeeze_leading(alti, 1) if alti.ndim > 1 else np.atleast_1d(alti)
        shape = (alti.size, elevation.shape[0] + 1, elevation.shape[1] + 1)
        glat = _check_shape(
            path, _squeeze_leading(glat.astype(np.float64), 3), shape, f"thg_asf_{site}_glat"
        )
        glon = _check_shape(
            path, _squeeze_leading(glon.astype(np.float64), 3), shape, f"thg_asf_{site}_glon"
        )
        glat = _nan_outside(glat, -90.0, 90.0)
        glon = _nan_outside(glon, -360.0, 360.0)
        for i, alt in enumerate(alti):
            key = float(alt) / 1000.0
            corner_lat[key] = np.ascontiguousarray(glat[i, ::-1, ::-1])
            corner_lon[key] = np.ascontiguousarray(_wrap_lon(glon[i, ::-1, ::-1]))

    return Skymap(
        elevation=elevation,
        azimuth=azimuth,
        site_lat=site_lat,
        site_lon=site_lon,
        site_alt_km=site_alt_km,
        corner_lat=corner_lat,
        corner_lon=corner_lon,
        imager="",
        source=path.name,
        valid_from=None,
        site=site,
    )
