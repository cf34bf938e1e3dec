"""Train the dataset kind's autoencoder on its samples (CUDA with mixed precision when present)."""

import json
import shutil
from pathlib import Path

from latentsky.logs import log_to_file
from latentsky.models import build_model
from latentsky.stores import open_zarr, samples_of
from latentsky.training import TrainConfig, train

log = log_to_file(snakemake.log[0])
params = snakemake.params
ds = open_zarr(snakemake.input.samples)
data = ds[params.variable]
# Small datasets train from memory; large ones stream batches from the chunked store.
samples = samples_of(data)
log.info("training %s on %s samples shaped %s", params.kind, data.shape[0], data.shape[1:])
model = build_model(params.kind, params.model, tuple(data.shape[1:]), seed=params.training["seed"])
config = TrainConfig(**params.training, num_threads=snakemake.threads)
resume_dir = Path(params.resume_dir)
resume_dir.mkdir(parents=True, exist_ok=True)
train(
    model,
    samples,
    config,
    checkpoint_path=resume_dir / "last.pt",
    metrics_path=snakemake.output.metrics,
    normalisation=json.loads(ds.attrs.get("normalisation", "{}")),
    log=log,
)
shutil.copyfile(resume_dir / "last.pt", snakemake.output.checkpoint)
# A finished run's resume point must not survive: a later retrain with resume=true would otherwise
# "resume" from the end of this one and train nothing.
(resume_dir / "last.pt").unlink()
