"""Scores of a finished photometer demo run against its planted truth, beyond summary.json.

Reads results/<dataset>/ (latents, tle/windows.csv, tle/candidates.csv, tle/summary.json) and the
generator's truth (resources/demo_tle/<dataset>/truth/truth.csv) of a workflow directory and prints:
kNN accuracy over every window (not only the labelled half) with its balanced accuracy and per-type
recall, the anomaly-score ROC AUC over every window, the per-label AUCs of tle/summary.json, and
which planted types the candidates table holds. Run after `make demo` (or any run with a
`demo_tle` dataset):

    .venv/bin/python benchmarks/photometer_scores.py [--workdir .] [--dataset tle_demo]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd
import xarray as xr
from sklearn.metrics import balanced_accuracy_score, recall_score, roc_auc_score
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from sklearn.neighbors import KNeighborsClassifier


def with_planted_type(table: pd.DataFrame, truth: pd.DataFrame) -> pd.DataFrame:
    """Join rows to planted episodes by centre time (one window per episode in the demo)."""
    table = table.assign(t=pd.to_datetime(table["time"], utc=True).dt.round("us"))
    return table.merge(truth[["t", "type"]], on="t", how="left")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, default=Path("."))
    parser.add_argument("--dataset", default="tle_demo")
    parser.add_argument("--neighbours", type=int, default=5)
    # The analysis.tle defaults; pass the run's own if its config changed them.
    parser.add_argument(
        "--tle-labels", nargs="+", default=["elve", "blue_corona", "sprite", "blue_jet"]
    )
    parser.add_argument("--ordinary-labels", nargs="+", default=["lightning", "background"])
    args = parser.parse_args()
    results = args.workdir / "results" / args.dataset
    truth = pd.read_csv(args.workdir / "resources/demo_tle" / args.dataset / "truth/truth.csv")
    truth["t"] = pd.to_datetime(truth["time"], utc=True).dt.round("us")
    windows = with_planted_type(pd.read_csv(results / "tle/windows.csv"), truth)
    summary = json.loads((results / "tle/summary.json").read_text())

    latents = xr.open_zarr(results / "latents.zarr")["latent"].to_numpy()
    folds = StratifiedKFold(5, shuffle=True, random_state=0)
    types = windows["type"].to_numpy()
    predicted = cross_val_predict(KNeighborsClassifier(args.neighbours), latents, types, cv=folds)
    print(f"{len(windows)} windows, planted types {windows['type'].value_counts().to_dict()}")
    print(
        f"kNN accuracy (k={args.neighbours}, 5-fold, all windows): {(predicted == types).mean():.3f}"
    )
    print(f"balanced accuracy over the types: {balanced_accuracy_score(types, predicted):.3f}")
    labels = sorted(set(types))
    recall = recall_score(types, predicted, labels=labels, average=None)
    print(
        "kNN recall per type: "
        + ", ".join(f"{t} {r:.2f}" for t, r in zip(labels, recall, strict=True))
    )

    tle, ordinary = args.tle_labels, args.ordinary_labels
    scored = windows[windows["type"].isin(tle + ordinary)]
    auc = roc_auc_score(scored["type"].isin(tle), scored["neg_elbo"])
    print(f"anomaly ROC AUC, all windows, {tle} vs {ordinary}: {auc:.3f}")
    for name, value in summary["anomaly_auc_by_label"].items():
        print(f"  AUC {name}: {value:.3f}")
    print(f"signature AUC (labelled windows): {summary['signature_auc']:.3f}")

    candidates = with_planted_type(pd.read_csv(results / "tle/candidates.csv"), truth)
    print(f"candidates ({len(candidates)}): {candidates['type'].value_counts().to_dict()}")


if __name__ == "__main__":
    main()
