"""Report table: the headline numbers of summary.json."""

import json
from pathlib import Path

from latentsky.logs import log_to_file
from latentsky.report import summary_page

log_to_file(snakemake.log[0])
summary = json.loads(Path(snakemake.input.summary).read_text())
Path(snakemake.output.html).write_text(summary_page(snakemake.wildcards.dataset, summary))
