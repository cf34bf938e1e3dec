"""Progress lines of long jobs: at least every tenth of the way and every EVERY_S seconds, each
with the time left, as log lines (a job's log is a file, not a terminal)."""

from __future__ import annotations

import logging
import re
import sys
import threading
import time
import warnings

import numpy as np

from latentsky import progress as P
from latentsky.analysis.lognormal import count_groups, fit_table
from latentsky.logs import log_to_file


class Lines(logging.Handler):
    def __init__(self):
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record):
        self.lines.append(record.getMessage())


def logger(name):
    log = logging.getLogger(f"test_progress.{name}")
    log.handlers[:] = [handler := Lines()]
    log.propagate = False
    log.setLevel(logging.INFO)
    return log, handler


def test_a_line_every_tenth_with_the_time_left():
    log, lines = logger("tenths")
    with P.LogProgress(1000, "projecting fsim 2024-01-08", log, unit="frames") as bar:
        for _ in range(1000):
            bar.update(1)
    done = [int(m.group(1)) for m in map(re.compile(r": (\d+)/1000 frames").search, lines.lines)]
    assert done == list(range(0, 1001, 100))  # the start, every 10%, the end
    assert all(re.search(r"\d\d:\d\d elapsed, (\d\d:\d\d|\?) left", line) for line in lines.lines)
    assert lines.lines[-1].startswith("projecting fsim 2024-01-08: 1000/1000 frames (100%)")


def test_a_line_every_interval_when_the_work_is_slow(monkeypatch):
    # Between two tenths, a line still comes every EVERY_S seconds of work (0.05 s here).
    monkeypatch.setattr(P, "EVERY_S", 0.05)
    log, lines = logger("slow")
    with P.LogProgress(1000, "training", log, unit="samples") as bar:
        for _ in range(50):  # 5% of the way in at least 1 s
            time.sleep(0.02)
            bar.update(1)
    assert len(lines.lines) >= 10  # about one per 0.05 s (fewer if the machine stalls)
    assert all(" left" in line for line in lines.lines)


def test_updates_from_several_threads_are_all_counted():
    log, lines = logger("threads")
    bar = P.LogProgress(400, "images fsim 2024-01-08", log, unit="files")
    workers = [
        threading.Thread(target=lambda: [bar.update(1) for _ in range(100)]) for _ in range(4)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    bar.close()
    assert bar.n == 400 and "400/400 files (100%)" in lines.lines[-1]


def test_the_bootstrap_reports_its_replicates():
    log, lines = logger("bootstrap")
    rng = np.random.default_rng(0)
    values = rng.lognormal(-2, 0.5, 300)
    groupings = {"cluster": rng.integers(0, 3, 300), "label": np.array(["a", "b"] * 150)}
    total = count_groups(groupings) * 200
    with P.LogProgress(total, "bootstrap replicates", log) as bar:
        fit_table(values, groupings, n_bootstrap=200, progress=bar.update)
    assert total == 5 * 200 and f"{total}/{total}" in lines.lines[-1]


def test_a_jobs_warnings_land_in_its_log(tmp_path):
    # The workflow's test of "no zarr warnings in the logs" (tests/test_stores.py) relies on it.
    root = logging.getLogger()
    handlers, level, hook = root.handlers[:], root.level, sys.excepthook
    try:
        log_to_file(tmp_path / "job.log")
        with warnings.catch_warnings():
            warnings.simplefilter("always")
            warnings.warn("may not be readable by other implementations", UserWarning, 2)
    finally:
        logging.captureWarnings(False)
        for handler in root.handlers:
            if handler not in handlers:
                handler.close()
        root.handlers[:], sys.excepthook = handlers, hook
        root.setLevel(level)
    text = (tmp_path / "job.log").read_text()
    assert "WARNING py.warnings" in text and "UserWarning: may not be readable" in text
