"""Train the dataset's model on its samples (CUDA with mixed precision when present)."""

import json
import shutil
from pathlib import Path

from latentsky.logs import log_to_file
from latentsky.models import build_model
from latentsky.models.feed import SampleSource
from latentsky.models.training import TrainConfig, train
from latentsky.stores import open_zarr

log = log_to_file(snakemake.log[0])
params = snakemake.params
# Read chunk by chunk from the store, whatever its size; packed samples are unpacked on the fly.
samples = SampleSource.from_store(snakemake.input.samples, params.variable)
model = build_model(
    params.model["name"],
    params.model["hyperparameters"],
    samples.sample_shape,
    seed=params.training["seed"],
)
config = TrainConfig(**params.training, num_threads=snakemake.threads)
resume_dir = Path(params.resume_dir)
resume_dir.mkdir(parents=True, exist_ok=True)
train(
    model,
    samples,
    config,
    checkpoint_path=resume_dir / "last.pt",
    metrics_path=snakemake.output.metrics,
    normalisation=json.loads(open_zarr(snakemake.input.samples).attrs.get("normalisation", "{}")),
    log=log,
)
shutil.copyfile(resume_dir / "last.pt", snakemake.output.checkpoint)
# A finished run's resume point must not survive: a later retrain with resume=true would otherwise
# "resume" from the end of this one and train nothing.
(resume_dir / "last.pt").unlink()
