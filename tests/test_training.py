"""The training loop: learning, checkpoints, resuming, reproducibility, lazy data, encoding."""

from __future__ import annotations

import logging
import math

import numpy as np
import pandas as pd
import pytest
import torch

from latentsky.models import build_model
from latentsky.models.encoding import encode, reconstruct
from latentsky.models.feed import SampleSource
from latentsky.models.training import TrainConfig, load_checkpoint, split_indices, train

SMALL = {"base_channels": 8, "depth": 2, "latent_dim": 8}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def planted_images(n: int, size: int = 16, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Images ``(n, 1, size, size)``: an east-west arc or a round patch at a random place, plus
    noise, NaN outside a circular field of view. Returns (images, pattern label 0/1)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / (size - 1)
    labels = rng.integers(0, 2, n)
    images = np.empty((n, 1, size, size), np.float32)
    for i, label in enumerate(labels):
        if label == 0:
            centre = rng.uniform(0.25, 0.75)
            image = np.exp(-((yy - centre) ** 2) / (2 * 0.06**2))
        else:
            cy, cx = rng.uniform(0.25, 0.75, 2)
            image = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * 0.1**2))
        images[i, 0] = image + 0.05 * rng.standard_normal((size, size))
    images[:, :, (yy - 0.5) ** 2 + (xx - 0.5) ** 2 > 0.25] = np.nan
    return images, labels


@pytest.fixture(scope="module")
def images() -> np.ndarray:
    return planted_images(300)[0]


def config(**changes) -> TrainConfig:
    values = dict(epochs=4, batch_size=32, learning_rate=3e-3, num_threads=1)
    values.update(changes)
    return TrainConfig(**values)


def model(shape=(1, 16, 16), seed=0):
    return build_model("res_ae", SMALL, shape, seed=seed)


def assert_same_weights(a: dict, b: dict):
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), f"{key} differs"


@pytest.mark.filterwarnings("ignore:Mean of empty slice")  # corners outside the field of view
def test_training_learns_the_planted_patterns(images, tmp_path):
    net = model()
    metrics = train(
        net,
        images,
        config(epochs=5),
        tmp_path / "model.pt",
        tmp_path / "metrics.csv",
        normalisation={"low": np.float32(12.0), "high": 3400.0, "bands": np.array([1, 2])},
    )
    assert list(metrics["epoch"]) == [1, 2, 3, 4, 5]
    assert {"train_loss", "val_loss", "seconds", "learning_rate", "val_mse"} <= set(metrics)
    assert metrics["val_loss"].iloc[-1] < 0.6 * metrics["val_loss"].iloc[0]
    on_disk = pd.read_csv(tmp_path / "metrics.csv")
    pd.testing.assert_frame_equal(on_disk, metrics, check_dtype=False)

    # Reconstructions of the held-out images beat the mean training image by a wide margin.
    train_index, val_index = split_indices(len(images), 0.1, seed=0)
    held_out = images[val_index]
    mean_image = np.nanmean(images[train_index], axis=0)
    mse_mean = np.nanmean((held_out - mean_image) ** 2)
    mse_model = np.nanmean((reconstruct(net, held_out, device="cpu") - held_out) ** 2)
    assert mse_model < 0.5 * mse_mean
    assert np.isclose(mse_model, metrics["val_mse"].iloc[-1], rtol=1e-4)


def test_checkpoint_round_trip(images, tmp_path):
    net = model()
    path = tmp_path / "ckpt" / "model.pt"
    train(net, images[:100], config(epochs=2), path, tmp_path / "m.csv", normalisation={"a": 1.5})
    raw = torch.load(path, weights_only=True)  # plain types only: no pickled classes
    assert raw["epoch"] == 2 and raw["normalisation"] == {"a": 1.5}
    assert len(raw["metrics"]) == 2 and raw["model_config"] == net.model_config
    assert not list(path.parent.glob(".*tmp*"))  # the temporary file was moved into place

    rebuilt, checkpoint = load_checkpoint(path)
    assert checkpoint["best_epoch"] in (1, 2)
    assert_same_weights(rebuilt.state_dict(), net.state_dict())  # train() restored the best
    latents = encode(rebuilt, images[:50], batch_size=16, device="cpu")
    assert latents.shape == (50, 8) and latents.dtype == np.float32
    np.testing.assert_array_equal(latents, encode(net, images[:50], batch_size=50, device="cpu"))
    last, _ = load_checkpoint(path, weights="last")
    assert_same_weights(last.state_dict(), checkpoint["model_state"])


class Interrupt(Exception):
    pass


def stop_after(epochs: int):
    def callback(epoch, row):
        if epoch == epochs:
            raise Interrupt

    return callback


def test_resume_after_interruption_is_bitwise_identical(images, tmp_path, caplog):
    data = images[:120]
    caplog.set_level(logging.INFO, logger="latentsky.models.training")
    train(model(), data, config(), tmp_path / "full.pt", tmp_path / "full.csv")
    assert "starting from scratch" in caplog.text

    # A different initial model: its weights must be replaced by the checkpoint's on resume.
    with pytest.raises(Interrupt):
        train(
            model(),
            data,
            config(),
            tmp_path / "cut.pt",
            tmp_path / "cut.csv",
            on_epoch_end=stop_after(2),
        )
    assert len(pd.read_csv(tmp_path / "cut.csv")) == 2
    caplog.clear()
    metrics = train(
        model(seed=5), data, config(resume=True), tmp_path / "cut.pt", tmp_path / "cut.csv"
    )
    assert "resuming from epoch 2" in caplog.text

    full = torch.load(tmp_path / "full.pt", weights_only=True)
    cut = torch.load(tmp_path / "cut.pt", weights_only=True)
    assert_same_weights(cut["model_state"], full["model_state"])
    assert_same_weights(cut["best_model_state"], full["best_model_state"])
    columns = ["epoch", "train_loss", "val_loss", "learning_rate"]
    expected = pd.read_csv(tmp_path / "full.csv")[columns]
    pd.testing.assert_frame_equal(metrics[columns], expected, check_dtype=False)


def test_resume_extends_a_finished_run(images, tmp_path):
    """Train 2 epochs, then ask for 4 with resume: same as 4 at once (constant learning rate)."""
    data = images[:120]
    constant = {"lr_schedule": "constant"}
    train(model(), data, config(**constant), tmp_path / "full.pt", tmp_path / "full.csv")
    train(model(), data, config(epochs=2, **constant), tmp_path / "cut.pt", tmp_path / "c.csv")
    two = torch.load(tmp_path / "cut.pt", weights_only=True)["model_state"]
    train(model(), data, config(resume=True, **constant), tmp_path / "cut.pt", tmp_path / "c.csv")
    full = torch.load(tmp_path / "full.pt", weights_only=True)["model_state"]
    assert_same_weights(torch.load(tmp_path / "cut.pt", weights_only=True)["model_state"], full)
    with pytest.raises(AssertionError):  # the comparison can tell 2 epochs from 4
        assert_same_weights(two, full)


def test_a_checkpoint_saved_before_the_beta_precision_option_resumes_as_per_sample(tmp_path):
    # Older checkpoints hold no "precision" key: the model they saved had a precision per sample.
    windows = np.random.default_rng(0).uniform(0.1, 0.9, size=(60, 3, 32)).astype(np.float32)

    def vae(precision):
        params = {**SMALL, "depth": 2, "precision": precision}
        return build_model("beta_vae_1d", params, (3, 32), seed=0)

    path = tmp_path / "old.pt"
    with pytest.raises(Interrupt):
        train(
            vae("sample"), windows, config(), path, tmp_path / "m.csv", on_epoch_end=stop_after(1)
        )
    checkpoint = torch.load(path, weights_only=True)
    del checkpoint["model_config"]["params"]["precision"]
    torch.save(checkpoint, path)
    with pytest.raises(ValueError, match="precision 'sample' \\(now 'window'\\)"):
        train(vae("window"), windows, config(resume=True), path, tmp_path / "m.csv")
    train(vae("sample"), windows, config(resume=True), path, tmp_path / "m.csv")
    assert torch.load(path, weights_only=True)["epoch"] == config().epochs


@pytest.mark.parametrize(
    "change, named",
    [
        ({"data": "other"}, "data (sha256"),  # as many samples, other values
        ({"data": "fewer"}, "samples 120 (now 100)"),
        ({"seed": 3}, "seed 0 (now 3)"),
        ({"normalisation": {"low": 2.0}}, "normalisation {'low': 1.0}"),
        ({"latent_dim": 4}, "model params.latent_dim 8 (now 4)"),
    ],
)
def test_resume_from_a_checkpoint_of_other_data_seed_or_model_is_refused(
    images, tmp_path, change, named
):
    """A checkpoint is resumed only by the run it came from; anything else is refused, naming what
    differs, and the checkpoint is left as it was."""
    data = images[:120]
    path = tmp_path / "cut.pt"
    with pytest.raises(Interrupt):
        train(
            model(),
            data,
            config(),
            path,
            tmp_path / "cut.csv",
            normalisation={"low": 1.0},
            on_epoch_end=stop_after(1),
        )
    saved = path.read_bytes()
    other = {"other": images[120:240], "fewer": images[:100]}.get(change.get("data"), data)
    net = model(seed=change.get("seed", 0))
    if "latent_dim" in change:
        net = build_model("res_ae", {**SMALL, "latent_dim": 4}, (1, 16, 16), seed=0)
    with pytest.raises(ValueError, match="cannot resume") as refused:
        train(
            net,
            other,
            config(resume=True, seed=change.get("seed", 0)),
            path,
            tmp_path / "again.csv",
            normalisation=change.get("normalisation", {"low": 1.0}),
        )
    assert named in str(refused.value) and str(path) in str(refused.value)
    assert path.read_bytes() == saved
    # The run it came from resumes.
    train(
        model(), data, config(resume=True), path, tmp_path / "cut.csv", normalisation={"low": 1.0}
    )


def test_seeded_runs_are_identical_and_seeds_matter(images, tmp_path):
    data = images[:100]
    states = []
    for run, seed in enumerate([0, 0, 1]):
        net = model(seed=seed)
        train(
            net, data, config(epochs=2, seed=seed), tmp_path / f"{run}.pt", tmp_path / f"{run}.csv"
        )
        states.append(net.state_dict())
    assert_same_weights(states[0], states[1])
    with pytest.raises(AssertionError):
        assert_same_weights(states[0], states[2])


def test_early_stopping(images, tmp_path):
    # With a zero learning rate the validation loss never improves after the first epoch.
    metrics = train(
        model(),
        images[:64],
        config(epochs=10, patience=2, learning_rate=0.0),
        tmp_path / "m.pt",
        tmp_path / "m.csv",
    )
    assert list(metrics["epoch"]) == [1, 2, 3]
    assert torch.load(tmp_path / "m.pt", weights_only=True)["best_epoch"] == 1


def test_lazy_arrays_train_and_encode_like_numpy(images, tmp_path):
    zarr = pytest.importorskip("zarr")
    xr = pytest.importorskip("xarray")
    data = images[:64]
    store = zarr.create_array(
        tmp_path / "images.zarr", shape=data.shape, chunks=(16, 1, 16, 16), dtype="float32"
    )
    store[:] = data
    dims = ("samples", "band", "lat", "lon")
    wrapped = xr.DataArray(data, dims=dims).chunk({"samples": 16})  # dask-backed

    index = np.array([40, 1, 6, 5])
    for array in (store, wrapped, wrapped.data):
        source = SampleSource(array)
        assert source.chunk_len == 16
        np.testing.assert_array_equal(source.gather(index), data[index])
        np.testing.assert_array_equal(source.read(3, 9), data[3:9])

    # The batch order follows the chunks, so the NumPy array gets the same chunk length.
    nets = []
    numpy_source = SampleSource(data, chunk_len=16)
    for name, array in (("numpy", numpy_source), ("zarr", store), ("xarray", wrapped)):
        net = model()
        train(net, array, config(epochs=1), tmp_path / f"{name}.pt", tmp_path / f"{name}.csv")
        nets.append(net)
        np.testing.assert_array_equal(
            encode(net, array, batch_size=20, device="cpu"),
            encode(nets[0], data, batch_size=20, device="cpu"),
        )
    assert_same_weights(nets[0].state_dict(), nets[1].state_dict())
    assert_same_weights(nets[0].state_dict(), nets[2].state_dict())


def test_reconstruct_keeps_the_field_of_view(images):
    net = model()
    out = reconstruct(net, images[:5], device="cpu")
    assert out.shape == images[:5].shape and out.dtype == np.float32
    np.testing.assert_array_equal(np.isnan(out), np.isnan(images[:5]))


def test_split_is_deterministic_and_disjoint():
    train_a, val_a = split_indices(100, 0.2, seed=3)
    train_b, val_b = split_indices(100, 0.2, seed=3)
    np.testing.assert_array_equal(val_a, val_b)
    assert len(val_a) == 20 and not set(train_a) & set(val_a)
    assert sorted([*train_a, *val_a]) == list(range(100))
    assert not np.array_equal(val_a, split_indices(100, 0.2, seed=4)[1])


def test_beta_vae_trains_on_the_same_loop(tmp_path):
    rng = np.random.default_rng(0)
    t = np.arange(64)
    windows = np.empty((96, 3, 64), np.float32)
    for i in range(len(windows)):
        band = rng.integers(0, 3)
        pulse = 0.6 * np.exp(-0.5 * ((t - rng.uniform(10, 54)) / 3.0) ** 2)
        windows[i] = 0.1 + 0.02 * rng.random((3, 64))
        windows[i, band] += pulse
    net = build_model(
        "beta_vae_1d", {"base_channels": 8, "depth": 3, "latent_dim": 4}, (3, 64), seed=0
    )
    metrics = train(net, windows, config(epochs=4), tmp_path / "vae.pt", tmp_path / "vae.csv")
    assert metrics["val_loss"].iloc[-1] < metrics["val_loss"].iloc[0]
    assert {"train_loglik", "train_kl", "val_kl"} <= set(metrics)
    assert all(math.isfinite(v) for v in metrics["val_loss"])
    latents = encode(net, windows, device="cpu")
    assert latents.shape == (96, 4)
    rebuilt, _ = load_checkpoint(tmp_path / "vae.pt")
    np.testing.assert_array_equal(encode(rebuilt, windows, device="cpu"), latents)


def test_config_from_a_workflow_mapping():
    values = {"epochs": 3, "learning_rate": 0.01, "resume": True, "not_a_field": 1}
    cfg = TrainConfig.from_dict(values)
    assert (cfg.epochs, cfg.learning_rate, cfg.resume, cfg.batch_size) == (3, 0.01, True, 64)
    with pytest.raises(ValueError, match="validation_fraction"):
        TrainConfig(validation_fraction=1.0)
