"""Write the photometer demo: MMIA-layout FITS files with planted events, labels, and the truth."""

import json
from pathlib import Path

from latentsky.demo.tle import TleDemoParams, generate_tle_demo
from latentsky.logs import log_to_file

log = log_to_file(snakemake.log[0])
demo = dict(snakemake.params.demo)
params = TleDemoParams(**demo)
summary = generate_tle_demo(
    Path(snakemake.output.fits), Path(snakemake.output.labels), Path(snakemake.output.truth), params
)
log.info(
    "photometer demo: %d files, %d episodes %s",
    len(summary["fits_files"]),
    summary["n_episodes"],
    summary["episodes_per_type"],
)
Path(snakemake.output.flag).write_text(json.dumps(summary, indent=2, default=str))
