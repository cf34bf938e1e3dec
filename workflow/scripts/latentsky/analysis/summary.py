"""The headline numbers of a run (``summary.json``): latent space, clusters, fits, gaps, bad input."""

from __future__ import annotations

import numpy as np
import pandas as pd

from latentsky.acquisition.gaps import failures, gap_reasons, gap_summary
from latentsky.analysis.embedding import adjusted_rand, cluster_label_table, knn_accuracy
from latentsky.analysis.sites import site_measures
from latentsky.conventions import decode_attribute


def summarise(
    dataset: str,
    embedding: pd.DataFrame,
    latents: np.ndarray,
    count_key: str,
    n_samples: int,
    metrics: pd.DataFrame,
    analysis: dict,
    bad_input: dict,
    manifests: dict[str, list] | None = None,
    fits: pd.DataFrame | None = None,
    scintillation_attrs: dict | None = None,
    kind_summaries: dict[str, dict] | None = None,
) -> dict:
    """The summary of one dataset's run, as plain values (see README, "Outputs").

    Args:
        dataset: its name.
        embedding: the embedding table (``index``, ``label``, ``cluster`` per embedded sample).
        latents: ``(N, latent_dim)`` latent vectors of every sample.
        count_key, n_samples: e.g. ``"n_images"`` and the number of samples.
        metrics: per-epoch training metrics.
        analysis: the config's ``analysis`` section for the dataset.
        bad_input: bad-input counts of the sample store, by store name (``images``, ``windows``).
        manifests: download manifest rows by source role (``images``, ``ismr``), for the gaps
            (``gaps.<role>``: counts and reasons) and failures (``failures.<role>``: URL, fault
            and salvaged path of each).
        fits: the log-normal fits (rows per cluster and per label), with the sigma_phi store's
            attributes ``scintillation_attrs``.
        kind_summaries: the summaries of the kind's own rules, by name (``tle``); a
            ``headlines`` entry of one is lifted to the top level.
    """
    labelled = embedding.dropna(subset=["label"])
    summary = {
        "dataset": dataset,
        count_key: int(n_samples),
        "n_embedded": len(embedding),
        "n_labelled_embedded": len(labelled),
        "excluded_labels": analysis["exclude_labels"],
        "n_clusters": int(embedding["cluster"].nunique()),
        "training": {
            "epochs": int(metrics["epoch"].max()),
            "final_train_loss": float(metrics["train_loss"].iloc[-1]),
            "final_val_loss": float(metrics["val_loss"].iloc[-1]),
        },
    }
    if len(labelled) >= analysis["knn_folds"] * 2 and labelled["label"].nunique() > 1:
        summary.update(_label_scores(labelled, latents, analysis))
    # How much the latents separate the imagers rather than the aurora (several sites).
    summary.update(
        site_measures(embedding, latents, k=analysis["knn_neighbors"], folds=analysis["knn_folds"])
    )
    # What the archives lacked (gaps: they say so) and what they answered wrongly after every
    # retry (failures), apart, each with its reasons.
    roles = {role: rows for role, rows in (manifests or {}).items() if rows}
    summary["gaps"] = {
        role: {**gap_summary(rows), "reasons": gap_reasons(rows)} for role, rows in roles.items()
    }
    summary["failures"] = {role: failures(rows) for role, rows in roles.items()}
    summary["bad_input"] = dict(bad_input)
    for name, extra in (kind_summaries or {}).items():
        extra = dict(extra)
        headlines = extra.pop("headlines", {})
        summary[name] = extra
        summary.update(headlines)
    if fits is not None:
        summary.update(_fit_summary(fits, labelled, analysis, scintillation_attrs or {}))
        summary["bad_input"]["ismr"] = decode_attribute(
            (scintillation_attrs or {}).get("bad_input"), {}
        )
    return summary


def _label_scores(labelled: pd.DataFrame, latents: np.ndarray, analysis: dict) -> dict:
    """How well the latents and the clusters recover the labels."""
    crosstab = cluster_label_table(labelled["cluster"], labelled["label"])
    return {
        "knn_accuracy": knn_accuracy(
            latents[labelled["index"].to_numpy()],
            labelled["label"].to_numpy(),
            k=analysis["knn_neighbors"],
            folds=analysis["knn_folds"],
            seed=0,
        ),
        "knn_neighbors": analysis["knn_neighbors"],
        "knn_folds": analysis["knn_folds"],
        "adjusted_rand_index": adjusted_rand(labelled["cluster"], labelled["label"]),
        "cluster_label_counts": {
            str(cluster): {str(k): int(v) for k, v in row.items()}
            for cluster, row in crosstab.iterrows()
        },
    }


def _fit_summary(fits: pd.DataFrame, labelled: pd.DataFrame, analysis: dict, attrs: dict) -> dict:
    """The sigma_phi fits by group, and the cluster with the highest median sigma_phi."""
    out = {
        "scintillation_cuts_removed": decode_attribute(attrs.get("removed_by_cuts"), {}),
        "sigma_phi_fits": {
            group_type: {
                str(row["group"]): {
                    k: (None if pd.isna(v) else v)
                    for k, v in row.items()
                    if k not in ("group", "group_type")
                }
                for _, row in rows.iterrows()
            }
            for group_type, rows in fits.groupby("group_type")
        },
    }
    by_cluster = fits[(fits["group_type"] == "cluster") & fits["median"].notna()]
    if not by_cluster.empty:
        top = by_cluster.loc[by_cluster["median"].idxmax()]
        members = labelled[labelled["cluster"].astype(str) == str(top["group"])]
        bright = members["label"].isin(analysis["bright_aurora_labels"]).mean()
        out["highest_sigma_phi_cluster"] = {
            "cluster": str(top["group"]),
            "median_sigma_phi_rad": float(top["median"]),
            "n": int(top["n"]),
            "bright_aurora_labels": analysis["bright_aurora_labels"],
            "bright_aurora_fraction": float(bright) if len(members) else None,
        }
    return out
