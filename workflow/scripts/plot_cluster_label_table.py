"""Figure: the cluster-by-label table of counts."""

import pandas as pd

from latentsky.analysis.embedding import cluster_label_table
from latentsky.figures import plot_cluster_label_table
from latentsky.logs import log_to_file

log_to_file(snakemake.log[0])
table = pd.read_csv(snakemake.input.embedding).dropna(subset=["label"])
plot_cluster_label_table(
    cluster_label_table(table["cluster"], table["label"]), snakemake.output.png
)
