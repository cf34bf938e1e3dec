"""Figure: originals over their reconstructions (projected images, or three-band waveforms)."""

import numpy as np

from latentsky.figures import plot_reconstructions, plot_waveform_reconstructions
from latentsky.logs import log_to_file

log_to_file(snakemake.log[0])
examples = np.load(snakemake.input.reconstructions)
if "band_names" in examples and len(examples["band_names"]):  # photometer windows
    plot_waveform_reconstructions(
        examples["originals"],
        examples["reconstructions"],
        [f"{b} (scaled)" for b in examples["band_names"]],
        snakemake.output[0],
        sample_rate_hz=float(examples["sample_rate_hz"]),
        titles=[str(t)[:23] for t in examples["times"]],
    )
else:
    plot_reconstructions(
        examples["originals"],
        examples["reconstructions"],
        snakemake.output[0],
        titles=[str(t)[:16] for t in examples["times"]],
    )
