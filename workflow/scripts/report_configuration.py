"""Report table: every setting that produced a dataset's results, and the data acknowledgements."""

from pathlib import Path

from latentsky.logs import log_to_file
from latentsky.report import configuration_page

log_to_file(snakemake.log[0])
params = snakemake.params
Path(snakemake.output.html).write_text(
    configuration_page(
        snakemake.wildcards.dataset,
        params.kind,
        params.configuration["dataset"],
        params.configuration["sections"],
        acknowledgement=params.acknowledgement,
    )
)
