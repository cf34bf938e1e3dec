"""Projection of all-sky images onto a regular latitude-longitude grid at an emission altitude.

The projection is linear in the pixel values, so it is precomputed once per (skymap, grid,
altitude, elevation cut) as a sparse matrix of shape ``(n_lat * n_lon, H * W)`` and applied to
whole stacks of frames by a compiled (numba) kernel that reads the frames in place. Each grid cell
averages the pixels whose centres fall inside it; cells inside the field of view that no pixel
centre falls in (where pixels are larger than cells, towards the horizon) take their nearest valid
pixel.

Conventions: latitudes and longitudes in degrees (longitudes -180..180 unless a grid's bounds say
otherwise), altitudes in km, arrays in the canonical image orientation of
:mod:`latentsky.instruments.themis`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numba
import numpy as np
import scipy.sparse
from numba import prange
from scipy.spatial import cKDTree

from latentsky.errors import BadInputError
from latentsky.instruments.themis import Skymap
from latentsky.projection.lanes import LANES, add_scaled, store_lanes, zero_lanes

#: Mean Earth radius used by the spherical mapping, km.
EARTH_RADIUS_KM = 6371.2
#: Version of the file layout written by :func:`save_operator`.
OPERATOR_FORMAT = 1


def _wrap(lon):
    """Degrees into -180..180."""
    return (np.asarray(lon, dtype=np.float64) + 180.0) % 360.0 - 180.0


def _corner_key(skymap: Skymap, altitude_km: float) -> float | None:
    """The corner-map altitude equal (within 1 m) to ``altitude_km``, or None."""
    for key in skymap.corner_lat:
        if abs(key - altitude_km) < 1e-3 and key in skymap.corner_lon:
            return key
    return None


def ray_lat_lon(
    site_lat: float,
    site_lon: float,
    site_alt_km: float,
    elevation,
    azimuth,
    altitude_km: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Where lines of sight cross a spherical shell at ``altitude_km`` (spherical Earth).

    Args:
        site_lat, site_lon: site position, degrees.
        site_alt_km: site altitude, km.
        elevation, azimuth: arrays (any shape) of line-of-sight elevation and azimuth (from north
            through east), degrees.
        altitude_km: shell altitude, km (above the site).

    Returns:
        (lat, lon) of the same shape, degrees, longitude in -180..180; NaN where the inputs are NaN.
    """
    r_site = EARTH_RADIUS_KM + site_alt_km
    r_shell = EARTH_RADIUS_KM + altitude_km
    el = np.radians(np.asarray(elevation, dtype=np.float64))
    az = np.radians(np.asarray(azimuth, dtype=np.float64))
    # Geocentric angle between the site and the crossing point (law of sines in the triangle
    # Earth centre - site - crossing point).
    with np.errstate(invalid="ignore"):
        theta = np.arccos(np.clip(r_site * np.cos(el) / r_shell, -1.0, 1.0)) - el
    phi1 = np.radians(site_lat)
    sin_lat = np.sin(phi1) * np.cos(theta) + np.cos(phi1) * np.sin(theta) * np.cos(az)
    lat = np.arcsin(np.clip(sin_lat, -1.0, 1.0))
    dlon = np.arctan2(
        np.sin(az) * np.sin(theta) * np.cos(phi1), np.cos(theta) - np.sin(phi1) * sin_lat
    )
    return np.degrees(lat), _wrap(site_lon + np.degrees(dlon))


def pixel_lat_lon(skymap: Skymap, altitude_km: float) -> tuple[np.ndarray, np.ndarray]:
    """Latitude and longitude of pixel centres at an emission altitude.

    From the skymap's corner maps when it has one for ``altitude_km`` (mean of the 4 corners,
    longitudes averaged across the antimeridian correctly; NaN when any corner is NaN); otherwise
    from elevation/azimuth and the site position (:func:`ray_lat_lon`).

    Returns:
        (lat, lon), each (H, W) float64 degrees, longitude in -180..180.
    """
    key = _corner_key(skymap, altitude_km)
    if key is None:
        return ray_lat_lon(
            skymap.site_lat,
            skymap.site_lon,
            skymap.site_alt_km,
            skymap.elevation,
            skymap.azimuth,
            altitude_km,
        )
    clat = np.asarray(skymap.corner_lat[key], dtype=np.float64)
    clon = np.asarray(skymap.corner_lon[key], dtype=np.float64)
    corners = (np.s_[:-1, :-1], np.s_[1:, :-1], np.s_[:-1, 1:], np.s_[1:, 1:])
    lat = sum(clat[c] for c in corners) / 4.0  # NaN propagates: any NaN corner -> NaN
    ref = clon[corners[0]]
    # Average longitude offsets from one corner so that 179.9 and -179.9 average to 180.
    offset = sum(_wrap(clon[c] - ref) for c in corners) / 4.0
    return lat, _wrap(ref + offset)


@dataclass(frozen=True)
class Grid:
    """A regular latitude-longitude grid.

    Attributes:
        lat: (n_lat,) cell-centre latitudes, degrees, ascending.
        lon: (n_lon,) cell-centre longitudes, degrees, ascending (may exceed 180 when the grid
            crosses the antimeridian; pixels are matched modulo 360).
        lat_bounds: (south, north) outer cell edges, degrees.
        lon_bounds: (west, east) outer cell edges, degrees, west < east.
    """

    lat: np.ndarray
    lon: np.ndarray
    lat_bounds: tuple[float, float]
    lon_bounds: tuple[float, float]

    @property
    def shape(self) -> tuple[int, int]:
        """(n_lat, n_lon)."""
        return (self.lat.size, self.lon.size)

    @property
    def dlat(self) -> float:
        """Cell height, degrees."""
        return (self.lat_bounds[1] - self.lat_bounds[0]) / self.lat.size

    @property
    def dlon(self) -> float:
        """Cell width, degrees."""
        return (self.lon_bounds[1] - self.lon_bounds[0]) / self.lon.size

    def cell_index(self, lat, lon) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Cell (row, column) holding each point, and whether it lies on the grid at all.

        Args:
            lat, lon: arrays of the same shape, degrees (any longitude convention).

        Returns:
            (i, j, inside): integer arrays of that shape (meaningless where ``inside`` is False)
            and a boolean array; NaN points are outside.
        """
        lat = np.asarray(lat, dtype=np.float64)
        south, north = self.lat_bounds
        west, east = self.lon_bounds
        east_offset = (np.asarray(lon, dtype=np.float64) - west) % 360.0
        with np.errstate(invalid="ignore"):
            inside = (lat >= south) & (lat <= north) & (east_offset <= east - west)
        i = np.floor((np.nan_to_num(lat, nan=south) - south) / self.dlat).astype(np.int64)
        j = np.floor(np.nan_to_num(east_offset) / self.dlon).astype(np.int64)
        # A point exactly on the north or east edge belongs to the last cell.
        return np.minimum(i, self.lat.size - 1), np.minimum(j, self.lon.size - 1), inside


def make_grid(
    lat_bounds: tuple[float, float], lon_bounds: tuple[float, float], n_lat: int, n_lon: int
) -> Grid:
    """A regular grid of ``n_lat`` x ``n_lon`` cells between the given outer edges (degrees).

    ``lon_bounds`` is (west, east) with west < east and east - west <= 360; a grid across the
    antimeridian is written e.g. (170, 200).
    """
    south, north = (float(v) for v in lat_bounds)
    west, east = (float(v) for v in lon_bounds)
    if not (-90.0 <= south < north <= 90.0):
        raise ValueError(f"latitude bounds must satisfy -90 <= south < north <= 90: {lat_bounds}")
    if not (west < east <= west + 360.0):
        raise ValueError(f"longitude bounds must satisfy west < east <= west + 360: {lon_bounds}")
    if int(n_lat) < 1 or int(n_lon) < 1:
        raise ValueError(f"grid needs at least one cell each way, got {n_lat} x {n_lon}")
    lat = south + (np.arange(int(n_lat)) + 0.5) * (north - south) / int(n_lat)
    lon = west + (np.arange(int(n_lon)) + 0.5) * (east - west) / int(n_lon)
    return Grid(lat=lat, lon=lon, lat_bounds=(south, north), lon_bounds=(west, east))


def _valid_pixels(
    skymap: Skymap, altitude_km: float, min_elevation_deg: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(lat, lon) (H, W) of pixel centres and the mask of pixels usable for projection."""
    lat, lon = pixel_lat_lon(skymap, altitude_km)
    elevation = np.asarray(skymap.elevation, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        valid = np.isfinite(lat) & np.isfinite(lon) & (elevation >= min_elevation_deg)
    return lat, lon, valid


def grid_covering(
    skymaps, altitude_km: float, min_elevation_deg: float, n_lat: int, n_lon: int
) -> Grid:
    """The grid spanning the bounding box of the union of the skymaps' fields of view.

    Args:
        skymaps: one Skymap or a sequence of them.
        altitude_km: emission altitude, km.
        min_elevation_deg: pixels below this elevation are outside the field of view.
        n_lat, n_lon: number of cells.

    Returns:
        Grid whose outer edges are the extreme pixel-centre latitudes/longitudes above the cut
        (longitudes taken relative to the first site, so a box across the antimeridian works).
    """
    if isinstance(skymaps, Skymap):
        skymaps = [skymaps]
    skymaps = list(skymaps)
    if not skymaps:
        raise ValueError("grid_covering needs at least one skymap")
    ref = skymaps[0].site_lon
    lats, offsets = [], []
    for sk in skymaps:
        lat, lon, valid = _valid_pixels(sk, altitude_km, min_elevation_deg)
        lats.append(lat[valid])
        offsets.append(_wrap(lon[valid] - ref))
    lat_all = np.concatenate(lats)
    off_all = np.concatenate(offsets)
    if lat_all.size == 0:
        raise ValueError(f"no pixel above {min_elevation_deg} deg elevation in the skymaps")
    west = float(_wrap(ref + off_all.min()))
    return make_grid(
        (lat_all.min(), lat_all.max()),
        (west, west + float(off_all.max() - off_all.min())),
        n_lat,
        n_lon,
    )


def _tangent_plane_km(lat, lon, lat0: float, lon0: float, radius_km: float) -> np.ndarray:
    """Points on a sphere -> (..., 2) east/north coordinates (km) in the plane tangent at
    (lat0, lon0) (orthographic; points on the far hemisphere become +inf)."""
    phi, lam = np.radians(lat), np.radians(lon)
    p0, l0 = np.radians(lat0), np.radians(lon0)
    v = np.stack([np.cos(phi) * np.cos(lam), np.cos(phi) * np.sin(lam), np.sin(phi)], axis=-1)
    east = np.array([-np.sin(l0), np.cos(l0), 0.0])
    north = np.array([-np.sin(p0) * np.cos(l0), -np.sin(p0) * np.sin(l0), np.cos(p0)])
    up = np.array([np.cos(p0) * np.cos(l0), np.cos(p0) * np.sin(l0), np.sin(p0)])
    xy = radius_km * np.stack([v @ east, v @ north], axis=-1)
    xy[(v @ up) <= 0] = np.inf
    return xy


def _footprint_radius_km(xy: np.ndarray) -> np.ndarray:
    """(H, W) distance from a pixel centre to its farthest footprint corner, km.

    From the steps to neighbouring pixel centres along rows and columns (the larger of the two
    sides, so edge pixels work): the footprint is roughly the parallelogram spanned by the two
    steps, whose corners lie within half their summed lengths. NaN where undefined.
    """

    def step(axis: int) -> np.ndarray:
        d = np.linalg.norm(np.diff(xy, axis=axis), axis=-1)
        d[~np.isfinite(d)] = np.nan
        pad = [(0, 0), (0, 0)]
        pad[axis] = (1, 0)
        before = np.pad(d, pad, constant_values=np.nan)
        pad[axis] = (0, 1)
        after = np.pad(d, pad, constant_values=np.nan)
        return np.fmax(before, after)  # fmax ignores a NaN side

    return 0.5 * (step(0) + step(1))


def build_projection_operator(
    skymap: Skymap, grid: Grid, altitude_km: float, min_elevation_deg: float = 10.0
) -> tuple[scipy.sparse.csr_matrix, np.ndarray]:
    """The sparse linear map from image pixels to grid cells.

    Each cell averages the valid pixels (finite position, elevation >= ``min_elevation_deg``)
    whose centres fall inside it. A cell that no valid pixel centre falls in takes the value of
    the nearest valid pixel (nearest in the plane tangent at the site, at ``altitude_km``) when
    that pixel lies within its own footprint radius of the cell centre, so cells beyond the
    field of view stay empty.

    Args:
        skymap: pixel geometry (canonical orientation, like the frames to be projected).
        grid: the target grid.
        altitude_km: emission altitude, km.
        min_elevation_deg: elevation cut, degrees.

    Returns:
        operator: csr_matrix float32 of shape (n_lat * n_lon, H * W); row ``i * n_lon + j``
            holds cell (i, j)'s weights over row-major flattened pixels; rows sum to 1 on the
            field of view and are empty elsewhere.
        fov_mask: (n_lat, n_lon) bool, True for cells with a value.
    """
    lat, lon, valid = _valid_pixels(skymap, altitude_km, min_elevation_deg)
    n_pix = lat.size
    n_cells = grid.lat.size * grid.lon.size
    i, j, inside = grid.cell_index(lat, lon)
    use = (valid & inside).ravel()
    pixel = np.flatnonzero(use)
    cell = (i.ravel() * grid.lon.size + j.ravel())[use]
    counts = np.bincount(cell, minlength=n_cells)

    # Nearest-pixel fill for empty cells, in a local tangent plane (km).
    radius = EARTH_RADIUS_KM + altitude_km
    finite = np.isfinite(lat) & np.isfinite(lon)
    xy = np.full(lat.shape + (2,), np.nan)
    xy[finite] = _tangent_plane_km(
        lat[finite], lon[finite], skymap.site_lat, skymap.site_lon, radius
    )
    limit = _footprint_radius_km(xy).ravel()
    fill_cells = np.empty(0, dtype=np.int64)
    fill_pixels = np.empty(0, dtype=np.int64)
    valid_flat = np.flatnonzero(valid.ravel() & np.isfinite(limit))
    empty = np.flatnonzero(counts == 0)
    if valid_flat.size and empty.size:
        tree = cKDTree(xy.reshape(-1, 2)[valid_flat])
        glat, glon = np.meshgrid(grid.lat, grid.lon, indexing="ij")
        cell_xy = _tangent_plane_km(
            glat.ravel()[empty], glon.ravel()[empty], skymap.site_lat, skymap.site_lon, radius
        )
        near = np.all(np.isfinite(cell_xy), axis=1)
        dist, nearest = tree.query(cell_xy[near], distance_upper_bound=np.nanmax(limit[valid_flat]))
        hit = np.isfinite(dist)
        candidates = valid_flat[nearest[hit]]
        ok = dist[hit] <= limit[candidates]
        fill_cells = empty[near][hit][ok]
        fill_pixels = candidates[ok]

    rows = np.concatenate([cell, fill_cells])
    cols = np.concatenate([pixel, fill_pixels])
    weights = np.concatenate(
        [1.0 / counts[cell], np.ones(fill_cells.size)]  # fill cells hold exactly one pixel
    ).astype(np.float32)
    operator = scipy.sparse.csr_matrix((weights, (rows, cols)), shape=(n_cells, n_pix))
    operator.sum_duplicates()
    fov_mask = np.zeros(n_cells, dtype=bool)
    fov_mask[rows] = True
    return operator, fov_mask.reshape(grid.shape)


#: Projected counts (uint16 output of :func:`project_frames`) in cells outside the field of view.
UINT16_FILL = 65535
#: Largest count :func:`project_frames` writes as uint16; larger values are clipped to it.
UINT16_MAX_COUNT = 65534


# The kernel's helpers are inlined by numba (inline="always"): left as calls, which LLVM did not
# inline, they made the kernel 10-25% slower.
@numba.njit(inline="always")
def _as_count(value, fill):
    """A float32 projected value -> float32 count rounded to the nearest integer (ties to even),
    clipped to [0, UINT16_MAX_COUNT]; NaN (from NaN frames) -> ``fill``."""
    if value != value:
        return fill
    return min(max(np.rint(value), np.float32(0.0)), np.float32(UINT16_MAX_COUNT))


@numba.njit(inline="always")
def _interleave(frames, first, tile):
    """``tile[pixel * 8 + k] = frames[first + k, pixel]`` for k = 0..7, frames (N, n_pix), tile
    (n_pix * 8,) of the same dtype. Past the last frame the last frame is repeated, so that all
    eight lanes hold numbers."""
    last = frames.shape[0] - 1
    f0 = frames[first]
    f1 = frames[min(first + 1, last)]
    f2 = frames[min(first + 2, last)]
    f3 = frames[min(first + 3, last)]
    f4 = frames[min(first + 4, last)]
    f5 = frames[min(first + 5, last)]
    f6 = frames[min(first + 6, last)]
    f7 = frames[min(first + 7, last)]
    for pixel in range(frames.shape[1]):
        q = LANES * pixel
        tile[q] = f0[pixel]
        tile[q + 1] = f1[pixel]
        tile[q + 2] = f2[pixel]
        tile[q + 3] = f3[pixel]
        tile[q + 4] = f4[pixel]
        tile[q + 5] = f5[pixel]
        tile[q + 6] = f6[pixel]
        tile[q + 7] = f7[pixel]


@numba.njit(inline="always")
def _deinterleave(row_sums, out, first, row):
    """``out[first + k, row, col] = row_sums[col * 8 + k]`` for k = 0..7 while first + k < N,
    out (N, n_lat, n_lon), row_sums (n_lon * 8,); the inverse of :func:`_interleave`, so that
    every write to ``out`` runs along a row."""
    count = min(LANES, out.shape[0] - first)
    if count < LANES:
        for k in range(count):
            line = out[first + k, row]
            for col in range(out.shape[2]):
                line[col] = row_sums[LANES * col + k]
        return
    l0 = out[first, row]
    l1 = out[first + 1, row]
    l2 = out[first + 2, row]
    l3 = out[first + 3, row]
    l4 = out[first + 4, row]
    l5 = out[first + 5, row]
    l6 = out[first + 6, row]
    l7 = out[first + 7, row]
    for col in range(out.shape[2]):
        q = LANES * col
        l0[col] = row_sums[q]
        l1[col] = row_sums[q + 1]
        l2[col] = row_sums[q + 2]
        l3[col] = row_sums[q + 3]
        l4[col] = row_sums[q + 4]
        l5[col] = row_sums[q + 5]
        l6[col] = row_sums[q + 6]
        l7[col] = row_sums[q + 7]


@numba.njit(cache=True, nogil=True)
def _project_blocks(
    indptr, indices, weights, fov, frames, out, as_counts, fill, tile, worker, n_workers
):
    """One worker's share of ``out[f] = operator @ frames[f]``, written in place.

    The frames are taken in blocks of LANES (8); this worker does blocks ``worker, worker +
    n_workers, ...``. A block is copied interleaved into ``tile`` (for THEMIS uint16 frames
    1 MiB, so it stays in a core's L2 cache), then the CSR rows are walked once: each entry adds
    weight * (its pixel in the eight frames) to eight float32 lanes with one vector operation
    (:mod:`latentsky.projection.lanes`). Each cell sums its entries in CSR order, a multiply and an add per
    entry, as scipy's CSR product does. A grid row of sums is kept interleaved the same way, then
    written out frame by frame.

    Args:
        indptr, indices, weights: the operator's CSR arrays: (n_cells + 1,) and (nnz,) integers
            (column indices within 0..n_pix - 1), (nnz,) float32.
        fov: (n_cells,) bool, cells with a value; the others get ``fill``.
        frames: (N, n_pix) uint16 or float32, C-contiguous.
        out: (N, n_lat, n_lon) float32 or uint16, n_lat * n_lon == n_cells, any strides.
        as_counts: write counts (see :func:`_as_count`) instead of the float32 values.
        fill: float32 value for cells outside ``fov``: NaN, or UINT16_FILL for counts.
        tile: (n_pix * 8,) scratch of the frames' dtype.
        worker, n_workers: this worker's number and the number of workers.
    """
    n_lat, n_lon = out.shape[1], out.shape[2]
    row_sums = np.empty(n_lon * LANES, dtype=np.float32)
    for block in range(worker, (frames.shape[0] + LANES - 1) // LANES, n_workers):
        first = block * LANES
        _interleave(frames, first, tile)
        for row in range(n_lat):
            inside = fov[row * n_lon : (row + 1) * n_lon]
            for col in range(n_lon):
                sums = zero_lanes()
                if inside[col]:
                    cell = row * n_lon + col
                    for entry in range(indptr[cell], indptr[cell + 1]):
                        start = LANES * np.intp(indices[entry])
                        sums = add_scaled(sums, weights[entry], tile, start)
                store_lanes(sums, row_sums, LANES * col)
            if as_counts:
                for q in range(n_lon * LANES):
                    row_sums[q] = _as_count(row_sums[q], fill)
            for col in range(n_lon):
                if not inside[col]:
                    for q in range(LANES * col, LANES * col + LANES):
                        row_sums[q] = fill
            _deinterleave(row_sums, out, first, row)


@numba.njit(parallel=True, cache=True, nogil=True)
def _project_parallel(indptr, indices, weights, fov, frames, out, as_counts, fill, tiles):
    """:func:`_project_blocks` on numba's threads, one worker per row of ``tiles``."""
    n_workers = tiles.shape[0]
    for worker in prange(n_workers):
        _project_blocks(
            indptr,
            indices,
            weights,
            fov,
            frames,
            out,
            as_counts,
            fill,
            tiles[worker],
            worker,
            n_workers,
        )


def project_frames(
    operator: scipy.sparse.csr_matrix,
    fov_mask: np.ndarray,
    frames: np.ndarray,
    chunk_size: int = 128,
    out: np.ndarray | None = None,
    dtype=np.float32,
) -> np.ndarray:
    """Project a stack of frames onto the grid.

    Every cell is the operator's weighted sum of the frame's pixels, summed in float32 in CSR
    order: the values are those of ``operator @ X`` for X the frames converted to float32 and laid
    out (pixels x frames), to float32 rounding (bit for bit where scipy does not fuse the multiply
    and the add, as in its x86-64 wheels). Runs on numba's threads, at most one per 8 frames
    (``numba.set_num_threads`` limits them; with one thread no thread pool is involved, and the
    call may run alongside other Python threads: it releases the GIL. numba's default threading
    layer does not allow threaded calls from two Python threads at once). Compiled on first use
    and cached on disk next to this module.

    Args:
        operator: from :func:`build_projection_operator`, shape (n_lat * n_lon, H * W).
        fov_mask: (n_lat, n_lon) bool.
        frames: (N, H, W) any numeric type, same orientation as the skymap (one frame (H, W)
            is accepted too). C-contiguous native uint16 or float32 frames are read in place;
            others are converted chunk by chunk (to float32, or to native uint16 from uint16).
        chunk_size: frames per conversion when ``frames`` must be converted; bounds that copy to
            H * W * chunk_size values. Irrelevant for C-contiguous uint16 or float32 frames.
        out: optional (N, n_lat, n_lon) (or (n_lat, n_lon) for one frame) array of ``dtype`` to
            write into, e.g. a slice of a reused block buffer; no result array is allocated then.
        dtype: np.float32: values in frame units, NaN outside ``fov_mask``. np.uint16: counts,
            rounded to the nearest integer (ties to even) and clipped to [0, UINT16_MAX_COUNT],
            UINT16_FILL outside ``fov_mask`` (and where the value is NaN).

    Returns:
        (N, n_lat, n_lon) array of ``dtype`` (or (n_lat, n_lon) for one frame): ``out`` when given.

    Memory: besides the result and any conversion chunk, one tile of H * W * 8 values of the
    frames' dtype (1 MiB for THEMIS uint16 frames) per numba thread used.
    """
    dtype = np.dtype(dtype)
    if dtype not in (np.dtype(np.float32), np.dtype(np.uint16)):
        raise ValueError(f"dtype must be float32 or uint16, got {dtype}")
    frames = np.asarray(frames)
    single = frames.ndim == 2
    if single:
        frames = frames[np.newaxis]
    if frames.ndim != 3:
        raise ValueError(f"frames must be (N, H, W), got shape {frames.shape}")
    n, h, w = frames.shape
    n_cells, n_pix = operator.shape
    if n_pix != h * w or n_cells != fov_mask.size:
        raise ValueError(
            f"operator {operator.shape} does not fit frames {frames.shape} and grid "
            f"{fov_mask.shape}"
        )
    shape = (n, *fov_mask.shape)
    if out is None:
        result = np.empty(shape, dtype=dtype)
    else:
        result = out[np.newaxis] if single else out
        if result.shape != shape or result.dtype != dtype:
            raise ValueError(
                f"out must be a {dtype} array of shape {shape[1:] if single else shape}, "
                f"got {out.dtype} {out.shape}"
            )
        if not result.flags.writeable:
            raise ValueError("out is read-only")
    if n:
        operator = scipy.sparse.csr_matrix(operator)
        if operator.nnz and not 0 <= operator.indices.min() <= operator.indices.max() < n_pix:
            raise ValueError("operator has column indices outside 0..H * W - 1")
        arrays = (
            operator.indptr,
            operator.indices,
            operator.data.astype(np.float32, copy=False),
            np.ascontiguousarray(fov_mask, dtype=bool).ravel(),
        )
        as_counts = dtype == np.uint16
        fill = np.float32(UINT16_FILL if as_counts else np.nan)
        unsigned16 = frames.dtype.kind == "u" and frames.dtype.itemsize == 2
        native = np.dtype(np.uint16) if unsigned16 else np.dtype(np.float32)
        step = n if frames.dtype == native and frames.flags.c_contiguous else max(1, chunk_size)
        n_workers = min(numba.get_num_threads(), -(-min(step, n) // LANES))
        tiles = np.empty((n_workers, n_pix * LANES), dtype=native)
        for start in range(0, n, step):
            stop = min(start + step, n)
            chunk = np.ascontiguousarray(frames[start:stop], dtype=native)
            args = (
                *arrays,
                chunk.reshape(stop - start, n_pix),
                result[start:stop],
                as_counts,
                fill,
            )
            if n_workers == 1:  # no thread pool: nothing to wait for on a busy machine
                _project_blocks(*args, tiles[0], 0, 1)
            else:
                _project_parallel(*args, tiles)
    if out is not None:
        return out
    return result[0] if single else result


def save_operator(
    path,
    operator: scipy.sparse.csr_matrix,
    fov_mask: np.ndarray,
    grid: Grid,
    metadata: dict,
) -> None:
    """Write an operator, its mask, its grid and JSON-able metadata to one ``.npz`` file.

    The file is written at exactly ``path`` (numpy would otherwise append ``.npz``).
    """
    operator = scipy.sparse.csr_matrix(operator)
    with open(path, "wb") as handle:
        np.savez(
            handle,
            format_version=np.int64(OPERATOR_FORMAT),
            data=operator.data.astype(np.float32),
            indices=operator.indices,
            indptr=operator.indptr,
            shape=np.asarray(operator.shape, dtype=np.int64),
            fov_mask=np.asarray(fov_mask, dtype=bool),
            lat=grid.lat,
            lon=grid.lon,
            lat_bounds=np.asarray(grid.lat_bounds, dtype=np.float64),
            lon_bounds=np.asarray(grid.lon_bounds, dtype=np.float64),
            metadata=np.asarray(json.dumps(metadata, sort_keys=True)),
        )


def load_operator(path) -> tuple[scipy.sparse.csr_matrix, np.ndarray, Grid, dict]:
    """Read what :func:`save_operator` wrote: (operator, fov_mask, grid, metadata).

    Raises:
        BadInputError: the file is not such an operator file or is inconsistent.
    """
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as z:
            parts = {key: z[key] for key in z.files}
    except Exception as exc:  # zipfile/pickle/OS errors on damaged files
        raise BadInputError(path, f"not a readable operator file ({exc})") from exc
    needed = {"data", "indices", "indptr", "shape", "fov_mask", "lat", "lon", "lat_bounds"}
    missing = sorted((needed | {"lon_bounds", "metadata", "format_version"}) - set(parts))
    if missing:
        raise BadInputError(path, f"operator file lacks {missing}")
    if int(parts["format_version"]) != OPERATOR_FORMAT:
        raise BadInputError(path, f"operator file format {parts['format_version']} is unknown")
    try:
        operator = scipy.sparse.csr_matrix(
            (parts["data"], parts["indices"], parts["indptr"]), shape=tuple(parts["shape"])
        )
        metadata = json.loads(str(parts["metadata"]))
    except (ValueError, TypeError) as exc:
        raise BadInputError(path, f"inconsistent operator file ({exc})") from exc
    grid = Grid(
        lat=parts["lat"],
        lon=parts["lon"],
        lat_bounds=tuple(float(v) for v in parts["lat_bounds"]),
        lon_bounds=tuple(float(v) for v in parts["lon_bounds"]),
    )
    fov_mask = parts["fov_mask"]
    if fov_mask.shape != grid.shape or operator.shape[0] != fov_mask.size:
        raise BadInputError(
            path, f"operator {operator.shape}, mask {fov_mask.shape}, grid {grid.shape} disagree"
        )
    return operator, fov_mask, grid, metadata
