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
FEATURES = (
    "peak_flux",
    "baseline_flux",
    "noise_flux",
    "rise_time_us",
    "duration_us",
    "has_pulse",
    "late_fraction",
)


def analyse_windows(
    windows: xr.Dataset,
    samples: SampleSource,
    model: LatentModel,
    embedding: pd.DataFrame,
    settings: dict,
    latents: np.ndarray | None = None,
) -> dict:
    """Score, tabulate and summarise every window of a photometer dataset.

    Args:
        windows: the windows store (coordinates, features, attributes).
        samples: its ``waveform`` variable, read chunk by chunk.
        model: the trained Beta VAE (anomaly score: negative ELBO, nats per window).
        embedding: the embedding table (``index``: window position, ``cluster``, ``label``).
        settings: the config's ``analysis.tle``.
        latents: ``(window, latent_dim)`` latent codes, for the per-type scores
            (:func:`type_scores`); None leaves those out.

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
    features = {name: windows[name].to_numpy() for name in FEATURES if name in windows}
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
        "summary": _summary(table, candidates, settings, latents, embedding),
    }


def _mean_waveforms(windows, samples, table, features, settings) -> dict:
    """Mean, spread and examples of each cluster's waveforms in physical units."""
    scaling = Scaling.from_dict(json.loads(windows.attrs["normalisation"]))
    baseline = features["baseline_flux"][..., np.newaxis]
    noise = features["noise_flux"][..., np.newaxis]

    n_bands = windows.sizes["band"]

    def physical(index):
        raw = samples.gather(index)
        # The bands only: any colour channels after them have no physical units.
        scaled = samples.unpacking.numpy(raw, index=index)[:, :n_bands]
        return scaling.invert(scaled, baseline[index], noise[index])

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


def _summary(
    table: pd.DataFrame,
    candidates: pd.DataFrame,
    settings: dict,
    latents: np.ndarray | None = None,
    embedding: pd.DataFrame | None = None,
) -> dict:
    """How well the anomaly score and the band signature pick out the labelled TLEs, and (with
    the latents) how well the latents and clusters tell every labelled type apart."""
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
    top = candidates["label"].dropna() if "label" in candidates else pd.Series(dtype=object)
    summary["candidates_labelled"] = top.value_counts().to_dict()
    if latents is not None and embedding is not None:
        types = _type_summary(table, latents, embedding, settings)
        summary["headlines"].update(types.pop("headlines", {}))
        summary.update(types)
    return summary


def _type_summary(table, latents, embedding, settings) -> dict:
    """:func:`type_scores` of the labelled embedded windows, clusters at the workflow's number
    and re-clustered at the number of labelled types: spectral clusters of the labelled windows'
    standardised latents (``ari_at_n_types``: the latent space itself, whose regions the types
    should own) and, for comparison, of the UMAP coordinates (``ari_at_n_types_umap``: one 2-D
    layout, whose random arrangement alone moved the demo's ARI from 0.84 to 0.47)."""
    from latentsky.analysis.embedding import adjusted_rand, spectral_clusters

    labelled = embedding["label"].notna().to_numpy()
    types = embedding.loc[labelled, "label"].astype(str)
    n_types = types.nunique()
    if n_types < 2 or types.value_counts().min() < 2:
        return {}
    index = embedding["index"].to_numpy()[labelled]
    clusters = {int(embedding["cluster"].max()) + 1: embedding["cluster"].to_numpy()[labelled]}
    coords = embedding[["umap_x", "umap_y"]].to_numpy()
    umap_ari = float("nan")
    if 2 <= n_types < len(index):
        clusters[n_types] = latent_clusters(
            latents[index],
            n_types,
            seed=settings["seed"],
            n_neighbors=settings["type_cluster_neighbors"],
        )
        on_umap = spectral_clusters(coords, n_types, seed=settings["seed"])[labelled]
        umap_ari = adjusted_rand(on_umap, types.to_numpy())
    scores = type_scores(
        latents[index],
        types.to_numpy(),
        clusters,
        table["neg_elbo"].to_numpy()[index],
        tle_labels=settings["tle_labels"],
        reference=settings["reference_label"],
        metric=settings["knn_metric"],
    )
    scores["ari_at_n_types"] = scores["ari_at"].get(n_types, float("nan"))
    scores["ari_at_n_types_umap"] = umap_ari
    scores["n_types"] = n_types
    scores["cluster_type_counts"] = (
        {
            str(c): row.to_dict()
            for c, row in pd.crosstab(clusters[n_types], types.to_numpy()).iterrows()
        }
        if n_types in clusters
        else {}
    )
    scores["headlines"] = {
        "balanced_knn_accuracy": scores["balanced_knn_accuracy"],
        "knn_recall": scores["knn_recall"],
        "knn_metric": scores["knn_metric"],
        "ari_at_n_types": scores["ari_at_n_types"],
        "anomaly_auc_by_type": scores["anomaly_auc_by_type"],
    }
    return scores


def latent_clusters(
    latents: np.ndarray, n_clusters: int, seed: int = 0, n_neighbors: int = 10
) -> np.ndarray:
    """Spectral clusters (:func:`~latentsky.analysis.embedding.spectral_clusters`) of latent
    codes ``(N, D)``, each dimension standardised first: the latent space itself, not a 2-D
    picture of it (``ari_at_n_types``). ``n_neighbors`` is the affinity graph's (config
    ``analysis.tle.type_cluster_neighbors``)."""
    from sklearn.preprocessing import StandardScaler

    from latentsky.analysis.embedding import spectral_clusters

    standard = StandardScaler().fit_transform(np.asarray(latents, np.float64))
    return spectral_clusters(standard, n_clusters, n_neighbors=n_neighbors, seed=seed)


def type_scores(
    latents: np.ndarray,
    labels,
    clusters: dict[int, np.ndarray],
    scores: np.ndarray,
    tle_labels=("elve", "blue_corona", "sprite", "blue_jet"),
    reference: str = "lightning",
    k: int = 5,
    folds: int = 5,
    seed: int = 0,
    metric: str = "euclidean",
) -> dict:
    """How well the latents, the clusters and the anomaly score tell every labelled type apart.

    Args:
        latents: ``(N, D)`` latent codes of the labelled windows.
        labels: ``(N,)`` their labels (the planted or hand-labelled types).
        clusters: cluster numbers ``(N,)`` of the same windows by number of clusters.
        scores: ``(N,)`` anomaly scores (negative ELBO).
        tle_labels, reference: each TLE label's AUC is taken against ``reference`` alone.
        k, folds, seed: the k-nearest-neighbour classifier (standardised inside each fold) and
            its stratified, shuffled folds.
        metric: the classifier's distance between standardised latents, ``"euclidean"`` or
            ``"cosine"`` (config ``analysis.tle.knn_metric``; see there why).

    Returns:
        ``balanced_knn_accuracy`` (mean over types of the kNN recall; chance 1 / types),
        ``knn_recall`` by type, ``knn_confusion`` (true type -> predicted type -> count),
        ``knn_metric``, the same two figures with the Euclidean distance under ``euclidean``
        when ``metric`` is another,
        ``ari_at`` (number of clusters -> adjusted Rand index against the labels) and
        ``anomaly_auc_by_type`` (each TLE label present against ``reference``; NaN if absent).
    """
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from latentsky.analysis.embedding import adjusted_rand
    from latentsky.analysis.tle import roc_auc

    y = np.asarray(labels, dtype=object).astype(str)
    types = sorted(set(y))
    smallest = min(int((y == t).sum()) for t in types)
    n_folds = max(2, min(folds, smallest))
    # No more neighbours than the smallest training fold holds (tiny test runs).
    k = max(1, min(k, len(y) - -(-len(y) // n_folds)))
    cv = StratifiedKFold(n_splits=n_folds, shuffle=True, random_state=seed)
    x = np.asarray(latents, np.float64)

    def predict(distance: str) -> np.ndarray:
        classifier = KNeighborsClassifier(n_neighbors=k, metric=distance)
        return cross_val_predict(make_pipeline(StandardScaler(), classifier), x, y, cv=cv)

    def recalls(predicted: np.ndarray) -> dict[str, float]:
        return {t: float(np.mean(predicted[y == t] == t)) for t in types}

    predicted = predict(metric)
    recall = recalls(predicted)
    confusion = pd.crosstab(pd.Series(y, name="type"), pd.Series(predicted, name="predicted"))
    scores = np.asarray(scores, dtype=np.float64)
    by_type = {}
    for kind in tle_labels:
        keep = np.isin(y, [kind, reference])
        by_type[kind] = roc_auc(scores[keep], y[keep] == kind) if keep.any() else float("nan")
    result = {
        "balanced_knn_accuracy": float(np.mean(list(recall.values()))),
        "knn_recall": recall,
        "knn_metric": metric,
        "knn_confusion": {t: confusion.loc[t].to_dict() for t in confusion.index},
        "ari_at": {int(n): adjusted_rand(c, y) for n, c in clusters.items()},
        "anomaly_auc_by_type": by_type,
    }
    if metric != "euclidean":
        # Beside it for comparison: what the common Euclidean kNN of the same latents gives.
        euclidean = recalls(predict("euclidean"))
        result["euclidean"] = {
            "balanced_knn_accuracy": float(np.mean(list(euclidean.values()))),
            "knn_recall": euclidean,
        }
    return result
