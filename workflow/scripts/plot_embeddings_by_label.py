"""Figure: t-SNE and UMAP of the latents side by side, coloured by label."""

import pandas as pd

from latentsky.figures import plot_embeddings_by_label
from latentsky.logs import log_to_file

log_to_file(snakemake.log[0])
# The coordinates, not the clusters: a new clustering does not redraw this figure.
table = pd.read_csv(snakemake.input.coordinates)
labels = table["label"].to_numpy(dtype=object)  # NaN: unlabelled, drawn in grey
plot_embeddings_by_label(
    table[["umap_x", "umap_y"]].to_numpy(),
    table[["tsne_x", "tsne_y"]].to_numpy(),
    labels,
    snakemake.output.png,
)
