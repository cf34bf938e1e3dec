"""UMAP and t-SNE of the latent vectors (the labelled subset, or all samples), with labels."""

import numpy as np
import pandas as pd

from latentsky.embedding import tsne_embed, umap_embed
from latentsky.labels import labels_for_times, read_labels
from latentsky.logs import log_to_file
from latentsky.stores import open_zarr

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
umap_xy = umap_embed(
    vectors,
    n_neighbors=settings["umap_neighbors"],
    min_dist=settings["umap_min_dist"],
    seed=settings["seed"],
)
tsne_xy = tsne_embed(
    vectors, perplexity=settings["tsne_perplexity"], seed=settings["seed"], n_jobs=snakemake.threads
)
table[["umap_x", "umap_y"]] = umap_xy
table[["tsne_x", "tsne_y"]] = tsne_xy
table.to_csv(snakemake.output.coordinates, index=False)
