"""Figure: originals over their reconstructions (projected images, or three-band waveforms)."""

import numpy as np

from latentsky.figures import SkyGrid, plot_reconstructions, plot_waveform_reconstructions
from latentsky.logs import log_to_file

log_to_file(snakemake.log[0])
examples = np.load(snakemake.input.reconstructions)
if snakemake.params.layout == "waveform":
    plot_waveform_reconstructions(
        examples["originals"],
        examples["reconstructions"],
        [f"{b}\n(scaled)" for b in examples["band_names"]],
        snakemake.output.png,
        sample_rate_hz=float(examples["sample_rate_hz"]),
        titles=[str(t)[:23] for t in examples["times"]],
    )
else:  # images: the first band, as maps north up
    sites = examples["sites"].tolist() if "sites" in examples else []
    many_sites = len(set(sites)) > 1
    plot_reconstructions(
        examples["originals"][:, 0],
        examples["reconstructions"][:, 0],
        snakemake.output.png,
        titles=[
            str(t)[:16] + (f"\n{sites[i].upper()}" if many_sites else "")
            for i, t in enumerate(examples["times"])
        ],
        grid=SkyGrid.from_examples(examples),
    )
