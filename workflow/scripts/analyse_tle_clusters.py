"""Per-window features and anomaly scores, per-cluster summaries and mean waveforms, TLE candidates."""

import json

import numpy as np
import pandas as pd
import torch

from latentsky.analysis.scoring import anomaly_scores
from latentsky.analysis.tle import (
    anomaly_auc,
    cluster_table,
    cluster_waveforms,
    feature_table,
    rank_candidates,
    roc_auc,
)
from latentsky.logs import log_to_file
from latentsky.models.feed import SampleSource
from latentsky.models.training import load_checkpoint
from latentsky.samples.windows import Scaling
from latentsky.stores import open_zarr

log = log_to_file(snakemake.log[0])
settings = snakemake.params.tle
torch.set_num_threads(snakemake.threads)
ds = open_zarr(snakemake.input.windows)
waveform = ds["waveform"]
data = SampleSource.from_store(snakemake.input.windows, "waveform")

# Anomaly score of every window: the negative ELBO under the trained model.
model, _ = load_checkpoint(snakemake.input.checkpoint)
scores = anomaly_scores(model, data, n_samples=settings["elbo_samples"], seed=settings["seed"])

names = ("peak_flux", "baseline_flux", "noise_flux", "rise_time_us", "duration_us")
table = pd.DataFrame(
    {
        "window": ds["window"].to_numpy(),
        "observation": ds["observation"].to_numpy(),
        "time": ds["time"].to_numpy(),
        "latitude": ds["latitude"].to_numpy(),
        "longitude": ds["longitude"].to_numpy(),
    }
)
features = {n: ds[n].to_numpy() for n in names}
table = pd.concat([table, feature_table(features)], axis=1)
for key, values in scores.items():
    table[key] = values
# Cluster and label of the embedded windows (the embedding's `index` is the window's position).
embedding = pd.read_csv(snakemake.input.embedding)
table["cluster"] = -1
table["label"] = None
table.loc[embedding["index"].to_numpy(), "cluster"] = embedding["cluster"].to_numpy()
table.loc[embedding["index"].to_numpy(), "label"] = embedding["label"].to_numpy()
table.to_csv(snakemake.output.windows, index=False)

clusters = cluster_table(table)
clusters.to_csv(snakemake.output.clusters, index=False)
candidates = rank_candidates(
    table, n=settings["n_candidates"], balance_signatures=settings["balance_signatures"]
)
candidates.to_csv(snakemake.output.candidates, index=False)

# Mean and spread of each cluster's waveforms in physical units (the scaling undone).
scaling = Scaling.from_dict(json.loads(ds.attrs["normalisation"]))
baseline = features["baseline_flux"][..., np.newaxis]


def physical(index):
    """Windows at ``index`` in the data's units (one read per chunk they touch)."""
    return scaling.invert(data.unpacking.numpy(data.gather(index)), baseline[index])


stats = cluster_waveforms(
    physical,
    table["cluster"].to_numpy(),
    align=settings["align"],
    n_examples=settings["n_examples"],
    seed=settings["seed"],
)
examples = stats["examples"]
example_waves = np.full((*examples.shape, *stats["mean"].shape[1:]), np.nan, np.float32)
found = examples >= 0  # -1 pads clusters with fewer examples
example_waves[found] = physical(examples[found])
np.savez_compressed(
    snakemake.output.waveforms,
    clusters=stats["clusters"],
    n=stats["n"],
    mean=stats["mean"].astype(np.float32),
    std=stats["std"].astype(np.float32),
    examples=examples,
    example_waveforms=example_waves,
    band_names=ds["wavelength"].to_numpy().astype(str),
    sample_rate_hz=float(ds.attrs["sample_rate_hz"]),
    units=str(ds.attrs["units"]),
    aligned=bool(settings["align"]),
)

# How well the anomaly score and the band signature pick out the labelled TLEs.
labels = table["label"].to_numpy(dtype=object)
summary = {
    "anomaly_score": "negative ELBO (nats per window)",
    "anomaly_auc": anomaly_auc(
        table["neg_elbo"], labels, settings["tle_labels"], settings["ordinary_labels"]
    ),
    "signature_auc": anomaly_auc(
        table["signature_score"].fillna(-np.inf),
        labels,
        settings["tle_labels"],
        settings["ordinary_labels"],
    )["auc"],
    "anomaly_auc_by_label": {},
    "n_windows": len(table),
    "n_candidates": len(candidates),
    "signature_counts": table["signature"].value_counts().to_dict(),
}
# Each TLE label against each ordinary label alone: which kinds the score does (not) single out.
for positive in settings["tle_labels"]:
    for negative in settings["ordinary_labels"]:
        keep = np.isin(labels, [positive, negative])
        if keep.any():
            auc = roc_auc(table["neg_elbo"].to_numpy()[keep], labels[keep] == positive)
            summary["anomaly_auc_by_label"][f"{positive}_vs_{negative}"] = auc


def plain(value):
    """NumPy numbers to Python ones, NaN to null: the summary is strict JSON."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


with open(snakemake.output.summary, "w") as handle:
    json.dump(plain(summary), handle, indent=2, allow_nan=False)
log.info("anomaly AUC %s; %d candidates", summary["anomaly_auc"], len(candidates))
