"""Fetch archive files safely: retries with backoff, atomic writes, verification, gaps, manifests.

HTTP goes through ``requests`` (connection pooling, timeouts) rather than hand-written sockets.
``file:`` URLs (local mirrors, the demo) take the same path through verification and atomic
placement, so the demo exercises the code that real downloads use.

Every file is written to a temporary name in its destination folder, checked (byte count against
Content-Length, gzip integrity, a format check), and only then renamed into place: an interrupted run
never leaves a partial file under the final name, and a rerun skips files that are present and
verify. What is retried, with exponential backoff and a bounded number of tries: connection errors
and resets, time-outs (a transfer that stalls for longer than ``read_timeout_s``), 5xx, 408 and 429
answers, bodies shorter than their Content-Length, and files that fail their check. A 404 or 410 is a
gap in the archive, not an error. Any other 4xx answer (403, 401, ...) fails at once: asking again
would not change it.

Politeness: every request carries an identifying User-Agent, and at most
``max_connections_per_host`` connections to one host are open at a time, counted across threads *and*
processes (parallel Snakemake jobs) through lock files in ``slot_dir``.
"""

from __future__ import annotations

import contextlib
import glob
import gzip
import hashlib
import logging
import os
import queue
import random
import re
import shutil
import tempfile
import threading
import time
import uuid
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from urllib.parse import unquote, urlsplit

import requests
import urllib3
from requests.adapters import HTTPAdapter

from latentsky import __version__
from latentsky.acquisition.checks import VerificationError
from latentsky.acquisition.layouts import local_path_of_file_url
from latentsky.acquisition.manifest import ManifestRow

try:  # POSIX; elsewhere the connection limit holds within one process only
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None

log = logging.getLogger(__name__)

USER_AGENT = f"latentsky/{__version__} (+https://github.com/latentsky/latentsky; research workflow)"

#: Answers that mean "the archive does not have this file": a gap, recorded and skipped.
GAP_STATUS = frozenset({404, 410})
#: Client-side answers worth asking again (time-out, rate limit); every 5xx is retried as well.
RETRY_STATUS = frozenset({408, 425, 429})


class DownloadError(RuntimeError):
    """A file that stayed broken after all retries; the message names the URL and the fault."""


class _PermanentHTTPError(Exception):
    """An answer that retrying cannot change (403, 401, 400...)."""


# Everything that may go wrong in one try and is worth another: requests' own errors (which are
# OSErrors), urllib3's when the raw stream is read, local I/O, and failed checks.
_RETRYABLE = (requests.RequestException, urllib3.exceptions.HTTPError, VerificationError, OSError)


@dataclass
class DownloadSettings:
    """Politeness and robustness of downloads (config key ``download``).

    ``slot_dir`` holds one lock file per allowed connection and host; every process that uses the
    same folder shares the per-host limit. None: a folder under the system's temporary directory,
    shared by all latentsky runs of this user on this machine.
    """

    retries: int = 5
    backoff_s: float = 1.0
    connect_timeout_s: float = 20.0
    read_timeout_s: float = 60.0
    max_connections_per_host: int = 4
    user_agent: str = USER_AGENT
    slot_dir: str | None = None


def sha256_of(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# --- per-host connection limit --------------------------------------------------------------------


class _HostSlots:
    """At most ``n`` connections per host, across threads and processes.

    Each host has ``n`` lock files; a connection's holder keeps an exclusive ``flock`` on one of
    them. The kernel drops the lock when its holder dies, so a killed run never leaves a slot taken.
    """

    def __init__(self, n: int, folder: str | None):
        self.n = max(1, n)
        self.folder = Path(folder) if folder else _default_slot_dir()
        self._threads: dict[str, threading.Semaphore] = {}
        self._lock = threading.Lock()

    def acquire(self, host: str) -> tuple[threading.Semaphore, int | None]:
        with self._lock:
            semaphore = self._threads.setdefault(host, threading.Semaphore(self.n))
        semaphore.acquire()
        try:
            return semaphore, self._acquire_file_slot(host)
        except BaseException:
            semaphore.release()
            raise

    @staticmethod
    def release(token: tuple[threading.Semaphore, int | None]) -> None:
        semaphore, descriptor = token
        if descriptor is not None:
            os.close(descriptor)  # closing releases the flock
        semaphore.release()

    def _acquire_file_slot(self, host: str) -> int | None:
        if fcntl is None:
            return None
        self.folder.mkdir(parents=True, exist_ok=True)
        stem = re.sub(r"[^A-Za-z0-9.-]", "_", host) or "local"
        while True:
            for slot in range(self.n):
                descriptor = os.open(self.folder / f"{stem}.{slot}.lock", os.O_RDWR | os.O_CREAT)
                try:
                    fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    return descriptor
                except BlockingIOError:
                    os.close(descriptor)
            time.sleep(random.uniform(0.02, 0.1))


def _default_slot_dir() -> Path:
    user = os.getuid() if hasattr(os, "getuid") else "user"
    return Path(tempfile.gettempdir()) / f"latentsky-{user}" / "connection-slots"


@dataclass
class _Lease:
    """A connection slot for one host and the session (one keep-alive connection) that uses it."""

    host: str
    token: tuple
    session: requests.Session


# --- fetching -------------------------------------------------------------------------------------


@dataclass
class Fetcher:
    """Downloads files over HTTP(S) or from ``file:`` mirrors with retries and verification.

    A request takes one of the host's connection slots for its own duration; a worker of
    :func:`fetch_all` keeps its slot, and the one keep-alive connection that goes with it, until
    it has no work left, so neither requests in flight nor open connections to a host ever exceed
    ``max_connections_per_host``.
    """

    settings: DownloadSettings = field(default_factory=DownloadSettings)

    def __post_init__(self):
        self._local = threading.local()
        self._slots = _HostSlots(self.settings.max_connections_per_host, self.settings.slot_dir)

    def _open_lease(self, host: str) -> _Lease:
        token = self._slots.acquire(host)
        session = requests.Session()
        adapter = HTTPAdapter(pool_connections=1, pool_maxsize=1, max_retries=0)
        session.mount("http://", adapter)
        session.mount("https://", adapter)
        # Archive files are stored compressed already: ask for the bytes as they are.
        session.headers.update(
            {"User-Agent": self.settings.user_agent, "Accept-Encoding": "identity"}
        )
        return _Lease(host, token, session)

    def _close_lease(self, lease: _Lease) -> None:
        try:
            lease.session.close()  # closes the pooled connection
        finally:
            self._slots.release(lease.token)

    @contextlib.contextmanager
    def _connection(self, url: str) -> Iterator[requests.Session]:
        """A session for ``url`` within the host's connection limit."""
        host = urlsplit(url).netloc.lower()
        kept = getattr(self._local, "lease", None)
        if kept is not None and kept.host == host:
            yield kept.session
            return
        if getattr(self._local, "keep", False):
            self.release_connection()  # one slot per worker at a time: no waiting while holding
            self._local.lease = self._open_lease(host)
            yield self._local.lease.session
            return
        lease = self._open_lease(host)
        try:
            yield lease.session
        finally:
            self._close_lease(lease)

    def keep_connection(self) -> None:
        """Let the calling thread keep its slot and connection between requests (a worker)."""
        self._local.keep = True

    def release_connection(self) -> None:
        """Give back the slot and close the connection that the calling thread keeps, if any."""
        lease = getattr(self._local, "lease", None)
        self._local.lease = None
        if lease is not None:
            self._close_lease(lease)

    def _timeout(self) -> tuple[float, float]:
        return (self.settings.connect_timeout_s, self.settings.read_timeout_s)

    def _retrying(self, url: str, attempt: Callable[[], object]):
        """Run ``attempt`` until it returns, with exponential backoff between tries.

        Raises DownloadError naming the URL and the last fault when every try failed, or at once
        for an answer that a retry cannot change.
        """
        last_error = ""
        for number in range(1, self.settings.retries + 1):
            try:
                return attempt()
            except _PermanentHTTPError as error:
                raise DownloadError(f"{url}: {error} (not retried)") from error
            except _RETRYABLE as error:
                last_error = f"{type(error).__name__}: {error}"
                log.warning(
                    "try %d/%d of %s failed: %s", number, self.settings.retries, url, last_error
                )
            if number < self.settings.retries:
                delay = self.settings.backoff_s * 2 ** (number - 1)
                time.sleep(delay * random.uniform(1.0, 1.25))  # jitter spreads parallel retries
        raise DownloadError(
            f"{url}: still broken after {self.settings.retries} tries ({last_error})"
        )

    def fetch(
        self, url: str, destination: str | Path, check: Callable[[Path], None] | None = None
    ) -> ManifestRow:
        """Fetch ``url`` to ``destination`` unless a verified copy is there already.

        Returns a manifest row: status ``present``/``downloaded``, or ``missing`` for a 404 (a gap in
        the archive, not an error). Raises :class:`DownloadError` naming the URL when the file stays
        broken after the retries; no partial file is left at ``destination``.
        """
        destination = Path(destination)
        _remove_stale_parts(destination)
        if destination.exists():
            try:
                if check:
                    check(destination)
                return self._row(url, destination, "present")
            except VerificationError as error:
                log.warning("%s fails its check (%s); fetching it again", destination, error)
        destination.parent.mkdir(parents=True, exist_ok=True)

        def attempt() -> ManifestRow:
            tmp = destination.with_name(f".{destination.name}.part-{uuid.uuid4().hex[:8]}")
            try:
                if not self._transfer(url, tmp):
                    return ManifestRow(
                        url=url,
                        path=str(destination),
                        status="missing",
                        detail="not in the archive",
                    )
                if check:
                    check(tmp)
                os.replace(tmp, destination)
                return self._row(url, destination, "downloaded")
            finally:
                with contextlib.suppress(FileNotFoundError):
                    tmp.unlink()

        return self._retrying(url, attempt)

    def _row(self, url: str, path: Path, status: str) -> ManifestRow:
        return ManifestRow(
            url=url,
            path=str(path),
            bytes=path.stat().st_size,
            sha256=sha256_of(path),
            status=status,
        )

    def _get(self, session, url: str, stream: bool) -> requests.Response | None:
        """GET ``url``; None for a gap. Raises for answers that are errors (retryable or not)."""
        response = session.get(url, stream=stream, timeout=self._timeout())
        code = response.status_code
        if code in GAP_STATUS:
            response.close()
            return None
        if code >= 500 or code in RETRY_STATUS:
            response.close()
            raise requests.HTTPError(f"HTTP {code} {response.reason}", response=response)
        if code >= 400:
            response.close()
            raise _PermanentHTTPError(f"HTTP {code} {response.reason}")
        return response

    def _transfer(self, url: str, tmp: Path) -> bool:
        """Copy the body of ``url`` to ``tmp``; False when the archive does not have it."""
        if urlsplit(url).scheme == "file":
            source = Path(unquote(local_path_of_file_url(url)))
            if not source.exists():
                return False
            shutil.copyfile(source, tmp)
            return True
        with self._connection(url) as session:
            response = self._get(session, url, stream=True)
            if response is None:
                return False
            with response:
                expected = response.headers.get("Content-Length")
                encoding = response.headers.get("Content-Encoding", "identity").strip().lower()
                received = 0
                with open(tmp, "wb") as handle:
                    # The raw stream: the bytes as served, whatever Content-Encoding claims.
                    for block in response.raw.stream(1 << 16, decode_content=False):
                        handle.write(block)
                        received += len(block)
        if expected is not None and received != int(expected):
            raise VerificationError(f"received {received} bytes, Content-Length {expected}")
        _undo_content_encoding(url, tmp, encoding)
        return True

    def list_folder(self, url: str) -> list[str]:
        """Names in a remote folder (an HTML index page, or a local folder for ``file:`` URLs).

        A missing folder lists nothing. Listings are retried like files. They are untrusted: names
        with a path separator, ``..``, an absolute path or control characters are refused, so a
        hostile or broken index can never make a later write land outside the dataset folder.
        """
        if urlsplit(url).scheme == "file":
            folder = Path(unquote(local_path_of_file_url(url)))
            if not folder.is_dir():
                return []
            names = [p.name + ("/" if p.is_dir() else "") for p in folder.iterdir()]
        else:

            def attempt() -> str | None:
                with self._connection(url) as session:
                    response = self._get(session, url, stream=False)
                    return None if response is None else response.text

            text = self._retrying(url, attempt)
            if text is None:
                return []
            names = [unquote(h) for h in re.findall(r'href="([^"?#]+)"', text)]
        refused = sorted({n for n in names if not is_safe_name(n)} - {"../", "./"})
        if refused:
            log.warning("%s: refused unsafe names in the listing: %s", url, refused)
        return sorted({name for name in names if is_safe_name(name)})


def _undo_content_encoding(url: str, tmp: Path, encoding: str) -> None:
    """Keep the archive's bytes: a ``.gz`` served as ``Content-Encoding: gzip`` *is* the file
    (Apache's AddEncoding does that); any other content-coding is a transport wrapper to remove."""
    if encoding in ("", "identity"):
        return
    if encoding in ("gzip", "x-gzip"):
        if urlsplit(url).path.endswith(".gz"):
            return
        try:
            data = gzip.decompress(tmp.read_bytes())
        except (OSError, EOFError, zlib.error) as error:
            raise VerificationError(f"broken gzip content-coding: {error}") from error
        tmp.write_bytes(data)
        return
    raise VerificationError(f"unsupported Content-Encoding {encoding!r}")


def _remove_stale_parts(destination: Path) -> None:
    """Delete temporary files that a killed earlier run left next to ``destination``."""
    if destination.parent.is_dir():
        for stale in destination.parent.glob(f".{glob.escape(destination.name)}.part-*"):
            with contextlib.suppress(FileNotFoundError):
                stale.unlink()


def is_safe_name(name: str) -> bool:
    """True for a plain file or folder name (optionally with one trailing slash)."""
    bare = name[:-1] if name.endswith("/") else name
    if not bare or bare in (".", "..") or "/" in bare or "\\" in bare:
        return False
    if any(ord(char) < 32 or ord(char) == 127 for char in bare):
        return False
    return not PurePosixPath(bare).is_absolute()


def fetch_all(
    fetcher: Fetcher,
    jobs: list[tuple[str, Path, Callable[[Path], None] | None]],
    threads: int,
    progress: Callable[[int], object] | None = None,
) -> list[ManifestRow]:
    """Fetch many (url, destination, check) jobs in parallel; manifest rows in job order.

    At most ``threads`` workers, and no more than the per-host connection limit; each keeps one
    connection for as long as it works. The first file that stays broken raises its DownloadError
    once the files already under way are finished (no new file is started after it).
    ``progress`` (optional) is called with 1 as each file is done (from the worker threads).
    """
    workers = max(1, min(threads, fetcher.settings.max_connections_per_host, len(jobs)))
    pending = queue.SimpleQueue()
    for index, job in enumerate(jobs):
        pending.put((index, job))
    rows: list[ManifestRow | None] = [None] * len(jobs)
    errors: list[BaseException] = []

    def work() -> None:
        fetcher.keep_connection()
        try:
            while not errors:
                try:
                    index, job = pending.get_nowait()
                except queue.Empty:
                    return
                rows[index] = fetcher.fetch(*job)
                if progress is not None:
                    progress(1)
        except BaseException as error:  # handed to the caller below
            errors.append(error)
        finally:
            fetcher.release_connection()

    pool = [threading.Thread(target=work, daemon=True) for _ in range(workers)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    if errors:
        raise errors[0]
    return rows
