"""Encode every sample to its latent vector; keep a few reconstructions for the figures."""

import numpy as np

from latentsky.logs import log_to_file
from latentsky.models.encoding import encode, latents_dataset, reconstruction_examples
from latentsky.models.feed import SampleSource
from latentsky.models.training import load_checkpoint
from latentsky.stores import open_zarr, write_zarr_atomic

log = log_to_file(snakemake.log[0])
inputs, variable = snakemake.input, snakemake.params.variable
samples = open_zarr(inputs.samples)
source = SampleSource.from_store(inputs.samples, variable)
model, checkpoint = load_checkpoint(inputs.checkpoint)
latents = encode(model, source)
store = latents_dataset(samples, variable, latents, checkpoint, inputs.checkpoint)
write_zarr_atomic(store, snakemake.output.latents)
log.info("encoded %d samples to %d-d latents", *latents.shape)
examples = reconstruction_examples(samples, variable, source, model, snakemake.params.n_examples)
np.savez_compressed(snakemake.output.reconstructions, **examples)
