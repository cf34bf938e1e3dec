"""Download manifests: one row per file (URL, local path, bytes, sha256, status).

Later stages read manifests rather than globbing folders, so they see exactly what was fetched and
what the archive lacked (status ``missing``: a gap). Kept apart from :mod:`latentsky.acquisition.http` so that
rules that only read manifests need no HTTP library.
"""

from __future__ import annotations

import csv
import os
import uuid
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path


@dataclass
class ManifestRow:
    """One line of a dataset's download manifest."""

    url: str
    path: str
    bytes: int = 0
    sha256: str = ""
    status: str = ""  # downloaded | present | missing (404, a gap) | failed
    detail: str = ""


MANIFEST_FIELDS = [f for f in ManifestRow.__dataclass_fields__]


def write_manifest(rows: Iterable[ManifestRow], path: str | Path) -> None:
    """Write manifest rows as a tab-separated file (atomically)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex[:8]}")
    with open(tmp, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=MANIFEST_FIELDS, delimiter="\t")
        writer.writeheader()
        for row in rows:
            writer.writerow(asdict(row))
    os.replace(tmp, path)


def read_manifest(path: str | Path) -> list[ManifestRow]:
    """Read a manifest written by :func:`write_manifest`."""
    with open(path, newline="") as handle:
        return [
            ManifestRow(**{**row, "bytes": int(row["bytes"] or 0)})
            for row in csv.DictReader(handle, delimiter="\t")
        ]
