"""Fetch the skymap(s) that cover a dataset's dates and write the manifest."""

import datetime as dt

from latentsky.acquisition.http import DownloadSettings, Fetcher, fetch_all
from latentsky.acquisition.manifest import write_manifest
from latentsky.acquisition.sources import source
from latentsky.logs import log_to_file

log = log_to_file(snakemake.log[0])
skymaps = snakemake.params.skymaps
fetcher = Fetcher(DownloadSettings(**snakemake.params.download))
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
