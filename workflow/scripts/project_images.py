"""Project one site's UT date of all-sky frames onto the grid, into a Zarr store of counts.

Each file takes the skymap of its own imager valid on the date (latentsky.projection.skymaps),
or the job refuses naming the file."""

import datetime as dt
from pathlib import Path

from latentsky.acquisition.manifest import read_manifest, usable_paths
from latentsky.acquisition.sources import source
from latentsky.conventions import ACKNOWLEDGEMENTS
from latentsky.logs import log_to_file
from latentsky.projection.skymaps import site_operators
from latentsky.samples.images import ingest_files

log = log_to_file(snakemake.log[0])
params, site = snakemake.params, snakemake.wildcards.site
skip = params.on_bad_input == "skip"
rows = read_manifest(snakemake.input.images)
# Verified files, and in skip mode what was salvaged of failed ones; in fail mode a failed row
# (left by a download in skip mode) stops here, naming its URL and fault.
files = sorted(usable_paths(rows, skip=skip), key=lambda path: Path(path).name)
chooser, grid, meta = site_operators(
    site,
    dt.date.fromisoformat(snakemake.wildcards.date),
    [Path(row.path).name for row in read_manifest(snakemake.input.skymaps) if row.path],
    Path(snakemake.input.operators) / site,
)
counts = ingest_files(
    files,
    source(params.image_source, "images").frame_reader(site, skip_bad_frames=skip),
    None,
    None,
    grid,
    snakemake.output.projected,
    attrs={
        "title": f"THEMIS all-sky images of {site.upper()} on {snakemake.wildcards.date}, "
        "projected onto a grid",
        "source": f"THEMIS ASI {params.image_source} files, projected with the skymaps named "
        "in the skymap attribute (each file its own imager's)",
        "site": site,
        "date": snakemake.wildcards.date,
        # Operators built before the site position was recorded lack it (NaN, empty).
        "site_latitude": meta.get("site_latitude", float("nan")),
        "site_longitude": meta.get("site_longitude", float("nan")),
        "site_altitude_m": meta.get("site_altitude_m", float("nan")),
        "imager": meta["imager"],  # None: the skymaps do not say (left out)
        "altitude_km": meta["altitude_km"],
        "min_elevation_deg": meta["min_elevation_deg"],
        "files_missing": sum(row.status == "missing" for row in rows),
        "files_failed": sum(row.status == "failed" for row in rows),
        "acknowledgement": ACKNOWLEDGEMENTS["themis_asi"],
    },
    frame_interval_s=params.frame_interval_s,
    skip=skip,
    threads=snakemake.threads,
    log=log,
    operators=chooser,
)
log.info("%s %s: %s from %d files", site, snakemake.wildcards.date, counts, len(files))
