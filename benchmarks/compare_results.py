"""Are two runs' results the same? Stores, checkpoints, latents, tables, fits and summaries.

    python benchmarks/compare_results.py RESULTS_A RESULTS_B [--dataset demo ...]

For every dataset folder present in both ``results/`` folders it compares, and prints one line
each: every Zarr store (values, coordinates and attributes, bitwise: ``xarray`` identical), the
model checkpoint (every weight bitwise; the other entries listed where they differ), the CSV tables
(embedding, fits, TLE tables) and ``summary.json`` (equal as JSON). It exits non-zero if anything
differs. Used to show that a restructuring changed no result.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pandas as pd
import torch
import xarray as xr

TABLES = [
    "embedding/coordinates.csv",
    "embedding.csv",
    "sigma_phi_fits.csv",
    "tle/windows.csv",
    "tle/clusters.csv",
    "tle/candidates.csv",
]


def compare_dataset(a: Path, b: Path) -> list[tuple[str, bool, str]]:
    """(what, same, detail) for every result of one dataset found in ``a``."""
    rows = []
    stores = sorted(p.relative_to(a) for p in a.rglob("*.zarr") if p.is_dir())
    for store in stores:
        try:
            xr.testing.assert_identical(xr.open_zarr(a / store), xr.open_zarr(b / store))
            rows.append((str(store), True, "identical"))
        except (AssertionError, FileNotFoundError, ValueError) as error:
            rows.append((str(store), False, str(error).splitlines()[0][:100]))
    checkpoint = Path("model/checkpoint.pt")
    if (a / checkpoint).exists():
        rows.append(("model/checkpoint.pt", *_compare_checkpoints(a / checkpoint, b / checkpoint)))
    for table in TABLES:
        if (a / table).exists():
            x, y = pd.read_csv(a / table), pd.read_csv(b / table)
            same = x.equals(y)
            rows.append((table, same, "equal" if same else "tables differ"))
    if (a / "summary.json").exists():
        same = json.loads((a / "summary.json").read_text()) == json.loads(
            (b / "summary.json").read_text()
        )
        rows.append(("summary.json", same, "equal" if same else "summaries differ"))
    return rows


def _compare_checkpoints(a: Path, b: Path) -> tuple[bool, str]:
    x, y = (torch.load(p, weights_only=True) for p in (a, b))
    for part in ("model_state", "best_model_state"):
        if x[part].keys() != y[part].keys() or not all(
            torch.equal(x[part][k], y[part][k]) for k in x[part]
        ):
            return False, f"{part} differs"
    skip = {"metrics", "torch_version", "model_state", "best_model_state", "optimizer_state"}
    # (metrics hold wall-clock seconds per epoch; the states are compared above or follow them)
    other = sorted(k for k in x.keys() | y.keys() if k not in skip and x.get(k) != y.get(k))
    detail = "weights bitwise equal" + (f"; other entries differ: {other}" if other else "")
    return True, detail


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("a", type=Path)
    parser.add_argument("b", type=Path)
    parser.add_argument("--dataset", nargs="*", help="datasets to compare (default: all in both)")
    args = parser.parse_args(argv)
    datasets = args.dataset or sorted(
        p.name for p in args.a.iterdir() if (args.b / p.name).is_dir() and p.name != "logs"
    )
    all_same = True
    for dataset in datasets:
        for what, same, detail in compare_dataset(args.a / dataset, args.b / dataset):
            all_same &= same
            print(f"{dataset:10s} {what:45s} {'same' if same else 'DIFFERS'}: {detail}")
    return 0 if all_same else 1


if __name__ == "__main__":
    sys.exit(main())
