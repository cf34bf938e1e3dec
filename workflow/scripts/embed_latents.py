"""UMAP and t-SNE of the latent vectors (the labelled subset, or all samples), with labels."""

import os

# Idle OpenMP threads sleep instead of spinning (read when the OpenMP library loads, so before the
# imports): where other jobs share the cores, a spinning thread takes the core its partner needs,
# and a 300-point t-SNE on 2 threads took 16 s instead of 0.7 s.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from latentsky.analysis.embedding import embed  # noqa: E402
from latentsky.analysis.labels import match_labels, read_labels  # noqa: E402
from latentsky.logs import log_to_file  # noqa: E402
from latentsky.stores import open_zarr  # noqa: E402

log = log_to_file(snakemake.log[0])
params = snakemake.params
latents = open_zarr(snakemake.input.latents)
times = latents["time"].to_numpy()
sites = latents["site"].to_numpy() if "site" in latents.coords else None  # several sites
labels = [None] * len(times)
if snakemake.input.labels:
    labelled = read_labels(snakemake.input.labels[0], site=params.sites)
    labels, counts = match_labels(times, labelled, params.label_tolerance_s, sample_sites=sites)
    log.info("labels: %s", counts)
table = embed(
    times,
    latents["latent"].to_numpy(),
    labels,
    params.embedding,
    exclude_labels=params.exclude_labels,
    threads=snakemake.threads,
    sites=sites,
    log=log,
)
table.to_csv(snakemake.output.coordinates, index=False)
