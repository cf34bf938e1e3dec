"""Project one site's UT date of all-sky frames onto the grid, into a Zarr store of counts."""

import datetime as dt
from pathlib import Path

from latentsky.acquisition.layouts import skymap_for_date
from latentsky.acquisition.manifest import read_manifest
from latentsky.acquisition.sources import source
from latentsky.conventions import ACKNOWLEDGEMENTS
from latentsky.logs import log_to_file
from latentsky.projection.geometry import load_operator
from latentsky.samples.images import ingest_files

log = log_to_file(snakemake.log[0])
params, site = snakemake.params, snakemake.wildcards.site
skip = params.on_bad_input == "skip"
rows = read_manifest(snakemake.input.images)
files = sorted(row.path for row in rows if row.status in ("downloaded", "present"))
skymaps = [row.path for row in read_manifest(snakemake.input.skymaps) if row.path]
skymap = skymap_for_date(skymaps, dt.date.fromisoformat(snakemake.wildcards.date))
operator, fov_mask, grid, meta = load_operator(
    Path(snakemake.input.operators) / site / f"{Path(skymap).name}.npz"
)
counts = ingest_files(
    files,
    source(params.image_source, "images").frame_reader(site, skip_bad_frames=skip),
    operator,
    fov_mask,
    grid,
    snakemake.output.projected,
    attrs={
        "title": f"THEMIS all-sky images of {site.upper()} on {snakemake.wildcards.date}, "
        "projected onto a grid",
        "source": f"THEMIS ASI {params.image_source} files, projected with {Path(skymap).name}",
        "site": site,
        "date": snakemake.wildcards.date,
        # Operators built before the site position was recorded lack it (NaN, empty).
        "site_latitude": meta.get("site_latitude", float("nan")),
        "site_longitude": meta.get("site_longitude", float("nan")),
        "site_altitude_m": meta.get("site_altitude_m", float("nan")),
        "imager": meta.get("imager") or None,  # None: the skymap does not say (left out)
        "skymap": Path(skymap).name,
        "altitude_km": meta["altitude_km"],
        "min_elevation_deg": meta["min_elevation_deg"],
        "files_missing": sum(row.status == "missing" for row in rows),
        "acknowledgement": ACKNOWLEDGEMENTS["themis_asi"],
    },
    frame_interval_s=params.frame_interval_s,
    skip=skip,
    threads=snakemake.threads,
    log=log,
)
log.info(
    "%s %s: %s from %d files via %s", site, snakemake.wildcards.date, counts, len(files), skymap
)
