"""Fetch the skymap(s) that cover a dataset's dates and write the manifest."""

import datetime as dt

from latentsky.acquisition.http import Fetcher, fetch_all, workflow_settings
from latentsky.acquisition.manifest import write_manifest
from latentsky.acquisition.sources import source
from latentsky.logs import log_to_file

log = log_to_file(snakemake.log[0])
skymaps = snakemake.params.skymaps
# Download behaviour comes from the config, not from params: changing it must rerun nothing that
# is done (see download_images.py). Skymaps are needed whatever on_bad_input says: a skymap that
# stays broken or is not in the archive stops the job, naming its URL.
fetcher = Fetcher(workflow_settings(snakemake.config["download"]))
jobs, gaps = source(skymaps["source"], "skymaps").jobs(
    fetcher,
    skymaps["base_url"],
    skymaps["site"],
    [dt.date.fromisoformat(day) for day in skymaps["dates"]],
    snakemake.params.raw_dir,
)
rows = fetch_all(fetcher, jobs, threads=1) + gaps
missing = [row.url for row in rows if row.status == "missing"]
if missing:
    raise FileNotFoundError(f"skymap not in the archive: {missing}")
write_manifest(rows, snakemake.output.manifest)
log.info("skymaps: %s", [row.path for row in rows])
