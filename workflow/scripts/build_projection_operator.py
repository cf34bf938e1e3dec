"""Sparse pixel-to-grid operators, one per skymap of every site of the dataset."""

from latentsky.acquisition.manifest import read_manifest
from latentsky.acquisition.sources import source
from latentsky.logs import log_to_file
from latentsky.projection.geometry import write_site_operators
from latentsky.projection.skymaps import check_skymap_site

log = log_to_file(snakemake.log[0])
params = snakemake.params
reader = source(params.skymap_source, "skymaps")
skymaps = {}
for site, manifest in zip((s["site"] for s in params.sites), snakemake.input.skymaps, strict=True):
    paths = [r.path for r in read_manifest(manifest) if r.status in ("downloaded", "present")]
    skymaps[site] = [(path, reader.read_skymap(path, site)) for path in paths]
    for path, skymap in skymaps[site]:
        # A skymap of another site would put every pixel in the wrong place: refuse it.
        check_skymap_site(path, skymap.site, site)
        log.info("%s: %s of imager %r, valid from %s", site, path, skymap.imager, skymap.valid_from)
write_site_operators(
    skymaps,
    params.grid,
    params.altitude_km,
    params.min_elevation_deg,
    snakemake.output.operators,
    fov_radius_km=params.fov_radius_km,
    log=log,
)
