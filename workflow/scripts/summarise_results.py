"""Headline numbers of a run: latent-space quality, clusters, sigma_phi fits, gaps, bad input."""

import json

import numpy as np
import pandas as pd

from latentsky.acquisition.gaps import gap_summary
from latentsky.acquisition.manifest import read_manifest
from latentsky.analysis.embedding import adjusted_rand, cluster_label_table, knn_accuracy
from latentsky.logs import log_to_file
from latentsky.stores import open_zarr

log = log_to_file(snakemake.log[0])
analysis = snakemake.params.analysis
table = pd.read_csv(snakemake.input.embedding, parse_dates=["time"])
latents = open_zarr(snakemake.input.latents)["latent"].to_numpy()
samples = open_zarr(snakemake.input.samples)
store = snakemake.params.samples  # which store: images (variable "image") or windows ("waveform")
metrics = pd.read_csv(snakemake.input.metrics)

labelled = table.dropna(subset=["label"])
summary = {
    "dataset": snakemake.wildcards.dataset,
    f"n_{store['name']}": int(samples[store["variable"]].shape[0]),  # n_images or n_windows
    "n_embedded": len(table),
    "n_labelled_embedded": len(labelled),
    "excluded_labels": analysis["exclude_labels"],
    "n_clusters": int(table["cluster"].nunique()),
    "training": {
        "epochs": int(metrics["epoch"].max()),
        "final_train_loss": float(metrics["train_loss"].iloc[-1]),
        "final_val_loss": float(metrics["val_loss"].iloc[-1]),
    },
}
if len(labelled) >= analysis["knn_folds"] * 2 and labelled["label"].nunique() > 1:
    summary["knn_accuracy"] = knn_accuracy(
        latents[labelled["index"].to_numpy()],
        labelled["label"].to_numpy(),
        k=analysis["knn_neighbors"],
        folds=analysis["knn_folds"],
        seed=0,
    )
    summary["knn_neighbors"] = analysis["knn_neighbors"]
    summary["knn_folds"] = analysis["knn_folds"]
    summary["adjusted_rand_index"] = adjusted_rand(labelled["cluster"], labelled["label"])
    crosstab = cluster_label_table(labelled["cluster"], labelled["label"])
    summary["cluster_label_counts"] = {
        str(cluster): {str(k): int(v) for k, v in row.items()}
        for cluster, row in crosstab.iterrows()
    }

# What the archives lacked (404 or not listed), from the download manifests: files, UT hours without
# any data, minutes without data (a stream0 minute holds 20 frames).
summary["gaps"] = {}
if snakemake.input.image_manifests:
    image_rows = [row for path in snakemake.input.image_manifests for row in read_manifest(path)]
    summary["gaps"]["images"] = gap_summary(image_rows)
if snakemake.input.ismr_manifests:
    ismr_rows = [row for path in snakemake.input.ismr_manifests for row in read_manifest(path)]
    summary["gaps"]["ismr"] = gap_summary(ismr_rows)
summary["bad_input"] = {store["name"]: json.loads(samples.attrs.get("bad_input", "{}"))}
if snakemake.input.tle:  # photometer datasets: anomaly scores and band signatures
    with open(snakemake.input.tle) as handle:
        summary["tle"] = json.load(handle)
    summary["anomaly_roc_auc"] = summary["tle"]["anomaly_auc"]["auc"]

if snakemake.input.fits:
    fits = pd.read_csv(snakemake.input.fits)
    sigma = open_zarr(snakemake.input.sigma_phi)
    summary["bad_input"]["ismr"] = sigma.attrs.get("bad_input", {})
    summary["scintillation_cuts_removed"] = sigma.attrs.get("removed_by_cuts", {})
    summary["sigma_phi_fits"] = {
        group_type: {
            str(row["group"]): {
                k: (None if pd.isna(v) else v)
                for k, v in row.items()
                if k not in ("group", "group_type")
            }
            for _, row in rows.iterrows()
        }
        for group_type, rows in fits.groupby("group_type")
    }
    by_cluster = fits[(fits["group_type"] == "cluster") & fits["median"].notna()]
    if not by_cluster.empty:
        top = by_cluster.loc[by_cluster["median"].idxmax()]
        members = labelled[labelled["cluster"].astype(str) == str(top["group"])]
        bright = (
            members["label"].isin(analysis["bright_aurora_labels"]).mean()
            if len(members)
            else np.nan
        )
        summary["highest_sigma_phi_cluster"] = {
            "cluster": str(top["group"]),
            "median_sigma_phi_rad": float(top["median"]),
            "n": int(top["n"]),
            "bright_aurora_labels": analysis["bright_aurora_labels"],
            "bright_aurora_fraction": None if pd.isna(bright) else float(bright),
        }


def strict_json(value):
    """NaN and infinities become null: summary.json must parse with any strict JSON reader."""
    if isinstance(value, dict):
        return {key: strict_json(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [strict_json(item) for item in value]
    if isinstance(value, float | np.floating):
        return float(value) if np.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    return value


summary = strict_json(summary)
log.info("summary: %s", json.dumps(summary, indent=2))
with open(snakemake.output.summary, "w") as handle:
    json.dump(summary, handle, indent=2, allow_nan=False)
