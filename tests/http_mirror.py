"""A real HTTP server on 127.0.0.1 that serves a folder in an archive's layout, and misbehaves on cue.

Faults are set per path: ``server.faults["/a/b.cdf"] = ["500", "ok"]`` answers 500 once, then serves
the file. Kinds: ``ok``, ``404``, ``500``, ``reset`` (close the connection mid-body), ``short`` (a
body shorter than its Content-Length), ``stall`` (send half, then wait longer than the client's
timeout), ``truncate`` (serve the first half with a matching Content-Length). Folder URLs answer an
Apache-style index page; ``server.listing_extra`` adds hostile names to every listing.
"""

from __future__ import annotations

import html
import http.server
import threading
import time
from collections import defaultdict
from pathlib import Path
from urllib.parse import unquote


class MirrorServer:
    def __init__(self, root: Path, stall_s: float = 3.0):
        self.root = Path(root)
        self.stall_s = stall_s
        self.faults: dict[str, list[str]] = {}
        self.requests: dict[str, int] = defaultdict(int)
        self.user_agents: set[str] = set()
        self.listing_extra: list[str] = []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # keep test output clean
                pass

            def do_GET(self):
                path = unquote(self.path.split("?")[0])
                server.requests[path] += 1
                server.user_agents.add(self.headers.get("User-Agent", ""))
                plan = server.faults.get(path)
                fault = plan.pop(0) if plan else "ok"
                target = server.root / path.lstrip("/")
                if fault == "404" or not target.exists():
                    return self._send(404, b"not found")
                if fault == "500":
                    return self._send(500, b"server error")
                if target.is_dir():
                    return self._send(200, server.index_page(target).encode(), "text/html")
                body = target.read_bytes()
                if fault == "ok":
                    return self._send(200, body)
                if fault == "truncate":
                    return self._send(200, body[: len(body) // 2])
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                half = body[: len(body) // 2]
                self.wfile.write(half)
                self.wfile.flush()
                if fault == "stall":
                    time.sleep(server.stall_s)
                # reset / short: end the connection early
                self.close_connection = True

            def _send(self, code, body, kind="application/octet-stream"):
                self.send_response(code)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def index_page(self, folder: Path) -> str:
        names = [p.name + ("/" if p.is_dir() else "") for p in sorted(folder.iterdir())]
        names += self.listing_extra
        links = "\n".join(f'<a href="{html.escape(n)}">{html.escape(n)}</a>' for n in names)
        return (
            f'<html><body><h1>Index</h1>\n<a href="../">Parent Directory</a>\n{links}</body></html>'
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()
