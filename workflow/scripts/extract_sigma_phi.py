"""Per-image GNSS phase scintillation index: each site's ISMR records -> quality cuts -> the
record of the image's minute, from the image's own site's station."""

from latentsky.acquisition.manifest import read_manifest, usable_paths
from latentsky.analysis.scintillation import sigma_phi_of_images
from latentsky.conventions import decode_attribute
from latentsky.kinds import ASI, SCINTILLATION_ACKNOWLEDGEMENT
from latentsky.logs import log_to_file
from latentsky.stores import open_zarr, write_zarr_atomic

log = log_to_file(snakemake.log[0])
skip = snakemake.params.on_bad_input == "skip"
rows = {
    site: [row for manifest in manifests for row in read_manifest(manifest)]
    for site, manifests in snakemake.params.manifests_by_site.items()
}
images = open_zarr(snakemake.input.images)
store = sigma_phi_of_images(
    # Verified files, and in skip mode what was salvaged of failed ones; in fail mode a failed
    # row stops here, naming its URL and fault.
    {site: usable_paths(found, skip=skip) for site, found in rows.items()},
    images["time"].to_numpy(),
    snakemake.params.scintillation,
    image_sites=images["site"].to_numpy() if "site" in images.coords else None,
    on_bad_input=snakemake.params.on_bad_input,
    hours_missing=sum(r.status == "missing" for found in rows.values() for r in found),
    log=log,
    stations={s["site"]: s["gnss_station"] for s in snakemake.params.sites if "gnss_station" in s},
    site_descriptions=decode_attribute(images.attrs.get("sites"), []),
)
write_zarr_atomic(
    store,
    snakemake.output.sigma_phi,
    acknowledgement=[SCINTILLATION_ACKNOWLEDGEMENT, *ASI.acknowledgement],
)
