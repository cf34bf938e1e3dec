"""Feeding stored samples to a model fast, in bounded memory, in an order fixed by the seed.

Samples are an array ``(N, *sample_shape)`` chunked along its first axis (a Zarr variable, or a
NumPy array for tests and small data). Reading one sample of a compressed chunk costs as much as
reading the whole chunk, so every read here is a whole chunk, and shuffling follows the chunks:

- each epoch, the chunks are put in a random order and grouped into *windows* of
  ``window_chunks`` chunks (a shuffle buffer of ``window_chunks * chunk_len`` samples);
- the member samples of a window (training or validation samples) are permuted within it;
- batches are consecutive runs of the resulting sequence, so a batch may span two windows.

The order depends on ``(seed, epoch)`` only, never on how many reader processes there are or
how fast they are, so runs are reproducible and a run resumed at an epoch boundary repeats the
uninterrupted one exactly. A window as large as the dataset is a full permutation.

Stored values are *packed* (e.g. uint16 counts with a fill value for "no data", half the bytes
of float32) and unpacked to float32 model input only at the last step: on the GPU for CUDA
training, so that the host copies and the PCIe transfer carry the packed bytes.

Readers are threads: decompression (Blosc) and copying release the GIL, and a thread hands its
window over without the copy into shared memory that a worker process would need (on a 2-core
machine, reader processes delivered half the samples per second of threads). On CUDA each window
is gathered straight into pinned memory.

Memory: each reader holds one window of packed samples (plus the chunk it is reading); the main
thread holds the window it is cutting batches from and one float32 batch buffer.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

#: Chunk length used for in-memory arrays, which have no chunks of their own.
DEFAULT_CHUNK_LEN = 128


@dataclass(frozen=True, eq=False)
class Unpacking:
    """How stored values become model input: ``x = (stored - low) * scale``; ``fill`` -> NaN.

    Attributes:
        low: stored value that maps to 0 (e.g. the low percentile of the counts): a number, or
            one array per group ``(G, ...)`` broadcasting against a sample (per site, or per
            site and grid cell).
        scale: factor after the shift (``1 / (high - low)``), a number or ``(G, ...)`` likewise.
        fill: stored value meaning "no data" (e.g. 65535 outside the field of view), or None.
        groups: ``(N,)`` group of every sample (its row of ``low`` and ``scale``), or None.
    """

    low: float | np.ndarray = 0.0
    scale: float | np.ndarray = 1.0
    fill: int | float | None = None
    groups: np.ndarray | None = None

    @classmethod
    def from_store(cls, group, variable: str) -> Unpacking:
        """From a Zarr group written by the workflow: the ``normalisation`` attribute (JSON with
        ``low_counts``/``high_counts``) or the ``normalisation_low``/``_high`` variables per site
        (with the samples' ``site`` coordinate), and the variable's fill value for integers."""
        array = group[variable]
        fill = dict(array.attrs).get("_FillValue")
        if fill is None and array.metadata.zarr_format == 2:
            fill = array.fill_value  # format 2 keeps it in the metadata
        if not np.issubdtype(np.dtype(array.dtype), np.integer):
            fill = None  # float data carry NaN themselves
        if "normalisation_low" in group:
            low = np.asarray(group["normalisation_low"][...], np.float32)
            high = np.asarray(group["normalisation_high"][...], np.float32)
            names = np.asarray(group["sites"][...]).astype(str)
            sites = np.asarray(group["site"][...]).astype(str)
            groups = np.searchsorted(names, sites)
            shape = (len(names), *([1] * (array.ndim - low.ndim)))  # broadcast per sample
            low = low.reshape(*low.shape, *shape[low.ndim :])
            high = high.reshape(low.shape)
            # NaN marks cells a site never sees (they unpack to NaN); finite ranges must be open.
            if np.any((high <= low) & np.isfinite(low) & np.isfinite(high)):
                raise ValueError(f"{group.store_path}: a normalisation range is empty")
            return cls(low=low, scale=1.0 / (high - low), fill=fill, groups=groups)
        normalisation = dict(group.attrs).get("normalisation", "{}")
        if isinstance(normalisation, str):
            normalisation = json.loads(normalisation)
        low, high = normalisation.get("low_counts"), normalisation.get("high_counts")
        if low is None or high is None:
            return cls(fill=fill)
        if not high > low:
            raise ValueError(f"normalisation range is empty: low {low}, high {high}")
        return cls(low=float(low), scale=1.0 / (float(high) - float(low)), fill=fill)

    @property
    def identity(self) -> bool:
        return self.groups is None and self.low == 0.0 and self.scale == 1.0 and self.fill is None

    def _of(self, index) -> tuple:
        """``low`` and ``scale`` for the samples ``index`` (numbers, or arrays per sample)."""
        if self.groups is None:
            return np.float32(self.low), np.float32(self.scale)
        group = self.groups[np.asarray(index)]
        return self.low[group], self.scale[group]

    def numpy(self, raw: np.ndarray, out: np.ndarray | None = None, index=None) -> np.ndarray:
        """Unpack ``raw`` (``(B, ...)``, the samples ``index``) into float32 ``out``."""
        if out is None:
            out = np.empty(raw.shape, dtype=np.float32)
        low, scale = self._of(index)
        np.subtract(raw, low, out=out, casting="unsafe")
        if self.groups is not None or scale != 1.0:
            out *= scale
        if self.fill is not None:
            out[raw == self.fill] = np.nan
        return out

    def torch(self, raw: torch.Tensor, index=None) -> torch.Tensor:
        """Unpack a tensor on its own device (for CUDA: after the copy of the packed bytes)."""
        x = raw.to(torch.float32)
        if self.identity:
            return x
        low, scale = self._of(index)
        if self.groups is not None:
            low = torch.as_tensor(low, device=x.device)
            scale = torch.as_tensor(scale, device=x.device)
        x = (x - low) * scale
        if self.fill is not None:
            x = torch.where(raw == self.fill, torch.nan, x)
        return x


class SampleSource:
    """Samples ``(N, *sample_shape)`` read by whole chunks of ``chunk_len`` along axis 0.

    Made from a NumPy array (or any array-like with NumPy slicing) or from a Zarr store variable
    (:meth:`from_store`).
    """

    def __init__(
        self, array: Any, *, unpacking: Unpacking | None = None, chunk_len: int | None = None
    ):
        self.array = array
        self.n = int(array.shape[0])
        self.sample_shape = tuple(int(s) for s in array.shape[1:])
        self.dtype = np.dtype(array.dtype)
        if chunk_len is None:
            chunks = getattr(array, "chunks", None) or (DEFAULT_CHUNK_LEN,)
            chunk_len = chunks[0][0] if isinstance(chunks[0], tuple) else chunks[0]  # dask: runs
        if chunk_len < 1:
            raise ValueError(f"chunk_len must be >= 1, got {chunk_len}")
        self.chunk_len = int(chunk_len)
        self.unpacking = unpacking or Unpacking()

    @classmethod
    def from_store(cls, path: str | Path, variable: str) -> SampleSource:
        """The variable ``variable`` of the Zarr store at ``path``, unpacked as its attributes say."""
        import zarr

        group = zarr.open_group(str(path), mode="r")
        if variable not in group:
            raise KeyError(f"{path}: no variable {variable!r}")
        return cls(group[variable], unpacking=Unpacking.from_store(group, variable))

    def chunk_bounds(self) -> np.ndarray:
        """``(n_chunks, 2)`` start and stop of each chunk."""
        starts = np.arange(0, self.n, self.chunk_len)
        return np.stack([starts, np.minimum(starts + self.chunk_len, self.n)], axis=1)

    def read(self, start: int, stop: int) -> np.ndarray:
        """Packed samples ``start:stop`` as a NumPy array of the stored dtype."""
        return np.asarray(self.array[start:stop])

    def gather(self, index: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """Packed samples ``index`` (any order) into ``out``, reading each chunk they touch once."""
        index = np.asarray(index, dtype=np.int64)
        if out is None:
            out = np.empty((len(index), *self.sample_shape), dtype=self.dtype)
        chunk_of = index // self.chunk_len
        for chunk in np.unique(chunk_of):
            start = int(chunk) * self.chunk_len
            rows = np.flatnonzero(chunk_of == chunk)
            block = self.read(start, min(start + self.chunk_len, self.n))
            out[rows] = block[index[rows] - start]
        return out


def epoch_windows(
    source: SampleSource,
    members: np.ndarray,
    window_chunks: int,
    seed: int,
    epoch: int,
    shuffle: bool = True,
) -> list[np.ndarray]:
    """The samples of one pass, window by window, in the order they are used.

    Args:
        source: the samples (only their chunking matters here).
        members: sorted indices of the samples of this pass (e.g. the training split).
        window_chunks: chunks per window (the shuffle buffer); >= the number of chunks means one
            window, a full permutation.
        seed, epoch: the order depends on these alone.
        shuffle: False keeps chunks and samples in store order (validation, encoding).

    Returns:
        One int64 array of sample indices per window, windows without members left out; every
        member appears exactly once over all windows.
    """
    if window_chunks < 1:
        raise ValueError(f"window_chunks must be >= 1, got {window_chunks}")
    members = np.asarray(members, dtype=np.int64)
    n_chunks = len(source.chunk_bounds())
    chunk_of = members // source.chunk_len
    # Members of each chunk: members are sorted, so each chunk's members are one run.
    edges = np.searchsorted(chunk_of, np.arange(n_chunks + 1))
    rng = np.random.default_rng([seed, epoch])
    order = rng.permutation(n_chunks) if shuffle else np.arange(n_chunks)
    windows = []
    for w, first in enumerate(range(0, n_chunks, window_chunks)):
        chunks = order[first : first + window_chunks]
        if shuffle:
            chunks = np.sort(chunks)  # read in store order; the samples are permuted below
        index = np.concatenate([members[edges[c] : edges[c + 1]] for c in chunks])
        if not len(index):
            continue
        if shuffle:
            index = np.random.default_rng([seed, epoch, w]).permutation(index)
        windows.append(index)
    return windows


def _packed_windows(
    source: SampleSource, windows: list[np.ndarray], readers: int, pin_memory: bool
) -> Iterator[torch.Tensor]:
    """The packed samples of each window, in order, read ``readers`` windows ahead by threads."""
    dtype = torch.from_numpy(np.empty(0, source.dtype)).dtype

    def read(index: np.ndarray) -> torch.Tensor:
        out = torch.empty((len(index), *source.sample_shape), dtype=dtype, pin_memory=pin_memory)
        source.gather(index, out=out.numpy())
        return out

    if readers == 0:
        for index in windows:
            yield read(index)
        return
    with ThreadPoolExecutor(max_workers=readers, thread_name_prefix="feed") as pool:
        pending: deque = deque()
        for index in windows:
            pending.append(pool.submit(read, index))
            if len(pending) > readers:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


def iterate_batches(
    source: SampleSource,
    windows: list[np.ndarray],
    batch_size: int,
    device: torch.device,
    readers: int = 0,
) -> Iterator[torch.Tensor]:
    """Float32 model-input batches ``(B, *sample_shape)`` on ``device``, in window order.

    Batches are ``batch_size`` consecutive samples of the windows' concatenated sequence (the
    last may be shorter); ``readers`` threads read windows ahead (0: read when needed). On CUDA the packed bytes travel (pinned, non-blocking) and are unpacked
    on the device; on the CPU each batch is unpacked into one reused buffer, which the caller
    must be done with before asking for the next batch.
    """
    cuda = device.type == "cuda"
    buffer = None if cuda else np.empty((batch_size, *source.sample_shape), dtype=np.float32)

    def ready(raw: torch.Tensor, index: np.ndarray) -> torch.Tensor:
        if cuda:
            return source.unpacking.torch(raw.to(device, non_blocking=True), index)
        out = buffer[: len(raw)]
        source.unpacking.numpy(raw.numpy(), out=out, index=index)
        return torch.from_numpy(out)

    carry = None  # samples left over from the previous window (fewer than a batch), and theirs
    packed_windows = _packed_windows(source, windows, readers, pin_memory=cuda)
    for index, packed in zip(windows, packed_windows, strict=True):
        if carry is not None:
            need = batch_size - len(carry[0])
            joined = torch.cat([carry[0], packed[:need]]), np.concatenate([carry[1], index[:need]])
            packed, index = packed[need:], index[need:]
            carry = None
            if len(joined[1]) < batch_size:  # a window smaller than what the batch still needs
                carry = joined
                continue
            yield ready(*joined)
        full = len(packed) // batch_size * batch_size
        for first in range(0, full, batch_size):
            yield ready(packed[first : first + batch_size], index[first : first + batch_size])
        if full < len(packed):
            carry = packed[full:].clone(), index[full:]
    if carry is not None:
        yield ready(*carry)


def ordered_batches(
    source: SampleSource, batch_size: int, device: torch.device
) -> Iterator[tuple[int, torch.Tensor]]:
    """``(start, batch)`` over all samples in store order (for encoding), one chunk read at a time."""
    windows = epoch_windows(source, np.arange(source.n), 1, seed=0, epoch=0, shuffle=False)
    start = 0
    for batch in iterate_batches(source, windows, batch_size, device):
        yield start, batch
        start += len(batch)
