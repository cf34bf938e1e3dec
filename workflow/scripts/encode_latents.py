"""Encode every sample to its latent vector; keep a few reconstructions for the figures."""

import numpy as np
import xarray as xr

from latentsky.logs import log_to_file
from latentsky.models.feed import SampleSource
from latentsky.models.training import encode, load_checkpoint, reconstruct
from latentsky.stores import open_zarr, write_zarr_atomic

log = log_to_file(snakemake.log[0])
ds = open_zarr(snakemake.input.samples)
model, checkpoint = load_checkpoint(snakemake.input.checkpoint)
data = ds[snakemake.params.variable]
samples = SampleSource.from_store(snakemake.input.samples, snakemake.params.variable)
latents = encode(model, samples)
sample_dim = data.dims[0]
out = xr.Dataset(
    {"latent": ((sample_dim, "latent_dim"), latents.astype(np.float32))},
    coords={
        # Every coordinate along the sample axis (for windows: time, observation, ...).
        **{
            name: (coord.dims, coord.to_numpy())
            for name, coord in ds[sample_dim].coords.items()
            if coord.dims == (sample_dim,)
        },
        "latent_dim": np.arange(latents.shape[1]),
    },
    attrs={
        "checkpoint": str(snakemake.input.checkpoint),
        "epoch": int(checkpoint.get("best_epoch", checkpoint["epoch"])),
        "model": str(checkpoint["model_config"]),
    },
)
write_zarr_atomic(out.chunk({sample_dim: 4096}), snakemake.output.latents)
log.info("encoded %d samples to %d-d latents", *latents.shape)

# Examples spread evenly over the dataset, for the originals-over-reconstructions figure.
n = data.shape[0]
index = np.unique(np.linspace(0, n - 1, min(n, snakemake.params.n_examples)).astype(int))
originals = samples.unpacking.numpy(samples.gather(index))  # model input, as trained
reconstructions = reconstruct(model, originals)
# Images keep their first band (n, H, W); photometer windows all bands (n, band, sample).
keep = (slice(None), 0) if originals.ndim == 4 else (slice(None),)
times = ds["time"]  # images: the sample axis itself; windows: each window's centre
band_names = ds["wavelength"].to_numpy().astype(str) if "wavelength" in ds.coords else []
np.savez_compressed(
    snakemake.output.reconstructions,
    originals=originals[keep],
    reconstructions=reconstructions[keep],
    times=times.to_numpy()[index].astype(str),
    band_names=np.asarray(band_names),
    sample_rate_hz=float(ds.attrs.get("sample_rate_hz", 0.0)),
)
