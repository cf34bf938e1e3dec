"""What the clusters of photometer windows hold: features, anomaly scores, mean waveforms, TLE
candidates, and how well the scores single out the labelled transient luminous events."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import xarray as xr

from latentsky.analysis.scoring import anomaly_scores
from latentsky.analysis.tle import (
    anomaly_auc,
    cluster_table,
    cluster_waveforms,
    feature_table,
    rank_candidates,
    roc_auc,
)
from latentsky.models import LatentModel
from latentsky.models.feed import SampleSource
from latentsky.samples.windows import Scaling

#: Per-window features stored with the windows (in the files' units).
FEATURES = ("peak_flux", "baseline_flux", "noise_flux", "rise_time_us", "duration_us")


def analyse_windows(
    windows: xr.Dataset,
    samples: SampleSource,
    model: LatentModel,
    embedding: pd.DataFrame,
    settings: dict,
) -> dict:
    """Score, tabulate and summarise every window of a photometer dataset.

    Args:
        windows: the windows store (coordinates, features, attributes).
        samples: its ``waveform`` variable, read chunk by chunk.
        model: the trained Beta VAE (anomaly score: negative ELBO, nats per window).
        embedding: the embedding table (``index``: window position, ``cluster``, ``label``).
        settings: the config's ``analysis.tle``.

    Returns:
        ``windows`` (one row per window: coordinates, features, scores, cluster, label),
        ``clusters`` (:func:`~latentsky.analysis.tle.cluster_table`), ``candidates``,
        ``waveforms`` (arrays of the mean-waveforms file) and ``summary`` (plain values).
    """
    scores = anomaly_scores(
        model, samples, n_samples=settings["elbo_samples"], seed=settings["seed"]
    )
    coordinates = ("window", "observation", "time", "latitude", "longitude")
    table = pd.DataFrame({name: windows[name].to_numpy() for name in coordinates})
    features = {name: windows[name].to_numpy() for name in FEATURES}
    table = pd.concat([table, feature_table(features)], axis=1)
    for key, values in scores.items():
        table[key] = values
    table["cluster"] = -1
    table["label"] = None
    table.loc[embedding["index"].to_numpy(), "cluster"] = embedding["cluster"].to_numpy()
    table.loc[embedding["index"].to_numpy(), "label"] = embedding["label"].to_numpy()
    candidates = rank_candidates(
        table, n=settings["n_candidates"], balance_signatures=settings["balance_signatures"]
    )
    return {
        "windows": table,
        "clusters": cluster_table(table),
        "candidates": candidates,
        "waveforms": _mean_waveforms(windows, samples, table, features, settings),
        "summary": _summary(table, candidates, settings),
    }


def _mean_waveforms(windows, samples, table, features, settings) -> dict:
    """Mean, spread and examples of each cluster's waveforms in physical units."""
    scaling = Scaling.from_dict(json.loads(windows.attrs["normalisation"]))
    baseline = features["baseline_flux"][..., np.newaxis]

    def physical(index):
        raw = samples.gather(index)
        return scaling.invert(samples.unpacking.numpy(raw, index=index), baseline[index])

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
    return {
        "clusters": stats["clusters"],
        "n": stats["n"],
        "mean": stats["mean"].astype(np.float32),
        "std": stats["std"].astype(np.float32),
        "examples": examples,
        "example_waveforms": example_waves,
        "band_names": windows["wavelength"].to_numpy().astype(str),
        "sample_rate_hz": float(windows.attrs["sample_rate_hz"]),
        "units": str(windows.attrs["units"]),
        "aligned": bool(settings["align"]),
    }


def _summary(table: pd.DataFrame, candidates: pd.DataFrame, settings: dict) -> dict:
    """How well the anomaly score and the band signature pick out the labelled TLEs."""
    labels = table["label"].to_numpy(dtype=object)
    tle, ordinary = settings["tle_labels"], settings["ordinary_labels"]
    anomaly = anomaly_auc(table["neg_elbo"], labels, tle, ordinary)
    summary = {
        "anomaly_score": "negative ELBO (nats per window)",
        "anomaly_auc": anomaly,
        "signature_auc": anomaly_auc(
            table["signature_score"].fillna(-np.inf), labels, tle, ordinary
        )["auc"],
        "anomaly_auc_by_label": {},
        "n_windows": len(table),
        "n_candidates": len(candidates),
        "signature_counts": table["signature"].value_counts().to_dict(),
        # Lifted into the dataset's summary.json.
        "headlines": {"anomaly_roc_auc": anomaly["auc"]},
    }
    # Each TLE label against each ordinary label alone: which kinds the score does (not) single out.
    for positive in tle:
        for negative in ordinary:
            keep = np.isin(labels, [positive, negative])
            if keep.any():
                auc = roc_auc(table["neg_elbo"].to_numpy()[keep], labels[keep] == positive)
                summary["anomaly_auc_by_label"][f"{positive}_vs_{negative}"] = auc
    return summary
