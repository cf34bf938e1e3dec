"""Fetch one UT date of all-sky images into resources/<dataset>/raw/ and write its manifest."""

import datetime as dt

from latentsky.acquisition import layouts
from latentsky.acquisition.gaps import gap_summary
from latentsky.acquisition.http import DownloadSettings, Fetcher, fetch_all
from latentsky.acquisition.manifest import write_manifest
from latentsky.acquisition.sources import source
from latentsky.logs import log_to_file
from latentsky.progress import LogProgress

log = log_to_file(snakemake.log[0])
images = snakemake.params.images
fetcher = Fetcher(DownloadSettings(**snakemake.params.download))
date = dt.date.fromisoformat(snakemake.wildcards.date)
hours = layouts.hours_of_night(date, *images["hours_ut"])
jobs, gaps = source(images["source"], "images").jobs(
    fetcher, images["base_url"], images["site"], hours, snakemake.params.raw_dir
)
with LogProgress(len(jobs), f"images {images['site']} {date}", log, unit="files") as progress:
    rows = fetch_all(fetcher, jobs, threads=snakemake.threads, progress=progress.update)
rows += gaps
write_manifest(rows, snakemake.output.manifest)
statuses = [row.status for row in rows]
log.info("%s: %s", date, {status: statuses.count(status) for status in set(statuses)})
log.info("%s: gaps %s", date, gap_summary(rows))
