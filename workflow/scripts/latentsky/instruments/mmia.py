"""ASIM MMIA photometers: reading the frames of level-0 and level-1 FITS files.

The Modular Multispectral Imaging Array (MMIA) on the ISS samples three photometers at 100 kHz:

* PHOT1, 337 nm (N2 second positive band, "blue");
* PHOT2, 180-230 nm (UV, N2 Lyman-Birge-Hopfield);
* PHOT3, 777.4 nm (atomic oxygen, the lightning line).

The ASIM Science Data Centre distributes them as FITS files, one binary table in HDU 1 with **one
row per frame** (8,320 samples, 83.2 ms, in the files we know of): each band is a vector column,
``PHOTn_photon_flux`` in uW/m^2 at level 1 or ``PHOTnData`` in counts at level 0, beside scalar
columns ``frame_time_phot`` (ISO time string of the frame; which moment of it is a convention,
see :data:`FRAME_TIME_OFFSETS`),
``observation_id``, ``latitude`` and ``longitude`` (ISS position, degrees) and optional trigger flags
``PHOTnDataTrigger``. An observation (one triggered record) may be spread over several files and its
rows need not be in time order. :func:`read_mmia_fits` reads one file into :class:`MmiaFrames`,
checking every frame (bands of equal length, samples present, a parseable time); bad frames are
skipped and counted or raise :class:`~latentsky.errors.BadInputError` naming the file, row and
column. Joining frames into observations and cutting windows is :mod:`latentsky.samples.windows`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from latentsky.errors import BadInputError

#: Photometer sampling rate, Hz (one sample every 10 us).
SAMPLE_RATE_HZ = 100_000.0
#: Band names in channel order, and what they see.
BANDS = ("PHOT1", "PHOT2", "PHOT3")
BAND_WAVELENGTHS = {"PHOT1": "337 nm", "PHOT2": "180-230 nm", "PHOT3": "777.4 nm"}
#: Flux columns per processing level, in :data:`BANDS` order, and their default units.
LEVEL_COLUMNS = {
    1: ("PHOT1_photon_flux", "PHOT2_photon_flux", "PHOT3_photon_flux"),
    0: ("PHOT1Data", "PHOT2Data", "PHOT3Data"),
}
LEVEL_UNITS = {1: "uW/m^2", 0: "counts"}
TIME_COLUMN = "frame_time_phot"
#: What ``frame_time_phot`` may stamp, and where the frame's centre then lies, in frame lengths
#: after the stamp. The reader's default is ``centre``, the convention of the ASIM Science Data
#: Centre's level-1 files as we know them; a file that stamps the start instead would put every
#: sample half a frame (41.6 ms) early, which the photometer ingest's frame-time check detects
#: from the labels (:func:`latentsky.samples.windows.check_frame_time`).
FRAME_TIME_OFFSETS = {"centre": 0.0, "start": 0.5, "end": -0.5}
META_COLUMNS = ("observation_id", "latitude", "longitude")
#: Optional per-frame flags: band n triggered the observation in this frame.
TRIGGER_COLUMNS = ("PHOT1DataTrigger", "PHOT2DataTrigger", "PHOT3DataTrigger")
#: Optional per-frame flags: band n has data in this frame.
EXISTS_COLUMNS = ("PHOT1Data_exists", "PHOT2Data_exists", "PHOT3Data_exists")


# --------------------------------------------------------------------------------------------
# Reading one file


@dataclass(frozen=True)
class MmiaFrames:
    """The good frames of one MMIA FITS file, in file order.

    Attributes:
        path: the file.
        level: 0 (counts) or 1 (photon flux).
        units: of the flux values (the column's TUNIT, else ``uW/m^2`` / ``counts``).
        observation_id: (F,) int64.
        time: (F,) datetime64[ns] UTC, the centre of each frame (whatever the file stamps).
        latitude, longitude: (F,) float64 ISS position, degrees (NaN where the file has none).
        flux: F arrays ``(band, n_f)`` float32 in :data:`BANDS` order.
        trigger: (F,) bool, whether any band's trigger flag is set (all False without flags).
        has_trigger_flags: whether the file carries trigger columns at all.
        rows: (F,) the 0-based table row of each frame (for messages).
        n_skipped: frames left out as bad input.
        problems: one message per skipped frame, naming the file, row and column.
    """

    path: str
    level: int
    units: str
    observation_id: np.ndarray
    time: np.ndarray
    latitude: np.ndarray
    longitude: np.ndarray
    flux: tuple[np.ndarray, ...]
    trigger: np.ndarray
    has_trigger_flags: bool
    rows: np.ndarray
    n_skipped: int = 0
    problems: tuple[str, ...] = field(default_factory=tuple)


def parse_frame_times(values) -> np.ndarray:
    """ISO time strings (``2019-01-05T12:34:56.123456+00:00``, ``...Z`` or naive; str or bytes)
    -> datetime64[ns] UTC, NaT where a value cannot be parsed."""
    text = [v.decode("ascii", "replace") if isinstance(v, bytes) else str(v) for v in values]
    parsed = pd.to_datetime(
        pd.Series(text, dtype=object).str.strip(), utc=True, errors="coerce", format="ISO8601"
    )
    return parsed.dt.tz_localize(None).to_numpy(dtype="datetime64[ns]")


def _detect_level(path: Path, names: set[str], level: int | str) -> int:
    """The processing level whose flux columns the file holds; BadInputError names what lacks."""
    if level in (0, 1):
        missing = [c for c in LEVEL_COLUMNS[int(level)] if c not in names]
        if missing:
            raise BadInputError(
                path, f"missing level-{level} column(s) {', '.join(missing)}", where="HDU 1"
            )
        return int(level)
    if level != "auto":
        raise ValueError(f"level must be 0, 1 or 'auto', got {level!r}")
    present = {lv: [c for c in cols if c in names] for lv, cols in LEVEL_COLUMNS.items()}
    for lv in (1, 0):
        if len(present[lv]) == len(BANDS):
            return lv
    # Name the columns missing from the level the file looks closest to.
    best = max((1, 0), key=lambda lv: len(present[lv]))
    missing = [c for c in LEVEL_COLUMNS[best] if c not in names]
    raise BadInputError(
        path,
        f"missing photometer column(s) {', '.join(missing)} (level {best}); "
        f"a file needs all of {', '.join(LEVEL_COLUMNS[1])} or all of {', '.join(LEVEL_COLUMNS[0])}",
        where="HDU 1",
    )


def _row_vector(column, row: int) -> np.ndarray:
    """One row of a vector column (fixed width or variable length) as a 1-D float32 array."""
    value = np.asarray(column[row])
    return value.astype(np.float32, copy=False).reshape(-1)


def read_mmia_fits(
    path,
    level: int | str = "auto",
    *,
    skip_bad_frames: bool = False,
    frame_time: str = "centre",
    sample_rate_hz: float = SAMPLE_RATE_HZ,
) -> MmiaFrames:
    """Read the photometer frames of one MMIA FITS file (level 0 or 1) with astropy.

    Args:
        path: the FITS file (``.fits``, or compressed as astropy reads it, e.g. ``.fits.gz``).
        level: ``0``, ``1`` or ``"auto"`` (level 1 if its three flux columns are present, else
            level 0).
        skip_bad_frames: if False, any bad frame raises; if True, bad frames (bands of different
            lengths, no samples, no finite sample, a band flagged absent by ``PHOTnData_exists``,
            an unparseable ``frame_time_phot``) are left out and counted.
        frame_time: what ``frame_time_phot`` stamps: ``centre``, ``start`` or ``end`` of the
            frame (:data:`FRAME_TIME_OFFSETS`); the times returned are always frame centres, at
            ``sample_rate_hz`` samples per second.

    Returns:
        :class:`MmiaFrames` with the good frames in file order.

    Raises:
        BadInputError: the file cannot be opened, HDU 1 is not a binary table, a required column
            (a band, ``frame_time_phot``, ``observation_id``, ``latitude``, ``longitude``) is
            missing, a band column is not one vector per row, no frame is good, or (without
            ``skip_bad_frames``) any frame is bad. The message names the file, row and column.
    """
    # Imported here: the rules that only scale or describe windows run without astropy.
    from astropy.io import fits

    if frame_time not in FRAME_TIME_OFFSETS:
        raise ValueError(f"frame_time must be one of {sorted(FRAME_TIME_OFFSETS)}: {frame_time!r}")
    path = Path(path)
    try:
        hdul = fits.open(path, memmap=False)
    except (OSError, ValueError, TypeError) as exc:
        raise BadInputError(path, f"cannot open as FITS ({exc})") from exc
    with hdul:
        if len(hdul) < 2 or not isinstance(hdul[1], fits.BinTableHDU):
            raise BadInputError(path, "HDU 1 is not a binary table")
        table = hdul[1]
        try:
            data = table.data
            names = set(table.columns.names)
        except (OSError, ValueError, TypeError) as exc:  # truncated data block
            raise BadInputError(path, f"cannot read the table ({exc})", where="HDU 1") from exc
        lv = _detect_level(path, names, level)
        band_columns = LEVEL_COLUMNS[lv]
        missing = [c for c in (TIME_COLUMN, *META_COLUMNS) if c not in names]
        if missing:
            raise BadInputError(path, f"missing column(s) {', '.join(missing)}", where="HDU 1")
        units = table.columns[band_columns[0]].unit or LEVEL_UNITS[lv]
        n_rows = 0 if data is None else len(data)
        try:
            columns = [data[name] for name in band_columns]
            observation = np.asarray(data["observation_id"])
            latitude = np.asarray(data["latitude"], dtype=np.float64).reshape(n_rows, -1)[:, 0]
            longitude = np.asarray(data["longitude"], dtype=np.float64).reshape(n_rows, -1)[:, 0]
            times = parse_frame_times(np.asarray(data[TIME_COLUMN]).reshape(n_rows))
            triggers = [
                np.asarray(data[c], bool).reshape(n_rows) for c in TRIGGER_COLUMNS if c in names
            ]
            exists = {
                c: np.asarray(data[c], bool).reshape(n_rows) for c in EXISTS_COLUMNS if c in names
            }
        except (OSError, ValueError, TypeError, IndexError) as exc:
            raise BadInputError(path, f"cannot read the table ({exc})", where="HDU 1") from exc
        for name, column in zip(band_columns, columns, strict=True):
            if n_rows and np.asarray(column[0]).ndim == 0:
                raise BadInputError(
                    path,
                    "holds one value per row; expected a vector of samples per frame",
                    where=f"HDU 1 column {name}",
                )
        try:
            observation = observation.astype(np.int64).reshape(n_rows)
        except (ValueError, TypeError) as exc:
            raise BadInputError(
                path, f"non-integer observation_id ({exc})", where="HDU 1 column observation_id"
            ) from exc

        good: list[int] = []
        flux: list[np.ndarray] = []
        problems: list[str] = []
        for row in range(n_rows):
            try:
                flux.append(_check_frame(row, columns, band_columns, times, exists))
                good.append(row)
            except ValueError as exc:
                problem = BadInputError(path, str(exc), where=f"HDU 1 row {row}")
                if not skip_bad_frames:
                    raise problem from exc
                problems.append(str(problem))
    if not good:
        reason = "no good photometer frame" + (f" ({problems[0]})" if problems else " (no rows)")
        raise BadInputError(path, reason, where="HDU 1")
    rows = np.array(good, dtype=np.int64)
    lengths = np.array([f.shape[1] for f in flux], dtype=np.float64)
    shift_ns = np.round(FRAME_TIME_OFFSETS[frame_time] * lengths / sample_rate_hz * 1e9)
    centres = times[rows] + shift_ns.astype(np.int64).astype("timedelta64[ns]")
    trigger = np.zeros(n_rows, bool)
    for flags in triggers:
        trigger |= flags
    return MmiaFrames(
        path=str(path),
        level=lv,
        units=str(units),
        observation_id=observation[rows],
        time=centres,
        latitude=latitude[rows],
        longitude=longitude[rows],
        flux=tuple(flux),
        trigger=trigger[rows],
        has_trigger_flags=bool(triggers),
        rows=rows,
        n_skipped=len(problems),
        problems=tuple(problems),
    )


def _check_frame(row, columns, band_columns, times, exists) -> np.ndarray:
    """The ``(band, n)`` float32 samples of one frame; ValueError says (and names) what is wrong."""
    if np.isnat(times[row]):
        raise ValueError(f"column {TIME_COLUMN}: unparseable frame time")
    for flag_column, values in exists.items():
        if not values[row]:
            raise ValueError(f"column {flag_column} is false: the band has no data in this frame")
    bands = [_row_vector(column, row) for column in columns]
    lengths = [b.size for b in bands]
    if len(set(lengths)) > 1:
        listing = ", ".join(f"{n} {k}" for n, k in zip(band_columns, lengths, strict=True))
        raise ValueError(f"bands of different lengths ({listing})")
    if lengths[0] == 0:
        raise ValueError(f"empty frame: columns {', '.join(band_columns)} hold no samples")
    stacked = np.stack(bands)
    for name, band in zip(band_columns, stacked, strict=True):
        if not np.isfinite(band).any():
            raise ValueError(f"empty frame: column {name} holds no finite sample")
    return stacked


def find_fits_files(folder, pattern: str = "**/*.fits*") -> list[Path]:
    """The FITS files under ``folder`` matching ``pattern``, sorted by path."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"photometer folder {folder} does not exist")
    return sorted(p for p in folder.glob(pattern) if p.is_file())
