"""Format checks of downloaded files: each raises :class:`VerificationError` saying what is wrong.

A check runs on the temporary file before it is moved into place, and on files already present
when a download is resumed; a file that fails is fetched again (and fails the job, naming the URL,
when it stays broken).
"""

from __future__ import annotations

import gzip
import re
import struct
import zlib
from collections.abc import Callable
from pathlib import Path


class VerificationError(ValueError):
    """A downloaded or present file that fails its check (size, gzip, format).

    ``salvageable``: the file is broken but part of it reads (complete PGM frames before a cut,
    ISMR rows before a damaged gzip block); if it stays so after the retries, that part is kept.
    """

    def __init__(self, message: str, salvageable: bool = False):
        super().__init__(message)
        self.salvageable = salvageable


def _gunzip(path: str | Path) -> bytes:
    """The whole decompressed content; VerificationError for a truncated or corrupt stream."""
    try:
        with gzip.open(path, "rb") as handle:
            return handle.read()
    except (OSError, EOFError, zlib.error) as error:
        raise VerificationError(f"broken gzip stream: {error}") from error


def check_gzip(path: str | Path) -> None:
    """Decompress the whole file: catches truncation and corruption (the CRC is checked at the end)."""
    try:
        with gzip.open(path, "rb") as handle:
            while handle.read(1 << 20):
                pass
    except (OSError, EOFError, zlib.error) as error:
        raise VerificationError(f"broken gzip stream: {error}") from error


def check_cdf(variable: str) -> Callable[[Path], None]:
    """A check that the file opens as CDF and holds ``variable`` with records that all read.

    Reading every record decompresses the whole variable, so a file cut short or damaged inside a
    compressed record fails even when its header is intact.
    """

    def check(path: Path) -> None:
        import cdflib

        try:
            cdf = cdflib.CDF(str(path))
            info = cdf.cdf_info()
            names = set(info.zVariables) | set(info.rVariables)
        except Exception as error:  # cdflib raises bare Exceptions/OSErrors on broken files
            raise VerificationError(f"not a readable CDF: {error}") from error
        if variable not in names:
            raise VerificationError(f"CDF lacks variable {variable!r}")
        try:
            if cdf.varinq(variable).Last_Rec < 0:
                raise VerificationError(f"CDF variable {variable!r} has no records")
            value = cdf.varget(variable)
        except VerificationError:
            raise
        except Exception as error:
            raise VerificationError(f"CDF variable {variable!r} is unreadable: {error}") from error
        if value is None:
            raise VerificationError(f"CDF variable {variable!r} has no data")

    return check


def check_pgm_gz(expected_frames: int | None = None) -> Callable[[Path], None]:
    """A check of a UCalgary stream0 ``.pgm.gz``: gzip intact, PGM frames, frame count.

    The file must start with the ``P5`` magic number, at least one frame must parse completely
    (:func:`latentsky.instruments.themis.pgm_frame_problem`) and the file must hold at least one
    frame (exactly ``expected_frames`` when given). A damaged frame among good ones, inside an
    intact stream, is the archive's own: it is left to ingest, which skips and counts it (or
    stops, with ``on_bad_input: fail``).
    """
    from latentsky.instruments.themis import PGM_FRAME_MARK, pgm_frame_problem

    def check(path: Path) -> None:
        try:
            data = _gunzip(path)
        except VerificationError as error:
            raise _salvage_pgm(path, error) from error
        if not data.startswith(b"P5"):
            raise VerificationError("not a binary PGM (no P5 magic number)")
        starts = [m.start() for m in re.finditer(re.escape(PGM_FRAME_MARK), data)]
        if not starts:
            raise VerificationError("no PGM frame header")
        if expected_frames is not None and len(starts) != expected_frames:
            raise VerificationError(f"{len(starts)} PGM frames, expected {expected_frames}")
        problems = [pgm_frame_problem(data, start) for start in starts]
        if all(problems):
            raise VerificationError(f"no complete PGM frame (first: {problems[0]})")

    return check


def _salvage_pgm(path: Path, error: VerificationError) -> VerificationError:
    """``error``, marked salvageable when the reader finds complete frames before the damage (a
    stream cut short; a corrupt one is not trusted frame by frame, see the reader)."""
    from latentsky.errors import BadInputError
    from latentsky.instruments.themis import read_themis_pgm_frames

    try:
        read = read_themis_pgm_frames(path, skip_bad_frames=True)
    except BadInputError:
        return error
    return VerificationError(
        f"{error}; {len(read.frames)} complete frame(s) before the damage are readable",
        salvageable=True,
    )


def _salvage_ismr(path: Path, error: VerificationError, expected_columns) -> VerificationError:
    """``error``, marked salvageable when ISMR rows before the damage parse."""
    from latentsky.instruments.chain import IsmrColumns, read_ismr

    try:
        frame, _ = read_ismr(path, IsmrColumns(expected_count=expected_columns), "skip")
    except Exception:  # noqa: BLE001 - nothing readable is the answer, whatever the reason
        return error
    if not len(frame):
        return error
    return VerificationError(
        f"{error}; {len(frame)} ISMR record(s) before the damage are readable", salvageable=True
    )


def check_ismr_gz(expected_columns: int | None = 62, sample_rows: int = 50) -> Callable:
    """A check of a gzipped ISMR file: gzip intact and its rows parse as ISMR records.

    An ISMR row is comma-separated numbers (``nan`` allowed) with ``expected_columns`` columns and
    an integer GPS week, time of week and satellite id in columns 1-3. At least one of the first
    ``sample_rows`` rows must parse: that tells an ISMR file from an error page or another format.
    Single bad rows are the archive's own and are left to ingest, which skips and counts them. A
    file without rows (a receiver that tracked nothing) passes.
    """

    def check(path: Path) -> None:
        try:
            data = _gunzip(path)
        except VerificationError as error:
            raise _salvage_ismr(path, error, expected_columns) from error
        lines = [line for line in data.decode("latin-1").splitlines() if line.strip()]
        sample = lines[:sample_rows]
        if not sample:
            return
        problems = []
        for number, line in enumerate(sample, start=1):
            fields = line.split(",")
            if expected_columns and len(fields) != expected_columns:
                problems.append(f"line {number}: {len(fields)} columns, not {expected_columns}")
                continue
            try:
                week, tow, svid = (float(value) for value in fields[:3])
            except ValueError:
                problems.append(f"line {number}: columns 1-3 are not numbers")
                continue
            if week == int(week) and svid == int(svid) and tow >= 0:
                return
            problems.append(f"line {number}: invalid GPS week/TOW/SVID")
        raise VerificationError(f"no ISMR row parses among the first {len(sample)}: {problems[0]}")

    return check


_IDL_SAVE_MAGIC = (b"SR\x00\x04", b"SR\x00\x06")  # plain and compressed IDL save files
_IDL_VARIABLE, _IDL_END_MARKER = 2, 6


def check_idl_save(variable: str = "SKYMAP") -> Callable[[Path], None]:
    """A check of an IDL save file (UCalgary skymaps): record chain intact, ``variable`` present.

    Walks the chain of records from the header to the END marker (each record names the offset of
    the next), so a file cut short or with a damaged record header fails, and looks for a VARIABLE
    record named ``variable``. Needs nothing but the standard library.
    """

    def check(path: Path) -> None:
        size = Path(path).stat().st_size
        names = []
        with open(path, "rb") as handle:
            if handle.read(4) not in _IDL_SAVE_MAGIC:
                raise VerificationError("not an IDL save file (no SR magic)")
            position = 4
            while True:
                handle.seek(position)
                head = handle.read(20)
                if len(head) < 16:
                    raise VerificationError(f"IDL save file ends inside a record at {position}")
                kind, low, high = struct.unpack(">iII", head[:12])
                if kind == _IDL_END_MARKER:
                    break
                following = low + (high << 32)
                if not position < following <= size:
                    raise VerificationError(
                        f"IDL save record at {position} points to {following}, file has {size} B"
                    )
                if kind == _IDL_VARIABLE and len(head) == 20:
                    length = struct.unpack(">i", head[16:20])[0]
                    names.append(handle.read(max(0, min(length, 1000))).decode("latin-1"))
                position = following
        if variable.upper() not in (name.upper() for name in names):
            raise VerificationError(f"IDL save file lacks variable {variable!r} (has {names})")

    return check
