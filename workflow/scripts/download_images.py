"""Fetch one UT date of all-sky images into resources/<dataset>/raw/ and write its manifest."""

import datetime as dt

from latentsky.acquisition import layouts
from latentsky.acquisition.gaps import gap_summary
from latentsky.acquisition.http import Fetcher, fetch_all, workflow_settings
from latentsky.acquisition.manifest import write_manifest
from latentsky.acquisition.sources import source
from latentsky.logs import log_to_file
from latentsky.progress import LogProgress

log = log_to_file(snakemake.log[0])
images = snakemake.params.images
# How files are fetched (retries, time-outs, connection limits, size limits, redirects) and
# whether a file that stays broken stops the job are read from the config, not taken as params:
# Snakemake reruns a job whose params change, and changing them must not refetch (nor rerun what
# follows) dates already done. A manifest's `failed` rows stop the projection in fail mode.
fetcher = Fetcher(
    workflow_settings(snakemake.config["download"]),
    skip_failures=snakemake.config["on_bad_input"] == "skip",
)
date = dt.date.fromisoformat(snakemake.wildcards.date)
hours = layouts.hours_of_night(date, *images["hours_ut"])
jobs, unfetchable = source(images["source"], "images").jobs(
    fetcher, images["base_url"], images["site"], hours, snakemake.params.raw_dir
)
with LogProgress(len(jobs), f"images {images['site']} {date}", log, unit="files") as progress:
    rows = fetch_all(fetcher, jobs, threads=snakemake.threads, progress=progress.update)
rows += unfetchable
write_manifest(rows, snakemake.output.manifest)
statuses = [row.status for row in rows]
log.info("%s: %s", date, {status: statuses.count(status) for status in set(statuses)})
log.info("%s: gaps and failures %s", date, gap_summary(rows))
for row in rows:
    if row.status == "failed":
        log.warning("failed: %s: %s", row.url, row.detail)
