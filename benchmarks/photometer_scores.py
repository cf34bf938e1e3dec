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
  with a precision per sample it fell under sprites' glows instead of the glow being encoded;
- the latent space's geometry on the labelled half (README, "kNN in cosine distance" and
  "Clusters at the number of types"): kNN recall per TLE type with the Euclidean, cosine and
  distance-weighted Euclidean distances; the ARI of the latents' spectral clusters at the number
  of types on 10, 15 and 30 neighbours; the median length of a standardised latent and the
  median distance to its nearest neighbour, per type; how often the most frequent neighbour is
  among others' five nearest; the 337 nm peaks of the labelled jets the Euclidean kNN missed and
  recalled.

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
from sklearn.neighbors import KNeighborsClassifier, NearestNeighbors
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "workflow" / "scripts"))

from latentsky.analysis.embedding import adjusted_rand  # noqa: E402
from latentsky.analysis.labels import match_labels  # noqa: E402
from latentsky.analysis.tle_clusters import latent_clusters, type_scores  # noqa: E402
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


def latent_geometry(latents: np.ndarray, labelled: pd.DataFrame, k: int) -> None:
    """Print what decides the kNN and the clusters of the labelled windows' latents."""
    y = labelled["label"].astype(str).to_numpy()
    x = latents[labelled.index]
    tle = ["elve", "blue_corona", "sprite", "blue_jet"]
    folds = StratifiedKFold(5, shuffle=True, random_state=0)
    for name, classifier in (
        ("euclidean", KNeighborsClassifier(k)),
        ("cosine", KNeighborsClassifier(k, metric="cosine")),
        ("distance-weighted euclidean", KNeighborsClassifier(k, weights="distance")),
    ):
        guess = cross_val_predict(make_pipeline(StandardScaler(), classifier), x, y, cv=folds)
        recall = recall_score(y, guess, labels=tle, average=None)
        print(
            f"labelled half, {name} kNN: balanced {balanced_accuracy_score(y, guess):.3f}, "
            + " / ".join(f"{t} {r:.2f}" for t, r in zip(tle, recall, strict=True))
        )
        if name == "euclidean":
            jets = labelled.assign(hit=guess == y)[y == "blue_jet"]
            for hit, group in jets.groupby("hit"):
                peaks = group["peak_flux_337"]
                print(
                    f"  labelled jets {'recalled' if hit else 'missed'}: {len(group)}, "
                    f"337 nm peak {peaks.min():.1f} to {peaks.max():.1f} uW/m^2"
                )
    n_types = len(set(y))
    aris = {n: adjusted_rand(latent_clusters(x, n_types, n_neighbors=n), y) for n in (10, 15, 30)}
    print("ARI of latent clusters at the number of types, by neighbours:", _rounded(aris))
    standard = StandardScaler().fit_transform(x.astype(np.float64))
    length = pd.Series(np.linalg.norm(standard, axis=1)).groupby(y).median()
    print("median length of a standardised latent, by type:", _rounded(length.to_dict(), 1))
    distance, neighbours = NearestNeighbors(n_neighbors=6).fit(standard).kneighbors(standard)
    nearest = pd.Series(distance[:, 1]).groupby(y).median()
    print("median distance to the nearest neighbour, by type:", _rounded(nearest.to_dict(), 2))
    occurrences = np.bincount(neighbours[:, 1:].ravel(), minlength=len(y))
    busiest = int(occurrences.argmax())
    print(
        f"most frequent neighbour: a {y[busiest]} window, among the five nearest of "
        f"{occurrences[busiest]} others"
    )
    # The workflow's own function gives the same figures as above (a check on this script).
    figures = type_scores(x, y, {}, np.zeros(len(y)), k=k, metric="cosine")
    print(f"type_scores, cosine: balanced {figures['balanced_knn_accuracy']:.3f}")


def _rounded(mapping: dict, digits: int = 2) -> dict:
    return {key: round(float(value), digits) for key, value in mapping.items()}


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

    latent_geometry(latents, labelled, args.neighbours)

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
