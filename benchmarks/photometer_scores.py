"""Scores of a finished photometer demo run against its planted truth, beyond summary.json.

Reads results/<dataset>/ (latents, windows.zarr, model checkpoint, tle/windows.csv,
tle/candidates.csv, tle/summary.json) and the generator's truth
(resources/demo_tle/<dataset>/truth/truth.csv) of a workflow directory. Each window gets the type
of the planted event (or quiet moment) nearest its time, within the dataset's label tolerance, as
the workflow matches hand labels. It prints:

- kNN accuracy over every typed window (not only the labelled half), its balanced accuracy and
  per-type recall; the anomaly-score ROC AUC over every window and the per-label AUCs of
  tle/summary.json;
- the planted types of the candidates table and of its first 50 rows;
- sprite recall of the labelled half (the 5-fold kNN of summary.json) for glows starting less or
  more than 1.8 ms after their stroke;
- the median Beta precision (alpha + beta) the trained decoder gives each band, by planted type:
  with a precision per sample it fell under sprites' glows instead of the glow being encoded.

Run after `make demo` (or any run with a `demo_tle` dataset):

    .venv/bin/python benchmarks/photometer_scores.py [--workdir .] [--dataset tle_demo]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import xarray as xr
from sklearn.metrics import balanced_accuracy_score, recall_score, roc_auc_score
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "workflow" / "scripts"))

from latentsky.analysis.labels import match_labels  # noqa: E402
from latentsky.models.training import load_checkpoint  # noqa: E402

#: Sprites whose glow starts this late after the stroke sat among lightning with a second stroke.
LATE_GLOW_US = 1800.0


def with_planted_type(table: pd.DataFrame, truth: pd.DataFrame, tolerance_s: float):
    """Rows (windows) with the type of the planted event nearest their time, within tolerance."""
    planted = truth[truth["labellable"] == 1]
    events = pd.DataFrame(
        {
            "time": pd.to_datetime(planted["time"], utc=True).dt.tz_localize(None),
            "label": planted["type"].to_numpy(),
            "sprite_delay_us": planted["sprite_delay_us"].to_numpy(),
        }
    ).sort_values("time")
    times = pd.to_datetime(table["time"], utc=True).dt.tz_localize(None)
    table = table.copy()
    table["type"], _ = match_labels(times, events, tolerance_s)
    delays = events.set_index("time")["sprite_delay_us"]
    nearest = delays.index.get_indexer(times, method="nearest")
    table["sprite_delay_us"] = delays.to_numpy()[nearest]
    return table


@torch.no_grad()
def median_precision(checkpoint: Path, waveform: np.ndarray, types: np.ndarray) -> pd.DataFrame:
    """Median over windows and samples of the decoder's Beta precision, per type and channel."""
    model, _ = load_checkpoint(checkpoint)
    rows = {}
    for kind in sorted(set(types[pd.notna(types)])):
        x = torch.from_numpy(waveform[types == kind])
        alpha, beta = model.decode(model.encode(x))
        rows[kind] = (alpha + beta).transpose(0, 1).flatten(1).median(dim=1).values.numpy()
    return pd.DataFrame(rows).T


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
    parser.add_argument("--tolerance", type=float, default=0.005, help="label tolerance, s")
    args = parser.parse_args()
    results = args.workdir / "results" / args.dataset
    truth = pd.read_csv(args.workdir / "resources/demo_tle" / args.dataset / "truth/truth.csv")
    windows = with_planted_type(pd.read_csv(results / "tle/windows.csv"), truth, args.tolerance)
    summary = json.loads((results / "tle/summary.json").read_text())

    latents = xr.open_zarr(results / "latents.zarr")["latent"].to_numpy()
    folds = StratifiedKFold(5, shuffle=True, random_state=0)
    typed = windows["type"].notna().to_numpy()
    types = windows["type"].to_numpy()[typed]
    predicted = cross_val_predict(
        KNeighborsClassifier(args.neighbours), latents[typed], types, cv=folds
    )
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

    candidates = with_planted_type(
        pd.read_csv(results / "tle/candidates.csv"), truth, args.tolerance
    )
    print(f"candidates ({len(candidates)}): {candidates['type'].value_counts().to_dict()}")
    print(f"first 50 candidates: {candidates.head(50)['type'].value_counts().to_dict()}")

    # The labelled half, scored as summary.json does (standardised 5-fold kNN).
    labelled = windows[windows["label"].notna()]
    y = labelled["label"].astype(str).to_numpy()
    scaled_knn = make_pipeline(StandardScaler(), KNeighborsClassifier(args.neighbours))
    guess = cross_val_predict(scaled_knn, latents[labelled.index], y, cv=folds)
    sprites = y == "sprite"
    late = labelled["sprite_delay_us"].to_numpy() >= LATE_GLOW_US
    for name, keep in (("early", sprites & ~late), ("late", sprites & late)):
        hits = int((guess[keep] == "sprite").sum())
        print(f"labelled sprites, {name} glow (1.8 ms): {hits} of {int(keep.sum())} recalled")

    with xr.open_zarr(results / "windows.zarr") as store:
        waveform = store["waveform"].to_numpy()
        channels = [str(c) for c in store["channel"].to_numpy()]
    precision = median_precision(
        results / "model/checkpoint.pt", waveform, windows["type"].to_numpy()
    )
    precision.columns = channels
    print("median Beta precision (alpha + beta) of the decoder, by planted type:")
    print(precision.round(0).to_string())


if __name__ == "__main__":
    main()
