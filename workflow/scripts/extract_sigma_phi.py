"""Per-image GNSS phase scintillation index: ISMR records -> quality cuts -> covering minute."""

import numpy as np

from latentsky.acquisition.manifest import read_manifest
from latentsky.analysis.scintillation import (
    apply_quality_cuts,
    sigma_phi_dataset,
    sigma_phi_for_times,
    sigma_phi_per_minute,
)
from latentsky.instruments.chain import (
    IsmrColumns,
    read_ismr_files,
)
from latentsky.logs import log_to_file
from latentsky.stores import open_zarr, write_zarr_atomic

log = log_to_file(snakemake.log[0])
settings = snakemake.params.scintillation
rows = [row for manifest in snakemake.input.manifests for row in read_manifest(manifest)]
paths = [row.path for row in rows if row.status in ("downloaded", "present")]
missing_hours = sum(row.status == "missing" for row in rows)
records, counts = read_ismr_files(
    paths, IsmrColumns(**settings["columns"]), on_bad_input=snakemake.params.on_bad_input
)
log.info(
    "%d ISMR records from %d files (%d hours missing); %s",
    len(records),
    len(paths),
    missing_hours,
    counts.to_dict(),
)
kept, removed = apply_quality_cuts(
    records, settings["min_elevation_deg"], settings["min_lock_time_s"]
)
log.info("quality cuts removed %s; %d records kept", removed, len(kept))
per_minute = sigma_phi_per_minute(kept, settings["statistic"])
image_times = open_zarr(snakemake.input.images)["time"].to_numpy()
sigma_phi, n_satellites = sigma_phi_for_times(image_times, per_minute)
log.info(
    "%d of %d images have a covering sigma_phi record",
    np.isfinite(sigma_phi).sum(),
    len(image_times),
)
attrs = {
    "min_elevation_deg": settings["min_elevation_deg"],
    "min_lock_time_s": settings["min_lock_time_s"],
    "statistic": settings["statistic"],
    "ismr_files": len(paths),
    "ismr_hours_missing": missing_hours,
    "bad_input": counts.to_dict(),
    "removed_by_cuts": removed,
}
write_zarr_atomic(
    sigma_phi_dataset(image_times, sigma_phi, n_satellites, attrs), snakemake.output.sigma_phi
)
