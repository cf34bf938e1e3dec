"""Figure: t-SNE and UMAP coloured by spectral cluster, with cluster numbers."""

import pandas as pd

from latentsky.figures import plot_clusters
from latentsky.logs import log_to_file

log_to_file(snakemake.log[0])
table = pd.read_csv(snakemake.input.embedding)
plot_clusters(
    table[["umap_x", "umap_y"]].to_numpy(),
    table["cluster"].to_numpy(),
    snakemake.output.png,
    tsne_xy=table[["tsne_x", "tsne_y"]].to_numpy(),
)
