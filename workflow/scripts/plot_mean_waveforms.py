"""Figure: mean three-band waveform of each cluster with its spread."""

import numpy as np

from latentsky.figures import plot_mean_waveforms
from latentsky.logs import log_to_file

log_to_file(snakemake.log[0])
stats = np.load(snakemake.input.waveforms)
names = [f"{name} ({stats['units']})" for name in stats["band_names"]]
plot_mean_waveforms(
    stats["mean"],
    stats["std"],
    names,
    snakemake.output.png,
    sample_rate_hz=float(stats["sample_rate_hz"]),
    clusters=stats["clusters"],
)
