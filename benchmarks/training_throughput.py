"""Training throughput: samples/s of the data feed alone and of full training steps, both models.

    python benchmarks/training_throughput.py [--device cpu|cuda|all] [--json out.json]

For each model (the Res-AE on 128x128 and 256x256 projected images; the Beta VAE on the study's
50-ms windows of three photometer bands, 5,000 samples each) it writes a seeded store on disk in the
workflow's own layout (uint16 counts for images, float32 for windows; 256 samples per chunk) and
measures, on every device asked for:

- the feed alone: float32 batches delivered by :func:`latentsky.models.feed.iterate_batches` from that
  store, with the shuffle windows and reader processes that training uses (on CUDA the batches
  are unpacked on the device and the figure includes the copy; two reader threads on the CPU,
  four on CUDA);
- full training steps: :func:`latentsky.models.training.measure_steps` (read, unpack, forward,
  backward, optimiser update; bfloat16 autocast and channels-last on CUDA), optionally compiled.

Each figure is the median of ``--repeats`` runs. Models use the study config's sizes
(config/fsim_2015_winter.yaml; the Beta VAE the schema's defaults).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

import numpy as np
import torch
import xarray as xr

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "workflow" / "scripts"))

from latentsky.models import build_model  # noqa: E402
from latentsky.models.feed import SampleSource, epoch_windows, iterate_batches  # noqa: E402
from latentsky.models.training import TrainConfig, measure_steps, resolve_device  # noqa: E402
from latentsky.stores import SAMPLE_CHUNK, bulk_compressor, write_zarr_atomic  # noqa: E402

RES_AE = {"base_channels": 16, "depth": 3, "latent_dim": 32}
BETA_VAE = {"base_channels": 16, "depth": 5, "latent_dim": 50, "max_channels": 128}


def image_store(path: Path, n: int, size: int, seed: int = 0) -> Path:
    """``n`` frames of ``size`` x ``size`` uint16 counts in a disc, 65535 outside, as stacked."""
    rng = np.random.default_rng(seed)
    rows, cols = np.mgrid[0:size, 0:size]
    outside = np.hypot(rows - size / 2 + 0.5, cols - size / 2 + 0.5) > size / 2
    pool = (3300 + rng.poisson(200, (64, size, size))).astype(np.uint16)
    pool[:, outside] = 65535
    frames = pool[np.arange(n) % len(pool)][:, np.newaxis]
    ds = xr.Dataset(
        {"image": (("time", "band", "lat", "lon"), frames)},
        attrs={"normalisation": json.dumps({"low_counts": 3300.0, "high_counts": 3700.0})},
    )
    return write_zarr_atomic(
        ds,
        path,
        encoding={
            "image": {
                "chunks": (SAMPLE_CHUNK, 1, size, size),
                "compressors": [bulk_compressor()],
                "_FillValue": 65535,
            }
        },
    )


def window_store(path: Path, n: int, length: int = 5000, seed: int = 0) -> Path:
    """``n`` three-band windows of ``length`` samples scaled into (0, 1), float32."""
    rng = np.random.default_rng(seed)
    pool = rng.beta(2.0, 50.0, (16, 3, length)).astype(np.float32)
    ds = xr.Dataset({"waveform": (("window", "band", "sample"), pool[np.arange(n) % len(pool)])})
    encoding = {
        "waveform": {"chunks": (SAMPLE_CHUNK, 3, length), "compressors": [bulk_compressor()]}
    }
    return write_zarr_atomic(ds, path, encoding=encoding)


def feed_rate(source: SampleSource, batch_size: int, device, readers: int, epochs: int = 1):
    """Samples per second delivered as float32 batches on ``device`` over ``epochs`` passes."""
    count = 0
    started = time.perf_counter()
    for epoch in range(epochs):
        windows = epoch_windows(source, np.arange(source.n), 2048 // source.chunk_len, 0, epoch)
        for batch in iterate_batches(source, windows, batch_size, device, readers):
            count += len(batch)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return count / (time.perf_counter() - started)


def gflop_per_sample(model: torch.nn.Module, sample_shape: tuple) -> float:
    """GFLOP of one training step (forward and backward) per sample, counted by torch's FLOP
    counter on a CPU batch of 8 (convolutions and matrix products; element-wise work is not
    counted)."""
    from torch.utils.flop_counter import FlopCounterMode

    x = torch.rand(8, *sample_shape)
    with FlopCounterMode(display=False) as counter:
        out = model(x)
        tensors = out if isinstance(out, tuple | list) else (out,)
        sum(t.float().mean() for t in tensors if torch.is_tensor(t)).backward()
    return counter.get_total_flops() / 8 / 1e9


def median_of(repeats: int, measure) -> float:
    return statistics.median(measure() for _ in range(repeats))


def run(devices: list[str], repeats: int, n_images: int, n_windows: int, compile_: bool) -> dict:
    results: dict = {}
    with tempfile.TemporaryDirectory(prefix="throughput-") as tmp:
        stores = {
            "res_ae_128": (image_store(Path(tmp) / "i128.zarr", n_images, 128), "image"),
            "res_ae_256": (image_store(Path(tmp) / "i256.zarr", n_images, 256), "image"),
            "beta_vae_5000": (window_store(Path(tmp) / "w.zarr", n_windows), "waveform"),
        }
        for device_name in devices:
            device = resolve_device(device_name)
            readers = 2 if device.type == "cpu" else 4
            for name, (path, variable) in stores.items():
                source = SampleSource.from_store(path, variable)
                kind = "asi" if variable == "image" else "photometer"
                batch = 64 if kind == "asi" else 100
                feed = median_of(repeats, partial(feed_rate, source, batch, device, readers))
                # Steps on a CPU are slow: a few batches give a stable rate there.
                n_batches = 4 if device.type == "cpu" else 100
                config = TrainConfig(
                    batch_size=batch,
                    device=str(device),
                    num_workers=None,
                    compile=compile_ and device.type == "cuda",
                    num_threads=2 if device.type == "cpu" else None,
                )

                model_name, params = (
                    ("res_ae", RES_AE) if kind == "asi" else ("beta_vae_1d", BETA_VAE)
                )

                def steps(
                    source=source, config=config, n_batches=n_batches, spec=(model_name, params)
                ):
                    model = build_model(*spec, source.sample_shape, seed=0)
                    return measure_steps(model, source, config, n_batches)["samples_per_s"]

                train = median_of(repeats, steps)
                gflop = gflop_per_sample(
                    build_model(model_name, params, source.sample_shape, seed=0),
                    source.sample_shape,
                )
                results[f"{device.type}/{name}"] = {
                    "feed_per_s": feed,
                    "train_per_s": train,
                    "gflop_per_sample": gflop,
                }
                print(
                    f"{device.type:5s} {name:15s} feed {feed:9.0f} samples/s   "
                    f"training steps {train:9.1f} samples/s   {gflop:.2f} GFLOP/sample",
                    flush=True,
                )
    return results


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="all", choices=["cpu", "cuda", "all"])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--images", type=int, default=4096, help="frames per image store")
    parser.add_argument("--windows", type=int, default=1024, help="windows in the window store")
    parser.add_argument("--compile", action="store_true", help="torch.compile on CUDA")
    parser.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    args = parser.parse_args(argv)
    devices = ["cpu", "cuda"] if args.device == "all" else [args.device]
    if "cuda" in devices and not torch.cuda.is_available():
        print("no CUDA device here: GPU figures not measured", flush=True)
        devices.remove("cuda")
    results = run(devices, args.repeats, args.images, args.windows, args.compile)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return results


if __name__ == "__main__":
    main()
