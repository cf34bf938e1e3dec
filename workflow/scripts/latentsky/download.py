"""Fetch archive files safely: retries with backoff, atomic writes, verification, gaps, manifests.

HTTP goes through ``requests`` (connection pooling, timeouts, urllib3's retry machinery) rather than
hand-written sockets. ``file:`` URLs (local mirrors, the demo) take the same path through verification
and atomic placement, so the demo exercises the code that real downloads use.

Every file is written to a temporary name in its destination folder, checked (byte count against
Content-Length, gzip integrity, a format check), and only then renamed into place: an interrupted run
never leaves a partial file under the final name, and a rerun skips files that are present and verify.
"""

from __future__ import annotations

import gzip
import hashlib
import logging
import os
import re
import shutil
import threading
import time
import uuid
import zlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from urllib.parse import unquote, urlsplit

import requests
from requests.adapters import HTTPAdapter

from . import __version__
from .layouts import local_path_of_file_url
from .manifest import ManifestRow

log = logging.getLogger(__name__)

USER_AGENT = f"latentsky/{__version__} (+https://github.com/latentsky/latentsky; research workflow)"


class DownloadError(RuntimeError):
    """A file that stayed broken after all retries; the message names the URL and the fault."""


class VerificationError(ValueError):
    """A downloaded or present file that fails its check (size, gzip, format)."""


@dataclass
class DownloadSettings:
    """Politeness and robustness of downloads (config key ``download``)."""

    retries: int = 5
    backoff_s: float = 1.0
    connect_timeout_s: float = 20.0
    read_timeout_s: float = 60.0
    max_connections_per_host: int = 4
    user_agent: str = USER_AGENT


def sha256_of(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# --- verification ---------------------------------------------------------------------------------


def check_gzip(path: str | Path) -> None:
    """Decompress the whole file: catches truncation and corruption (the CRC is checked at the end)."""
    try:
        with gzip.open(path, "rb") as handle:
            while handle.read(1 << 20):
                pass
    except (OSError, EOFError, zlib.error) as error:
        raise VerificationError(f"broken gzip stream: {error}") from error


def check_cdf(variable: str) -> Callable[[Path], None]:
    """A check that the file opens as CDF and holds ``variable`` with at least one record."""

    def check(path: Path) -> None:
        import cdflib

        try:
            cdf = cdflib.CDF(str(path))
            names = set(cdf.cdf_info().zVariables) | set(cdf.cdf_info().rVariables)
        except Exception as error:  # cdflib raises bare Exceptions/OSErrors on broken files
            raise VerificationError(f"not a readable CDF: {error}") from error
        if variable not in names:
            raise VerificationError(f"CDF lacks variable {variable!r}")

    return check


def check_pgm_gz(expected_frames: int | None = None) -> Callable[[Path], None]:
    """A check of a UCalgary stream0 ``.pgm.gz``: gzip intact, PGM headers, frame count."""

    def check(path: Path) -> None:
        check_gzip(path)
        with gzip.open(path, "rb") as handle:
            data = handle.read()
        frames = len(re.findall(rb"(?:^|\n)P5\s", data[:1] + data)) if data else 0
        if not data.startswith(b"P5"):
            raise VerificationError("not a binary PGM (no P5 magic number)")
        if expected_frames is not None and frames != expected_frames:
            raise VerificationError(f"{frames} PGM frames, expected {expected_frames}")

    return check


def check_ismr_gz(expected_columns: int | None = 62) -> Callable[[Path], None]:
    """A check of a gzipped ISMR file: gzip intact and the first rows parse as numbers."""

    def check(path: Path) -> None:
        check_gzip(path)
        with gzip.open(path, "rt", errors="replace") as handle:
            for number, line in enumerate(handle, start=1):
                if number > 20:
                    break
                fields = line.strip().split(",")
                if not line.strip():
                    continue
                if expected_columns and len(fields) != expected_columns:
                    raise VerificationError(
                        f"line {number} has {len(fields)} columns, expected {expected_columns}"
                    )
                try:
                    [float(value) for value in fields[:3]]
                except ValueError as error:
                    raise VerificationError(f"line {number} is not numeric: {error}") from error

    return check


# --- fetching -------------------------------------------------------------------------------------


@dataclass
class Fetcher:
    """Downloads files over HTTP(S) or from ``file:`` mirrors with retries and verification."""

    settings: DownloadSettings = field(default_factory=DownloadSettings)

    def __post_init__(self):
        self._local = threading.local()
        self._host_slots: dict[str, threading.Semaphore] = {}
        self._slots_lock = threading.Lock()

    # A session per thread: requests.Session is not documented as thread-safe.
    def _session(self) -> requests.Session:
        session = getattr(self._local, "session", None)
        if session is None:
            session = requests.Session()
            adapter = HTTPAdapter(
                pool_maxsize=self.settings.max_connections_per_host, max_retries=0
            )
            session.mount("http://", adapter)
            session.mount("https://", adapter)
            session.headers["User-Agent"] = self.settings.user_agent
            self._local.session = session
        return session

    def _slot(self, url: str) -> threading.Semaphore:
        host = urlsplit(url).netloc
        with self._slots_lock:
            if host not in self._host_slots:
                self._host_slots[host] = threading.Semaphore(self.settings.max_connections_per_host)
            return self._host_slots[host]

    def fetch(
        self, url: str, destination: str | Path, check: Callable[[Path], None] | None = None
    ) -> ManifestRow:
        """Fetch ``url`` to ``destination`` unless a verified copy is there already.

        Returns a manifest row: status ``present``/``downloaded``, or ``missing`` for a 404 (a gap in
        the archive, not an error). Raises :class:`DownloadError` naming the URL when the file stays
        broken after the retries; no partial file is left at ``destination``.
        """
        destination = Path(destination)
        if destination.exists():
            try:
                if check:
                    check(destination)
                return self._row(url, destination, "present")
            except VerificationError as error:
                log.warning("%s fails its check (%s); fetching it again", destination, error)
        destination.parent.mkdir(parents=True, exist_ok=True)
        last_error = ""
        for attempt in range(1, self.settings.retries + 1):
            tmp = destination.with_name(f".{destination.name}.part-{uuid.uuid4().hex[:8]}")
            try:
                found = self._transfer(url, tmp)
                if not found:
                    return ManifestRow(
                        url=url, path=str(destination), status="missing", detail="404 not found"
                    )
                if check:
                    check(tmp)
                os.replace(tmp, destination)
                return self._row(url, destination, "downloaded")
            except (requests.RequestException, VerificationError, OSError) as error:
                last_error = f"{type(error).__name__}: {error}"
                log.warning(
                    "attempt %d/%d of %s failed: %s",
                    attempt,
                    self.settings.retries,
                    url,
                    last_error,
                )
            finally:
                if tmp.exists():
                    tmp.unlink()
            if attempt < self.settings.retries:
                time.sleep(self.settings.backoff_s * 2 ** (attempt - 1))
        raise DownloadError(
            f"{url}: still broken after {self.settings.retries} tries ({last_error})"
        )

    def _row(self, url: str, path: Path, status: str) -> ManifestRow:
        return ManifestRow(
            url=url,
            path=str(path),
            bytes=path.stat().st_size,
            sha256=sha256_of(path),
            status=status,
        )

    def _transfer(self, url: str, tmp: Path) -> bool:
        """Copy the body of ``url`` to ``tmp``; False when the archive does not have it."""
        if urlsplit(url).scheme == "file":
            source = Path(unquote(local_path_of_file_url(url)))
            if not source.exists():
                return False
            shutil.copyfile(source, tmp)
            return True
        timeout = (self.settings.connect_timeout_s, self.settings.read_timeout_s)
        with self._slot(url), self._session().get(url, stream=True, timeout=timeout) as response:
            if response.status_code == 404:
                return False
            response.raise_for_status()
            expected = response.headers.get("Content-Length")
            received = 0
            with open(tmp, "wb") as handle:
                for block in response.iter_content(chunk_size=1 << 16):
                    handle.write(block)
                    received += len(block)
            # requests does not enforce Content-Length on streamed bodies, so compare here.
            encoded = response.headers.get("Content-Encoding", "identity") != "identity"
            if expected is not None and not encoded and received != int(expected):
                raise VerificationError(f"received {received} bytes, Content-Length {expected}")
        return True

    def list_folder(self, url: str) -> list[str]:
        """Names in a remote folder (an HTML index page, or a local folder for ``file:`` URLs).

        Listings are untrusted: names with a path separator, ``..`` or an absolute path are refused,
        so a hostile or broken index can never make a later write land outside the dataset folder.
        """
        if urlsplit(url).scheme == "file":
            folder = Path(unquote(local_path_of_file_url(url)))
            if not folder.is_dir():
                return []
            names = [p.name + ("/" if p.is_dir() else "") for p in folder.iterdir()]
        else:
            timeout = (self.settings.connect_timeout_s, self.settings.read_timeout_s)
            with self._slot(url):
                response = self._session().get(url, timeout=timeout)
            if response.status_code == 404:
                return []
            response.raise_for_status()
            names = [unquote(h) for h in re.findall(r'href="([^"?#]+)"', response.text)]
        return sorted({name for name in names if is_safe_name(name)})


def is_safe_name(name: str) -> bool:
    """True for a plain file or folder name (optionally with one trailing slash)."""
    bare = name[:-1] if name.endswith("/") else name
    if not bare or bare in (".", "..") or "/" in bare or "\\" in bare:
        return False
    return not PurePosixPath(bare).is_absolute() and "\x00" not in bare


def fetch_all(
    fetcher: Fetcher,
    jobs: list[tuple[str, Path, Callable[[Path], None] | None]],
    threads: int,
) -> list[ManifestRow]:
    """Fetch many (url, destination, check) jobs in parallel; manifest rows in job order."""
    with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
        return list(pool.map(lambda job: fetcher.fetch(*job), jobs))
