"""Figure: original projected images over their reconstructions."""

import numpy as np

from latentsky.figures import plot_reconstructions
from latentsky.logs import log_to_file

log_to_file(snakemake.log[0])
examples = np.load(snakemake.input.reconstructions)
plot_reconstructions(
    examples["originals"],
    examples["reconstructions"],
    snakemake.output[0],
    titles=[str(t)[:16] for t in examples["times"]],
)
