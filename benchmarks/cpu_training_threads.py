"""CPU training: epoch seconds with and without a reader thread, and beside a busy process.

The figures behind ``latentsky.models.training._readers`` (no reader thread on the CPU) and behind
the demo science test training on one torch thread. For a samples store of a finished run (the
demo's ``images.zarr`` or ``windows.zarr``) and the model the workflow trains on it, it times two
epochs of :func:`latentsky.models.training.train` (median of the epochs' own seconds) for:

- two torch threads, batches read inline (the default now) and by one reader thread (before);
- one torch thread, the same two ways (a core to spare for the reader);
- with ``--busy``, one and two torch threads while another process keeps one core busy (as the
  other test process does under ``make test``).

    .venv/bin/python benchmarks/cpu_training_threads.py results/tle_demo/windows.zarr waveform \\
        --model beta_vae_1d --hyper '{"base_channels": 16, "max_channels": 64, "depth": 7}' \\
        --batch 32 [--busy]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "workflow" / "scripts"))

from latentsky.models import build_model  # noqa: E402
from latentsky.models.feed import SampleSource  # noqa: E402
from latentsky.models.training import TrainConfig, train  # noqa: E402


def epoch_seconds(source, args, threads: int, readers: int) -> float:
    model = build_model(args.model, json.loads(args.hyper), source.sample_shape, seed=0)
    config = TrainConfig(
        epochs=args.epochs,
        batch_size=args.batch,
        seed=0,
        device="cpu",
        num_threads=threads,
        num_workers=readers,
    )
    with tempfile.TemporaryDirectory() as scratch:
        metrics = Path(scratch) / "metrics.csv"
        train(model, source, config, Path(scratch) / "last.pt", metrics)
        return statistics.median(pd.read_csv(metrics)["seconds"])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("store")
    parser.add_argument("variable", help="image (auroral) or waveform (photometer)")
    parser.add_argument("--model", default="beta_vae_1d")
    parser.add_argument("--hyper", default="{}", help="JSON of the model's hyperparameters")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--busy", action="store_true", help="also beside a busy process")
    args = parser.parse_args()
    source = SampleSource.from_store(args.store, args.variable)
    print(f"{args.store}: {source.n} samples of {source.sample_shape}, {args.model}")
    for threads in (2, 1):
        inline = epoch_seconds(source, args, threads, 0)
        reader = epoch_seconds(source, args, threads, 1)
        print(
            f"  {threads} torch thread(s): {inline:.2f} s per epoch inline, {reader:.2f} s with"
            f" a reader thread ({reader / inline:.2f}x)"
        )
    if args.busy:
        burner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
        try:
            two, one = (epoch_seconds(source, args, t, 0) for t in (2, 1))
        finally:
            burner.kill()
        print(
            f"  beside a busy process: {two:.2f} s per epoch on 2 torch threads, {one:.2f} s on"
            f" 1 ({two / one:.2f}x)"
        )


if __name__ == "__main__":
    main()
