"""Progress of long work, written to the job's log: tqdm's counts, rates and time left, as lines.

A job's log is a file, not a terminal, so the progress bar is written as one log line at a time:
at least every :data:`EVERY_S` seconds of work (when the work reports in) and at every
:data:`EVERY_FRACTION` of the total, plus the first and the last. Each line reads, e.g.::

    project fsim 2024-01-08: 3600/12000 frames (30%), 00:41 elapsed, 01:35 left, 87.6 frames/s

Used by the downloads, the projection, training, t-SNE and UMAP and the bootstrap.
"""

from __future__ import annotations

import logging
import threading
import time

from tqdm import tqdm

#: Longest time between two progress lines while work reports in (s).
EVERY_S = 30.0
#: A line at least at every this fraction of the total.
EVERY_FRACTION = 0.1

_FORMAT = (
    "{desc}: {n_fmt}/{total_fmt}{unit} ({percentage:.0f}%), {elapsed} elapsed, {remaining} left, "
    "{rate_fmt}"
)
#: Without a known total there is no share and no time left.
_FORMAT_OPEN = "{desc}: {n_fmt}{unit}, {elapsed} elapsed, {rate_fmt}"


def log_format(known_total: bool) -> str:
    """tqdm's ``bar_format`` for a log line (with the share done and time left if the total is
    known)."""
    return _FORMAT if known_total else _FORMAT_OPEN


class LogLines:
    """A file-like object for tqdm that sends each status line to a logger."""

    def __init__(self, log: logging.Logger):
        self.log = log
        self.last = ""

    def write(self, text: str) -> None:
        line = text.replace("\r", "").strip()
        if line and line != self.last:
            self.log.info("%s", line)
            self.last = line

    def flush(self) -> None:
        pass


class LogProgress(tqdm):
    """tqdm writing lines to ``log`` at least every :data:`EVERY_S` s and every
    :data:`EVERY_FRACTION` of ``total``, with the time left.

    ``LogProgress(total, "what", log, unit="frames")``; call ``update(n)`` as work is done (or
    iterate over it, as over tqdm), and close it (or use it as a context manager): the last line
    gives the total time.
    """

    def __init__(self, total: int | None, desc: str, log: logging.Logger, unit: str = "", **kwargs):
        super().__init__(
            total=total,
            desc=desc,
            unit=f" {unit}" if unit else " items",
            file=LogLines(log),
            mininterval=EVERY_S,
            maxinterval=EVERY_S,
            miniters=1,
            dynamic_ncols=False,
            ascii=True,
            bar_format=log_format(bool(total)),
            **kwargs,
        )
        self._next_mark = self._step()
        self._update_lock = threading.Lock()  # downloads report from several threads
        self.refresh()

    def _step(self) -> float:
        return EVERY_FRACTION * self.total if self.total else float("inf")

    def update(self, n: float = 1) -> bool | None:
        with self._update_lock:
            shown = super().update(n)
            if self.total and self.n >= self._next_mark and self.n < self.total:
                # tqdm shows a line only when EVERY_S has passed; every tenth of the way too.
                self.refresh()
                self.last_print_n, self.last_print_t = self.n, time.time()
                while self._next_mark <= self.n:
                    self._next_mark += self._step()
            return shown


def progress_log(total: int | None, desc: str, log: logging.Logger | None, unit: str = ""):
    """A :class:`LogProgress`, or a silent tqdm when there is no log to write to."""
    if log is None:
        return tqdm(total=total, disable=True)
    return LogProgress(total, desc, log, unit=unit)
