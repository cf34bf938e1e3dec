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
        _move_into_place(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return path


def _move_into_place(tmp: Path, path: Path) -> None:
    """Replace ``path`` (a store, if any) by the complete store at ``tmp``, in the same folder."""
    if path.exists():
        shutil.rmtree(path)
    os.replace(tmp, path)


#: Variables smaller than this are loaded into memory; larger ones stay dask arrays (read in chunks).
IN_MEMORY_BYTES = 2e9


def samples_of(variable: xr.DataArray):
    """A store variable as a NumPy array when it fits in memory, else its lazy dask array.

    Training, encoding and scoring index either kind by sample, batch by batch."""
    return variable.to_numpy() if variable.nbytes < IN_MEMORY_BYTES else variable.data


def open_zarr(path: str | Path) -> xr.Dataset:
    """Open a store written by :func:`write_zarr_atomic` (lazy, dask-backed)."""
    return xr.open_zarr(path, consolidated=True)


class ZarrAppender:
    """Build a store piece by piece along ``dim`` in a temporary folder; move it into place at the end.

    Used where a whole store would not fit in memory (a night of frames): each piece is appended, and
    only :meth:`commit` makes the store visible under its final name.
    """

    def __init__(self, path: str | Path, dim: str = "time", encoding: dict | None = None):
        self.path = Path(path)
        self.dim = dim
        self.encoding = encoding or {}
        self.tmp = self.path.with_name(f".{self.path.name}.tmp-{uuid.uuid4().hex[:8]}")
        self.pieces = 0

    def append(self, piece: xr.Dataset) -> None:
        if self.pieces == 0:
            piece.to_zarr(self.tmp, mode="w", encoding=self.encoding, consolidated=True)
        else:
            piece.to_zarr(self.tmp, append_dim=self.dim, consolidated=True)
        self.pieces += 1

    def commit(self, empty: xr.Dataset, attrs: dict) -> Path:
        """Finish: write ``attrs`` (and ``empty`` if nothing was appended), then rename into place."""
        if self.pieces == 0:
            empty.to_zarr(self.tmp, mode="w", consolidated=True)
        import zarr

        group = zarr.open_group(self.tmp, mode="a")
        group.attrs.update(attrs)
        zarr.consolidate_metadata(self.tmp)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        _move_into_place(self.tmp, self.path)
        return self.path

    def abort(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)
