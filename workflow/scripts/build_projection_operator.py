"""Sparse pixel-to-grid operators, one per skymap of the dataset, all on one shared grid."""

from pathlib import Path

from latentsky.acquisition.manifest import read_manifest
from latentsky.acquisition.sources import source
from latentsky.logs import log_to_file
from latentsky.projection.geometry import build_projection_operator, grid_covering, save_operator

log = log_to_file(snakemake.log[0])
params = snakemake.params
paths = [
    row.path
    for row in read_manifest(snakemake.input.skymaps)
    if row.status in ("downloaded", "present")
]
skymap_source = source(params.skymap_source, "skymaps")
skymaps = [skymap_source.read_skymap(path, params.site) for path in paths]
grid = grid_covering(
    skymaps,
    params.altitude_km,
    params.min_elevation_deg,
    params.grid["n_lat"],
    params.grid["n_lon"],
)
log.info(
    "grid: lat %.3f..%.3f, lon %.3f..%.3f, %d x %d cells",
    grid.lat[0],
    grid.lat[-1],
    grid.lon[0],
    grid.lon[-1],
    len(grid.lat),
    len(grid.lon),
)
out = Path(snakemake.output.operators)
out.mkdir(parents=True, exist_ok=True)
for path, skymap in zip(paths, skymaps, strict=True):
    operator, fov_mask = build_projection_operator(
        skymap, grid, params.altitude_km, params.min_elevation_deg
    )
    metadata = {
        "skymap": Path(path).name,
        "site": params.site,
        "altitude_km": params.altitude_km,
        "min_elevation_deg": params.min_elevation_deg,
    }
    save_operator(out / f"{Path(path).name}.npz", operator, fov_mask, grid, metadata)
    log.info(
        "%s: %d non-zeros, %d cells in the field of view",
        Path(path).name,
        operator.nnz,
        fov_mask.sum(),
    )
