"""Does shuffling by chunks cost the model anything? The demo's training with three shuffles.

    python benchmarks/shuffle_quality.py [--store results/demo/images.zarr]
        [--labels resources/demo_mirror/demo/labels.csv] [--config config/config.yaml]

Trains the demo dataset's Res-AE exactly as the workflow does (the config's model and training
settings, CPU, seeded) three times, changing only ``training.shuffle_buffer``:

- one chunk (128 samples): every batch comes from one stretch of 128 consecutive frames;
- the default (2,048 samples: 16 chunks drawn at random from the whole dataset);
- the whole dataset: a full permutation every epoch, the textbook shuffle.

For each, and for each training seed of ``--seeds`` (the seed sets the split, the initial weights
and the order), it prints the best validation loss and the 5-fold kNN accuracy (k=5) of the
latent vectors against the labels (cloudy excluded), the workflow's own measure of the latent
space; the spread over seeds says how large a difference would have to be to mean anything.
Run `snakemake --cores 2 results/demo/images.zarr` first.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "workflow" / "scripts"))

from latentsky.analysis.embedding import knn_accuracy  # noqa: E402
from latentsky.analysis.labels import labels_for_times, read_labels  # noqa: E402
from latentsky.models import build_model  # noqa: E402
from latentsky.models.encoding import encode  # noqa: E402
from latentsky.models.feed import SampleSource  # noqa: E402
from latentsky.models.training import TrainConfig, train  # noqa: E402
from latentsky.stores import open_zarr  # noqa: E402


def main(argv=None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", type=Path, default=ROOT / "results/demo/images.zarr")
    parser.add_argument(
        "--labels", type=Path, default=ROOT / "resources/demo_mirror/demo/labels.csv"
    )
    parser.add_argument("--config", type=Path, default=ROOT / "config/config.yaml")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    args = parser.parse_args(argv)
    config = yaml.safe_load(args.config.read_text())
    source = SampleSource.from_store(args.store, "image")
    times = open_zarr(args.store)["time"].to_numpy()
    site = config["datasets"]["demo"]["site"]
    labels = labels_for_times(times, read_labels(args.labels, site), 1.5)
    keep = np.array([label is not None and label != "cloudy" for label in labels])
    rows = []
    shuffles = [("one chunk", source.chunk_len), ("default", 2048), ("full permutation", source.n)]
    for seed in args.seeds:
        for name, buffer in shuffles:
            training = {**config["training"], "shuffle_buffer": buffer, "seed": seed}
            model = build_model("res_ae", config["model"]["asi"], source.sample_shape, seed)
            started = time.perf_counter()
            with tempfile.TemporaryDirectory() as tmp:
                metrics = train(
                    model,
                    source,
                    TrainConfig(**training, num_threads=2),
                    Path(tmp) / "c.pt",
                    Path(tmp) / "m.csv",
                )
            latents = encode(model, source, device="cpu")
            row = {
                "shuffle": name,
                "shuffle_buffer": buffer,
                "seed": seed,
                "best_val_loss": float(metrics["val_loss"].min()),
                "knn_accuracy": knn_accuracy(latents[keep], labels[keep].astype(str)),
                "seconds": time.perf_counter() - started,
            }
            rows.append(row)
            print(
                f"seed {seed}  {name:18s} buffer {buffer:5d}  best val loss "
                f"{row['best_val_loss']:.5f}  kNN {row['knn_accuracy']:.3f}  "
                f"({row['seconds']:.0f} s)",
                flush=True,
            )
    return rows


if __name__ == "__main__":
    main()
