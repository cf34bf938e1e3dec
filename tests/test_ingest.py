"""Ingest into Zarr: chunk-block writes, the projected counts, time checks, stacking."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import xarray as xr
import zarr

from latentsky.acquisition.sources import SOURCES
from latentsky.errors import BadInputError
from latentsky.instruments.themis import read_themis_pgm_frames, read_ucalgary_skymap
from latentsky.projection.geometry import (
    UINT16_FILL,
    build_projection_operator,
    grid_covering,
    project_frames,
)
from latentsky.samples.images import ingest_files, stack_dates
from latentsky.stores import ChunkedStoreWriter, open_zarr

GILL = "themis/gill"
GAKO_SKYMAP = "themis/gako/themis_skymap_gako_20110305-+_vXX.sav"


def test_writer_gives_back_every_sample_across_whole_and_partial_chunks(tmp_path):
    rng = np.random.default_rng(0)
    n, chunk = 45, 8
    images = rng.integers(0, 60000, (n, 1, 5, 4)).astype(np.uint16)
    weights = rng.normal(size=(n, 3)).astype(np.float32)
    times = np.datetime64("2024-01-01") + np.arange(n) * np.timedelta64(3, "s")
    template = xr.Dataset(
        {
            "image": (("time", "band", "y", "x"), images[:0], {"units": "counts"}),
            "weight": (("time", "k"), weights[:0]),
        },
        coords={"time": times[:0], "band": ["w"], "site": ("time", np.array([], dtype="<U4"))},
    )
    writer = ChunkedStoreWriter(tmp_path / "s.zarr", "time", template=template, chunk_len=chunk)
    sites = np.array(["gill"] * n)
    for start, stop in [(0, 3), (3, 20), (20, 21), (21, 45)]:  # pieces across chunk edges
        writer.add_arrays(
            image=images[start:stop],
            weight=weights[start:stop],
            time=times[start:stop],
            site=sites[start:stop],
        )
    assert not (tmp_path / "s.zarr").exists()  # nothing visible before the commit
    writer.commit({"title": "test"})
    ds = open_zarr(tmp_path / "s.zarr")
    np.testing.assert_array_equal(ds["image"].to_numpy(), images)
    np.testing.assert_array_equal(ds["weight"].to_numpy(), weights)
    np.testing.assert_array_equal(ds["time"].to_numpy(), times)
    np.testing.assert_array_equal(ds["site"].to_numpy(), sites)
    assert ds.attrs["title"] == "test" and ds["image"].attrs["units"] == "counts"
    raw = zarr.open_group(tmp_path / "s.zarr", mode="r")
    assert raw["image"].chunks == (chunk, 1, 5, 4) and raw["image"].metadata.zarr_format == 2
    assert raw["time"].chunks == (n,)  # per-sample coordinates in one chunk, not one per piece
    assert raw["weight"].chunks == (n, 3)  # and a few values per sample too: not tiny files
    assert not list(tmp_path.glob(".s.zarr.tmp-*"))


def test_writer_abort_leaves_nothing(tmp_path):
    template = xr.Dataset({"x": (("t",), np.zeros(0, np.float32))})
    writer = ChunkedStoreWriter(tmp_path / "s.zarr", "t", template=template, chunk_len=4)
    writer.add_arrays(x=np.ones(6, np.float32))
    writer.abort()
    assert list(tmp_path.iterdir()) == []


@pytest.fixture(scope="module")
def gill_projection(shared_data):
    skymap = read_ucalgary_skymap(shared_data / GAKO_SKYMAP)  # any 256x256 geometry will do
    grid = grid_covering([skymap], 110.0, 10.0, 24, 24)
    operator, fov_mask = build_projection_operator(skymap, grid, 110.0, 10.0)
    return operator, fov_mask, grid


def test_ingest_stores_the_projected_counts_of_every_frame(shared_data, gill_projection, tmp_path):
    operator, fov_mask, grid = gill_projection
    files = sorted((shared_data / GILL).glob("*.pgm*"))
    read = SOURCES["ucalgary_stream0"].frame_reader("gill", skip_bad_frames=False)
    counts = ingest_files(files, read, operator, fov_mask, grid, tmp_path / "d.zarr", {"a": 1})
    assert counts["files_read"] == 2 and counts["duplicate_times"] == 0
    stored = xr.open_zarr(tmp_path / "d.zarr", mask_and_scale=False)
    frames = [read_themis_pgm_frames(path) for path in files]
    expected = project_frames(
        operator, fov_mask, np.concatenate([f.frames for f in frames]), dtype=np.uint16
    )
    np.testing.assert_array_equal(stored["image"].to_numpy()[:, 0], expected)
    np.testing.assert_array_equal(
        stored["time"].to_numpy(), np.concatenate([f.times for f in frames])
    )
    assert (stored["image"].to_numpy()[:, 0, ~fov_mask] == UINT16_FILL).all()
    assert json.loads(stored.attrs["bad_input"])["files_read"] == 2 and stored.attrs["a"] == 1


def test_ingest_drops_repeated_times_and_names_them_in_fail_mode(
    shared_data, gill_projection, tmp_path
):
    operator, fov_mask, grid = gill_projection
    original = shared_data / GILL / "20140310_0605_gill_themis19_full.pgm"
    copy = tmp_path / "20140310_0605_gill_themis19_full_copy.pgm"
    shutil.copyfile(original, copy)
    read = SOURCES["ucalgary_stream0"].frame_reader("gill", skip_bad_frames=True)
    args = (operator, fov_mask, grid)
    counts = ingest_files([original, copy], read, *args, tmp_path / "s.zarr", {})
    assert counts["duplicate_times"] == 20
    assert open_zarr(tmp_path / "s.zarr").sizes["time"] == 20
    with pytest.raises(BadInputError, match=r"_copy\.pgm \(frame 0\).*repeats"):
        ingest_files([original, copy], read, *args, tmp_path / "f.zarr", {}, skip=False)
    assert not (tmp_path / "f.zarr").exists()


def test_stacking_keeps_counts_and_stores_the_scale(shared_data, gill_projection, tmp_path):
    operator, fov_mask, grid = gill_projection
    read = SOURCES["ucalgary_stream0"].frame_reader("gill", skip_bad_frames=False)
    dates = []
    for path in sorted((shared_data / GILL).glob("*.pgm*")):
        dates.append(tmp_path / f"{path.name[:13]}.zarr")
        attrs = {"site": "gill", "skymap": "s", "altitude_km": 110, "min_elevation_deg": 10}
        ingest_files([path], read, operator, fov_mask, grid, dates[-1], attrs)
    stack_dates(dates, tmp_path / "images.zarr", 1.0, 99.0)
    images = xr.open_zarr(tmp_path / "images.zarr", mask_and_scale=False)
    parts = [xr.open_zarr(p, mask_and_scale=False)["image"].to_numpy() for p in dates]
    np.testing.assert_array_equal(images["image"].to_numpy(), np.concatenate(parts))
    scale = json.loads(images.attrs["normalisation"])
    valid = np.concatenate(parts)[np.concatenate(parts) != UINT16_FILL]
    assert scale["low_counts"] == pytest.approx(np.percentile(valid, 1.0))
    assert scale["high_counts"] == pytest.approx(np.percentile(valid, 99.0))
    np.testing.assert_array_equal(images["fov_mask"].to_numpy(), fov_mask)
