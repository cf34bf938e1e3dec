"""A real HTTP server on 127.0.0.1 that serves a folder in an archive's layout, and misbehaves on cue.

Faults are set per path: ``server.faults["/a/b.cdf"] = ["500", "ok"]`` answers 500 once, then serves
the file. Kinds:

* ``ok``: the file, whole;
* ``404``, ``403``, ``500``, ``503``: that status;
* ``reset``: send half the body, then reset the connection (TCP RST);
* ``short``: send half the body, then close the connection cleanly (the body is shorter than its
  Content-Length);
* ``stall``: send half the body, then go quiet for ``stall_s`` seconds (longer than the client's
  read timeout);
* ``hang``: go quiet for ``stall_s`` seconds before any answer;
* ``truncate``: serve the first half of the file with a Content-Length that matches it (a file cut
  short on the server: only a format check can notice);
* ``corrupt``: serve the file with 64 bytes in its middle zeroed (length unchanged);
* ``maintenance``: a 200 HTML page saying the service is down (for a folder or a file);
* ``endless``: a 200 without Content-Length whose body never ends (until the client hangs up);
* ``huge``: a Content-Length of 10 GB, then a few bytes;
* ``badlength``: a non-numeric Content-Length, then the file;
* ``redirect:<url>``: a 302 to ``<url>`` (relative to the server when it starts with ``/``);
* ``charset:<name>``: the answer (file or index page) with ``Content-Type: text/html;
  charset=<name>``.

Folder URLs answer an index page in the style ``server.listing_style`` names (``apache``,
``nginx``, ``quirky``: single-quoted upper-case links, absolute paths and query strings, ``bare``:
links and nothing else); ``server.listing_extra`` adds (hostile) names to every listing, exactly
as given (URL-encoded tricks included). ``delay_s`` slows every file answer (to land
a kill mid-run). The server counts requests and complete file bodies per path, and records the
User-Agents seen, the most requests in flight at once and the client ports (one per connection).
"""

from __future__ import annotations

import contextlib
import html
import http.server
import socket
import struct
import threading
import time
from collections import defaultdict
from pathlib import Path
from urllib.parse import quote, unquote


class MirrorServer:
    def __init__(
        self,
        root: Path,
        stall_s: float = 3.0,
        delay_s: float = 0.0,
        gzip_encoding: bool = False,
    ):
        self.root = Path(root)
        self.stall_s = stall_s
        self.delay_s = delay_s
        # Apache's `AddEncoding x-gzip .gz`: .gz files go out with Content-Encoding: gzip.
        self.gzip_encoding = gzip_encoding
        self.faults: dict[str, list[str]] = {}
        self.requests: dict[str, int] = defaultdict(int)
        self.completed: dict[str, int] = defaultdict(int)
        self.user_agents: set[str] = set()
        self.listing_extra: list[str] = []
        self.listing_style = "apache"
        self.in_flight = 0
        self.in_flight_max = 0
        self.client_ports: set[int] = set()
        self._lock = threading.Lock()
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # keep test output clean
                pass

            def do_GET(self):
                with server._lock:
                    server.in_flight += 1
                    server.in_flight_max = max(server.in_flight_max, server.in_flight)
                    server.client_ports.add(self.client_address[1])
                try:
                    self._answer()
                finally:
                    with server._lock:
                        server.in_flight -= 1

            def _answer(self):
                path = unquote(self.path.split("?")[0])
                with server._lock:
                    server.requests[path] += 1
                    server.user_agents.add(self.headers.get("User-Agent", ""))
                    plan = server.faults.get(path)
                    fault = plan.pop(0) if plan else "ok"
                target = server.root / path.lstrip("/")
                if fault == "hang":
                    time.sleep(server.stall_s)
                    self.close_connection = True
                    return
                if fault == "maintenance":
                    page = (
                        "<html><head><title>Service unavailable</title></head><body>"
                        "<h1>Down for maintenance</h1><p>Back soon. "
                        '<a href="https://status.example.org/">Status</a></p></body></html>'
                    )
                    return self._send(200, page.encode(), "text/html")
                if fault.startswith("redirect:"):
                    location = fault.split(":", 1)[1]
                    self.send_response(302)
                    self.send_header("Location", location)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                if fault in ("endless", "huge", "badlength"):
                    return self._misbehave(fault, target)
                if fault in ("403", "404", "500", "503") or not target.exists():
                    code = int(fault) if fault.isdigit() else 404
                    return self._send(code, f"HTTP {code}".encode(), "text/plain")
                kind = "text/html"
                if fault.startswith("charset:"):
                    kind = f"text/html; charset={fault.split(':', 1)[1]}"
                    fault = "ok"
                if target.is_dir():
                    return self._send(200, server.index_page(target, path).encode(), kind)
                if kind != "text/html":
                    return self._send(200, target.read_bytes(), kind)
                if server.delay_s:
                    time.sleep(server.delay_s)
                body = target.read_bytes()
                if fault == "corrupt":
                    middle = len(body) // 2
                    body = body[:middle] + bytes(64) + body[middle + 64 :]
                if fault in ("ok", "corrupt"):
                    self._send(200, body)
                    with server._lock:
                        server.completed[path] += 1
                    return
                if fault == "truncate":
                    return self._send(200, body[: len(body) // 2])
                self.send_response(200)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body[: len(body) // 2])
                self.wfile.flush()
                if fault == "stall":
                    time.sleep(server.stall_s)
                elif fault == "reset":  # SO_LINGER 0: close() sends RST instead of FIN
                    self.connection.setsockopt(
                        socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
                    )
                self.close_connection = True

            def _misbehave(self, fault, target):
                self.send_response(200)
                self.send_header("Content-Type", "application/octet-stream")
                self.close_connection = True
                if fault == "huge":
                    self.send_header("Content-Length", str(10 * 2**30))
                elif fault == "badlength":
                    self.send_header("Content-Length", "twelve")
                self.end_headers()
                if fault == "endless":
                    block = bytes(1 << 16)
                    try:
                        while True:
                            self.wfile.write(block)
                    except OSError:  # the client hung up
                        return
                body = target.read_bytes() if target.is_file() else b""
                with contextlib.suppress(OSError):
                    self.wfile.write(body if fault == "badlength" else body[:1000])

            def _send(self, code, body, kind="application/octet-stream"):
                self.send_response(code)
                self.send_header("Content-Type", kind)
                if server.gzip_encoding and self.path.endswith(".gz") and code == 200:
                    self.send_header("Content-Encoding", "gzip")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def index_page(self, folder: Path, path: str) -> str:
        """An index page of ``folder`` in ``self.listing_style``."""
        names = [p.name + ("/" if p.is_dir() else "") for p in sorted(folder.iterdir())]
        if self.listing_style == "nginx":  # nginx autoindex
            links = "".join(
                f'<a href="{quote(n)}">{html.escape(n)}</a>   1-Jan-2015\n' for n in names
            )
            return (
                f"<html>\n<head><title>Index of {path}</title></head>\n<body>\n"
                f'<h1>Index of {path}</h1><hr><pre><a href="../">../</a>\n{links}</pre><hr>'
                "</body>\n</html>\n"
            )
        if self.listing_style == "quirky":  # single quotes, upper case, absolute, query strings
            links = "".join(
                f"<TR><TD><A HREF='{quote(path + n)}?download=1#top'>{html.escape(n)}</A></TD></TR>"
                for n in names
            )
            return f"<HTML><BODY><TABLE>{links}</TABLE></BODY></HTML>"
        if self.listing_style == "bare":  # links and nothing else
            return "".join(f"<a href={quote(n)}>{html.escape(n)}</a><br>" for n in names)
        # Apache: sort links, a parent link, one relative link per entry. Real entries are
        # URL-quoted, as Apache does; the hostile extras go out exactly as given.
        hrefs = [quote(n) for n in names] + self.listing_extra
        links = "\n".join(
            f'<tr><td><a href="{html.escape(href)}">{html.escape(unquote(href))}</a></td></tr>'
            for href in hrefs
        )
        return (
            f"<html><head><title>Index of {html.escape(path)}</title></head><body>\n"
            f"<h1>Index of {html.escape(path)}</h1><table>\n"
            '<tr><th><a href="?C=N;O=D">Name</a></th><th><a href="?C=M;O=A">Last modified</a>'
            "</th></tr>\n"
            f'<tr><td><a href="../">Parent Directory</a></td></tr>\n{links}\n</table></body></html>'
        )

    def file_requests(self) -> dict[str, int]:
        """Requests per file path (folders and their listings left out)."""
        return {p: n for p, n in self.requests.items() if not p.endswith("/")}

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


# --- small files in the real formats, for mirrors built by the tests ------------------------------


def pgm_minute(minute, site: str = "fsim", imager: str = "themis07", frames: int = 2) -> bytes:
    """One UCalgary stream0 minute (uncompressed): ``frames`` PGM frames of 256 x 256 big-endian
    uint16, each with ``#"Key" value`` comment lines and its ``"Image request start"`` time."""
    import numpy as np

    out = []
    for k in range(frames):
        when = minute.replace(second=3 * k, microsecond=63119)
        header = (
            f'P5\n#"Site unique ID" {site}\n#"Imager unique ID" {imager}\n'
            f'#"Image request start" {when:%Y-%m-%d %H:%M:%S.%f} UTC\n'
            f'#"Exposure options" 1000 msec\n256 256\n65535\n'
        )
        pixels = (np.arange(256 * 256, dtype=np.uint32) * (k + 7) + minute.minute) % 4096 + 3000
        out.append(header.encode() + pixels.astype(">u2").tobytes())
    return b"".join(out)


def idl_save(variables: dict[str, int]) -> bytes:
    """A minimal, valid IDL save file holding 32-bit integer scalars (scipy.io.readsav reads it)."""

    def record(kind: int, payload: bytes, start: int) -> bytes:
        following = start + 16 + len(payload)
        return struct.pack(">iIII", kind, following, 0, 0) + payload

    out = b"SR\x00\x04"
    for name, value in variables.items():
        encoded = name.upper().encode()
        padded = encoded + b"\0" * (-len(encoded) % 4)
        payload = struct.pack(">i", len(encoded)) + padded + struct.pack(">iiii", 3, 0, 7, value)
        out += record(2, payload, len(out))
    return out + struct.pack(">iIII", 6, 0, 0, 0)


def ismr_text(seed: int, rows: int = 50) -> str:
    """Rows shaped like Septentrio ISMR (62 columns; GPS week, time of week, satellite first)."""
    return "\n".join(
        ",".join([str(2300 + seed), str(1000 * k), str(1 + k % 30)] + ["1"] * 59)
        for k in range(rows)
    )
