"""Fetch one UT date of CHAIN hourly ISMR files and write the manifest."""

import datetime as dt

from latentsky.acquisition import layouts
from latentsky.acquisition.gaps import gap_summary
from latentsky.acquisition.http import Fetcher, fetch_all, workflow_settings
from latentsky.acquisition.manifest import write_manifest
from latentsky.acquisition.sources import source
from latentsky.logs import log_to_file
from latentsky.progress import LogProgress

log = log_to_file(snakemake.log[0])
ismr = snakemake.params.ismr
# Download behaviour comes from the config, not from params: changing it must rerun nothing that
# is done (see download_images.py).
fetcher = Fetcher(
    workflow_settings(snakemake.config["download"]),
    skip_failures=snakemake.config["on_bad_input"] == "skip",
)
date = dt.date.fromisoformat(snakemake.wildcards.date)
hours = layouts.hours_of_night(date, *ismr["hours_ut"])
jobs = source("chain_ismr", "scintillation").jobs(
    ismr["base_url"], ismr["station"], hours, snakemake.params.raw_dir, ismr["expected_columns"]
)
with LogProgress(len(jobs), f"ismr {ismr['station']} {date}", log, unit="files") as progress:
    rows = fetch_all(fetcher, jobs, threads=snakemake.threads, progress=progress.update)
write_manifest(rows, snakemake.output.manifest)
statuses = [row.status for row in rows]
log.info("%s: %s", date, {status: statuses.count(status) for status in set(statuses)})
log.info("%s: gaps and failures %s", date, gap_summary(rows))
for row in rows:
    if row.status == "failed":
        log.warning("failed: %s: %s", row.url, row.detail)
