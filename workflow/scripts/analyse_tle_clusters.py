"""Per-window features and anomaly scores, per-cluster summaries and mean waveforms, TLE candidates."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from latentsky.analysis.tle_clusters import analyse_windows
from latentsky.jsonable import plain
from latentsky.logs import log_to_file
from latentsky.models.feed import SampleSource
from latentsky.models.training import load_checkpoint
from latentsky.stores import open_zarr

log = log_to_file(snakemake.log[0])
torch.set_num_threads(snakemake.threads)
model, _ = load_checkpoint(snakemake.input.checkpoint)
results = analyse_windows(
    open_zarr(snakemake.input.windows),
    SampleSource.from_store(snakemake.input.windows, "waveform"),
    model,
    pd.read_csv(snakemake.input.embedding),
    snakemake.params.tle,
    latents=open_zarr(snakemake.input.latents)["latent"].to_numpy(),
)
for name in ("windows", "clusters", "candidates"):
    results[name].to_csv(snakemake.output[name], index=False)
np.savez_compressed(snakemake.output.waveforms, **results["waveforms"])
summary = plain(results["summary"], "summary")
Path(snakemake.output.summary).write_text(json.dumps(summary, indent=2, allow_nan=False))
log.info("anomaly AUC %s; %d candidates", summary["anomaly_auc"], summary["n_candidates"])
