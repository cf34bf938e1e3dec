"""Training, checkpointing and encoding for every model in :mod:`latentsky.models`.

The loop is generic: it only calls ``model.loss(batch)``, so the image Res-AE and the photometer
Beta VAE share it. Data is a :class:`~latentsky.models.feed.SampleSource` (a Zarr store variable of any
size, read by whole chunks with a shuffle buffer, see :mod:`latentsky.models.feed`) or any array-like of
samples ``(N, *sample_shape)``, which is wrapped in one.

Speed on a GPU: packed samples are copied from pinned memory without blocking and unpacked on the
device; convolutions run channels-last under bfloat16 autocast (float16 with a gradient scaler
where bfloat16 is missing); ``TrainConfig.compile`` compiles the loss with ``torch.compile``; and
nothing in the step waits for the device: losses and metrics are summed on the device and read
once per epoch.

Reproducibility. Everything random derives from ``TrainConfig.seed``: the train/validation split,
the batch order of epoch ``e`` (the chunk order and window permutations of
:func:`latentsky.models.feed.epoch_windows`, seeded with ``(seed, e)``) and torch's RNG, which
is re-seeded at the start of every epoch (VAE sampling). Because no RNG state carries over from one
epoch to the next, a run resumed from a checkpoint repeats exactly what the uninterrupted run would
have done, and on CPU (deterministic algorithms on) the weights are bitwise identical. On CUDA,
convolution backward passes use atomic additions and mixed precision rounds differently, so GPU
runs agree only to within floating-point noise; we let cuDNN pick its fastest kernels there.

Checkpoints are plain ``torch.save`` dicts of tensors, numbers, strings, lists and dicts, loadable
with ``torch.load(path, weights_only=True)``, and are written atomically (temporary file, then
``os.replace``) so that a kill never leaves a truncated checkpoint behind.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import itertools
import logging
import math
import os
import random
import time
from collections.abc import Callable, Iterable
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from latentsky.jsonable import plain
from latentsky.models import LatentModel, model_from_config
from latentsky.models.feed import SampleSource, epoch_windows, iterate_batches
from latentsky.progress import progress_log

#: Bumped when the checkpoint layout changes incompatibly.
CHECKPOINT_FORMAT = 2


@dataclass
class TrainConfig:
    """Optimisation settings (the defaults match ``config/schema.yaml``).

    Attributes:
        epochs: passes over the training split.
        batch_size: samples per optimiser step.
        learning_rate: peak AdamW learning rate.
        weight_decay: AdamW (decoupled) weight decay.
        validation_fraction: share of samples held out, in [0, 1); 0 disables validation,
            early stopping and best-epoch selection (the last epoch is then the best).
        seed: seed of the split, the batch order and torch's RNG.
        num_workers: reader threads that read shuffle windows ahead (``None``: none on the CPU,
            ``num_threads - 1`` up to 4 on CUDA; see :func:`_readers`). The batch order does not
            depend on it.
        shuffle_buffer: samples mixed in one shuffle window (rounded down to whole chunks, at
            least one chunk); each reader holds one window. At least the number of samples:
            a full permutation every epoch.
        device: ``"auto"`` (CUDA if available, else CPU), or a torch device string.
        mixed_precision: on CUDA, autocast to bfloat16 where supported (else float16 with a
            GradScaler). Ignored on CPU, where it would be slower and not reproducible.
        compile: compile the loss (model forward and loss) with ``torch.compile``: faster steps
            on a GPU after a compilation of a minute or so; off by default.
        augment: ``"none"``, ``"flips"`` (each training image mirrored east-west and/or
            north-south at random) or ``"rotations"`` (any of the eight symmetries of the square:
            flips and turns by multiples of 90 degrees). Seeded per epoch and batch.
        checkpoint_every: write a checkpoint every this many epochs (and always after the last).
        resume: continue from ``checkpoint_path`` if it exists, else start from scratch.
        patience: stop when the validation loss has not improved for this many epochs
            (``None``: never stop early).
        lr_schedule: ``"cosine"`` (decay to 5% of the peak over ``epochs``) or ``"constant"``.
            The rate of each epoch is a function of the epoch number alone, so resuming does not
            need scheduler state; resuming with a different ``epochs`` changes the cosine curve.
        grad_clip_norm: clip the global gradient norm to this value (``None``: no clipping).
        num_threads: ``torch.set_num_threads`` for the run (``None``: leave torch's setting).
        restore_best: after training, load the weights of the epoch with the lowest validation
            loss into ``model`` (the checkpoint keeps both the last and the best weights).
    """

    epochs: int = 30
    batch_size: int = 64
    learning_rate: float = 2e-3
    weight_decay: float = 0.0
    validation_fraction: float = 0.1
    seed: int = 0
    num_workers: int | None = None
    shuffle_buffer: int = 2048
    device: str = "auto"
    mixed_precision: bool = True
    compile: bool = False
    augment: str = "none"
    checkpoint_every: int = 1
    resume: bool = False
    patience: int | None = None
    lr_schedule: str = "cosine"
    grad_clip_norm: float | None = 1.0
    num_threads: int | None = None
    restore_best: bool = True

    def __post_init__(self):
        if self.epochs < 1 or self.batch_size < 1 or self.checkpoint_every < 1:
            raise ValueError("epochs, batch_size and checkpoint_every must be >= 1")
        if not 0.0 <= self.validation_fraction < 1.0:
            raise ValueError(
                f"validation_fraction must be in [0, 1), got {self.validation_fraction}"
            )
        if self.lr_schedule not in ("cosine", "constant"):
            raise ValueError(
                f"lr_schedule must be 'cosine' or 'constant', got {self.lr_schedule!r}"
            )
        if self.patience is not None and self.patience < 1:
            raise ValueError(f"patience must be >= 1 or None, got {self.patience}")
        if self.shuffle_buffer < 1 or (self.num_workers is not None and self.num_workers < 0):
            raise ValueError("shuffle_buffer must be >= 1 and num_workers >= 0")
        if self.augment not in AUGMENTATIONS:
            raise ValueError(
                f"augment must be one of {sorted(AUGMENTATIONS)}, got {self.augment!r}"
            )

    @classmethod
    def from_dict(cls, values: dict) -> TrainConfig:
        """Build from a config mapping, ignoring keys that are not fields (e.g. workflow-only keys)."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in names})


# --------------------------------------------------------------------------------------------
# Devices and precision


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"`` -> CUDA if available, else CPU; anything else is passed to ``torch.device``."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def _autocast_dtype(device: torch.device, mixed_precision: bool) -> torch.dtype | None:
    """The autocast dtype, or None for full float32 (always on CPU)."""
    if not mixed_precision or device.type != "cuda":
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def _autocast(device: torch.device, dtype: torch.dtype | None):
    if dtype is None:
        return nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


# --------------------------------------------------------------------------------------------
# Data


def as_source(data: Any) -> SampleSource:
    """``data`` itself if it is a :class:`SampleSource`, else an array-like wrapped in one."""
    return data if isinstance(data, SampleSource) else SampleSource(data)


#: Sky augmentations: how many of the square's symmetries each one draws from (see :func:`augment`).
AUGMENTATIONS = {"none": 1, "flips": 4, "rotations": 8}


def augment(batch: torch.Tensor, how: str, generator: torch.Generator) -> torch.Tensor:
    """Each image of ``batch`` ``(B, band, rows, columns)`` under a random symmetry of the square.

    ``flips`` draws from the four mirrorings (none, east-west, north-south, both); ``rotations``
    from all eight symmetries (those and the turns by 90 and 270 degrees with and without a
    mirror; rows must equal columns). Samples that are not images pass unchanged. ``generator``
    (on the CPU) makes the draws, so an epoch's augmentations follow from the seed.
    """
    n = AUGMENTATIONS[how]
    if n == 1 or batch.ndim != 4:
        return batch
    if n == 8 and batch.shape[2] != batch.shape[3]:
        raise ValueError(f"rotations need square images, got {tuple(batch.shape[2:])}")
    choice = torch.randint(0, n, (batch.shape[0],), generator=generator)
    out = batch.clone()
    for variant in torch.unique(choice).tolist():
        members = torch.nonzero(choice == variant).flatten().to(batch.device)
        images = batch[members]
        if variant & 1:
            images = torch.flip(images, dims=(3,))
        if variant & 2:
            images = torch.flip(images, dims=(2,))
        if variant & 4:
            images = torch.rot90(images, k=1, dims=(2, 3))
        out[members] = images
    return out


def _readers(config: TrainConfig, device: torch.device) -> int:
    """Reader threads: none on the CPU, where reading is a small part of a step and a reader
    thread competes with torch's threads for the cores (``benchmarks/cpu_training_threads.py``:
    with one reader beside two torch threads an epoch of the photometer demo took 2.1 to 2.2 times
    as long on a 2-core machine and the auroral demo's 1.3 to 1.4 times; with a core to spare it
    gained 0 to 7 %); on CUDA, the cores left by the main thread, up to 4 (more gain little under
    the GIL)."""
    if config.num_workers is not None:
        return config.num_workers
    if device.type != "cuda":
        return 0
    return min(4, max(1, (config.num_threads or os.cpu_count() or 2) - 1))


def split_indices(n: int, validation_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Deterministic split of ``range(n)`` into sorted (train, validation) index arrays."""
    n_val = int(round(n * validation_fraction))
    if validation_fraction > 0:
        n_val = min(max(n_val, 1), n - 1)
    permutation = np.random.default_rng(seed).permutation(n)
    return np.sort(permutation[n_val:]), np.sort(permutation[:n_val])


def _learning_rate(config: TrainConfig, epoch: int) -> float:
    """Learning rate of 0-based ``epoch``."""
    if config.lr_schedule == "constant" or config.epochs == 1:
        return config.learning_rate
    floor = 0.05
    cosine = 0.5 * (1.0 + math.cos(math.pi * epoch / (config.epochs - 1)))
    return config.learning_rate * (floor + (1.0 - floor) * cosine)


def _epoch_seed(seed: int, epoch: int) -> int:
    # A fixed, well-mixed 63-bit seed per (seed, epoch).
    return int(np.random.SeedSequence([seed, epoch]).generate_state(1, np.uint64)[0]) >> 1


# --------------------------------------------------------------------------------------------
# Checkpoints


def save_checkpoint(checkpoint: dict, path: str | Path) -> None:
    """``torch.save`` to a temporary file beside ``path``, then move it into place atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as handle:
            torch.save(checkpoint, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def data_fingerprint(source: SampleSource) -> str:
    """SHA-256 (hex) of the samples as stored (packed), their number, shape and type: a resumed
    run must train on the very data its checkpoint was trained on. Reads the data once, chunk by
    chunk."""
    digest = hashlib.sha256(f"{source.n} {source.sample_shape} {source.dtype.str}".encode())
    for start, stop in source.chunk_bounds():
        digest.update(np.ascontiguousarray(source.read(int(start), int(stop))).tobytes())
    return digest.hexdigest()


def _flat(mapping: dict, prefix: str = "") -> dict:
    """``{"a": {"b": 1}}`` as ``{"a.b": 1}``, to name the one value that differs."""
    flat = {}
    for key, value in mapping.items():
        if isinstance(value, dict):
            flat.update(_flat(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _cpu_state(module_or_optimizer) -> dict:
    """A state dict with every tensor copied to CPU (a snapshot, not a view of live weights)."""
    state = module_or_optimizer.state_dict()
    return _to_cpu(state)


def _to_cpu(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.detach().to("cpu", copy=True)
    if isinstance(value, dict):
        return {k: _to_cpu(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_to_cpu(v) for v in value]
    return copy.deepcopy(value)


def load_checkpoint(
    path: str | Path, map_location: str | torch.device = "cpu", weights: str = "best"
) -> tuple[LatentModel, dict]:
    """Rebuild the model stored in a checkpoint written by :func:`train`.

    Args:
        path: the checkpoint file.
        map_location: where the tensors go (``"cpu"``, ``"cuda"``).
        weights: ``"best"`` (lowest validation loss) or ``"last"`` (last completed epoch).

    Returns:
        ``(model, checkpoint)``: the model in eval mode on ``map_location``, and the raw dict.
        Only ``weights_only=True`` loading is used, so a checkpoint cannot run code.
    """
    checkpoint = torch.load(path, map_location=map_location, weights_only=True)
    if checkpoint.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path}: not a latentsky checkpoint of format {CHECKPOINT_FORMAT}")
    key = {"best": "best_model_state", "last": "model_state"}[weights]
    model = model_from_config(checkpoint["model_config"])
    model.load_state_dict(checkpoint[key])
    return model.to(map_location).eval(), checkpoint


# --------------------------------------------------------------------------------------------
# Training


def _write_metrics(rows: list[dict], path: Path) -> pd.DataFrame:
    """Write all epoch rows so far to ``path`` (replaced atomically) and return them."""
    frame = pd.DataFrame(rows)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    frame.to_csv(tmp, index=False)
    os.replace(tmp, path)
    return frame


def _run_epoch(
    model: LatentModel,
    step: Callable,
    batches: Iterable[torch.Tensor],
    optimizer: torch.optim.Optimizer | None,
    scaler: torch.amp.GradScaler | None,
    config: TrainConfig,
    device: torch.device,
    dtype: torch.dtype | None,
    epoch: int,
    progress: Callable[[int], Any] | None = None,
) -> dict[str, float]:
    """One pass; trains if ``optimizer`` is given, else evaluates. Returns sample-weighted means.

    ``progress`` (optional) is called with the number of samples of each batch done.

    Training batches are augmented as ``config.augment`` says, with a generator seeded by
    ``(config.seed, epoch)``; validation batches never are.

    ``step(batch) -> (loss, metrics)`` is ``model.loss`` or its compiled form. Losses and metrics
    are summed on the device (float64) and read back once, at the end of the pass: reading them
    every step would make the host wait for the device.
    """
    training = optimizer is not None
    model.train(training)
    totals: dict[str, torch.Tensor] = {}
    count = 0
    grad_context = nullcontext() if training else torch.no_grad()
    generator = torch.Generator().manual_seed(_epoch_seed(config.seed, epoch) ^ 0x5EED)
    with grad_context:
        for batch in batches:
            if training and config.augment != "none":
                batch = augment(batch, config.augment, generator)
            if batch.ndim == 4 and device.type == "cuda":
                batch = batch.contiguous(memory_format=torch.channels_last)
            with _autocast(device, dtype):
                loss, metrics = step(batch)
            if training:
                optimizer.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                if config.grad_clip_norm is not None:
                    scaler.unscale_(optimizer)
                    torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip_norm)
                scaler.step(optimizer)
                scaler.update()
            n = batch.shape[0]
            count += n
            if progress is not None:
                progress(n)
            for name, metric in {"loss": loss, **metrics}.items():
                weighted = metric.detach().double() * n
                totals[name] = totals[name] + weighted if name in totals else weighted
    means = {name: float(total) / max(count, 1) for name, total in totals.items()}
    if not math.isfinite(means.get("loss", 0.0)):
        raise FloatingPointError(
            f"non-finite loss {means['loss']} in epoch {epoch + 1} "
            f"({'training' if training else 'validation'}); lower the learning rate?"
        )
    return means


def _prepare(model: LatentModel, config: TrainConfig, device: torch.device, dtype) -> tuple:
    """Move ``model`` to ``device``; return its optimiser, gradient scaler and step function."""
    model.to(device)
    if device.type == "cuda":
        model.to(memory_format=torch.channels_last)  # tensor-core friendly layout for conv2d
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay
    )
    # A GradScaler only matters for float16; with bfloat16 or float32 it is a no-op.
    scaler = torch.amp.GradScaler(device.type, enabled=dtype == torch.float16)
    step = torch.compile(model.loss) if config.compile else model.loss
    return optimizer, scaler, step


def measure_steps(
    model: LatentModel, data: Any, config: TrainConfig, n_batches: int, warmup: int = 2
) -> dict[str, float]:
    """Samples per second of full training steps (read, unpack, forward, backward, update).

    Runs ``warmup`` batches (cuDNN autotuning, compilation), then times ``n_batches`` more of an
    epoch's batches from ``data`` exactly as :func:`train` makes them. Returns ``samples_per_s``,
    ``seconds`` and ``samples``. The model's weights change.
    """
    device = resolve_device(config.device)
    dtype = _autocast_dtype(device, config.mixed_precision)
    source = as_source(data)
    previous_threads = torch.get_num_threads()
    try:
        if config.num_threads is not None:
            torch.set_num_threads(config.num_threads)
        torch.backends.cudnn.benchmark = device.type == "cuda"
        optimizer, scaler, step = _prepare(model, config, device, dtype)
        window_chunks = max(1, config.shuffle_buffer // source.chunk_len)
        windows = epoch_windows(source, np.arange(source.n), window_chunks, config.seed, 0)
        batches = iterate_batches(
            source, windows, config.batch_size, device, _readers(config, device)
        )
        sizes: list[int] = []

        def counted(limit: int):
            for batch in itertools.islice(batches, limit):
                sizes.append(len(batch))
                yield batch

        args = (optimizer, scaler, config, device, dtype, 0)
        _run_epoch(model, step, counted(warmup), *args)
        _synchronise(device)
        sizes.clear()
        started = time.perf_counter()
        _run_epoch(model, step, counted(n_batches), *args)
        _synchronise(device)
        seconds = time.perf_counter() - started
    finally:
        torch.set_num_threads(previous_threads)
    return {"samples_per_s": sum(sizes) / seconds, "seconds": seconds, "samples": sum(sizes)}


def _synchronise(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def train(
    model: LatentModel,
    data: Any,
    config: TrainConfig,
    checkpoint_path: str | Path,
    metrics_path: str | Path,
    log: logging.Logger | None = None,
    normalisation: dict | None = None,
    on_epoch_end: Callable[[int, dict], None] | None = None,
) -> pd.DataFrame:
    """Train ``model`` on ``data`` and return the per-epoch metrics.

    Args:
        model: a :class:`~latentsky.models.LatentModel` (its weights are replaced by the
            checkpoint's when resuming).
        data: a :class:`~latentsky.models.feed.SampleSource` (e.g. a Zarr store variable, read chunk
            by chunk) or an array-like of float32 samples ``(N, *sample_shape)``.
        config: optimisation settings.
        checkpoint_path: checkpoint file, rewritten every ``config.checkpoint_every`` epochs.
        metrics_path: CSV rewritten after every epoch, one row per epoch: ``epoch`` (1-based),
            ``train_loss``, ``val_loss``, ``seconds``, ``learning_rate``, then ``train_<m>`` and
            ``val_<m>`` for each metric ``m`` of ``model.loss``.
        log: logger for progress (default: this module's).
        normalisation: how ``data`` was scaled (e.g. ``{"low": 12.0, "high": 3400.0}``); stored in
            the checkpoint so that encoding new data can repeat it. NumPy values become lists.
        on_epoch_end: called as ``on_epoch_end(epoch, row)`` after each epoch's checkpoint is
            written (epoch 1-based); raising from it interrupts training (used by tests).

    Returns:
        The metrics of all epochs so far (including those before a resume) as a DataFrame.
    """
    log = log or logging.getLogger(__name__)
    checkpoint_path, metrics_path = Path(checkpoint_path), Path(metrics_path)
    device = resolve_device(config.device)
    dtype = _autocast_dtype(device, config.mixed_precision)
    normalisation = plain(normalisation or {}, "normalisation")
    source = as_source(data)
    n = source.n
    if n < 2:
        raise ValueError(f"need at least 2 samples to train, got {n}")
    sample_shape = source.sample_shape
    if sample_shape != tuple(model.sample_shape):
        raise ValueError(
            f"data samples are shaped {sample_shape}, the model expects {tuple(model.sample_shape)}"
        )

    previous_threads = torch.get_num_threads()
    previous_deterministic = torch.are_deterministic_algorithms_enabled()
    previous_warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    previous_benchmark = torch.backends.cudnn.benchmark
    try:
        if config.num_threads is not None:
            torch.set_num_threads(config.num_threads)
        random.seed(config.seed)
        # Our own code uses seeded Generators; this covers third-party code using the global RNG.
        np.random.seed(config.seed % 2**32)  # noqa: NPY002
        torch.manual_seed(config.seed)
        if device.type == "cpu":
            torch.use_deterministic_algorithms(True, warn_only=True)
        else:
            torch.backends.cudnn.benchmark = True  # fastest kernels; GPU runs are not bitwise

        optimizer, scaler, step = _prepare(model, config, device, dtype)

        train_index, val_index = split_indices(n, config.validation_fraction, config.seed)
        rows: list[dict] = []
        start_epoch = 0
        best = {"loss": math.inf, "epoch": 0, "state": None, "stale": 0}

        fingerprint = data_fingerprint(source)
        if config.resume and checkpoint_path.exists():
            # The rebuilt model's config, not the stored one: a key added since is filled in with
            # the default the saved model had.
            saved, checkpoint = load_checkpoint(
                checkpoint_path, map_location=device, weights="last"
            )
            before, now = _flat(saved.model_config), _flat(model.model_config)
            differences = [
                f"model {key} {before.get(key)!r} (now {now.get(key)!r})"
                for key in sorted(set(before) | set(now))
                if before.get(key) != now.get(key)
            ]
            differences += [
                f"{name} {checkpoint.get(key)!r} (now {value!r})"
                for name, key, value in (
                    ("samples", "n_samples", n),
                    ("seed", "seed", config.seed),
                    ("normalisation", "normalisation", normalisation),
                )
                if checkpoint.get(key) != value
            ]
            if checkpoint.get("data_sha256", fingerprint) != fingerprint:
                # Checkpoints written before the fingerprint existed are judged by the rest.
                differences.append(
                    f"data (sha256 {checkpoint['data_sha256'][:12]}..., now {fingerprint[:12]}...)"
                )
            if differences:
                # Resuming on other data would silently mix two runs into one model.
                raise ValueError(
                    f"{checkpoint_path}: cannot resume, the checkpoint was trained with other "
                    f"{'; '.join(differences)}; delete it or set training.resume to false"
                )
            model.load_state_dict(checkpoint["model_state"])
            optimizer.load_state_dict(checkpoint["optimizer_state"])
            scaler.load_state_dict(checkpoint["scaler_state"])
            start_epoch = int(checkpoint["epoch"])
            rows = [dict(row) for row in checkpoint["metrics"]]
            best = {
                "loss": float(checkpoint["best_val_loss"]),
                "epoch": int(checkpoint["best_epoch"]),
                "state": _to_cpu(checkpoint["best_model_state"]),
                "stale": int(checkpoint["epochs_without_improvement"]),
            }
            log.info(
                "resuming from epoch %d of %d (%s)", start_epoch, config.epochs, checkpoint_path
            )
        else:
            if config.resume:
                log.info("no checkpoint at %s: starting from scratch", checkpoint_path)
            else:
                log.info("starting from scratch")
            metrics_path.unlink(missing_ok=True)  # no stale rows of an earlier run
        workers = _readers(config, device)
        window_chunks = max(1, config.shuffle_buffer // source.chunk_len)
        log.info(
            "training %s on %d samples (%d train, %d validation) on %s%s%s, %d threads, "
            "%d reader threads, shuffle windows of %d chunks of %d samples",
            model.name,
            n,
            len(train_index),
            len(val_index),
            device,
            f" with {dtype} autocast" if dtype else "",
            ", compiled" if config.compile else "",
            torch.get_num_threads(),
            workers,
            window_chunks,
            source.chunk_len,
        )
        frame = _write_metrics(rows, metrics_path) if rows else pd.DataFrame()

        def checkpoint_dict(epoch: int) -> dict:
            return {
                "format": CHECKPOINT_FORMAT,
                "model_config": model.model_config,
                "model_state": _cpu_state(model),
                "best_model_state": best["state"] if best["state"] is not None else {},
                "optimizer_state": _cpu_state(optimizer),
                "scaler_state": scaler.state_dict(),
                "epoch": epoch,
                "best_epoch": best["epoch"],
                "best_val_loss": best["loss"],
                "epochs_without_improvement": best["stale"],
                "train_config": dataclasses.asdict(config),
                "normalisation": normalisation,
                "metrics": rows,
                "n_samples": n,
                "data_sha256": fingerprint,
                "seed": config.seed,
                "torch_version": str(torch.__version__),  # a str subclass, not loadable
            }

        stop_early = False
        # Samples seen by the remaining epochs, reported with the time left (latentsky.progress).
        progress = progress_log(
            (config.epochs - start_epoch) * (len(train_index) + len(val_index)),
            f"training {model.name}, epochs {start_epoch + 1}-{config.epochs}",
            log,
            unit="samples",
        )
        for epoch in range(start_epoch, config.epochs):
            started = time.perf_counter()
            lr = _learning_rate(config, epoch)
            for group in optimizer.param_groups:
                group["lr"] = lr
            torch.manual_seed(_epoch_seed(config.seed, epoch))
            windows = epoch_windows(source, train_index, window_chunks, config.seed, epoch)
            train_metrics = _run_epoch(
                model,
                step,
                iterate_batches(source, windows, config.batch_size, device, workers),
                optimizer,
                scaler,
                config,
                device,
                dtype,
                epoch,
                progress.update,
            )
            if len(val_index):
                windows = epoch_windows(
                    source, val_index, window_chunks, config.seed, epoch, shuffle=False
                )
                val_metrics = _run_epoch(
                    model,
                    step,
                    iterate_batches(source, windows, config.batch_size, device, workers),
                    None,
                    None,
                    config,
                    device,
                    dtype,
                    epoch,
                    progress.update,
                )
            else:
                val_metrics = {name: math.nan for name in train_metrics}
            row = {
                "epoch": epoch + 1,
                "train_loss": train_metrics.pop("loss"),
                "val_loss": val_metrics.pop("loss"),
                "seconds": time.perf_counter() - started,
                "learning_rate": lr,
            }
            row.update({f"train_{k}": v for k, v in train_metrics.items()})
            row.update({f"val_{k}": v for k, v in val_metrics.items()})
            rows.append(row)

            # Without validation the latest epoch counts as the best.
            if not len(val_index) or row["val_loss"] < best["loss"]:
                state = _cpu_state(model)
                best = {"loss": row["val_loss"], "epoch": epoch + 1, "state": state, "stale": 0}
            else:
                best["stale"] += 1
            stop_early = (
                config.patience is not None
                and len(val_index) > 0
                and best["stale"] >= config.patience
            )
            log.info(
                "epoch %d/%d: train_loss=%.5g val_loss=%.5g lr=%.3g (%.1f s)",
                epoch + 1,
                config.epochs,
                row["train_loss"],
                row["val_loss"],
                lr,
                row["seconds"],
            )
            frame = _write_metrics(rows, metrics_path)
            last = epoch + 1 == config.epochs or stop_early
            if (epoch + 1) % config.checkpoint_every == 0 or last:
                save_checkpoint(checkpoint_dict(epoch + 1), checkpoint_path)
            if on_epoch_end is not None:
                on_epoch_end(epoch + 1, row)
            if stop_early:
                log.info(
                    "early stop: no improvement for %d epochs (best epoch %d, val_loss=%.5g)",
                    best["stale"],
                    best["epoch"],
                    best["loss"],
                )
                break

        progress.close()
        if start_epoch >= config.epochs:
            log.info("checkpoint already has all %d epochs; nothing to train", config.epochs)
        if config.restore_best and best["state"] is not None:
            model.load_state_dict(best["state"])
            log.info("model holds the weights of epoch %d (lowest validation loss)", best["epoch"])
        return frame
    finally:
        torch.set_num_threads(previous_threads)
        torch.use_deterministic_algorithms(previous_deterministic, warn_only=previous_warn_only)
        torch.backends.cudnn.benchmark = previous_benchmark
