"""Stack the projected dates into one normalised (time, band, lat, lon) store."""

import json

import numpy as np
import xarray as xr

from latentsky.logs import log_to_file
from latentsky.stores import open_zarr, write_zarr_atomic

log = log_to_file(snakemake.log[0])
settings = snakemake.params.normalisation
stores = [open_zarr(path) for path in snakemake.input.projected]
images = xr.concat([s for s in stores if s.sizes["time"]], dim="time").sortby("time")
_, first = np.unique(images["time"].to_numpy(), return_index=True)
duplicates = images.sizes["time"] - len(first)
images = images.isel(time=np.sort(first))
n = images.sizes["time"]
log.info("%d frames from %d dates (%d duplicate times dropped)", n, len(stores), duplicates)

# Percentiles from an evenly spaced subsample of frames: exact enough for a scale, and bounded in
# memory however long the dataset is.
sample = images["image"].isel(time=np.unique(np.linspace(0, n - 1, min(n, 1000)).astype(int)))
sample = sample.to_numpy()
low, high = np.nanpercentile(sample, [settings["low_percentile"], settings["high_percentile"]])
if not high > low:
    raise ValueError(f"normalisation percentiles give an empty range ({low} .. {high})")
fov_mask = np.isfinite(sample).any(axis=(0, 1))

bad_input = {}
for store in stores:
    for key, value in json.loads(store.attrs.get("bad_input", "{}")).items():
        bad_input[key] = bad_input.get(key, 0) + value
# Within a date, project_images has dropped repeated times already; these repeat across dates.
bad_input["duplicate_times"] = bad_input.get("duplicate_times", 0) + int(duplicates)
first_attrs = stores[0].attrs
ds = xr.Dataset(
    {
        "image": ((images["image"] - low) / (high - low)).astype(np.float32),
        "fov_mask": (("lat", "lon"), fov_mask),
    },
    attrs={
        "title": "All-sky images projected onto a latitude-longitude grid",
        "site": first_attrs["site"],
        "altitude_km": first_attrs["altitude_km"],
        "min_elevation_deg": first_attrs["min_elevation_deg"],
        "skymaps": json.dumps(sorted({s.attrs["skymap"] for s in stores})),
        "normalisation": json.dumps(
            {
                "method": "percentile",
                "low_counts": float(low),
                "high_counts": float(high),
                **settings,
            }
        ),
        "files_missing": int(sum(s.attrs.get("files_missing", 0) for s in stores)),
        "bad_input": json.dumps(bad_input),
    },
)
ds["image"].attrs = {
    "units": "1",
    "long_name": "normalised white-light counts",
    "description": "(counts - low_counts) / (high_counts - low_counts); NaN outside the field of view",
}
ds["lat"].attrs = {"units": "degrees_north"}
ds["lon"].attrs = {"units": "degrees_east"}
ds = ds.chunk({"time": 256, "band": 1, "lat": -1, "lon": -1})
write_zarr_atomic(ds, snakemake.output.images)
log.info("normalisation: %s", ds.attrs["normalisation"])
