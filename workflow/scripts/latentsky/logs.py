"""Logging for rule scripts: everything, uncaught exceptions included, goes to the rule's log file."""

from __future__ import annotations

import logging
import sys
from pathlib import Path


def log_to_file(path: str | Path, name: str = "latentsky") -> logging.Logger:
    """Send the root logger (and warnings and uncaught exceptions) to ``path``; return a named
    logger.

    Snakemake shows the log file of a failed job, so the traceback must land there rather than on a
    stderr that a cluster scheduler may throw away.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path, mode="w")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler, logging.StreamHandler(sys.stderr)]
    root.setLevel(logging.INFO)
    # Warnings (zarr's about types other readers may not know, numerical ones) go to the log as
    # well, where the job's other messages are, rather than only to a stderr that may be lost.
    logging.captureWarnings(True)
    logger = logging.getLogger(name)

    def excepthook(kind, value, traceback):
        logger.error("uncaught exception", exc_info=(kind, value, traceback))
        sys.__excepthook__(kind, value, traceback)

    sys.excepthook = excepthook
    return logger
