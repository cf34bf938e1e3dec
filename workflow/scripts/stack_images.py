"""Stack every site's projected dates into one (time, band, grid) store of counts for training."""

from latentsky.logs import log_to_file
from latentsky.samples.images import stack_dates

log = log_to_file(snakemake.log[0])
settings = snakemake.params.normalisation
stack_dates(
    snakemake.input.projected,
    snakemake.output.images,
    low_percentile=settings["low_percentile"],
    high_percentile=settings["high_percentile"],
    scope=settings["scope"],
    log=log,
)
