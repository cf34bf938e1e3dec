"""Projection of all-sky images onto a regular grid at an emission altitude.

Two kinds of grid share one interface (:class:`CellGrid`), so the operator code and the operator
files treat them alike:

* :class:`Grid`, a regular latitude-longitude grid (dims ``lat``, ``lon``), e.g. the bounding box
  of the field of view (:func:`grid_covering`);
* :class:`LocalGrid`, a square grid in km centred on a site: the azimuthal equidistant projection
  on the spherical shell at the emission altitude (dims ``y``, ``x``; :func:`site_grid`). Distances
  and azimuths from the site are true on it, so the same aurora relative to any site falls in the
  same cells.

The projection is linear in the pixel values, so it is precomputed once per (skymap, grid,
altitude, elevation cut, field-of-view radius) as a sparse matrix of shape ``(n_cells, H * W)``
and applied to whole stacks of frames by a compiled (numba) kernel that reads the frames in place.
Each grid cell averages the pixels whose centres fall inside it; cells inside the field of view
that no pixel centre falls in (where pixels are larger than cells, towards the horizon) take their
nearest valid pixel. An optional common field of view, a disc of given radius about the site,
removes the cells outside it (:func:`build_projection_operator`).

Conventions: latitudes and longitudes in degrees (longitudes -180..180 unless a grid's bounds say
otherwise), altitudes and distances in km, arrays in the canonical image orientation of
:mod:`latentsky.instruments.themis`. The Earth is a sphere of radius :data:`EARTH_RADIUS_KM`; a
point "at altitude h" lies on the shell of radius ``EARTH_RADIUS_KM + h``.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Protocol

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
#: Version of the file layout written by :func:`save_operator`. Format 1 (lat-lon grids only, no
#: ``grid_kind``) is still read.
OPERATOR_FORMAT = 2


def _wrap(lon):
    """Degrees into -180..180."""
    return (np.asarray(lon, dtype=np.float64) + 180.0) % 360.0 - 180.0


def _corner_key(skymap: Skymap, altitude_km: float) -> float | None:
    """The corner-map altitude equal (within 1 m) to ``altitude_km``, or None."""
    for key in skymap.corner_lat:
        if abs(key - altitude_km) < 1e-3 and key in skymap.corner_lon:
            return key
    return None


def _geocentric_angle(elevation_rad, site_alt_km: float, altitude_km: float):
    """Angle at the Earth's centre (radians) between a site and where its line of sight at
    ``elevation_rad`` crosses the shell at ``altitude_km`` (law of sines in the triangle Earth
    centre - site - crossing point); NaN where the elevation is NaN."""
    r_site = EARTH_RADIUS_KM + site_alt_km
    r_shell = EARTH_RADIUS_KM + altitude_km
    with np.errstate(invalid="ignore"):
        return (
            np.arccos(np.clip(r_site * np.cos(elevation_rad) / r_shell, -1.0, 1.0)) - elevation_rad
        )


def _destination(site_lat: float, site_lon: float, angle, azimuth_rad):
    """(lat, lon), degrees (longitude -180..180), of the points at geocentric ``angle`` (radians)
    from the site in the direction ``azimuth_rad`` (from north through east): the great circle
    leaving the site at that azimuth."""
    phi1 = np.radians(site_lat)
    sin_lat = np.sin(phi1) * np.cos(angle) + np.cos(phi1) * np.sin(angle) * np.cos(azimuth_rad)
    lat = np.arcsin(np.clip(sin_lat, -1.0, 1.0))
    dlon = np.arctan2(
        np.sin(azimuth_rad) * np.sin(angle) * np.cos(phi1), np.cos(angle) - np.sin(phi1) * sin_lat
    )
    return np.degrees(lat), _wrap(site_lon + np.degrees(dlon))


def _site_frame(lat, lon, site_lat: float, site_lon: float):
    """East, north and up components, in the site's local frame, of the unit vectors from the
    Earth's centre to the points (lat, lon), degrees; arrays of the points' shape."""
    phi, p0 = np.radians(np.asarray(lat, dtype=np.float64)), np.radians(site_lat)
    dlon = np.radians(np.asarray(lon, dtype=np.float64) - site_lon)
    east = np.cos(phi) * np.sin(dlon)
    north = np.cos(p0) * np.sin(phi) - np.sin(p0) * np.cos(phi) * np.cos(dlon)
    up = np.sin(p0) * np.sin(phi) + np.cos(p0) * np.cos(phi) * np.cos(dlon)
    return east, north, up


def shell_distance_km(lat, lon, site_lat: float, site_lon: float, altitude_km: float) -> np.ndarray:
    """Great-circle distance (km) along the shell at ``altitude_km`` from the point above the
    site (site_lat, site_lon, degrees) to the points (lat, lon) (degrees, arrays of any shape)."""
    east, north, up = _site_frame(lat, lon, site_lat, site_lon)
    # atan2 of the sine and cosine of the angle: accurate at every distance, unlike arccos.
    return (EARTH_RADIUS_KM + altitude_km) * np.arctan2(np.hypot(east, north), up)


def shell_distance_at_elevation(
    elevation_deg, altitude_km: float, site_alt_km: float = 0.0
) -> np.ndarray:
    """Distance (km) along the shell at ``altitude_km`` from the point above a site to where a
    line of sight at ``elevation_deg`` (degrees, array or scalar) from the site (at
    ``site_alt_km``) crosses it: the radius of the field of view that a minimum elevation gives,
    e.g. about 513 km for 10 degrees at 110 km."""
    elevation = np.radians(np.asarray(elevation_deg, dtype=np.float64))
    return (EARTH_RADIUS_KM + altitude_km) * _geocentric_angle(elevation, site_alt_km, altitude_km)


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
    el = np.radians(np.asarray(elevation, dtype=np.float64))
    az = np.radians(np.asarray(azimuth, dtype=np.float64))
    theta = _geocentric_angle(el, site_alt_km, altitude_km)
    return _destination(site_lat, site_lon, theta, az)


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


class CellGrid(Protocol):
    """What the operator code, the operator files and the sample stores need of a grid.

    Implemented by :class:`Grid` (geographic) and :class:`LocalGrid` (site-centred, km). Rows
    run south to north and columns west to east in both, so images are north up and east right
    when drawn with the first row at the bottom (matplotlib ``origin="lower"``).
    """

    #: Name of the kind in operator files: ``"latlon"`` or ``"local"``.
    kind: ClassVar[str]
    #: Names of the (row, column) dimensions in stores: ``("lat", "lon")`` or ``("y", "x")``.
    dims: ClassVar[tuple[str, str]]

    @property
    def shape(self) -> tuple[int, int]:
        """(rows, columns); cell (i, j) is row ``i * columns + j`` of a projection operator."""

    def cell_index(self, lat, lon) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(i, j, inside) of points given in degrees at the grid's altitude."""

    def centre_lat_lon(self) -> tuple[np.ndarray, np.ndarray]:
        """(lat, lon) of the cell centres, each of shape ``shape``, degrees."""

    def coords(self) -> dict[str, tuple]:
        """The dimension coordinates for xarray: ``{dim: (dim, values, CF attributes)}``."""

    def grid_mapping(self) -> dict:
        """CF grid-mapping attributes, for a ``crs`` variable named by the data's
        ``grid_mapping`` attribute."""

    def to_arrays(self) -> dict[str, np.ndarray]:
        """What an operator file stores of the grid (read back by ``from_arrays``)."""


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

    kind: ClassVar[str] = "latlon"
    dims: ClassVar[tuple[str, str]] = ("lat", "lon")

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

    def centre_lat_lon(self) -> tuple[np.ndarray, np.ndarray]:
        """(lat, lon) of the cell centres, each (n_lat, n_lon), degrees."""
        return np.meshgrid(self.lat, self.lon, indexing="ij")

    def coords(self) -> dict[str, tuple]:
        """``{"lat": ("lat", lat, attrs), "lon": ("lon", lon, attrs)}`` for xarray."""
        return {
            "lat": ("lat", self.lat, {"units": "degrees_north", "standard_name": "latitude"}),
            "lon": ("lon", self.lon, {"units": "degrees_east", "standard_name": "longitude"}),
        }

    def grid_mapping(self) -> dict:
        """CF grid mapping: plain latitude and longitude."""
        return {"grid_mapping_name": "latitude_longitude"}

    def to_arrays(self) -> dict[str, np.ndarray]:
        """Cell centres and outer edges (the names format 1 operator files used)."""
        return {
            "lat": self.lat,
            "lon": self.lon,
            "lat_bounds": np.asarray(self.lat_bounds, dtype=np.float64),
            "lon_bounds": np.asarray(self.lon_bounds, dtype=np.float64),
        }

    @classmethod
    def from_arrays(cls, parts) -> Grid:
        """The grid :meth:`to_arrays` describes (KeyError when a part is missing)."""
        return cls(
            lat=parts["lat"],
            lon=parts["lon"],
            lat_bounds=tuple(float(v) for v in parts["lat_bounds"]),
            lon_bounds=tuple(float(v) for v in parts["lon_bounds"]),
        )


@dataclass(frozen=True)
class LocalGrid:
    """A square grid in km centred on a site: azimuthal equidistant at an emission altitude.

    A point on the shell at ``altitude_km`` has coordinates ``(x, y) = d * (sin az, cos az)``
    (km), where ``d`` is its great-circle distance along the shell from the point above the site
    and ``az`` its azimuth seen from there (from north through east). Distances and directions
    from the site are true, so a feature at a given distance and direction from any site lands in
    the same cells; away from the centre, shapes stretch across the radial direction by
    ``(d / R) / sin(d / R)`` (R the shell radius): 0.1 % at 500 km.

    The grid has ``n`` x ``n`` square cells spanning ``[-half_width_km, +half_width_km]`` in
    ``x`` (east) and ``y`` (north). Rows run south to north (y ascending) and columns west to
    east, as in :class:`Grid`. With ``n`` odd the site is the centre of the middle cell; with
    ``n`` even it is the corner shared by the four middle cells (and falls in cell
    ``(n // 2, n // 2)``).

    Attributes:
        site_lat, site_lon: the centre of the projection (the site), degrees.
        altitude_km: the shell's altitude, km; projections onto this grid must use it.
        half_width_km: half the side of the grid, km.
        n: cells each way.
    """

    site_lat: float
    site_lon: float
    altitude_km: float
    half_width_km: float
    n: int

    kind: ClassVar[str] = "local"
    dims: ClassVar[tuple[str, str]] = ("y", "x")

    def __post_init__(self):
        for name in ("site_lat", "site_lon", "altitude_km", "half_width_km"):
            object.__setattr__(self, name, float(getattr(self, name)))
        if int(self.n) != self.n:
            raise ValueError(f"n must be a whole number of cells, got {self.n}")
        object.__setattr__(self, "n", int(self.n))
        if not (-90.0 <= self.site_lat <= 90.0 and -360.0 <= self.site_lon <= 360.0):
            raise ValueError(f"site position out of range: {self.site_lat}, {self.site_lon}")
        if not self.altitude_km > -EARTH_RADIUS_KM:
            raise ValueError(
                f"altitude_km must be above the Earth's centre, got {self.altitude_km}"
            )
        # The corners must lie closer than the antipode, where the projection folds over.
        farthest = math.pi * self.radius_km / math.sqrt(2.0)
        if not 0.0 < self.half_width_km < farthest:
            raise ValueError(
                f"half_width_km must be in (0, {farthest:.0f}) km, got {self.half_width_km}"
            )
        if self.n < 1:
            raise ValueError(f"grid needs at least one cell each way, got {self.n}")

    @property
    def radius_km(self) -> float:
        """Radius of the shell at the grid's altitude, km."""
        return EARTH_RADIUS_KM + self.altitude_km

    @property
    def cell_km(self) -> float:
        """Side of a cell, km."""
        return 2.0 * self.half_width_km / self.n

    @property
    def shape(self) -> tuple[int, int]:
        """(n, n)."""
        return (self.n, self.n)

    @property
    def y(self) -> np.ndarray:
        """(n,) cell-centre northings, km, ascending."""
        return -self.half_width_km + (np.arange(self.n) + 0.5) * self.cell_km

    @property
    def x(self) -> np.ndarray:
        """(n,) cell-centre eastings, km, ascending."""
        return self.y

    def to_xy(self, lat, lon) -> tuple[np.ndarray, np.ndarray]:
        """(x, y), km, of points (lat, lon) (degrees, arrays of any shape) on the shell.

        Every point has coordinates, at most ``pi * radius_km`` from the site; NaN stays NaN.
        """
        east, north, up = _site_frame(lat, lon, self.site_lat, self.site_lon)
        sine = np.hypot(east, north)  # sine of the geocentric angle from the site
        angle = np.arctan2(sine, up)
        # x = R * angle * sin(az) = R * angle * east / sine; at the site itself angle / sine -> 1.
        scale = self.radius_km * np.divide(angle, sine, out=np.ones_like(angle), where=sine > 0.0)
        return scale * east, scale * north

    def to_lat_lon(self, x, y) -> tuple[np.ndarray, np.ndarray]:
        """(lat, lon), degrees (longitude -180..180), of the points at (x, y), km; the inverse
        of :meth:`to_xy` within ``pi * radius_km`` of the site."""
        x = np.asarray(x, dtype=np.float64)
        y = np.asarray(y, dtype=np.float64)
        return _destination(
            self.site_lat, self.site_lon, np.hypot(x, y) / self.radius_km, np.arctan2(x, y)
        )

    def cell_index(self, lat, lon) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Cell (row, column) holding each point, and whether it lies on the grid at all.

        Args:
            lat, lon: arrays of the same shape, degrees, of points on the shell.

        Returns:
            (i, j, inside): integer arrays of that shape (meaningless where ``inside`` is False)
            and a boolean array; NaN points are outside.
        """
        x, y = self.to_xy(lat, lon)
        edge = self.half_width_km
        with np.errstate(invalid="ignore"):
            inside = (np.abs(x) <= edge) & (np.abs(y) <= edge)
        i = np.floor((np.nan_to_num(y) + edge) / self.cell_km).astype(np.int64)
        j = np.floor((np.nan_to_num(x) + edge) / self.cell_km).astype(np.int64)
        # A point exactly on the north or east edge belongs to the last cell.
        return np.minimum(i, self.n - 1), np.minimum(j, self.n - 1), inside

    def centre_lat_lon(self) -> tuple[np.ndarray, np.ndarray]:
        """(lat, lon) of the cell centres, each (n, n), degrees."""
        y, x = np.meshgrid(self.y, self.x, indexing="ij")
        return self.to_lat_lon(x, y)

    def coords(self) -> dict[str, tuple]:
        """``{"y": ("y", y, attrs), "x": ("x", x, attrs)}`` for xarray; km, CF projection
        coordinates. They do not depend on the site: grids of the same size at different sites
        have the same coordinates (the site is in :meth:`grid_mapping`)."""

        def attrs(axis: str, direction: str) -> dict:
            return {
                "units": "km",
                "standard_name": f"projection_{axis.lower()}_coordinate",
                "long_name": f"distance {direction} of the site along the emission shell",
                "axis": axis,
            }

        return {"y": ("y", self.y, attrs("Y", "north")), "x": ("x", self.x, attrs("X", "east"))}

    def grid_mapping(self) -> dict:
        """CF grid mapping: azimuthal equidistant about the site, on a sphere of the shell's
        radius (``earth_radius`` in metres, as CF has it)."""
        return {
            "grid_mapping_name": "azimuthal_equidistant",
            "latitude_of_projection_origin": self.site_lat,
            "longitude_of_projection_origin": self.site_lon,
            "false_easting": 0.0,
            "false_northing": 0.0,
            "earth_radius": self.radius_km * 1000.0,
        }

    def to_arrays(self) -> dict[str, np.ndarray]:
        """The five parameters, as 0-d arrays."""
        return {
            "site_lat": np.float64(self.site_lat),
            "site_lon": np.float64(self.site_lon),
            "altitude_km": np.float64(self.altitude_km),
            "half_width_km": np.float64(self.half_width_km),
            "n": np.int64(self.n),
        }

    @classmethod
    def from_arrays(cls, parts) -> LocalGrid:
        """The grid :meth:`to_arrays` describes (KeyError when a part is missing)."""
        return cls(
            site_lat=float(parts["site_lat"]),
            site_lon=float(parts["site_lon"]),
            altitude_km=float(parts["altitude_km"]),
            half_width_km=float(parts["half_width_km"]),
            n=int(parts["n"]),
        )


#: Grid classes by the ``kind`` an operator file names.
GRID_KINDS: dict[str, type] = {Grid.kind: Grid, LocalGrid.kind: LocalGrid}


def site_grid(skymap: Skymap, altitude_km: float, half_width_km: float, n: int) -> LocalGrid:
    """The site-centred grid of ``n`` x ``n`` cells, ``2 * half_width_km`` km across, at
    ``altitude_km`` (km) for the skymap's site: what every site of a dataset gets, with the same
    ``altitude_km``, ``half_width_km`` and ``n``."""
    return LocalGrid(skymap.site_lat, skymap.site_lon, altitude_km, half_width_km, n)


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
    skymap: Skymap,
    grid: CellGrid,
    altitude_km: float,
    min_elevation_deg: float = 10.0,
    fov_radius_km: float | None = None,
) -> tuple[scipy.sparse.csr_matrix, np.ndarray]:
    """The sparse linear map from image pixels to grid cells.

    Each cell averages the valid pixels (finite position, elevation >= ``min_elevation_deg``)
    whose centres fall inside it. A cell that no valid pixel centre falls in takes the value of
    the nearest valid pixel (nearest in the plane tangent at the site, at ``altitude_km``) when
    that pixel lies within its own footprint radius of the cell centre, so cells beyond the
    field of view stay empty.

    With ``fov_radius_km``, cells whose centre lies farther than that from the site (along the
    shell at ``altitude_km``, :func:`shell_distance_km`) are left empty too: a common circular
    field of view, the same disc at every site. The field of view is then the disc AND the
    elevation cut: whichever is stricter wins in each direction. For the same disc at every site,
    take a radius inside every site's cut (:func:`shell_distance_at_elevation` gives the radius
    an elevation reaches, e.g. ~513 km for 10 degrees at 110 km); a site whose cut (or missing
    skymap pixels) falls inside the disc somewhere keeps the smaller field of view there.

    Args:
        skymap: pixel geometry (canonical orientation, like the frames to be projected).
        grid: the target grid, a :class:`Grid` or a :class:`LocalGrid` (whose own altitude
            must be ``altitude_km``).
        altitude_km: emission altitude, km.
        min_elevation_deg: elevation cut, degrees.
        fov_radius_km: radius of the common field of view about the skymap's site, km; None for
            none.

    Returns:
        operator: csr_matrix float32 of shape (rows * columns, H * W) for ``grid.shape`` (rows,
            columns); row ``i * columns + j`` holds cell (i, j)'s weights over row-major
            flattened pixels; rows sum to 1 on the field of view and are empty elsewhere.
        fov_mask: ``grid.shape`` bool, True for cells with a value.

    Raises:
        ValueError: a LocalGrid at another altitude, or a radius that is not positive.
    """
    if isinstance(grid, LocalGrid) and abs(grid.altitude_km - altitude_km) > 1e-3:
        # Its km are along another shell: cells would be misplaced radially.
        raise ValueError(
            f"the local grid is at {grid.altitude_km} km, the projection at {altitude_km} km"
        )
    if fov_radius_km is not None and not fov_radius_km > 0:
        raise ValueError(f"fov_radius_km must be positive, got {fov_radius_km}")
    lat, lon, valid = _valid_pixels(skymap, altitude_km, min_elevation_deg)
    n_pix = lat.size
    n_cols = grid.shape[1]
    n_cells = grid.shape[0] * n_cols
    centre_lat, centre_lon = (a.ravel() for a in grid.centre_lat_lon())
    if fov_radius_km is None:
        in_disc = np.ones(n_cells, dtype=bool)
    else:
        in_disc = (
            shell_distance_km(centre_lat, centre_lon, skymap.site_lat, skymap.site_lon, altitude_km)
            <= fov_radius_km
        )
    i, j, inside = grid.cell_index(lat, lon)
    use = (valid & inside).ravel()
    cell = (i.ravel() * n_cols + j.ravel())[use]
    pixel = np.flatnonzero(use)
    keep = in_disc[cell]
    cell, pixel = cell[keep], pixel[keep]
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
    empty = np.flatnonzero((counts == 0) & in_disc)
    if valid_flat.size and empty.size:
        tree = cKDTree(xy.reshape(-1, 2)[valid_flat])
        cell_xy = _tangent_plane_km(
            centre_lat[empty], centre_lon[empty], skymap.site_lat, skymap.site_lon, radius
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
    grid: CellGrid,
    metadata: dict,
) -> None:
    """Write an operator, its mask, its grid and JSON-able metadata to one ``.npz`` file.

    The file is written at exactly ``path`` (numpy would otherwise append ``.npz``). Layout
    (format :data:`OPERATOR_FORMAT`): the CSR arrays, ``fov_mask``, ``grid_kind`` (a key of
    :data:`GRID_KINDS`) and the grid's ``to_arrays()``, ``metadata`` as JSON.
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
            grid_kind=np.asarray(grid.kind),
            metadata=np.asarray(json.dumps(metadata, sort_keys=True)),
            **grid.to_arrays(),
        )


def load_operator(path) -> tuple[scipy.sparse.csr_matrix, np.ndarray, CellGrid, dict]:
    """Read what :func:`save_operator` wrote: (operator, fov_mask, grid, metadata).

    Reads format 1 files too (written before local grids existed: always a lat-lon grid).

    Raises:
        BadInputError: the file is not such an operator file, is of an unknown format or grid
            kind, or is inconsistent.
    """
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as z:
            parts = {key: z[key] for key in z.files}
    except Exception as exc:  # zipfile/pickle/OS errors on damaged files
        raise BadInputError(path, f"not a readable operator file ({exc})") from exc
    needed = {"data", "indices", "indptr", "shape", "fov_mask", "metadata", "format_version"}
    missing = sorted(needed - set(parts))
    if missing:
        raise BadInputError(path, f"operator file lacks {missing}")
    version = int(parts["format_version"])
    if version == 1:
        kind = Grid.kind
    elif version == OPERATOR_FORMAT:
        if "grid_kind" not in parts:
            raise BadInputError(path, "operator file lacks ['grid_kind']")
        kind = str(parts["grid_kind"])
    else:
        raise BadInputError(
            path,
            f"operator file format {version} is unknown (this version reads 1 to "
            f"{OPERATOR_FORMAT}); rebuild the operators",
        )
    if kind not in GRID_KINDS:
        raise BadInputError(path, f"grid kind {kind!r} is unknown (known: {sorted(GRID_KINDS)})")
    try:
        grid = GRID_KINDS[kind].from_arrays(parts)
    except KeyError as exc:
        raise BadInputError(path, f"operator file lacks [{exc}] of its {kind} grid") from exc
    except (ValueError, TypeError) as exc:
        raise BadInputError(path, f"invalid {kind} grid ({exc})") from exc
    try:
        operator = scipy.sparse.csr_matrix(
            (parts["data"], parts["indices"], parts["indptr"]), shape=tuple(parts["shape"])
        )
        metadata = json.loads(str(parts["metadata"]))
    except (ValueError, TypeError) as exc:
        raise BadInputError(path, f"inconsistent operator file ({exc})") from exc
    fov_mask = parts["fov_mask"]
    if fov_mask.shape != grid.shape or operator.shape[0] != fov_mask.size:
        raise BadInputError(
            path, f"operator {operator.shape}, mask {fov_mask.shape}, grid {grid.shape} disagree"
        )
    return operator, fov_mask, grid, metadata


def write_site_operators(
    skymaps: dict[str, list[tuple[str, Skymap]]],
    grid: dict,
    altitude_km: float,
    min_elevation_deg: float,
    out_dir,
    fov_radius_km: float | None = None,
    log=None,
) -> dict[str, list[Path]]:
    """Build and save the operator of every skymap of every site of a dataset.

    Args:
        skymaps: by site, the (path, skymap) pairs of its skymaps.
        grid: the config's ``projection.grid``: ``frame`` ``geographic`` (one latitude-longitude
            grid over the fields of view of all sites) or ``site`` (each site's own
            :class:`LocalGrid` of ``half_width_km``, the same cells everywhere), and the cell
            counts ``n_lat``, ``n_lon``.
        out_dir: operators go to ``out_dir/<site>/<skymap file name>.npz``.
        fov_radius_km: the common circular field of view (None: the elevation cut alone).

    Returns the written paths by site.
    """
    out_dir = Path(out_dir)
    every = [skymap for pairs in skymaps.values() for _, skymap in pairs]
    shared = None
    if grid["frame"] == "geographic":
        shared = grid_covering(every, altitude_km, min_elevation_deg, grid["n_lat"], grid["n_lon"])
    written: dict[str, list[Path]] = {}
    for site, pairs in skymaps.items():
        written[site] = []
        for path, skymap in pairs:
            cells = shared or site_grid(skymap, altitude_km, grid["half_width_km"], grid["n_lat"])
            operator, fov_mask = build_projection_operator(
                skymap, cells, altitude_km, min_elevation_deg, fov_radius_km=fov_radius_km
            )
            metadata = {
                "skymap": Path(path).name,
                "site": site,
                "altitude_km": altitude_km,
                "min_elevation_deg": min_elevation_deg,
                "fov_radius_km": fov_radius_km,
                # Where the imager stands (geographic, from the skymap), whose skymap it is and
                # when it holds: projection chooses by them.
                "site_latitude": float(skymap.site_lat),
                "site_longitude": float(skymap.site_lon),
                "site_altitude_m": float(skymap.site_alt_km) * 1000.0,
                "skymap_site": skymap.site,
                "imager": skymap.imager,
                "valid_from": skymap.valid_from.isoformat() if skymap.valid_from else None,
                "valid_to": skymap.valid_to.isoformat() if skymap.valid_to else None,
            }
            target = out_dir / site / f"{Path(path).name}.npz"
            target.parent.mkdir(parents=True, exist_ok=True)
            save_operator(target, operator, fov_mask, cells, metadata)
            written[site].append(target)
            if log is not None:
                log.info(
                    "%s %s: %s grid %s, %d non-zeros, %d cells in the field of view",
                    site,
                    Path(path).name,
                    cells.kind,
                    cells.shape,
                    operator.nnz,
                    fov_mask.sum(),
                )
    return written
