"""Report table: the log-normal fits of sigma_phi (n, mu, sigma, median, intervals, fit tests)."""

from pathlib import Path

import pandas as pd

from latentsky.logs import log_to_file
from latentsky.report import fits_page

log_to_file(snakemake.log[0])
fits = pd.read_csv(snakemake.input.fits)
Path(snakemake.output.html).write_text(fits_page(snakemake.wildcards.dataset, fits))
