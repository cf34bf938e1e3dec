"""Read a folder of MMIA FITS files and cut their observations into windows (window, channel,
sample): the scaled bands, then any colour channels."""

import json

from latentsky.analysis.labels import read_labels
from latentsky.conventions import ACKNOWLEDGEMENTS
from latentsky.logs import log_to_file
from latentsky.samples.windows import write_windows_store
from latentsky.stores import annotate_store

log = log_to_file(snakemake.log[0])
counts = write_windows_store(
    snakemake.input.fits,
    snakemake.params.photometer,
    snakemake.output.windows,
    skip_bad_input=snakemake.params.on_bad_input == "skip",
    log=log,
    # The frame-time check places the labelled events on the light pulses found.
    labels=read_labels(snakemake.input.labels[0]) if snakemake.input.labels else None,
    label_tolerance_s=snakemake.params.label_tolerance_s,
)
annotate_store(
    snakemake.output.windows,
    source=f"ASIM MMIA photometer FITS files in {snakemake.input.fits}",
    acknowledgement=ACKNOWLEDGEMENTS["asim"],
)
log.info("%d windows; counts %s", counts["windows"], json.dumps(counts))
if not counts["windows"]:
    log.warning("no window: the store is empty (check the folder, the level and window length)")
