"""Per-site normalisation of a multi-site store: what each scope takes out of two cameras.

Two imagers see skies drawn from the same distribution through different cameras: an additive
fixed pattern (bias and a town's light dome on one side), a radial throughput (gain and
vignetting) and a few bright auroras that fall in different cells at each site. The model's input
for the same planted sky should then be the same at both sites.
"""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from latentsky.samples.images import COUNTS_FILL, stack_dates
from latentsky.stores import write_zarr_atomic

N_CELLS = 32
HALF_WIDTH_KM = 400.0


def km_grid():
    step = 2 * HALF_WIDTH_KM / N_CELLS
    centres = -HALF_WIDTH_KM + step * (np.arange(N_CELLS) + 0.5)
    y, x = np.meshgrid(centres, centres, indexing="ij")
    return centres, np.hypot(y, x), y, x


def camera(site_index: int):
    """(additive pattern, radial throughput) of one site's camera on the grid."""
    _, r, y, x = km_grid()
    bias = (3000.0, 3600.0)[site_index]
    dome_direction = ((0.0, -1.0), (0.7, 0.7))[site_index]  # south / north-east
    along = (y * dome_direction[0] + x * dome_direction[1]) / HALF_WIDTH_KM
    dome = (0.0, 900.0)[site_index] * np.exp(4.0 * (along - 1.0))
    floor, gain = ((0.8, 1.0), (0.35, 1.4))[site_index]
    throughput = gain * (floor + (1.0 - floor) * np.cos(np.clip(r / 500.0, 0, 1.4)) ** 2)
    return bias + dome, throughput


def outside() -> np.ndarray:
    """Cells beyond the common field of view."""
    return km_grid()[1] > 0.9 * HALF_WIDTH_KM


def skies(rng, n_frames, aurora_every: int = 0):
    """Planted skies (frames, y, x), light before the camera: airglow brighter toward the
    horizon, and with ``aurora_every``, a bright arc in one frame in that many, at a random
    distance north or south (where the arcs fall differs from site to site). NaN outside."""
    _, r, _, _ = km_grid()
    sky = np.empty((n_frames, N_CELLS, N_CELLS))
    sky[:] = 200.0 + 100.0 * (r / HALF_WIDTH_KM) ** 2
    sky *= rng.uniform(0.8, 1.2, (n_frames, 1, 1))
    if aurora_every:
        for i in rng.choice(n_frames, n_frames // aurora_every, replace=False):
            north = rng.integers(2, N_CELLS - 2)  # an east-west arc, five cells wide
            sky[i, north - 2 : north + 3, :] += rng.uniform(5000.0, 20000.0)
    sky[:, outside()] = np.nan
    return sky


def site_store(path, site_index: int, sky: np.ndarray):
    centres, _, _, _ = km_grid()
    additive, throughput = camera(site_index)
    counts = np.where(np.isnan(sky), COUNTS_FILL, np.round(additive + throughput * sky))
    image = counts.astype(np.uint16)[:, None]
    n = len(sky)
    ds = xr.Dataset(
        {"image": (("time", "band", "y", "x"), image)},
        coords={
            "time": np.datetime64("2024-01-08T04:00") + np.arange(n) * np.timedelta64(60, "s"),
            "band": ["white_light"],
            "y": centres,
            "x": centres,
        },
        attrs={
            "site": ("fsim", "rank")[site_index],
            "skymap": f"skymap_{site_index}",
            "altitude_km": 110,
            "min_elevation_deg": 10,
        },
    )
    write_zarr_atomic(ds, path)
    return path


def model_input(store, site: str) -> np.ndarray:
    images = xr.open_zarr(store, mask_and_scale=False)
    index = np.flatnonzero(images["site"].to_numpy() == site)
    counts = images["image"].isel(time=index).to_numpy().astype(np.float64)
    low = images["normalisation_low"].sel(sites=site).to_numpy()
    high = images["normalisation_high"].sel(sites=site).to_numpy()
    return (counts - low) / (high - low)


@pytest.fixture(scope="module")
def stacked(tmp_path_factory):
    """The same planted quiet skies at both sites, then each site's own auroras; stacked with
    each per-cell scope."""
    folder = tmp_path_factory.mktemp("site_norm")
    n = 400
    quiet = skies(np.random.default_rng(0), n)
    paths = []
    for site in (0, 1):
        own = skies(np.random.default_rng(10 + site), n, aurora_every=4)
        paths.append(site_store(folder / f"site{site}.zarr", site, np.concatenate([quiet, own])))
    stores = {}
    for scope in ("site_cell", "site_ring"):
        stores[scope] = folder / f"{scope}.zarr"
        stack_dates(paths, stores[scope], 1.0, 99.5, scope=scope)
    return stores, n


def test_the_ring_scale_gives_the_same_sky_the_same_input_at_every_site(stacked):
    stores, n = stacked
    inside = ~outside()
    errors = {}
    for scope, store in stores.items():
        at_fsim = model_input(store, "fsim")[:n, 0][:, inside]
        at_rank = model_input(store, "rank")[:n, 0][:, inside]
        errors[scope] = np.abs(at_fsim - at_rank).mean() / np.abs(at_fsim).mean()
    # Bias, the town's glow, gain and vignetting are taken out by the ring scale ...
    assert errors["site_ring"] < 0.1, errors
    # ... while per-cell high percentiles carry where each site's few auroras fell.
    assert errors["site_cell"] > 2 * errors["site_ring"], errors


def test_the_ring_scale_is_one_value_per_ring_and_the_low_one_per_cell(stacked):
    stores, _ = stacked
    inside = ~outside()
    images = xr.open_zarr(stores["site_ring"])
    _, r, _, _ = km_grid()
    step = 2 * HALF_WIDTH_KM / N_CELLS
    ring = np.floor(r / step).astype(int)
    for site in ("fsim", "rank"):
        scale = (images["normalisation_high"] - images["normalisation_low"]).sel(sites=site)
        scale = scale.to_numpy()[0]
        for k in np.unique(ring[inside]):
            values = scale[(ring == k) & inside]
            assert np.ptp(values) <= 1e-3 * values.max(), (site, k)
    low = images["normalisation_low"].sel(sites="rank").to_numpy()[0]
    additive, _ = camera(1)
    # The low percentile follows the town's glow cell by cell (a ring would smear it).
    assert np.corrcoef(low[inside], additive[inside])[0, 1] > 0.9


def test_the_ring_scale_refuses_a_latitude_longitude_grid(tmp_path):
    sky = skies(np.random.default_rng(2), 20)
    path = site_store(tmp_path / "site.zarr", 0, sky)
    renamed = xr.open_zarr(path).rename({"y": "lat", "x": "lon"})
    write_zarr_atomic(renamed.load(), tmp_path / "geo.zarr")
    with pytest.raises(ValueError, match="site_ring.*grid.frame: site"):
        stack_dates([tmp_path / "geo.zarr"], tmp_path / "out.zarr", 1.0, 99.5, scope="site_ring")
