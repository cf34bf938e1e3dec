"""Projection geometry, checked on the real GAKO skymap and frames (../shared/data), and, for
site-centred grids and the common field of view, on the multi-site demo's imagers.

The key acceptance check is the star test: bright stars, whose directions astropy computes for the
frame times, must appear in the projected real frames where the skymap puts them, and must not in
the seven other orientations of the frames.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import scipy.sparse
from scipy.ndimage import maximum_filter, median_filter

from latentsky.demo.aurora import (
    DEFAULT_SITES,
    DemoParams,
    Imager,
    SkyGeometry,
    ground_point,
    write_calibration_cdf,
)
from latentsky.errors import BadInputError
from latentsky.instruments.themis import (
    read_berkeley_calibration,
    read_themis_l1_cdf,
    read_ucalgary_skymap,
)
from latentsky.projection.geometry import (
    EARTH_RADIUS_KM,
    Grid,
    LocalGrid,
    build_projection_operator,
    grid_covering,
    load_operator,
    make_grid,
    pixel_lat_lon,
    project_frames,
    ray_lat_lon,
    save_operator,
    shell_distance_at_elevation,
    shell_distance_km,
    site_grid,
)

L1_NAME = "themis/gako/thg_l1_asf_gako_2011010617_v01.cdf"
SAV_NAME = "themis/gako/themis_skymap_gako_20110305-+_vXX.sav"
ALT_KM = 110.0
CUT_DEG = 10.0


@pytest.fixture(scope="module")
def sky(shared_data):
    return read_ucalgary_skymap(shared_data / SAV_NAME)


@pytest.fixture(scope="module")
def projection(sky):
    grid = grid_covering(sky, ALT_KM, CUT_DEG, 256, 256)
    operator, fov = build_projection_operator(sky, grid, ALT_KM, CUT_DEG)
    return grid, operator, fov


# --------------------------------------------------------------- independent spherical helpers


def _ecef(lat, lon, radius):
    """Points on a sphere (degrees, km) -> (..., 3) Earth-centred coordinates, km."""
    la, lo = np.radians(lat), np.radians(lon)
    return radius * np.stack([np.cos(la) * np.cos(lo), np.cos(la) * np.sin(lo), np.sin(la)], -1)


def _enu_basis(lat, lon):
    la, lo = np.radians(lat), np.radians(lon)
    east = np.array([-np.sin(lo), np.cos(lo), 0.0])
    north = np.array([-np.sin(la) * np.cos(lo), -np.sin(la) * np.sin(lo), np.cos(la)])
    up = np.array([np.cos(la) * np.cos(lo), np.cos(la) * np.sin(lo), np.sin(la)])
    return east, north, up


def _look_direction(sky, lat, lon, altitude_km):
    """(..., 3) unit east/north/up vectors from the site to points at ``altitude_km``."""
    site = _ecef(sky.site_lat, sky.site_lon, EARTH_RADIUS_KM + sky.site_alt_km)
    d = _ecef(lat, lon, EARTH_RADIUS_KM + altitude_km) - site
    d /= np.linalg.norm(d, axis=-1, keepdims=True)
    east, north, up = _enu_basis(sky.site_lat, sky.site_lon)
    return np.stack([d @ east, d @ north, d @ up], -1)


def _unit(az_deg, el_deg):
    """(..., 3) east/north/up unit vectors of directions given as azimuth/elevation (degrees)."""
    az, el = np.radians(az_deg), np.radians(el_deg)
    return np.stack([np.cos(el) * np.sin(az), np.cos(el) * np.cos(az), np.sin(el)], -1)


def _km_between(lat1, lon1, lat2, lon2):
    return np.linalg.norm(_ecef(lat1, lon1, 1.0) - _ecef(lat2, lon2, 1.0), axis=-1) * (
        EARTH_RADIUS_KM + ALT_KM
    )


# --------------------------------------------------------------- pixel positions


def test_corner_and_ray_positions_agree(sky):
    """Corner-map centres and the spherical ray model agree to well under a pixel."""
    corner_lat, corner_lon = pixel_lat_lon(sky, ALT_KM)
    no_corners = dataclasses.replace(sky, corner_lat={}, corner_lon={})
    ray_lat, ray_lon = pixel_lat_lon(no_corners, ALT_KM)
    use = np.isfinite(corner_lat) & (sky.elevation >= CUT_DEG)
    assert use.sum() > 30000
    apart = _km_between(corner_lat, corner_lon, ray_lat, ray_lon)[use]
    # Pixel size from the corner map itself: distance between neighbouring corners.
    clat, clon = sky.corner_lat[ALT_KM], sky.corner_lon[ALT_KM]
    size = _km_between(clat[:-1, :-1], clon[:-1, :-1], clat[1:, :-1], clon[1:, :-1])[use]
    assert np.all(apart < 0.5 * size)
    # The ray model is independent of the corner maps, so it also works at other altitudes.
    lat150, _ = pixel_lat_lon(no_corners, 150.0)
    assert np.isfinite(lat150[use]).all()


def test_pixel_centres_nan_where_any_corner_is_nan(sky):
    lat, lon = pixel_lat_lon(sky, ALT_KM)
    c = np.isnan(sky.corner_lat[ALT_KM])
    any_nan = c[:-1, :-1] | c[1:, :-1] | c[:-1, 1:] | c[1:, 1:]
    assert any_nan.any() and not any_nan.all()
    np.testing.assert_array_equal(np.isnan(lat), any_nan)
    np.testing.assert_array_equal(np.isnan(lon), any_nan)


def test_pixel_centres_across_the_antimeridian(sky):
    """Shifting the corner longitudes so the field of view straddles 180 deg shifts the centres
    by the same amount (a naive mean would put pixels there near 0 deg)."""
    lat, lon = pixel_lat_lon(sky, ALT_KM)
    shift = 180.0 - sky.site_lon
    moved = dataclasses.replace(
        sky,
        site_lon=180.0,
        corner_lon={a: (v + shift + 180.0) % 360.0 - 180.0 for a, v in sky.corner_lon.items()},
    )
    lat2, lon2 = pixel_lat_lon(moved, ALT_KM)
    ok = np.isfinite(lon)
    assert (lon2[ok] > 170).any() and (lon2[ok] < -170).any()
    np.testing.assert_allclose(lat2[ok], lat[ok])
    diff = (lon2[ok] - lon[ok] - shift + 180.0) % 360.0 - 180.0
    np.testing.assert_allclose(diff, 0.0, atol=1e-9)
    # A grid across the antimeridian built from it covers the same number of pixels.
    grid = grid_covering(moved, ALT_KM, CUT_DEG, 64, 64)
    assert grid.lon_bounds[0] < 180 < grid.lon_bounds[1]
    op_moved, fov_moved = build_projection_operator(moved, grid, ALT_KM, CUT_DEG)
    op, fov = build_projection_operator(sky, grid_covering(sky, ALT_KM, CUT_DEG, 64, 64), ALT_KM)
    assert op_moved.nnz == op.nnz and fov_moved.sum() == fov.sum()


# --------------------------------------------------------------- grids


def test_make_grid():
    grid = make_grid((50.0, 60.0), (-150.0, -130.0), 5, 4)
    assert grid.shape == (5, 4)
    np.testing.assert_allclose(grid.lat, [51, 53, 55, 57, 59])
    np.testing.assert_allclose(grid.lon, [-147.5, -142.5, -137.5, -132.5])
    i, j, inside = grid.cell_index(
        np.array([50.0, 60.0, 59.99, 61.0]), np.array([-150, -130, 0, -140])
    )
    assert list(inside) == [True, True, False, False]
    assert (i[0], j[0]) == (0, 0) and (i[1], j[1]) == (4, 3)
    for bad in [((60, 50), (-150, -130)), ((50, 60), (-130, -150)), ((50, 60), (0, 400))]:
        with pytest.raises(ValueError):
            make_grid(*bad, 4, 4)


def test_grid_covering_union(sky):
    lat, lon = pixel_lat_lon(sky, ALT_KM)
    valid = np.isfinite(lat) & (sky.elevation >= CUT_DEG)
    one = grid_covering(sky, ALT_KM, CUT_DEG, 10, 10)
    assert one.lat_bounds == pytest.approx((lat[valid].min(), lat[valid].max()))
    assert one.lon_bounds == pytest.approx((lon[valid].min(), lon[valid].max()))
    east = dataclasses.replace(
        sky, site_lon=sky.site_lon + 5, corner_lon={a: v + 5 for a, v in sky.corner_lon.items()}
    )
    both = grid_covering([sky, east], ALT_KM, CUT_DEG, 10, 10)
    assert both.lat_bounds == pytest.approx(one.lat_bounds)
    assert both.lon_bounds == pytest.approx((one.lon_bounds[0], one.lon_bounds[1] + 5))
    higher = grid_covering(sky, ALT_KM, 30.0, 10, 10)
    assert higher.lat_bounds[0] > one.lat_bounds[0] and higher.lat_bounds[1] < one.lat_bounds[1]


# --------------------------------------------------------------- operator properties


def test_operator_rows_sum_to_one_on_fov(projection):
    grid, operator, fov = projection
    assert operator.shape == (grid.lat.size * grid.lon.size, 256 * 256)
    assert operator.dtype == np.float32
    assert fov.shape == grid.shape and fov.dtype == bool
    sums = np.asarray(operator.sum(axis=1)).ravel()
    np.testing.assert_allclose(sums[fov.ravel()], 1.0, rtol=1e-6)
    assert np.all(sums[~fov.ravel()] == 0)
    assert 0.3 < fov.mean() < 0.95  # a disc in its bounding box covers ~pi/4 of it
    assert np.all(operator.data > 0)


def test_elevation_cut_removes_pixels(sky, projection):
    grid, operator, fov = projection
    used = np.asarray(operator.sum(axis=0)).ravel() > 0
    elevation = sky.elevation.ravel()
    assert np.all(elevation[used] >= CUT_DEG)
    # Pixels just above the cut are used (through a cell average or the nearest-pixel fill).
    band = (elevation >= CUT_DEG + 0.5) & (elevation < CUT_DEG + 3)
    assert used[band].mean() > 0.9
    op30, fov30 = build_projection_operator(sky, grid, ALT_KM, 30.0)
    used30 = np.asarray(op30.sum(axis=0)).ravel() > 0
    assert np.all(elevation[used30] >= 30.0)
    assert fov30.sum() < fov.sum() and np.all(fov[fov30])


def test_fov_mask_follows_the_elevation_cut(sky, projection):
    """The field of view is the elevation cut, give or take the nearest-pixel fill, which may
    reach about half a pixel beyond the outermost valid pixel centres: a pixel spans ~0.55 deg of
    elevation near 10 deg here, so every cell seen above cut + 1 deg is in the field of view and
    none seen below cut - 1 deg is."""
    grid, _, fov = projection
    glat, glon = np.meshgrid(grid.lat, grid.lon, indexing="ij")
    elevation = np.degrees(np.arcsin(_look_direction(sky, glat, glon, ALT_KM)[..., 2]))
    inside = elevation > CUT_DEG + 1
    assert inside.sum() > 1000
    assert np.all(fov[inside])
    assert elevation[fov].min() > CUT_DEG - 1


def test_constant_frame(projection):
    _, operator, fov = projection
    out = project_frames(operator, fov, np.full((2, 256, 256), 1234, dtype=np.uint16))
    assert out.shape == (2, *fov.shape) and out.dtype == np.float32
    np.testing.assert_allclose(out[:, fov], 1234.0, rtol=1e-6)
    assert np.isnan(out[:, ~fov]).all()


@pytest.mark.parametrize(
    "offset_deg",
    [(0.0, 0.0), (1.5, 0.0), (-2.0, 3.0), (0.5, -5.0), (3.0, 4.0), (-3.5, -1.0)],
)
def test_point_source_lands_in_its_cell(sky, projection, offset_deg):
    """A single bright pixel appears where its projected centre is, within one cell."""
    grid, operator, fov = projection
    target_lat = sky.site_lat + offset_deg[0]
    target_lon = sky.site_lon + offset_deg[1]
    lat, lon = pixel_lat_lon(sky, ALT_KM)
    usable = np.isfinite(lat) & (sky.elevation >= CUT_DEG)
    dist = np.where(usable, _km_between(lat, lon, target_lat, target_lon), np.inf)
    pixel = np.unravel_index(np.argmin(dist), dist.shape)
    assert dist[pixel] < 15.0  # precondition: the target is inside the field of view
    frame = np.zeros((256, 256), np.float32)
    frame[pixel] = 1000.0
    image = project_frames(operator, fov, frame)
    assert np.nanmax(image) > 0
    top = np.argwhere(image == np.nanmax(image))
    cell_i = int((target_lat - grid.lat_bounds[0]) // grid.dlat)
    cell_j = int((target_lon - grid.lon_bounds[0]) // grid.dlon)
    assert np.abs(top - [cell_i, cell_j]).max(axis=1).min() <= 1
    # All the light stays close: every lit cell lies within one pixel footprint of the pixel.
    lit = np.argwhere(np.nan_to_num(image) > 0)
    lit_km = _km_between(grid.lat[lit[:, 0]], grid.lon[lit[:, 1]], lat[pixel], lon[pixel])
    clat, clon = sky.corner_lat[ALT_KM], sky.corner_lon[ALT_KM]
    r, c = pixel
    corners_km = _km_between(
        clat[r : r + 2, c : c + 2], clon[r : r + 2, c : c + 2], lat[pixel], lon[pixel]
    )
    cell_diag_km = 0.5 * _km_between(
        grid.lat_bounds[0],
        grid.lon_bounds[0],
        grid.lat_bounds[0] + grid.dlat,
        grid.lon_bounds[0] + grid.dlon,
    )
    assert lit_km.max() <= corners_km.max() + cell_diag_km + 1e-6


def _csr_reference(operator, fov, frames):
    """What project_frames must give: scipy's CSR product on float32 frames laid out (pixels x
    frames), (N, n_lat, n_lon) float32, NaN outside the field of view."""
    n = len(frames)
    pixels_by_frames = frames.reshape(n, -1).T.astype(np.float32)
    reference = np.asarray(operator @ pixels_by_frames).T.reshape(n, *fov.shape)
    reference[:, ~fov] = np.nan
    return reference


def _as_counts(values, fov):
    return np.where(fov, np.clip(np.rint(values), 0, 65534), 65535).astype(np.uint16)


def _random_projection(rng, n_lat=5, n_lon=7, h=12, w=10):
    """A small random operator whose rows outside the field of view are NOT empty (project_frames
    must fill them anyway), with a few empty rows inside it (which must give 0)."""
    n_cells = n_lat * n_lon
    dense = rng.random((n_cells, h * w)) * (rng.random((n_cells, h * w)) < 0.08)
    dense[:3] = 0.0
    fov = rng.random((n_lat, n_lon)) < 0.7
    fov.ravel()[:3] = True
    return scipy.sparse.csr_matrix(dense.astype(np.float32)), fov


def test_project_frames_equals_the_csr_product():
    rng = np.random.default_rng(3)
    operator, fov = _random_projection(rng)
    frames = rng.integers(0, 65535, (19, 12, 10), dtype=np.uint16)  # 19: a short last block
    reference = _csr_reference(operator, fov, frames)
    got = project_frames(operator, fov, frames)
    assert got.shape == (19, 5, 7) and got.dtype == np.float32
    np.testing.assert_allclose(got, reference, rtol=1e-6)  # NaN where the reference is NaN
    assert np.all(got.reshape(19, -1)[:, :3] == 0)
    # Frames that need converting (float64, not C-contiguous) go through chunks of any size.
    as_float = np.asfortranarray(frames.astype(np.float64))
    np.testing.assert_array_equal(project_frames(operator, fov, as_float, chunk_size=4), got)
    np.testing.assert_array_equal(project_frames(operator, fov, as_float, chunk_size=64), got)
    # Each frame is independent of its neighbours in a block.
    np.testing.assert_array_equal(project_frames(operator, fov, frames[11]), got[11])
    np.testing.assert_array_equal(project_frames(operator, fov, frames[:0]), got[:0])
    with pytest.raises(ValueError, match="does not fit"):
        project_frames(operator, fov, frames[:, :6, :])


def test_project_frames_as_counts():
    rng = np.random.default_rng(4)
    operator, fov = _random_projection(rng)
    frames = rng.integers(0, 65535, (11, 12, 10), dtype=np.uint16)
    as_float = project_frames(operator, fov, frames)
    counts = project_frames(operator, fov, frames, dtype=np.uint16)
    assert counts.dtype == np.uint16 and counts.shape == as_float.shape
    np.testing.assert_array_equal(counts, _as_counts(as_float, fov))
    assert (counts[:, ~fov] == 65535).all() and (counts[:, fov] == 65534).any()  # clipped
    # Rounding: a weight of 0.5 turns pixel values 3, 5 and 6 into 1.5, 2.5 and 3 counts.
    half = scipy.sparse.csr_matrix(np.array([[0.5, 0.0]], dtype=np.float32))
    one_cell = np.ones((1, 1), dtype=bool)
    values = np.array([3.0, 5.0, 6.0, -4.0, np.nan])[:, None, None] * [[[1.0, 0.0]]]
    np.testing.assert_array_equal(
        project_frames(half, one_cell, values, dtype=np.uint16).ravel(), [2, 2, 3, 0, 65535]
    )


def test_project_frames_writes_into_out():
    rng = np.random.default_rng(5)
    operator, fov = _random_projection(rng)
    frames = rng.integers(0, 4000, (10, 12, 10), dtype=np.uint16)
    expected = project_frames(operator, fov, frames)
    # A slice of a larger reused buffer with a band axis, as a block writer would hold it.
    block = np.full((16, 1, 5, 7), 7, dtype=np.uint16)
    got = project_frames(operator, fov, frames, out=block[3:13, 0], dtype=np.uint16)
    assert np.shares_memory(got, block)
    np.testing.assert_array_equal(block[3:13, 0], _as_counts(expected, fov))
    assert (block[:3] == 7).all() and (block[13:] == 7).all()
    # Not contiguous: every other cell of a wider array.
    wide = np.zeros((10, 5, 14), dtype=np.float32)
    project_frames(operator, fov, frames, out=wide[:, :, ::2])
    np.testing.assert_array_equal(wide[:, :, ::2], expected)
    assert (wide[:, :, 1::2] == 0).all()
    single = np.empty((5, 7), dtype=np.float32)
    assert project_frames(operator, fov, frames[4], out=single) is single
    np.testing.assert_array_equal(single, expected[4])
    with pytest.raises(ValueError, match="out must be"):
        project_frames(operator, fov, frames, out=np.empty((10, 5, 7), np.float64))
    with pytest.raises(ValueError, match="out must be"):
        project_frames(operator, fov, frames, out=block[:9, 0], dtype=np.uint16)
    with pytest.raises(ValueError, match="dtype"):
        project_frames(operator, fov, frames, dtype=np.int32)


def test_project_frames_real_operator(shared_data, projection):
    """On the real GAKO operator and frames: the CSR product, as float32 and as counts."""
    _, operator, fov = projection
    frames, _ = read_themis_l1_cdf(shared_data / L1_NAME, "gako")
    got = project_frames(operator, fov, frames)
    np.testing.assert_allclose(got, _csr_reference(operator, fov, frames), rtol=1e-6)
    counts = project_frames(operator, fov, frames, dtype=np.uint16)
    np.testing.assert_array_equal(counts, _as_counts(got, fov))
    # Linear: a direct dense average of the pixels in one FOV cell matches.
    row = int(np.flatnonzero(fov.ravel())[len(np.flatnonzero(fov.ravel())) // 2])
    weights = operator.getrow(row).toarray().ravel()
    direct = (frames[3].ravel().astype(np.float64) * weights).sum()
    assert got[3].ravel()[row] == pytest.approx(direct, rel=1e-5)


def test_save_and_load_operator(tmp_path, projection):
    grid, operator, fov = projection
    path = tmp_path / "op.npz.part"  # any name: the file is written exactly there
    meta = {"skymap": "x.sav", "altitude_km": ALT_KM, "nested": {"a": [1, 2]}}
    save_operator(path, operator, fov, grid, meta)
    assert path.exists()
    op2, fov2, grid2, meta2 = load_operator(path)
    assert isinstance(grid2, Grid) and grid2.shape == grid.shape
    np.testing.assert_array_equal(grid2.lat, grid.lat)
    np.testing.assert_array_equal(grid2.lon, grid.lon)
    assert grid2.lat_bounds == grid.lat_bounds and grid2.lon_bounds == grid.lon_bounds
    np.testing.assert_array_equal(fov2, fov)
    assert meta2 == meta
    assert (op2 != operator).nnz == 0 and op2.dtype == np.float32
    damaged = tmp_path / "damaged.npz"
    damaged.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(BadInputError, match="damaged.npz"):
        load_operator(damaged)


# --------------------------------------------------------------- site-centred grids, common FOV


def _aeqd_km(site_lat, site_lon, lat, lon, altitude_km=ALT_KM):
    """Azimuthal equidistant (x east, y north), km, about a site, from Earth-centred vectors:
    the arc length to each point along the shell times the unit vector of its azimuth."""
    east, north, up = _enu_basis(site_lat, site_lon)
    v = _ecef(lat, lon, 1.0)
    arc = (EARTH_RADIUS_KM + altitude_km) * np.arccos(np.clip(v @ up, -1.0, 1.0))
    azimuth = np.arctan2(v @ east, v @ north)
    return arc * np.sin(azimuth), arc * np.cos(azimuth)


def _along_shell(site_lat, site_lon, azimuth_deg, distance_km, altitude_km=ALT_KM):
    """(lat, lon), degrees, of the point ``distance_km`` along the shell from above the site,
    leaving it at ``azimuth_deg``: the site's up vector turned toward that direction."""
    east, north, up = _enu_basis(site_lat, site_lon)
    angle = np.asarray(distance_km, dtype=np.float64)[..., None] / (EARTH_RADIUS_KM + altitude_km)
    az = np.radians(np.asarray(azimuth_deg, dtype=np.float64))[..., None]
    v = np.cos(angle) * up + np.sin(angle) * (np.sin(az) * east + np.cos(az) * north)
    return np.degrees(np.arcsin(v[..., 2])), np.degrees(np.arctan2(v[..., 1], v[..., 0]))


def _arc_km(lat1, lon1, lat2, lon2, altitude_km=ALT_KM):
    """Great-circle distance along the shell, km (arccos of the dot product)."""
    dot = np.sum(_ecef(lat1, lon1, 1.0) * _ecef(lat2, lon2, 1.0), axis=-1)
    return (EARTH_RADIUS_KM + altitude_km) * np.arccos(np.clip(dot, -1.0, 1.0))


@pytest.fixture(scope="module")
def demo_skies(tmp_path_factory):
    """{site: (Skymap read back from the demo's calibration CDF, the demo's SkyGeometry)} for
    the multi-site demo's sites: turned, off-centre imagers at four positions."""
    folder = tmp_path_factory.mktemp("demo_calibration")
    skies = {}
    for s in DEFAULT_SITES:
        params = DemoParams(
            site=s.site, station=s.station, site_lat=s.lat, site_lon=s.lon, site_alt_km=s.alt_km
        )
        geom = SkyGeometry(params, s.imager)
        path = folder / f"{s.site}.cdf"
        write_calibration_cdf(path, params, geom)
        skies[s.site] = (read_berkeley_calibration(path, s.site), geom)
    # Preconditions: the imagers differ in orientation and optical centre.
    assert len({s.imager.rotation_deg for s in DEFAULT_SITES}) == len(DEFAULT_SITES)
    assert len({s.imager.centre_offset_px for s in DEFAULT_SITES}) == len(DEFAULT_SITES)
    return skies


def test_local_grid_coordinates():
    """Known points: the site at the centre, 100 km along the shell at (0, 100) km due north,
    (100, 0) km due east and so on, to rounding; cells from the km; the inverse undoes it."""
    site_lat, site_lon = 62.0, -95.0
    grid = LocalGrid(site_lat, site_lon, ALT_KM, 300.0, 61)  # odd: the site is a cell's centre
    cell = 600.0 / 61
    assert grid.shape == (61, 61) and grid.dims == ("y", "x") and grid.kind == "local"
    assert grid.cell_km == pytest.approx(cell)
    np.testing.assert_allclose(grid.y, -300.0 + (np.arange(61) + 0.5) * cell)
    np.testing.assert_array_equal(grid.x, grid.y)

    i, j, inside = grid.cell_index(site_lat, site_lon)
    assert inside and (i, j) == (30, 30)
    assert grid.to_xy(site_lat, site_lon) == (0.0, 0.0)
    # Due north along the meridian: the latitude grows by 100 km / shell radius.
    north_lat = site_lat + np.degrees(100.0 / (EARTH_RADIUS_KM + ALT_KM))
    np.testing.assert_allclose(grid.to_xy(north_lat, site_lon), (0.0, 100.0), atol=1e-9)
    for azimuth in (0.0, 45.0, 90.0, 180.0, 270.0, 301.0):
        lat, lon = _along_shell(site_lat, site_lon, azimuth, 100.0)
        expected = 100.0 * np.array([np.sin(np.radians(azimuth)), np.cos(np.radians(azimuth))])
        np.testing.assert_allclose(grid.to_xy(lat, lon), expected, atol=1e-6)
        i, j, inside = grid.cell_index(lat, lon)
        assert inside
        assert (i, j) == tuple(int(v) for v in np.floor((expected[::-1] + 300.0) / cell))

    # Even n: the site is the corner of the four middle cells and falls in (n // 2, n // 2).
    even = LocalGrid(site_lat, site_lon, ALT_KM, 300.0, 60)
    assert tuple(int(v) for v in even.cell_index(site_lat, site_lon)[:2]) == (30, 30)
    assert even.y[29] == pytest.approx(-5.0) and even.y[30] == pytest.approx(5.0)

    # Random points up to 1500 km away agree with the vector computation; the inverse undoes it.
    rng = np.random.default_rng(0)
    lat, lon = _along_shell(site_lat, site_lon, rng.uniform(0, 360, 500), rng.uniform(0, 1500, 500))
    x, y = grid.to_xy(lat, lon)
    np.testing.assert_allclose(np.stack([x, y]), _aeqd_km(site_lat, site_lon, lat, lon), atol=1e-6)
    lat2, lon2 = grid.to_lat_lon(x, y)
    np.testing.assert_allclose(lat2, lat, atol=1e-9)
    np.testing.assert_allclose((lon2 - lon + 180.0) % 360.0 - 180.0, 0.0, atol=1e-9)
    # Cell centres are where their km say.
    centre_lat, centre_lon = grid.centre_lat_lon()
    assert centre_lat.shape == grid.shape
    cx, cy = _aeqd_km(site_lat, site_lon, centre_lat, centre_lon)
    np.testing.assert_allclose(cy, np.broadcast_to(grid.y[:, None], grid.shape), atol=1e-6)
    np.testing.assert_allclose(cx, np.broadcast_to(grid.x[None, :], grid.shape), atol=1e-6)

    # Off the grid, NaN, and across the antimeridian.
    lat, lon = _along_shell(site_lat, site_lon, [10.0, 200.0], [420.0, 5000.0])
    assert not grid.cell_index(lat, lon)[2].any()
    assert not grid.cell_index(np.nan, site_lon)[2]
    dateline = LocalGrid(65.0, 179.5, ALT_KM, 300.0, 60)
    lat, lon = _along_shell(65.0, 179.5, 90.0, 100.0)
    assert lon < 0.0  # past 180 degrees east
    np.testing.assert_allclose(dateline.to_xy(lat, lon), (100.0, 0.0), atol=1e-6)


def test_local_grid_checks_its_parameters():
    for bad in [
        dict(half_width_km=0.0),
        dict(half_width_km=20000.0),  # corners beyond the antipode
        dict(n=0),
        dict(n=2.5),
        dict(site_lat=91.0),
    ]:
        with pytest.raises(ValueError):
            LocalGrid(
                **{
                    **dict(site_lat=60, site_lon=-100, altitude_km=110, half_width_km=300, n=8),
                    **bad,
                }
            )


def test_grid_coordinates_for_stores():
    """Store coordinates: km with CF attributes for local grids, the same at every site (the
    site is in the grid mapping); degrees for lat-lon grids."""
    a = LocalGrid(61.76, -121.23, ALT_KM, 300.0, 60)
    b = LocalGrid(56.38, -94.64, ALT_KM, 300.0, 60)
    coords = a.coords()
    assert list(coords) == ["y", "x"] == list(a.dims)
    for name, axis in (("y", "Y"), ("x", "X")):
        dim, values, attrs = coords[name]
        assert dim == name and attrs["units"] == "km" and attrs["axis"] == axis
        assert attrs["standard_name"] == f"projection_{name}_coordinate"
        np.testing.assert_array_equal(values, getattr(a, name))
        np.testing.assert_array_equal(values, b.coords()[name][1])
        assert attrs == b.coords()[name][2]
    mapping = a.grid_mapping()
    assert mapping["grid_mapping_name"] == "azimuthal_equidistant"
    assert mapping["latitude_of_projection_origin"] == 61.76
    assert mapping["longitude_of_projection_origin"] == -121.23
    assert mapping["earth_radius"] == pytest.approx((EARTH_RADIUS_KM + ALT_KM) * 1000.0)
    geographic = make_grid((50.0, 60.0), (-150.0, -130.0), 5, 4)
    assert geographic.dims == ("lat", "lon") and list(geographic.coords()) == ["lat", "lon"]
    assert geographic.coords()["lat"][2]["units"] == "degrees_north"
    assert geographic.coords()["lon"][2]["units"] == "degrees_east"
    assert geographic.grid_mapping() == {"grid_mapping_name": "latitude_longitude"}


def test_shell_distance_at_elevation():
    """The radius an elevation reaches is where ray_lat_lon puts that line of sight."""
    elevation = np.array([0.0, 5.0, 10.0, 30.0, 60.0, 90.0])
    radius = shell_distance_at_elevation(elevation, ALT_KM, site_alt_km=0.3)
    lat, lon = ray_lat_lon(60.0, -100.0, 0.3, elevation, np.full(6, 37.0), ALT_KM)
    np.testing.assert_allclose(radius, _arc_km(lat, lon, 60.0, -100.0), atol=1e-6)
    np.testing.assert_allclose(shell_distance_km(lat, lon, 60.0, -100.0, ALT_KM), radius, atol=1e-6)
    assert np.all(np.diff(radius) < 0) and radius[-1] == pytest.approx(0.0, abs=1e-9)
    assert 505.0 < float(shell_distance_at_elevation(10.0, ALT_KM)) < 520.0  # as documented


def test_arc_poleward_lands_in_the_same_cells_at_every_site(demo_skies):
    """An arc 100 km north of each site (30 km wide, 300 km long), lit in each site's own
    pixels, fills the same cells of each site's local grid: every cell well inside the arc
    (centre 8 km, more than half a cell diagonal, from its edge) is 1 at every site, every cell
    well outside it 0, and the arc's centre row is 100 km north everywhere."""
    images = {}
    for site, (sky, _) in demo_skies.items():
        grid = site_grid(sky, ALT_KM, 300.0, 60)  # 10 km cells
        operator, fov = build_projection_operator(sky, grid, ALT_KM, CUT_DEG)
        lat, lon = pixel_lat_lon(sky, ALT_KM)
        x, y = _aeqd_km(sky.site_lat, sky.site_lon, lat, lon)
        with np.errstate(invalid="ignore"):
            frame = ((np.abs(y - 100.0) <= 15.0) & (np.abs(x) <= 150.0)).astype(np.float32)
        images[site] = project_frames(operator, fov, frame)
    y, x = np.meshgrid(grid.y, grid.x, indexing="ij")
    well_inside = (np.abs(y - 100.0) <= 7.0) & (np.abs(x) <= 142.0)
    well_outside = (np.abs(y - 100.0) >= 23.0) | (np.abs(x) >= 158.0)
    assert well_inside.sum() == 2 * 28  # rows at 95 and 105 km, 28 cells along the arc
    for site, image in images.items():
        np.testing.assert_allclose(image[well_inside], 1.0, rtol=1e-6, err_msg=site)
        assert np.all(np.nan_to_num(image[well_outside]) == 0.0), site
        weights = np.nan_to_num(image)
        assert (weights * y).sum() / weights.sum() == pytest.approx(100.0, abs=1.0), site
    reference = np.nan_to_num(images["fsim"])
    for site, image in images.items():
        assert np.abs(np.nan_to_num(image) - reference).max() < 0.5, site


def _brightest_cells(operator, fov, camera, azimuth_deg, elevation_deg):
    """(k, 2) cells of the brightest projected value of a frame with one lit pixel: the pixel
    through which ``camera`` (a demo SkyGeometry) sees the direction (degrees)."""
    row, col = camera.pixel_position(np.radians(elevation_deg), np.radians(azimuth_deg))
    frame = np.zeros((camera.size, camera.size), np.float32)
    frame[int(np.rint(row)), int(np.rint(col))] = 1000.0
    image = project_frames(operator, fov, frame)
    assert np.nanmax(image) > 0
    return np.argwhere(image == np.nanmax(image))


@pytest.mark.parametrize(
    "azimuth_deg, elevation_deg", [(0.0, 90.0), (30.0, 60.0), (135.0, 40.0), (250.0, 25.0)]
)
def test_point_source_in_every_site_geometry(demo_skies, azimuth_deg, elevation_deg):
    """A point source at a known sky position, drawn through each site's imager (turned and
    off-centre), projected with that site's own operator, lands within one cell of where the line
    of sight meets the shell; the reference camera's pixel for the same direction does not."""
    reference_camera = SkyGeometry(DemoParams(), Imager())
    for site, (sky, geom) in demo_skies.items():
        grid = site_grid(sky, ALT_KM, 400.0, 80)  # 10 km cells
        operator, fov = build_projection_operator(sky, grid, ALT_KM, CUT_DEG)
        lat, lon = ground_point(
            sky.site_lat, sky.site_lon, sky.site_alt_km, elevation_deg, azimuth_deg, ALT_KM
        )
        x, y = _aeqd_km(sky.site_lat, sky.site_lon, lat, lon)
        expected = np.floor((np.array([y, x]) + 400.0) / 10.0).astype(int)
        found = _brightest_cells(operator, fov, geom, azimuth_deg, elevation_deg)
        assert np.abs(found - expected).max(axis=1).min() <= 1, site
        if geom.imager.rotation_deg and elevation_deg <= 40.0:
            # The test can fail: the unturned camera's pixel for this direction lands elsewhere
            # (far enough from the zenith for the turn to move it several cells).
            found = _brightest_cells(operator, fov, reference_camera, azimuth_deg, elevation_deg)
            assert np.abs(found - expected).max(axis=1).min() > 3, site


def test_common_fov_is_the_same_disc_at_every_site(demo_skies):
    """With a 380 km field of view (inside every site's 10-degree cut, ~513 km) the mask is
    exactly the disc at every site; with a 30-degree cut (~180 km) the cut wins."""
    assert shell_distance_at_elevation(CUT_DEG, ALT_KM) > 380.0 + 10.0  # precondition
    for site, (sky, _) in demo_skies.items():
        grid = site_grid(sky, ALT_KM, 400.0, 80)
        y, x = np.meshgrid(grid.y, grid.x, indexing="ij")
        disc = np.hypot(x, y) <= 380.0
        operator, fov = build_projection_operator(sky, grid, ALT_KM, CUT_DEG, fov_radius_km=380.0)
        np.testing.assert_array_equal(fov, disc, err_msg=site)
        sums = np.asarray(operator.sum(axis=1)).ravel()
        np.testing.assert_allclose(sums[disc.ravel()], 1.0, rtol=1e-6)
        assert np.all(sums[~disc.ravel()] == 0)
        _, fov30 = build_projection_operator(sky, grid, ALT_KM, 30.0)
        _, both = build_projection_operator(sky, grid, ALT_KM, 30.0, fov_radius_km=380.0)
        np.testing.assert_array_equal(both, fov30 & disc)
        assert both.sum() < 0.5 * disc.sum()
    with pytest.raises(ValueError, match="fov_radius_km"):
        build_projection_operator(sky, grid, ALT_KM, CUT_DEG, fov_radius_km=0.0)
    with pytest.raises(ValueError, match="150.0 km"):
        build_projection_operator(sky, grid, 150.0, CUT_DEG)


def test_common_fov_on_a_lat_lon_grid(sky, projection):
    """On the GAKO lat-lon grid the disc removes exactly the cells whose centres lie farther
    than the radius from the site, and changes no other cell."""
    grid, operator, fov = projection
    clipped, fov300 = build_projection_operator(sky, grid, ALT_KM, CUT_DEG, fov_radius_km=300.0)
    glat, glon = np.meshgrid(grid.lat, grid.lon, indexing="ij")
    disc = _arc_km(glat, glon, sky.site_lat, sky.site_lon) <= 300.0
    assert 0.2 * fov.sum() < (fov & ~disc).sum()  # precondition: the disc removes cells
    np.testing.assert_array_equal(fov300, fov & disc)
    keep = scipy.sparse.diags(disc.ravel().astype(np.float32))
    assert (clipped != keep @ operator).nnz == 0


def test_save_and_load_local_grid_operator(tmp_path, demo_skies):
    sky = demo_skies["gill"][0]
    grid = site_grid(sky, ALT_KM, 300.0, 30)
    operator, fov = build_projection_operator(sky, grid, ALT_KM, CUT_DEG, fov_radius_km=280.0)
    path = tmp_path / "gill.npz"
    save_operator(path, operator, fov, grid, {"site": "gill"})
    op2, fov2, grid2, meta2 = load_operator(path)
    assert isinstance(grid2, LocalGrid) and grid2 == grid
    np.testing.assert_array_equal(grid2.y, grid.y)
    np.testing.assert_array_equal(fov2, fov)
    assert (op2 != operator).nnz == 0 and meta2 == {"site": "gill"}

    with np.load(path) as z:
        parts = {key: z[key] for key in z.files}
    for change, message in [
        ({"format_version": np.int64(3)}, "format 3 is unknown"),
        ({"grid_kind": np.asarray("polar")}, "grid kind 'polar' is unknown"),
        ({"n": np.int64(0)}, "invalid local grid"),
    ]:
        bad = tmp_path / "bad.npz"
        np.savez(bad, **{**parts, **change})
        with pytest.raises(BadInputError, match=message):
            load_operator(bad)
    del parts["half_width_km"]
    np.savez(tmp_path / "bad.npz", **parts)
    with pytest.raises(BadInputError, match="lacks.*half_width_km"):
        load_operator(tmp_path / "bad.npz")


def test_load_format_1_operator_file(tmp_path):
    """Operator files written before local grids existed (format 1, lat-lon) still load."""
    grid = make_grid((50.0, 60.0), (-150.0, -130.0), 5, 4)
    operator = scipy.sparse.csr_matrix(np.eye(20, 30, dtype=np.float32))
    fov = np.ones(grid.shape, dtype=bool)
    path = tmp_path / "old.npz"
    np.savez(
        path,
        format_version=np.int64(1),
        data=operator.data,
        indices=operator.indices,
        indptr=operator.indptr,
        shape=np.asarray(operator.shape, dtype=np.int64),
        fov_mask=fov,
        lat=grid.lat,
        lon=grid.lon,
        lat_bounds=np.asarray(grid.lat_bounds),
        lon_bounds=np.asarray(grid.lon_bounds),
        metadata=np.asarray('{"site": "gako"}'),
    )
    op2, fov2, grid2, meta2 = load_operator(path)
    assert isinstance(grid2, Grid) and grid2.lat_bounds == grid.lat_bounds
    np.testing.assert_array_equal(grid2.lon, grid.lon)
    assert (op2 != operator).nnz == 0 and meta2 == {"site": "gako"} and fov2.all()


# --------------------------------------------------------------- the star test

#: ICRS (J2000) right ascension and declination, degrees, of bright stars (no network here, so
#: SkyCoord.from_name cannot be used). From the Hipparcos/Yale Bright Star catalogues.
STARS = {
    "Polaris": (37.95456, 89.26411),
    "Capella": (79.17233, 45.99799),
    "Vega": (279.23473, 38.78369),
    "Deneb": (310.35798, 45.28034),
    "Dubhe": (165.93196, 61.75103),
    "Alkaid": (206.88516, 49.31327),
    "Arcturus": (213.91530, 19.18241),
    "Pollux": (116.32896, 28.02620),
    "Regulus": (152.09296, 11.96721),
}

#: The 8 orientations of a square image; "canonical" is the readers' output, unchanged.
ORIENTATIONS = {
    "canonical": lambda a: a,
    "rot90": lambda a: np.rot90(a, 1, axes=(-2, -1)),
    "rot180": lambda a: np.rot90(a, 2, axes=(-2, -1)),
    "rot270": lambda a: np.rot90(a, 3, axes=(-2, -1)),
    "flip_rows": lambda a: a[..., ::-1, :],
    "flip_cols": lambda a: a[..., :, ::-1],
    "transpose": lambda a: np.swapaxes(a, -1, -2),
    "anti_transpose": lambda a: np.rot90(np.swapaxes(a, -1, -2), 2, axes=(-2, -1)),
}


def _star_directions(sky, time):
    """Azimuth and elevation (degrees) of STARS seen from the skymap's site at ``time``."""
    from astropy.utils import iers

    iers.conf.auto_download = False  # no network: the bundled IERS-B table covers 2011
    import astropy.units as u
    from astropy.coordinates import AltAz, EarthLocation, SkyCoord
    from astropy.time import Time

    site = EarthLocation(
        lat=sky.site_lat * u.deg, lon=sky.site_lon * u.deg, height=sky.site_alt_km * u.km
    )
    ra, dec = np.array(list(STARS.values())).T
    altaz = SkyCoord(ra=ra * u.deg, dec=dec * u.deg, frame="icrs").transform_to(
        AltAz(obstime=Time(str(time), scale="utc"), location=site)
    )
    return altaz.az.deg, altaz.alt.deg


def _peaks(image, fov):
    """Significant local maxima of a high-passed image: (mask, high-passed image).

    High pass: image minus its 9x9 median. A peak is the maximum of its 7x7 neighbourhood and
    exceeds 5 robust standard deviations (1.4826 MAD) of the high-passed field of view.
    """
    filled = np.where(fov, image, np.nanmedian(image))
    high = filled - median_filter(filled, size=9)
    high[~fov] = 0.0
    values = high[fov]
    sigma = 1.4826 * np.median(np.abs(values - np.median(values)))
    return (high == maximum_filter(high, size=7)) & (high > 5 * sigma) & fov, high


@pytest.fixture(scope="module")
def star_field(shared_data, sky):
    """Everything the star checks need, computed once."""
    frames, times = read_themis_l1_cdf(shared_data / L1_NAME, "gako")
    # Stars move ~0.25 deg/min; the 23 frames span ~66 s, well under a pixel (~0.7 deg).
    az, el = _star_directions(sky, times[0] + (times[-1] - times[0]) / 2)
    # Median over frames commutes with the orientation operations: take it once.
    median = np.median(frames.astype(np.float32), axis=0)
    # The skymap pixel nearest in angle to each star.
    pixel_dirs = _unit(sky.azimuth, sky.elevation)
    star_dirs = _unit(az, el)
    closeness = np.nan_to_num(np.einsum("ijk,sk->sij", pixel_dirs, star_dirs), nan=-2.0)
    star_pixels = [np.unravel_index(np.argmax(c), c.shape) for c in closeness]
    return dict(median=median, az=az, el=el, star_dirs=star_dirs, star_pixels=star_pixels)


def test_star_registration_projected(sky, star_field):
    """THE STAR TEST: real GAKO frames projected with the real GAKO skymap put the stars where
    the skymap says they are; the seven other orientations of the frames do not.

    Grid: 384 x 384 cells over the field of view at 110 km (cells ~2.6 km, about the pixel size
    at zenith), elevation cut 10 deg. Image: median of the 23 frames, projected. A star "is found"
    (criterion A) when a peak (see _peaks) lies within one cell of the cell holding its expected
    pixel's projected centre, and (criterion B) when a peak's line of sight, from the site to the
    cell centre at 110 km, is within 1.5 deg (~2 pixels) of the star.

    Why B as well: below ~25 deg elevation a pixel's footprint at 110 km spans several cells
    radially, so a one-pixel error in the skymap (which dates from two months after the frames;
    pixel-space offsets of up to ~2 px are seen) moves a star by more than one cell. Measured on
    these files: A finds 6 of 9 (the misses are Capella, Pollux, Regulus at 20-24 deg) and at
    most 2 in any other orientation; B finds 9 of 9 and at most 2. The "2" in rot270 is Vega and
    Arcturus: at nearly equal elevations ~90 deg apart in azimuth, a quarter turn swaps them.
    """
    grid = grid_covering(sky, ALT_KM, CUT_DEG, 384, 384)
    operator, fov = build_projection_operator(sky, grid, ALT_KM, CUT_DEG)
    lat, lon = pixel_lat_lon(sky, ALT_KM)
    cell_i, cell_j, inside = grid.cell_index(lat, lon)
    glat, glon = np.meshgrid(grid.lat, grid.lon, indexing="ij")
    cell_dirs = _look_direction(sky, glat, glon, ALT_KM)

    el = star_field["el"]
    stars = [s for s in range(len(STARS)) if el[s] >= 15.0]
    assert len(stars) >= 8  # precondition: the test means something
    for s in stars:
        assert inside[star_field["star_pixels"][s]]

    median = star_field["median"]
    images = project_frames(operator, fov, np.stack([f(median) for f in ORIENTATIONS.values()]))
    found_a, found_b = {}, {}
    for name, image in zip(ORIENTATIONS, images, strict=True):
        peaks, _ = _peaks(image, fov)
        peak_dirs = cell_dirs[peaks]
        a = b = 0
        for s in stars:
            p = star_field["star_pixels"][s]
            i, j = cell_i[p], cell_j[p]
            a += bool(peaks[max(i - 1, 0) : i + 2, max(j - 1, 0) : j + 2].any())
            angle = np.degrees(np.arccos(np.clip(peak_dirs @ star_field["star_dirs"][s], -1, 1)))
            b += bool((angle <= 1.5).any())
        found_a[name], found_b[name] = a, b
    others_a = {k: v for k, v in found_a.items() if k != "canonical"}
    others_b = {k: v for k, v in found_b.items() if k != "canonical"}
    report = f"criterion A {found_a}, criterion B {found_b}, of {len(stars)} stars"
    assert found_a["canonical"] >= 6, report
    assert max(others_a.values()) <= 3, report
    assert found_b["canonical"] >= len(stars) - 1, report
    assert max(others_b.values()) <= 3, report


def test_star_registration_in_pixels(sky, star_field):
    """The same check without the projection (isolates the reader's orientation): in the
    high-passed median frame, a peak lies within 2 pixels of each star's expected pixel."""
    valid = np.isfinite(sky.elevation) & (sky.elevation >= CUT_DEG)
    stars = [s for s in range(len(STARS)) if star_field["el"][s] >= 15.0]
    counts = {}
    for name, orient in ORIENTATIONS.items():
        peaks, _ = _peaks(orient(star_field["median"]), valid)
        n = 0
        for s in stars:
            r, c = star_field["star_pixels"][s]
            n += bool(peaks[max(r - 2, 0) : r + 3, max(c - 2, 0) : c + 3].any())
        counts[name] = n
    assert counts["canonical"] >= len(stars) - 1, counts
    assert max(v for k, v in counts.items() if k != "canonical") <= 3, counts
