"""The training data path: chunk-following shuffles, reader processes, packed samples."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import xarray as xr

from latentsky.models.feed import (
    SampleSource,
    epoch_windows,
    iterate_batches,
    ordered_batches,
)

CPU = torch.device("cpu")


def numbered(n: int, shape=(1, 2, 3)) -> np.ndarray:
    """Samples whose every value is the sample's own index, so a batch says which it holds."""
    return np.broadcast_to(np.arange(n, dtype=np.float32).reshape(-1, 1, 1, 1), (n, *shape)).copy()


def seen(batches) -> np.ndarray:
    """The sample indices carried by a sequence of batches of :func:`numbered` samples."""
    return np.concatenate([b[:, 0, 0, 0].numpy().astype(np.int64) for b in batches])


@pytest.mark.parametrize("window_chunks", [1, 3, 100])
def test_every_member_once_per_epoch_in_an_order_fixed_by_the_seed(window_chunks):
    source = SampleSource(numbered(1000), chunk_len=64)
    members = np.sort(np.random.default_rng(1).choice(1000, 900, replace=False))
    orders = {}
    for seed, epoch in [(0, 0), (0, 1), (1, 0), (0, 0)]:
        windows = epoch_windows(source, members, window_chunks, seed, epoch)
        order = seen(iterate_batches(source, windows, 32, CPU))
        np.testing.assert_array_equal(np.sort(order), members)  # each member exactly once
        key = (seed, epoch)
        if key in orders:
            np.testing.assert_array_equal(order, orders[key])  # reproducible
        orders[key] = order
    assert not np.array_equal(orders[(0, 0)], orders[(0, 1)])  # epochs differ
    assert not np.array_equal(orders[(0, 0)], orders[(1, 0)])  # seeds differ


def test_batches_are_full_across_window_boundaries_and_only_the_last_is_short():
    source = SampleSource(numbered(300), chunk_len=10)
    windows = epoch_windows(source, np.arange(300), 1, seed=3, epoch=0)
    sizes = [len(b) for b in iterate_batches(source, windows, 32, CPU)]
    assert sizes == [32] * 9 + [12]


def test_a_window_mixes_only_its_own_chunks():
    source = SampleSource(numbered(640), chunk_len=64)
    windows = epoch_windows(source, np.arange(640), 2, seed=0, epoch=0)
    assert len(windows) == 5
    for window in windows:
        assert len(np.unique(window // 64)) == 2
    # The chunks in a window are drawn at random, not neighbours in time.
    pairs = [tuple(np.unique(w // 64)) for w in windows]
    assert any(b - a > 1 for a, b in pairs)


def test_one_window_as_large_as_the_data_is_a_full_permutation():
    source = SampleSource(numbered(512), chunk_len=64)
    (window,) = epoch_windows(source, np.arange(512), 8, seed=0, epoch=0)
    # Neighbours in a full permutation rarely share a chunk; block-ordered ones always do.
    same_chunk = np.mean(window[1:] // 64 == window[:-1] // 64)
    assert same_chunk < 0.3


def test_unshuffled_windows_keep_store_order():
    source = SampleSource(numbered(200), chunk_len=64)
    members = np.arange(0, 200, 3)
    windows = epoch_windows(source, members, 2, seed=5, epoch=9, shuffle=False)
    np.testing.assert_array_equal(np.concatenate(windows), members)
    starts = [start for start, _ in ordered_batches(source, 50, CPU)]
    assert starts == [0, 50, 100, 150]


def test_reader_threads_give_the_same_batches_as_none(tmp_path):
    data = numbered(700)
    ds = xr.Dataset({"x": (("sample", "band", "a", "b"), data)})
    ds.to_zarr(tmp_path / "s.zarr", encoding={"x": {"chunks": (50, 1, 2, 3)}}, consolidated=False)
    source = SampleSource.from_store(tmp_path / "s.zarr", "x")
    assert source.chunk_len == 50
    windows = epoch_windows(source, np.arange(700), 4, seed=2, epoch=1)
    inline = [b.clone() for b in iterate_batches(source, windows, 64, CPU, readers=0)]
    readers = [b.clone() for b in iterate_batches(source, windows, 64, CPU, readers=2)]
    assert len(inline) == len(readers)
    for a, b in zip(inline, readers, strict=True):
        assert torch.equal(a, b)


def test_packed_counts_unpack_to_normalised_values_with_nan_for_the_fill(tmp_path):
    counts = np.array([[3000, 3500], [65535, 4000]], dtype=np.uint16).reshape(1, 1, 2, 2)
    ds = xr.Dataset(
        {"image": (("time", "band", "lat", "lon"), counts)},
        attrs={"normalisation": json.dumps({"low_counts": 3000.0, "high_counts": 4000.0})},
    )
    ds.to_zarr(tmp_path / "i.zarr", encoding={"image": {"_FillValue": 65535}}, zarr_format=2)
    source = SampleSource.from_store(tmp_path / "i.zarr", "image")
    assert source.dtype == np.uint16
    expected = np.array([[0.0, 0.5], [np.nan, 1.0]], dtype=np.float32)
    (batch,) = list(iterate_batches(source, [np.array([0])], 4, CPU))
    np.testing.assert_array_equal(batch[0, 0].numpy(), expected)
    # The device path (used for CUDA) gives the same values.
    on_device = source.unpacking.torch(torch.from_numpy(counts))
    np.testing.assert_array_equal(on_device[0, 0].numpy(), expected)


def test_float_stores_are_passed_through_and_bad_ranges_refused(tmp_path):
    ds = xr.Dataset({"x": (("n", "k"), np.ones((4, 2), np.float32))})
    ds.to_zarr(tmp_path / "f.zarr", zarr_format=2)
    assert SampleSource.from_store(tmp_path / "f.zarr", "x").unpacking.identity
    ds = xr.Dataset(
        {"x": (("n", "k"), np.ones((4, 2), np.uint16))},
        attrs={"normalisation": '{"low_counts": 5, "high_counts": 5}'},
    )
    ds.to_zarr(tmp_path / "e.zarr", zarr_format=2)
    with pytest.raises(ValueError, match="empty"):
        SampleSource.from_store(tmp_path / "e.zarr", "x")


@pytest.mark.parametrize("per_cell", [False, True])
def test_each_site_gets_its_own_scale(tmp_path, per_cell):
    """Per-site (and per-cell) normalisation: every sample unpacks with its own site's range."""
    counts = np.array([[10, 20], [10, 20], [110, 220], [65535, 220]], np.uint16).reshape(4, 1, 2)
    if per_cell:
        low = np.array([[[10, 20]], [[110, 120]]], np.float32)  # (sites, band, cell)
        high = low + np.array([[[10, 40]], [[50, 100]]], np.float32)
        dims = ("sites", "band", "cell")
    else:
        low, high, dims = (
            np.array([10, 110], np.float32),
            np.array([20, 210], np.float32),
            ("sites",),
        )
    ds = xr.Dataset(
        {
            "image": (("time", "band", "cell"), counts),
            "normalisation_low": (dims, low),
            "normalisation_high": (dims, high),
        },
        coords={"site": ("time", ["aaaa", "aaaa", "bbbb", "bbbb"]), "sites": ["aaaa", "bbbb"]},
    )
    ds.to_zarr(tmp_path / "s.zarr", encoding={"image": {"_FillValue": 65535}}, zarr_format=2)
    source = SampleSource.from_store(tmp_path / "s.zarr", "image")
    site = np.array([0, 0, 1, 1])
    full_low = low[site] if per_cell else low[site][:, None, None]
    full_high = high[site] if per_cell else high[site][:, None, None]
    expected = (counts - full_low) / (full_high - full_low)
    expected[3, 0, 0] = np.nan
    (batch,) = list(iterate_batches(source, [np.arange(4)], 8, CPU))
    np.testing.assert_allclose(batch.numpy(), expected, rtol=1e-6)
    # A shuffled window unpacks each sample with its own site, on the device path too.
    order = np.array([3, 0, 2, 1])
    (shuffled,) = list(iterate_batches(source, [order], 8, CPU))
    np.testing.assert_allclose(shuffled.numpy(), expected[order], rtol=1e-6)
    on_device = source.unpacking.torch(torch.from_numpy(counts[order]), order)
    np.testing.assert_allclose(on_device.numpy(), expected[order], rtol=1e-6)


def test_augmentations_are_symmetries_of_the_square_drawn_from_the_seed():
    from latentsky.models.training import augment

    images = torch.arange(2 * 16, dtype=torch.float32).reshape(2, 1, 4, 4).repeat(20, 1, 1, 1)
    assert augment(images, "none", torch.Generator().manual_seed(0)) is images
    for how, most in (("flips", 4), ("rotations", 8)):
        out = augment(images, how, torch.Generator().manual_seed(1))
        again = augment(images, how, torch.Generator().manual_seed(1))
        assert torch.equal(out, again)  # the seed fixes the draws
        variants = set()
        for original, changed in zip(images, out, strict=True):
            candidates = [original]
            for k in range(4 if how == "rotations" else 1):
                turned = torch.rot90(original, k, dims=(1, 2))
                candidates += [turned, torch.flip(turned, dims=(2,))]
            candidates += [torch.flip(original, dims=(1,)), torch.flip(original, dims=(1, 2))]
            matches = [i for i, c in enumerate(candidates) if torch.equal(c, changed)]
            assert matches, "not a symmetry of the square"
            variants.add(str(changed.flatten().tolist()))
        assert 2 < len(variants) <= 2 * most  # several symmetries drawn (2 distinct images)
    with pytest.raises(ValueError, match="square"):
        augment(torch.zeros(2, 1, 3, 4), "rotations", torch.Generator().manual_seed(0))
