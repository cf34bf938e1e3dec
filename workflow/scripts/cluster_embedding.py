"""Spectral clustering of the UMAP projection on a sparse nearest-neighbour affinity."""

import pandas as pd

from latentsky.analysis.embedding import spectral_clusters
from latentsky.logs import log_to_file

log = log_to_file(snakemake.log[0])
settings = snakemake.params.clustering
table = pd.read_csv(snakemake.input.coordinates, parse_dates=["time"])
table["cluster"] = spectral_clusters(
    table[["umap_x", "umap_y"]].to_numpy(),
    n_clusters=settings["n_clusters"],
    n_neighbors=settings["n_neighbors"],
    seed=settings["seed"],
)
log.info("cluster sizes: %s", table["cluster"].value_counts().sort_index().to_dict())
table.to_csv(snakemake.output.embedding, index=False)
