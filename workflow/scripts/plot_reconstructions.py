"""Figure: originals over their reconstructions (projected images, or three-band waveforms)."""

import numpy as np

from latentsky.figures import plot_reconstructions, plot_waveform_reconstructions
from latentsky.logs import log_to_file

log_to_file(snakemake.log[0])
examples = np.load(snakemake.input.reconstructions)
if snakemake.params.layout == "waveform":
    plot_waveform_reconstructions(
        examples["originals"],
        examples["reconstructions"],
        [f"{b} (scaled)" for b in examples["band_names"]],
        snakemake.output[0],
        sample_rate_hz=float(examples["sample_rate_hz"]),
        titles=[str(t)[:23] for t in examples["times"]],
    )
else:  # images: the first band
    plot_reconstructions(
        examples["originals"][:, 0],
        examples["reconstructions"][:, 0],
        snakemake.output[0],
        titles=[str(t)[:16] for t in examples["times"]],
    )
