"""Figure: the UMAP of the latents coloured by site, beside the same UMAP coloured by label."""

import pandas as pd

from latentsky.figures import plot_embeddings_by_site
from latentsky.logs import log_to_file

log_to_file(snakemake.log[0])
# The coordinates, not the clusters: a new clustering does not redraw this figure.
table = pd.read_csv(snakemake.input.coordinates)
plot_embeddings_by_site(
    table[["umap_x", "umap_y"]].to_numpy(),
    table["site"].to_numpy(),
    table["label"].to_numpy(dtype=object),
    snakemake.output.png,
)
