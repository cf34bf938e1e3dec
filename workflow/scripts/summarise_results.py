"""Headline numbers of a run: latent-space quality, clusters, sigma_phi fits, gaps, failures, bad
input (summary.json), and the report's data-quality page."""

import json
from pathlib import Path

import pandas as pd

from latentsky.acquisition.manifest import read_manifest
from latentsky.analysis.labels import match_labels, read_labels
from latentsky.analysis.quality import quality_page
from latentsky.analysis.summary import summarise
from latentsky.jsonable import plain
from latentsky.logs import log_to_file
from latentsky.stores import open_zarr

log = log_to_file(snakemake.log[0])
inputs, params = snakemake.input, snakemake.params
samples = open_zarr(inputs.samples)
fits = sigma = None
if inputs.fits:
    fits = pd.read_csv(inputs.fits)
    sigma = open_zarr(inputs.sigma_phi).attrs
summary = summarise(
    snakemake.wildcards.dataset,
    pd.read_csv(inputs.embedding, parse_dates=["time"]),
    open_zarr(inputs.latents)["latent"].to_numpy(),
    params.count_key,
    samples[params.variable].shape[0],
    pd.read_csv(inputs.metrics),
    params.analysis,
    {Path(inputs.samples).stem: json.loads(samples.attrs.get("bad_input", "{}"))},
    manifests={
        role: [row for path in paths for row in read_manifest(path)]
        for role, paths in (("images", inputs.image_manifests), ("ismr", inputs.ismr_manifests))
        if paths
    },
    fits=fits,
    scintillation_attrs=sigma,
    kind_summaries={
        Path(p).parent.name: json.loads(Path(p).read_text()) for p in inputs.kind_outputs
    },
)
# Every label accounted for: placed, or matching no sample, or sharing one with a nearer label.
if inputs.labels:
    latents = open_zarr(inputs.latents)
    _, summary["label_matching"] = match_labels(
        latents["time"].to_numpy(),
        read_labels(inputs.labels[0], site=params.sites),
        params.analysis["label_tolerance_s"],
        sample_sites=latents["site"].to_numpy() if "site" in latents.coords else None,
    )
summary["input_checks"] = json.loads(samples.attrs.get("input_checks", "{}"))
summary = plain(summary, "summary")
log.info("summary: %s", json.dumps(summary, indent=2))
Path(snakemake.output.summary).write_text(json.dumps(summary, indent=2, allow_nan=False))
# The same gaps, failures and bad-input counts, as the report's "Data quality" page.
Path(snakemake.output.quality).write_text(quality_page(snakemake.wildcards.dataset, summary))
