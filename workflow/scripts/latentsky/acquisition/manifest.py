"""Download manifests: one row per file (URL, local path, bytes, sha256, status, detail, final URL).

Later stages read manifests rather than globbing folders, so they see exactly what was fetched,
what the archive lacked and what failed. Statuses:

* ``downloaded``: fetched in this run and verified; ``final_url`` is where the bytes came from
  (after redirects);
* ``present``: already there from an earlier run, and verified again;
* ``missing``: a gap: the archive positively says it does not have it (a 404, or a listing that
  parses and lacks it); ``detail`` says which;
* ``failed``: the archive answered, but wrongly, after every retry (a broken file, a listing with
  no file index, a body past its size limit, a refused redirect); ``detail`` names the fault. If
  part of what it served is readable, ``path`` points at that part (under ``salvaged/``), which
  ingest uses in ``on_bad_input: skip`` mode.

Kept apart from :mod:`latentsky.acquisition.http` so that rules that only read manifests need no
HTTP library.
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
    status: str = ""  # downloaded | present | missing (a gap) | failed
    detail: str = ""
    final_url: str = ""  # where the bytes came from, after redirects (downloaded rows)


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


#: Statuses of rows whose file is there, whole and verified.
PRESENT = ("downloaded", "present")


def usable_paths(rows: Iterable[ManifestRow], skip: bool = True) -> list[str]:
    """The files of ``rows`` that ingest reads: verified ones, and with ``skip`` (``on_bad_input:
    skip``) the readable part kept of a ``failed`` one.

    Raises:
        BadInputError: without ``skip``, for the first ``failed`` row, naming its URL and fault.
    """
    from latentsky.errors import BadInputError

    paths = []
    for row in rows:
        if row.status in PRESENT:
            paths.append(row.path)
        elif row.status == "failed":
            if not skip:
                raise BadInputError(row.url, f"download failed: {row.detail}")
            if row.path:
                paths.append(row.path)
    return paths
