"""Fetch archive files safely: retries with backoff, atomic writes, verification, gaps, manifests.

HTTP goes through ``requests`` (connection pooling, timeouts) rather than hand-written sockets.
``file:`` URLs (local mirrors, the demo) take the same path through verification and atomic
placement, so the demo exercises the code that real downloads use.

Every file is written to a temporary name in its destination folder, checked (byte count against
Content-Length, gzip integrity, a format check), and only then renamed into place: an interrupted run
never leaves a partial file under the final name, and a rerun skips files that are present and
verify. What is retried, with exponential backoff and a bounded number of tries: connection errors
and resets, time-outs (a transfer that stalls for longer than ``read_timeout_s``), 5xx, 408 and 429
answers, bodies shorter than their Content-Length or longer than ``max_file_mb``, malformed headers
(a Content-Length that is not a number, a redirect without a Location), directory listings that
hold no recognisable file index (an error or maintenance page answered with 200), and files that
fail their check. A 404 or 410 is a gap in the archive, not an error. Any other 4xx answer (403,
401, ...), a file that declares more than ``max_file_mb``, and a redirect to a host that
``redirect_hosts`` does not name fail at once: asking again would not change them.

A file that stays broken raises :class:`DownloadError` naming the URL and the fault. When what the
archive served is partly readable (a PGM file cut short after complete frames, the ISMR rows before
a damaged gzip block: its format check says so), those bytes are kept apart, in a ``salvaged/``
folder beside where the file belongs, and the error names that path; :func:`fetch_all` with
``skip_failures`` turns the error into a manifest row of status ``failed``.

Directory listings are parsed with an HTML parser (any quoting, case, relative or absolute links,
query strings and fragments) and are untrusted: only links to direct children of the folder count,
and names with a path separator, ``..`` or control characters are refused.

Politeness: every request carries an identifying User-Agent, and at most
``max_connections_per_host`` connections to one host are open at a time, counted across threads *and*
processes (parallel Snakemake jobs) through lock files in ``slot_dir`` (the workflow keeps them in
the project, under ``.snakemake/connection-slots/``).
"""

from __future__ import annotations

import contextlib
import glob
import gzip
import hashlib
import http.client
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
from html.parser import HTMLParser
from pathlib import Path, PurePosixPath
from urllib.parse import unquote, urljoin, urlsplit

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
#: Redirect answers; they are followed by hand, so that every hop's host is checked.
REDIRECT_STATUS = frozenset({301, 302, 303, 307, 308})
MAX_REDIRECTS = 10
#: The folder, beside where a file belongs, that keeps what could be read of a broken one.
SALVAGED_FOLDER = "salvaged"
MB = 1 << 20


class DownloadError(RuntimeError):
    """A file or listing that stayed broken after all retries, or an answer that retrying cannot
    change; the message names the URL and the fault.

    Attributes:
        url: the URL asked for.
        reason: the fault (without the URL).
        salvaged: where the readable part of what the archive served was kept, or None.
    """

    def __init__(self, url: str, reason: str, salvaged: Path | None = None):
        self.url = url
        self.reason = reason
        self.salvaged = salvaged
        super().__init__(f"{url}: {reason}")


class _PermanentHTTPError(Exception):
    """An answer that retrying cannot change (403, 401, 400, a refused redirect, a file that
    declares more bytes than allowed)."""


class TransferFault(Exception):
    """One try that went wrong in a way worth another try: a malformed header, a body past its
    size limit, a listing without a file index."""


class ListingFault(TransferFault):
    """A 200 answer to a folder URL with no recognisable file index (an error or maintenance
    page, an empty body)."""


# Everything that may go wrong in one try and is worth another: requests' own errors (which are
# OSErrors), urllib3's when the raw stream is read, http.client's for malformed answers, local I/O,
# failed checks and the faults above.
_RETRYABLE = (
    requests.RequestException,
    urllib3.exceptions.HTTPError,
    http.client.HTTPException,
    VerificationError,
    TransferFault,
    OSError,
    # What a parser raises on a malformed answer (a Location that is no URL, a header value
    # that is no number): a fault of that answer, named with its URL like any other.
    ValueError,
    LookupError,
)


@dataclass
class DownloadSettings:
    """Politeness and robustness of downloads (config key ``download``).

    ``slot_dir`` holds one lock file per allowed connection and host; every process that uses the
    same folder shares the per-host limit. The workflow passes the project's
    ``.snakemake/connection-slots``; None (library use): a folder under the system's temporary
    directory. ``max_file_mb`` and ``max_listing_mb`` bound what one answer may bring (MB of 2**20
    bytes); ``redirect_hosts`` names the hosts (``host`` or ``host:port``) that a redirect may lead
    to besides the one asked.
    """

    retries: int = 5
    backoff_s: float = 1.0
    connect_timeout_s: float = 20.0
    read_timeout_s: float = 60.0
    max_connections_per_host: int = 4
    user_agent: str = USER_AGENT
    slot_dir: str | None = None
    max_file_mb: float = 1024.0
    max_listing_mb: float = 16.0
    redirect_hosts: list[str] | tuple[str, ...] = ()


#: Where the workflow keeps the per-host connection slots: inside the project, shared by all its
#: jobs (Snakemake runs every job in the project's folder).
PROJECT_SLOT_DIR = ".snakemake/connection-slots"


def workflow_settings(download: dict) -> DownloadSettings:
    """The settings of a workflow job from the config's ``download`` section."""
    return DownloadSettings(**download, slot_dir=PROJECT_SLOT_DIR)


def sha256_of(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def salvaged_path(destination: str | Path) -> Path:
    """Where the readable part of a broken ``destination`` is kept: ``salvaged/<name>`` beside it
    (the name unchanged, so readers still find its time and format in it)."""
    destination = Path(destination)
    return destination.parent / SALVAGED_FOLDER / destination.name


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
        # One set of lock files per host name, whatever the port: they stay few, and politeness
        # is owed to the machine.
        name = urlsplit(f"//{host}").hostname or host
        stem = re.sub(r"[^A-Za-z0-9.-]", "_", name) or "local"
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


# --- listings -------------------------------------------------------------------------------------


class _Links(HTMLParser):
    """The links of an HTML page (``<a href>``, ``<base href>``) and its title and headings."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.hrefs: list[str] = []
        self.base: str | None = None
        self.heading = ""
        self._in_heading = False

    def handle_starttag(self, tag, attrs):
        values = {name: value for name, value in attrs if value is not None}
        if tag == "a" and "href" in values:
            self.hrefs.append(values["href"].strip())
        elif tag == "base" and "href" in values and self.base is None:
            self.base = values["href"].strip()
        elif tag in ("title", "h1", "h2"):
            self._in_heading = True

    def handle_endtag(self, tag):
        if tag in ("title", "h1", "h2"):
            self._in_heading = False

    def handle_data(self, data):
        if self._in_heading:
            self.heading += " " + data


_INDEX_HEADING = re.compile(r"index of|directory listing|listing of|contents of", re.I)
_INDEX_OF = re.compile(r"(?:index of|directory listing for)\s+(/\S*)", re.I)


def parse_listing(page: str, url: str) -> list[str]:
    """The entries of the folder ``url`` in its HTML index ``page``: names, folders ending in ``/``.

    Links are resolved against the page's URL (or its ``<base>``), query strings and fragments
    dropped; a link counts only if it leads to a direct child of the folder (sorting links, the
    parent, other folders and other hosts do not). Child names are URL-decoded and refused (with a
    warning) when they hold a path separator, ``..`` or control characters.

    The page must be recognisable as an index: it links to the folder's parent, or its title or
    heading says so ("Index of", "Directory listing"), or every link it has stays within the folder.
    Otherwise (an error or maintenance page, an empty body) :class:`ListingFault`, which the fetcher
    retries and then reports naming the URL.
    """
    parser = _Links()
    try:
        parser.feed(page)
        parser.close()
    except (ValueError, AssertionError) as error:  # pragma: no cover - the parser is lenient
        raise ListingFault(f"listing is not HTML ({error})") from error
    base = urljoin(url, parser.base) if parser.base else url
    folder = urlsplit(url)
    folder_raw = folder.path if folder.path.endswith("/") else folder.path + "/"
    folder_path = unquote(folder_raw)
    depth = len(folder_raw.rstrip("/").split("/"))
    parent_path = folder_path.rstrip("/").rsplit("/", 1)[0] + "/"
    names: list[str] = []
    parent = outside = False
    for href in parser.hrefs:
        if not href or href.startswith("#"):
            continue
        try:
            target = urlsplit(urljoin(base, href))
        except ValueError:  # a link that is no URL (e.g. a broken IPv6 host) is no child
            outside = True
            continue
        # The same host is the same archive whichever scheme or port a link names (an index
        # served over http behind a proxy often links to https).
        if (
            target.scheme not in ("http", "https", folder.scheme)
            or (target.hostname or "").lower() != (folder.hostname or "").lower()
        ):
            outside = True
            continue
        decoded = unquote(target.path)
        if decoded in (folder_path, folder_path.rstrip("/")):
            continue  # the folder itself (sorting links such as ?C=N;O=D)
        if decoded == parent_path:
            parent = True
            continue
        # A child is one more segment of the raw path: an encoded "/" inside a name stays in the
        # name (and gets it refused), it does not make the link go deeper.
        segments = target.path.rstrip("/").split("/")
        if len(segments) == depth + 1 and unquote("/".join(segments[:-1]) + "/") == folder_path:
            names.append(unquote(segments[-1]) + ("/" if target.path.endswith("/") else ""))
        elif not decoded.startswith(folder_path):
            outside = True
    children = [name for name in names if name.rstrip("/")]
    recognised = parent or bool(_INDEX_HEADING.search(parser.heading))
    if not recognised and children and not outside:
        recognised = True
    heading = " ".join(parser.heading.split())
    if not recognised:
        raise ListingFault(
            "no recognisable file index in the listing"
            + (f" (page titled {heading[:80]!r})" if heading else "")
        )
    if not children and outside:
        # An empty folder's index links to its parent and itself at most: links only elsewhere
        # are another page's, or entries this parser cannot place; either way not "no files".
        raise ListingFault("the listing links elsewhere but to no entry of this folder")
    # An index that names its folder must name this one (not, say, a parent's index served for
    # every path by a misconfigured proxy).
    named = _INDEX_OF.search(heading)
    if named:
        shown = unquote(named.group(1)).rstrip("/").rsplit("/", 1)[-1]
        own = folder_path.rstrip("/").rsplit("/", 1)[-1]
        if shown != own:
            raise ListingFault(f"the listing is of another folder ({named.group(0)!r})")
    refused = sorted({n for n in children if not is_safe_name(n)})
    if refused:
        log.warning("%s: refused unsafe names in the listing: %s", url, refused)
    return sorted({name for name in children if is_safe_name(name)})


# --- fetching -------------------------------------------------------------------------------------


@dataclass
class Fetcher:
    """Downloads files over HTTP(S) or from ``file:`` mirrors with retries and verification.

    A request takes one of the host's connection slots for its own duration; a worker of
    :func:`fetch_all` keeps its slot, and the one keep-alive connection that goes with it, until
    it has no work left, so neither requests in flight nor open connections to a host ever exceed
    ``max_connections_per_host``.

    ``skip_failures`` (``on_bad_input: skip``): :func:`fetch_all` records a file that stays broken
    as a ``failed`` manifest row and goes on; otherwise the first such file stops it.
    """

    settings: DownloadSettings = field(default_factory=DownloadSettings)
    skip_failures: bool = False

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
                raise DownloadError(url, f"{error} (not retried)") from error
            except _RETRYABLE as error:
                last_error = f"{type(error).__name__}: {error}"
                log.warning(
                    "try %d/%d of %s failed: %s", number, self.settings.retries, url, last_error
                )
            if number < self.settings.retries:
                delay = self.settings.backoff_s * 2 ** (number - 1)
                time.sleep(delay * random.uniform(1.0, 1.25))  # jitter spreads parallel retries
        raise DownloadError(url, f"still broken after {self.settings.retries} tries ({last_error})")

    def fetch(
        self, url: str, destination: str | Path, check: Callable[[Path], None] | None = None
    ) -> ManifestRow:
        """Fetch ``url`` to ``destination`` unless a verified copy is there already.

        Returns a manifest row: status ``present``/``downloaded`` (with the final URL the bytes
        came from, after redirects), or ``missing`` for a 404 (a gap in the archive, not an error).
        Raises :class:`DownloadError` naming the URL when the file stays broken after the retries;
        no partial file is left at ``destination``. With ``skip_failures``, if the check found
        what the archive served partly readable, those bytes are kept at :func:`salvaged_path`
        and the error names it.
        """
        destination = Path(destination)
        salvage = salvaged_path(destination)
        _remove_stale_parts(destination)
        if destination.exists():
            try:
                if check:
                    check(destination)
                _discard(salvage)
                return self._row(url, destination, "present")
            except VerificationError as error:
                log.warning("%s fails its check (%s); fetching it again", destination, error)
        destination.parent.mkdir(parents=True, exist_ok=True)
        # The last try whose bytes failed their check but are partly readable.
        candidate = destination.with_name(f".part-salvage{uuid.uuid4().hex[:8]}-{destination.name}")
        kept = {"reason": None}

        def attempt() -> ManifestRow:
            # The name ends as the file's does, so that format checks see its suffix and time.
            tmp = destination.with_name(f".part-{uuid.uuid4().hex[:8]}-{destination.name}")
            try:
                found, final_url = self._transfer(url, tmp)
                if not found:
                    return ManifestRow(
                        url=url,
                        path="",
                        status="missing",
                        detail="not in the archive",
                        final_url=final_url if final_url != url else "",
                    )
                if check:
                    try:
                        check(tmp)
                    except VerificationError as error:
                        if error.salvageable and self.skip_failures:
                            os.replace(tmp, candidate)
                            kept["reason"] = str(error)
                        raise
                os.replace(tmp, destination)
                return self._row(url, destination, "downloaded", final_url)
            finally:
                with contextlib.suppress(FileNotFoundError):
                    tmp.unlink()

        try:
            row = self._retrying(url, attempt)
        except DownloadError as error:
            if kept["reason"] and candidate.exists():
                salvage.parent.mkdir(parents=True, exist_ok=True)
                os.replace(candidate, salvage)
                error.salvaged = salvage
                error.reason += f"; the readable part is kept at {salvage} ({kept['reason']})"
            raise
        finally:
            _discard(candidate)
        if row.status == "downloaded":
            _discard(salvage)
        return row

    def _row(self, url: str, path: Path, status: str, final_url: str = "") -> ManifestRow:
        return ManifestRow(
            url=url,
            path=str(path),
            bytes=path.stat().st_size,
            sha256=sha256_of(path),
            status=status,
            final_url=final_url,
        )

    def _open(self, session, url: str) -> tuple[requests.Response | None, str]:
        """GET ``url``, following redirects to allowed hosts; (response, final URL), the response
        None for a gap. Raises for answers that are errors (retryable or not)."""
        current = url
        origin = urlsplit(url).hostname
        for _ in range(MAX_REDIRECTS + 1):
            response = session.get(
                current, stream=True, timeout=self._timeout(), allow_redirects=False
            )
            code = response.status_code
            if code in REDIRECT_STATUS:
                location = response.headers.get("Location")
                response.close()
                if not location:
                    raise TransferFault(f"HTTP {code} redirect without a Location header")
                try:
                    target = urljoin(current, location.strip())
                    urlsplit(target).port  # noqa: B018 - parses the port, raising if it is none
                except ValueError:
                    raise TransferFault(
                        f"HTTP {code} redirect to a malformed Location {location!r}"
                    ) from None
                self._check_redirect(origin, current, target)
                current = target
                continue
            if code in GAP_STATUS:
                response.close()
                return None, current
            if code >= 500 or code in RETRY_STATUS:
                response.close()
                raise requests.HTTPError(f"HTTP {code} {response.reason}", response=response)
            if code >= 300:
                response.close()
                raise _PermanentHTTPError(f"HTTP {code} {response.reason}")
            return response, current
        raise _PermanentHTTPError(f"more than {MAX_REDIRECTS} redirects")

    def _check_redirect(self, origin: str | None, current: str, target: str) -> None:
        parts = urlsplit(target)
        if parts.scheme not in ("http", "https"):
            raise _PermanentHTTPError(f"redirected from {current} to {target}: not an http(s) URL")
        host = parts.hostname
        allowed = {entry.lower() for entry in self.settings.redirect_hosts}
        if host != origin and host not in allowed and parts.netloc.lower() not in allowed:
            raise _PermanentHTTPError(
                f"redirected from {current} to another host, {target}; "
                f"download.redirect_hosts does not allow {host}"
            )

    def _transfer(self, url: str, tmp: Path) -> tuple[bool, str]:
        """Copy the body of ``url`` to ``tmp``; (False, URL) when the archive does not have it,
        else (True, the final URL after redirects)."""
        limit = int(self.settings.max_file_mb * MB)
        if urlsplit(url).scheme == "file":
            source = Path(unquote(local_path_of_file_url(url)))
            if not source.is_file():
                return False, url
            if source.stat().st_size > limit:
                raise _PermanentHTTPError(_too_large(source.stat().st_size, limit, "max_file_mb"))
            shutil.copyfile(source, tmp)
            return True, url
        with self._connection(url) as session:
            response, final_url = self._open(session, url)
            if response is None:
                return False, final_url
            with response:
                expected = _content_length(response)
                if expected is not None and expected > limit:
                    raise _PermanentHTTPError(_too_large(expected, limit, "max_file_mb"))
                encoding = response.headers.get("Content-Encoding", "identity").strip().lower()
                received = 0
                with open(tmp, "wb") as handle:
                    # The raw stream: the bytes as served, whatever Content-Encoding claims.
                    for block in response.raw.stream(1 << 16, decode_content=False):
                        received += len(block)
                        if received > limit:
                            raise TransferFault(
                                f"body runs past download.max_file_mb ({limit} bytes); cut off"
                            )
                        handle.write(block)
        if expected is not None and received != expected:
            raise VerificationError(f"received {received} bytes, Content-Length {expected}")
        _undo_content_encoding(url, tmp, encoding)
        return True, final_url

    def read_listing(self, url: str) -> list[str] | None:
        """Names in a remote folder (its HTML index page, or a local folder for ``file:`` URLs),
        folders with a trailing ``/``; None when the archive says the folder is not there (404).

        A 200 answer that holds no recognisable index is a fault: retried like a broken file, then
        :class:`DownloadError` naming the URL. See :func:`parse_listing` for what counts.
        """
        if urlsplit(url).scheme == "file":
            folder = Path(unquote(local_path_of_file_url(url)))
            if not folder.is_dir():
                return None
            names = [p.name + ("/" if p.is_dir() else "") for p in folder.iterdir()]
            return sorted(name for name in names if is_safe_name(name))
        limit = int(self.settings.max_listing_mb * MB)

        def attempt() -> list[str] | None:
            with self._connection(url) as session:
                response, final_url = self._open(session, url)
                if response is None:
                    return None
                with response:
                    expected = _content_length(response)
                    if expected is not None and expected > limit:
                        raise TransferFault(_too_large(expected, limit, "max_listing_mb"))
                    body = bytearray()
                    for block in response.raw.stream(1 << 16, decode_content=True):
                        body += block
                        if len(body) > limit:
                            raise TransferFault(_too_large(len(body), limit, "max_listing_mb"))
                    received = response.raw.tell()  # bytes as served, before any decoding
                    if expected is not None and received != expected:
                        raise TransferFault(
                            f"listing of {received} bytes, Content-Length {expected}"
                        )
                    text = _text(bytes(body), response.encoding)
            return parse_listing(text, final_url)

        return self._retrying(url, attempt)

    def list_folder(self, url: str) -> list[str]:
        """:meth:`read_listing`, with a folder that is not there listing nothing."""
        return self.read_listing(url) or []


def _text(body: bytes, charset: str | None) -> str:
    """A listing's text in the charset its Content-Type names, UTF-8 when it names none or one
    that does not exist (an index page's file names are ASCII in any case)."""
    try:
        return body.decode(charset or "utf-8", errors="replace")
    except LookupError:
        return body.decode("utf-8", errors="replace")


def _too_large(size: int, limit: int, key: str) -> str:
    return f"{size} bytes exceed download.{key} ({limit} bytes)"


def _content_length(response) -> int | None:
    """The Content-Length of ``response`` as a number (None when absent); TransferFault when it
    is not one (or several that disagree)."""
    value = response.headers.get("Content-Length")
    if value is None:
        return None
    values = {part.strip() for part in value.split(",")}
    if len(values) != 1 or not next(iter(values)).isdigit():
        raise TransferFault(f"malformed Content-Length header {value!r}")
    return int(values.pop())


def _discard(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


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
    """Delete temporary files that a killed earlier run left next to ``destination`` (named
    ``.part-<id>-<name>``; ``.<name>.part-<id>`` by earlier versions)."""
    if destination.parent.is_dir():
        name = glob.escape(destination.name)
        for pattern in (f".part-*-{name}", f".{name}.part-*"):
            for stale in destination.parent.glob(pattern):
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


def failed_row(error: DownloadError, destination: str | Path | None = None) -> ManifestRow:
    """The manifest row of a file (or listing) that stayed broken: status ``failed``, the fault
    as its detail, and the path, size and checksum of what was salvaged (if anything)."""
    if error.salvaged is not None and Path(error.salvaged).is_file():
        path = Path(error.salvaged)
        return ManifestRow(
            url=error.url,
            path=str(path),
            bytes=path.stat().st_size,
            sha256=sha256_of(path),
            status="failed",
            detail=error.reason,
        )
    return ManifestRow(url=error.url, path="", status="failed", detail=error.reason)


def fetch_all(
    fetcher: Fetcher,
    jobs: list[tuple[str, Path, Callable[[Path], None] | None]],
    threads: int,
    progress: Callable[[int], object] | None = None,
) -> list[ManifestRow]:
    """Fetch many (url, destination, check) jobs in parallel; manifest rows in job order.

    At most ``threads`` workers, and no more than the per-host connection limit; each keeps one
    connection for as long as it works. A file that stays broken becomes a ``failed`` row when
    ``fetcher.skip_failures``; otherwise the first one raises its DownloadError once the files
    already under way are finished (no new file is started after it). ``progress`` (optional)
    is called with 1 as each file is done or failed (from the worker threads).
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
                try:
                    rows[index] = fetcher.fetch(*job)
                except DownloadError as error:
                    if not fetcher.skip_failures:
                        raise
                    log.error("failed, recorded and skipped: %s", error)
                    rows[index] = failed_row(error)
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
