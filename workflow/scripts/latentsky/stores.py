"""Zarr stores written so that a half-written store never sits where a complete one is expected."""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path

import xarray as xr


def write_zarr_atomic(ds: xr.Dataset, path: str | Path, encoding: dict | None = None) -> Path:
    """Write ``ds`` to a temporary store beside ``path``, then move it into place.

    A kill at any moment leaves either no store or a complete one at ``path`` (plus, at worst, a
    ``.tmp-*`` folder that the next write does not reuse). Renaming within one folder is atomic on
    POSIX file systems, including the shared file systems of clusters.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex[:8]}")
    try:
        ds.to_zarr(tmp, mode="w", encoding=encoding or {}, consolidated=True)
        if path.exists():
            shutil.rmtree(path)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return path


def open_zarr(path: str | Path) -> xr.Dataset:
    """Open a store written by :func:`write_zarr_atomic` (lazy, dask-backed)."""
    return xr.open_zarr(path, consolidated=True)
