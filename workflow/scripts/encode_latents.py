"""Encode every sample to its latent vector; keep a few reconstructions for the figures."""

import numpy as np
import xarray as xr

from latentsky.logs import log_to_file
from latentsky.stores import open_zarr, write_zarr_atomic
from latentsky.training import encode, load_checkpoint, reconstruct

log = log_to_file(snakemake.log[0])
ds = open_zarr(snakemake.input.images)
model, checkpoint = load_checkpoint(snakemake.input.checkpoint)
data = ds["image"]
samples = data.to_numpy() if data.nbytes < 2e9 else data.data
latents = encode(model, samples, batch_size=256)
sample_dim = data.dims[0]
out = xr.Dataset(
    {"latent": ((sample_dim, "latent_dim"), latents.astype(np.float32))},
    coords={sample_dim: ds[sample_dim].to_numpy(), "latent_dim": np.arange(latents.shape[1])},
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
originals = data.isel({sample_dim: index}).to_numpy()
reconstructions = reconstruct(model, originals)
np.savez_compressed(
    snakemake.output.reconstructions,
    originals=originals[:, 0],
    reconstructions=reconstructions[:, 0],
    times=ds[sample_dim].to_numpy()[index].astype(str),
)
