"""Per-image GNSS phase scintillation index: ISMR records -> quality cuts -> covering minute."""

from latentsky.acquisition.manifest import read_manifest
from latentsky.analysis.scintillation import sigma_phi_of_images
from latentsky.logs import log_to_file
from latentsky.stores import open_zarr, write_zarr_atomic

log = log_to_file(snakemake.log[0])
rows = [row for manifest in snakemake.input.manifests for row in read_manifest(manifest)]
store = sigma_phi_of_images(
    [row.path for row in rows if row.status in ("downloaded", "present")],
    open_zarr(snakemake.input.images)["time"].to_numpy(),
    snakemake.params.scintillation,
    on_bad_input=snakemake.params.on_bad_input,
    hours_missing=sum(row.status == "missing" for row in rows),
    log=log,
)
write_zarr_atomic(store, snakemake.output.sigma_phi)
