"""Ingest one UT date: raw frame files -> projected counts in a Zarr store, at the decode rate.

Decoding a file (gzip and PGM parsing, or CDF reading) is the expensive step. It runs in a reader
thread, a few files ahead, while the main thread checks times, projects and writes; both release
the GIL in their heavy parts (zlib, NumPy, the projection kernel, Blosc), so on two cores the
ingest runs at about the rate at which the files merely decode. Projected frames are gathered into
chunk-sized blocks before each write (:class:`~latentsky.stores.ChunkedStoreWriter`): the store
is written a whole chunk at a time, never once per file or per frame.

Memory: the reader's prefetched files, one block of projected frames and one projection buffer.

Stored values are counts rounded to integers (uint16; 65535 = outside the field of view):
projecting averages pixels, and the rounding (at most half a count) is far below the photon noise
of tens of counts, while it halves the bytes of every later read.
"""

from __future__ import annotations

import json
import logging
import warnings
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numba
import numpy as np
import scipy.sparse
import xarray as xr

from latentsky.errors import BadInputError, Counts
from latentsky.instruments.themis import FrameRead
from latentsky.progress import progress_log
from latentsky.projection.geometry import UINT16_FILL, CellGrid, Grid, project_frames
from latentsky.samples.cadence import keep_at_interval
from latentsky.stores import SAMPLE_CHUNK, ChunkedStoreWriter, bulk_compressor, write_zarr_atomic
from latentsky.timeorder import in_order_culprits

#: Stored count meaning "no data" (outside the field of view).
COUNTS_FILL = UINT16_FILL
#: Files decoded ahead of the one being projected.
PREFETCH_FILES = 3


@dataclass
class TimeCheck:
    """Frame times across the files of one date: the frames out of place are the culprits, named
    and dropped; their neighbours are kept.

    For each file, in order: a frame whose time lies outside the span the file covers (its
    ``span``: one minute for a stream0 file, one hour for a level-1 CDF) is a culprit
    (``times_outside_file``); so is a frame whose time repeats an earlier frame's of the date
    (``duplicate_times``); of the rest, the fewest frames whose removal leaves the file's times
    increasing (:func:`latentsky.timeorder.in_order_culprits`), and any frame earlier than the
    previous files' latest (``times_out_of_order``). With ``skip`` False the file's first culprit
    raises :class:`BadInputError` naming the file and the frame.
    """

    skip: bool
    seen: set = field(default_factory=set)
    latest: int = np.iinfo(np.int64).min
    duplicate_times: int = 0
    times_out_of_order: int = 0
    times_outside_file: int = 0
    log: logging.Logger = field(default_factory=lambda: logging.getLogger(__name__))

    def keep(self, path, times: np.ndarray, span=None) -> np.ndarray:
        """Boolean mask of the frames of ``path`` to keep, given their times ``(N,)`` and the
        ``(first, last)`` times the file covers (None: not checked)."""
        times = np.asarray(times).astype("datetime64[ns]")
        stamps = times.astype(np.int64).tolist()
        culprits: dict[int, tuple[str, str]] = {}  # frame -> (counter, reason)
        if span is not None:
            first, last = (np.datetime64(t, "ns") for t in span)
            for index in np.flatnonzero((times < first) | (times > last)).tolist():
                culprits[index] = (
                    "times_outside_file",
                    f"time {times[index]} is outside the span its file covers ({first} to {last})",
                )
        in_file: set[int] = set()
        candidates = []
        for index, stamp in enumerate(stamps):
            if index in culprits:
                continue
            if stamp in self.seen or stamp in in_file:
                culprits[index] = (
                    "duplicate_times",
                    f"time {times[index]} repeats an earlier frame's",
                )
                continue
            in_file.add(stamp)
            candidates.append(index)
        for k in in_order_culprits([stamps[i] for i in candidates], strict=True):
            index = candidates[k]
            culprits[index] = (
                "times_out_of_order",
                f"time {times[index]} is out of order among the file's frames",
            )
        for index in candidates:
            if index not in culprits and stamps[index] < self.latest:
                culprits[index] = (
                    "times_out_of_order",
                    f"time {times[index]} is earlier than a frame of a previous file",
                )
        if culprits and not self.skip:
            index = min(culprits)
            raise BadInputError(path, culprits[index][1], where=f"frame {index}")
        keep = np.ones(len(times), dtype=bool)
        for index, (counter, reason) in sorted(culprits.items()):
            keep[index] = False
            setattr(self, counter, getattr(self, counter) + 1)
            self.log.warning("skipped: %s", BadInputError(path, reason, where=f"frame {index}"))
        kept = [stamps[i] for i in np.flatnonzero(keep).tolist()]
        self.seen.update(kept)
        if kept:
            self.latest = max(self.latest, max(kept))
        return keep


def empty_image_store(grid: CellGrid, band: str = "white_light") -> xr.Dataset:
    """The projected-image store with no frames: ``image (time, band, *grid.dims)`` uint16
    counts, with the grid's coordinates (latitude and longitude, or km from the site)."""
    return xr.Dataset(
        {
            "image": (
                ("time", "band", *grid.dims),
                np.empty((0, 1, *grid.shape), np.uint16),
                {"long_name": "white-light counts projected onto the grid", "units": "counts"},
            )
        },
        coords={
            "time": ("time", np.array([], dtype="datetime64[ns]")),
            "band": [band],
            **grid.coords(),
        },
    )


def ingest_files(
    files: Iterable[Path],
    read: Callable[[Path], FrameRead],
    operator: scipy.sparse.csr_matrix,
    fov_mask: np.ndarray,
    grid: Grid,
    out_path: str | Path,
    attrs: dict,
    frame_interval_s: float = 0.0,
    skip: bool = True,
    threads: int = 2,
    log: logging.Logger | None = None,
    operators: Callable[[Path, FrameRead], tuple] | None = None,
) -> Counts:
    """Project every frame of ``files`` (in time order) into a new store at ``out_path``.

    Args:
        files: raw files of one date, sorted by time.
        read: decodes one file (an image source's ``frame_reader``,
            :mod:`latentsky.acquisition.sources`); :class:`BadInputError` marks it
            unreadable.
        operator, fov_mask, grid: the projection (see :mod:`latentsky.projection.geometry`).
        out_path: the store, written atomically (nothing is left there on failure).
        attrs: attributes of the store; ``bad_input`` counts are added as JSON.
        frame_interval_s: keep frames at least this far apart (0: all).
        skip: count and leave out unreadable files and bad frames; False raises at the first.
        threads: cores to use: one decodes, the others project (numba threads).
        operators: if given, ``operators(path, read) -> (operator, fov_mask, skymap name)``
            chooses the projection of each file (the skymap of its own imager, valid on its
            date: :class:`latentsky.projection.skymaps.SkymapChooser`); it raises BadInputError,
            whatever ``skip`` says, for a file that has none. ``operator`` and ``fov_mask`` are
            then not used, and the ``skymap`` attribute lists the skymaps taken.

    Returns:
        Counts: ``files_read``, ``files_unreadable``, ``frames_skipped``, ``duplicate_times``,
        ``times_out_of_order``, ``times_outside_file`` (the last three count the frames dropped
        as out of place, see :class:`TimeCheck`; all are stored as the ``bad_input`` attribute).
    """
    log = log or logging.getLogger(__name__)
    files = list(files)
    numba.set_num_threads(max(1, min(threads - 1, numba.config.NUMBA_NUM_THREADS)))
    what = f"projecting {attrs.get('site', '')} {attrs.get('date', '')}".strip()
    progress = progress_log(len(files), what, log, unit="files")
    counts = Counts("files_read", "files_unreadable", "frames_skipped")
    check = TimeCheck(skip=skip, log=log)
    writer = ChunkedStoreWriter(out_path, "time", template=empty_image_store(grid))
    state = {"buffer": np.empty((0, *grid.shape), np.uint16), "last_kept": None, "skymaps": set()}

    def project(path, decoded) -> None:
        try:
            read_back = decoded.result()
        except BadInputError as error:
            if not skip:
                raise
            counts.add("files_unreadable")
            log.warning("skipped unreadable file: %s", error)
            return
        counts.add("files_read")
        counts.add("frames_skipped", read_back.n_skipped)
        for problem in read_back.problems:
            log.warning("skipped: %s", problem)
        keep = check.keep(path, read_back.times, read_back.span)
        # Thinning carries across the files of a date.
        thinned, state["last_kept"] = keep_at_interval(
            read_back.times[keep], frame_interval_s, state["last_kept"]
        )
        keep[keep] = thinned
        n = int(keep.sum())
        if not n:
            return
        if len(state["buffer"]) < n:  # grown once, to the largest file
            state["buffer"] = np.empty((n, *grid.shape), np.uint16)
        if operators:
            weights, mask, skymap = operators(path, read_back)
            state["skymaps"].add(skymap)
        else:
            weights, mask = operator, fov_mask
        projected = project_frames(
            weights, mask, read_back.frames[keep], out=state["buffer"][:n], dtype=np.uint16
        )
        writer.add_arrays(image=projected[:, np.newaxis], time=read_back.times[keep])

    try:
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="decode") as decoder:
            pending: deque = deque()
            for path in files:
                pending.append((path, decoder.submit(read, path)))
                if len(pending) > PREFETCH_FILES:
                    project(*pending.popleft())
                    progress.update()
            while pending:
                project(*pending.popleft())
                progress.update()
        progress.close()
        counts["duplicate_times"] = check.duplicate_times
        counts["times_out_of_order"] = check.times_out_of_order
        counts["times_outside_file"] = check.times_outside_file
        log.info("%d frames projected from %d files", writer.count, counts["files_read"])
        if operators:  # the skymaps the files took
            attrs = {**attrs, "skymap": ", ".join(sorted(state["skymaps"]))}
        writer.commit({**attrs, "bad_input": json.dumps(counts)})
    except BaseException:
        writer.abort()
        raise
    return counts


#: Percentile scopes of the normalisation (config ``projection.normalisation.scope``).
SCOPES = ("dataset", "site", "site_cell", "site_ring")
#: Per-cell scopes: variables of (sites, band, *grid dims).
_CELL_SCOPES = ("site_cell", "site_ring")


def stack_dates(
    paths: Iterable[str | Path],
    out_path: str | Path,
    low_percentile: float,
    high_percentile: float,
    scope: str = "dataset",
    log: logging.Logger | None = None,
) -> dict:
    """Stack per-site, per-date stores of :func:`ingest_files` into one store of samples.

    Frames keep their uint16 counts and gain a ``site`` coordinate (the ``site`` attribute of the
    store they come from); they are sorted by time (then site), and a time repeated within a site
    is dropped and counted. The model's input is ``(counts - low) / (high - low)``, with low and
    high percentiles of an evenly spaced subsample of at most 1,000 frames (a stable scale in
    bounded memory) taken over ``scope``:

    - ``dataset``: one scale, in the ``normalisation`` attribute (``low_counts``, ``high_counts``);
    - ``site``: one per site, in variables ``normalisation_low (sites)`` and
      ``normalisation_high (sites)``;
    - ``site_cell``: one per site and cell, ``normalisation_low (sites, band, *grid dims)``;
    - ``site_ring``: low per site and cell (bias, pedestal, light domes: additive and fixed), and
      the scale ``high - low`` per site and ring of cells at one distance from the site (gain and
      vignetting, which are radial), pooled over the ring's cells and frames so that where a few
      bright auroras happened to fall cannot set it; same variables as ``site_cell``. Needs a
      grid of km from each site.

    The copy is chunk by chunk (dask), so memory stays bounded whatever the number of frames.
    Returns the store's attributes.
    """
    if scope not in SCOPES:
        raise ValueError(f"normalisation scope must be one of {SCOPES}, got {scope!r}")
    log = log or logging.getLogger(__name__)
    stores = []
    for path in paths:
        store = xr.open_zarr(path, consolidated=True, mask_and_scale=False)
        site = np.full(store.sizes["time"], str(store.attrs["site"]))  # fixed-width text
        stores.append(store.assign_coords(site=("time", site)))
    images = xr.concat([s for s in stores if s.sizes["time"]] or stores[:1], dim="time")
    times = images["time"].to_numpy()
    sites = images["site"].to_numpy().astype(str)
    order = np.lexsort((sites, times))
    pairs = np.rec.fromarrays([times[order], sites[order]])
    _, first = np.unique(pairs, return_index=True)
    keep = order[np.sort(first)]
    duplicates = images.sizes["time"] - len(keep)
    images = images.isel(time=keep)
    n = images.sizes["time"]
    names = sorted(set(images["site"].to_numpy().astype(str)))
    log.info(
        "%d frames of %d site(s) from %d stores (%d repeated times dropped)",
        n,
        len(names),
        len(stores),
        duplicates,
    )
    if not n:
        raise ValueError(f"no frame in any of {len(stores)} projected stores: nothing to train on")

    dims = images["image"].dims
    variables, scale = _normalisation(images, names, low_percentile, high_percentile, scope)
    bad_input: dict[str, int] = {}
    for store in stores:
        for key, value in json.loads(store.attrs.get("bad_input", "{}")).items():
            bad_input[key] = bad_input.get(key, 0) + value
    # Within a date, ingest_files has dropped repeated times already; these repeat across dates.
    bad_input["duplicate_times"] = bad_input.get("duplicate_times", 0) + int(duplicates)
    first_attrs = stores[0].attrs
    attrs = {
        "title": "All-sky images projected onto a "
        + ("latitude-longitude grid" if "lat" in images.dims else "grid of km from each site"),
        "source": "THEMIS all-sky imager frames, projected at an assumed emission altitude",
        "site": first_attrs["site"] if len(names) == 1 else json.dumps(names),
        "sites": json.dumps(_site_descriptions(stores), sort_keys=True),
        "altitude_km": first_attrs["altitude_km"],
        "min_elevation_deg": first_attrs["min_elevation_deg"],
        "skymaps": json.dumps(
            sorted({name for s in stores for name in s.attrs["skymap"].split(", ") if name})
        ),
        "normalisation": json.dumps(
            {
                "method": "percentile",
                **scale,
                "low_percentile": low_percentile,
                "high_percentile": high_percentile,
                **({"scope": scope} if scope != "dataset" else {}),
            }
        ),
        "files_missing": int(sum(s.attrs.get("files_missing", 0) for s in stores)),
        "files_failed": int(sum(s.attrs.get("files_failed", 0) for s in stores)),
        "bad_input": json.dumps(bad_input),
    }
    if len(names) == 1:  # the site's position and imager, also as plain attributes
        attrs.update({k: v for k, v in _site_descriptions(stores)[0].items() if k != "site"})
    image = images["image"].chunk({"time": SAMPLE_CHUNK, **{d: -1 for d in dims[1:]}})
    image.attrs = {
        "long_name": "white-light counts projected onto the grid",
        "units": "counts",
        "description": "model input is (counts - low) / (high - low), with low and high from "
        "the normalisation attribute or the normalisation_low/high variables",
    }
    valid = variables.pop("fov_mask")
    ds = xr.Dataset(
        {"image": image, "fov_mask": (dims[2:], valid), **variables},
        coords={
            "time": images["time"].to_numpy(),
            "site": ("time", images["site"].to_numpy().astype(str)),
        },
        attrs=attrs,
    )
    if len(names) == 1:
        ds = ds.drop_vars("site")  # one site: its name is the ``site`` attribute
    write_zarr_atomic(
        ds,
        out_path,
        acknowledgement="themis_asi",
        encoding={
            "image": {
                "chunks": (SAMPLE_CHUNK, *image.shape[1:]),
                "compressors": [bulk_compressor()],
                "_FillValue": COUNTS_FILL,
            },
            "time": {"chunks": (n,)},
        },
    )
    log.info("normalisation: %s", attrs["normalisation"])
    return attrs


def _ring_scale(excess: np.ndarray, images: xr.Dataset, percentile: float) -> np.ndarray:
    """The ``percentile`` of ``excess`` (frames, band, y, x; NaN outside) over the frames and
    cells of each ring one cell wide around the site, per band, spread back onto the cells."""
    if not {"y", "x"} <= set(images.dims):
        raise ValueError(
            "normalisation scope 'site_ring' needs a grid of km from each site "
            "(projection.grid.frame: site)"
        )
    y, x = images["y"].to_numpy(), images["x"].to_numpy()
    width = float(np.abs(np.diff(x)).min()) if x.size > 1 else 1.0
    ring = np.floor(np.hypot(*np.meshgrid(y, x, indexing="ij")) / width).astype(int)
    scale = np.full(excess.shape[1:], np.nan)
    for k in np.unique(ring):
        cells = ring == k
        scale[:, cells] = np.nanpercentile(
            excess[:, :, cells].transpose(1, 0, 2).reshape(excess.shape[1], -1),
            percentile,
            axis=1,
        )[:, None]
    return scale


def _site_descriptions(stores) -> list[dict]:
    """Each site's position (geographic, from its skymap) and imager(s), sorted by site, from
    the attributes of its projected stores (fields they lack are left out)."""
    sites: dict[str, dict] = {}
    for store in stores:
        name = str(store.attrs["site"])
        entry = sites.setdefault(name, {"site": name})
        for key in ("site_latitude", "site_longitude", "site_altitude_m"):
            value = store.attrs.get(key)
            if value is not None and np.isfinite(value):
                entry[key] = float(value)
        imager = store.attrs.get("imager")
        known = entry["imager"].split(", ") if "imager" in entry else []
        if imager and imager not in known:
            entry["imager"] = ", ".join([*known, imager])
    return [sites[name] for name in sorted(sites)]


def _normalisation(images, names, low_percentile, high_percentile, scope):
    """Percentiles of subsampled frames: (variables for the store, attribute values)."""
    site = images["site"].to_numpy().astype(str)
    groups = (
        [np.arange(len(site))] if scope == "dataset" else [np.flatnonzero(site == s) for s in names]
    )
    lows, highs, masks = [], [], []
    for members in groups:
        chosen = members[
            np.unique(np.linspace(0, len(members) - 1, min(len(members), 1000)).astype(int))
        ]
        sample = images["image"].isel(time=chosen).to_numpy()
        valid = sample != COUNTS_FILL
        masks.append(valid.any(axis=(0, 1)))
        if scope in _CELL_SCOPES:
            counts = np.where(valid, sample, np.nan).astype(np.float64)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # cells outside: all NaN
                low, high = np.nanpercentile(counts, [low_percentile, high_percentile], axis=0)
                if scope == "site_ring":
                    high = low + _ring_scale(counts - low, images, high_percentile)
        else:
            low, high = np.percentile(sample[valid], [low_percentile, high_percentile])
        empty = ~(high > low) if np.ndim(low) else not high > low
        if np.ndim(low):
            high = np.where(empty & np.isfinite(low), low + 1.0, high)  # flat cells: unit range
        elif empty:
            raise ValueError(f"normalisation percentiles give an empty range ({low} .. {high})")
        lows.append(low)
        highs.append(high)
    variables = {"fov_mask": np.logical_or.reduce(masks)}
    if scope == "dataset":
        return variables, {"low_counts": float(lows[0]), "high_counts": float(highs[0])}
    dims = ("sites",) + (images["image"].dims[1:] if scope in _CELL_SCOPES else ())
    for name, values in (("normalisation_low", lows), ("normalisation_high", highs)):
        variables[name] = xr.DataArray(
            np.stack(values).astype(np.float32), dims=dims, attrs={"units": "counts"}
        ).assign_coords(sites=("sites", np.array(names)))
    return variables, {}
