"""Figure: training and validation loss per epoch (PNG and PDF)."""

import pandas as pd

from latentsky.figures import plot_training_curves
from latentsky.logs import log_to_file

log_to_file(snakemake.log[0])
plot_training_curves(
    pd.read_csv(snakemake.input.metrics), snakemake.output.png, loss_name=snakemake.params.loss_name
)
