"""UMAP and t-SNE of the latent vectors (the labelled subset, or all samples), with labels."""

import os

# Idle OpenMP threads sleep instead of spinning (read when the OpenMP library loads, so before the
# imports): where other jobs share the cores, a spinning thread takes the core its partner needs,
# and a 300-point t-SNE on 2 threads took 16 s instead of 0.7 s.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from latentsky.analysis.embedding import (  # noqa: E402
    nearest_neighbours,
    neighbours_needed,
    tsne_embed,
    umap_embed,
)
from latentsky.analysis.labels import labels_for_times, read_labels  # noqa: E402
from latentsky.logs import log_to_file  # noqa: E402
from latentsky.stores import open_zarr  # noqa: E402

log = log_to_file(snakemake.log[0])
settings = snakemake.params.embedding
latents = open_zarr(snakemake.input.latents)
table = pd.DataFrame({"time": latents["time"].to_numpy()})
if snakemake.input.labels:
    labels = read_labels(snakemake.input.labels[0], site=snakemake.params.site)
    table["label"] = labels_for_times(table["time"], labels, snakemake.params.label_tolerance_s)
else:
    table["label"] = None
keep = ~table["label"].isin(snakemake.params.exclude_labels).to_numpy()
if settings["subset"] == "labelled":
    keep &= table["label"].notna().to_numpy()
log.info(
    "embedding %d of %d samples (subset=%s, excluded labels %s)",
    keep.sum(),
    len(table),
    settings["subset"],
    snakemake.params.exclude_labels,
)
vectors = latents["latent"].to_numpy()[keep]
table = table[keep].reset_index(drop=True)
table["index"] = np.flatnonzero(keep)
# One exact neighbour search serves both embeddings.
k = neighbours_needed(settings["umap_neighbors"], settings["tsne_perplexity"])
neighbours = nearest_neighbours(vectors, k, n_jobs=snakemake.threads)
umap_xy = umap_embed(
    vectors,
    n_neighbors=settings["umap_neighbors"],
    min_dist=settings["umap_min_dist"],
    seed=settings["seed"],
    neighbours=neighbours,
)
tsne_xy = tsne_embed(
    vectors,
    perplexity=settings["tsne_perplexity"],
    seed=settings["seed"],
    n_jobs=snakemake.threads,
    neighbours=neighbours,
)
table[["umap_x", "umap_y"]] = umap_xy
table[["tsne_x", "tsne_y"]] = tsne_xy
table.to_csv(snakemake.output.coordinates, index=False)
