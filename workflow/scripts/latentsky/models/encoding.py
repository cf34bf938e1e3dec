"""Using a trained model: latent vectors of every sample, reconstructions, and their stores."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import torch
import xarray as xr

from latentsky.conventions import decode_attribute
from latentsky.models import LatentModel
from latentsky.models.feed import SampleSource, ordered_batches
from latentsky.models.training import as_source, resolve_device


@torch.no_grad()
def encode(
    model: LatentModel,
    data: Any,
    batch_size: int = 128,
    device: str | torch.device = "auto",
) -> np.ndarray:
    """Latent vectors of all samples, in order: ``(N, *sample_shape)`` -> float32 ``(N, latent_dim)``.

    For a VAE this is the posterior mean. ``data`` is a :class:`~latentsky.models.feed.SampleSource`
    or an array-like, read one chunk at a time, so a store larger than memory is fine; the output
    (``N * latent_dim`` floats) is held in memory.
    """
    device = resolve_device(device)
    model.to(device).eval()
    source = as_source(data)
    out = np.empty((source.n, model.latent_dim), dtype=np.float32)
    for start, batch in ordered_batches(source, batch_size, device):
        out[start : start + len(batch)] = model.encode(batch).float().cpu().numpy()
    return out


@torch.no_grad()
def reconstruct(
    model: LatentModel,
    samples: Any,
    device: str | torch.device = "auto",
    batch_size: int = 128,
) -> np.ndarray:
    """Reconstructions of a few samples ``(B, *sample_shape)`` (e.g. ``data[idx]``) for figures.

    Returns float32 of the same shape, NaN where the input is NaN (outside the field of view). For
    the Beta VAE this is the mean of the Beta likelihood at the posterior mean.
    """
    device = resolve_device(device)
    model.to(device).eval()
    samples = np.asarray(samples, dtype=np.float32)
    parts = [
        model.reconstruct(torch.from_numpy(samples[i : i + batch_size]).to(device)).float().cpu()
        for i in range(0, len(samples), batch_size)
    ]
    return torch.cat(parts).numpy() if parts else samples.copy()


def latent_chunk(latent_dim: int, target_bytes: int = 4 << 20) -> int:
    """Samples per chunk of the latents store: about ``target_bytes`` (4 MiB) of float32 vectors,
    at least 4,096 (35,000 study images of 32 dimensions: one chunk of 4.5 MB)."""
    return max(4096, target_bytes // (4 * max(1, latent_dim)))


def latents_dataset(
    samples: xr.Dataset, variable: str, latents: np.ndarray, checkpoint: dict, path: str
) -> xr.Dataset:
    """The latents store: ``latent (sample_dim, latent_dim)`` with every coordinate along the
    sample axis of ``samples[variable]`` (for windows: time, observation, ...)."""
    sample_dim = samples[variable].dims[0]
    return xr.Dataset(
        {"latent": ((sample_dim, "latent_dim"), latents.astype(np.float32))},
        coords={
            **{
                name: (coord.dims, coord.to_numpy())
                for name, coord in samples[sample_dim].coords.items()
                if coord.dims == (sample_dim,)
            },
            "latent_dim": np.arange(latents.shape[1]),
        },
        attrs={
            "title": "Latent vectors of the autoencoder, one per sample",
            "source": f"{samples.attrs.get('title', 'samples')}, encoded by the trained model",
            "acknowledgement": samples.attrs.get("acknowledgement"),
            "checkpoint": str(path),
            "epoch": int(checkpoint.get("best_epoch", checkpoint["epoch"])),
            "model": json.dumps(
                checkpoint["model_config"]
            ),  # JSON, like every structured attribute
        },
    ).chunk({sample_dim: latent_chunk(latents.shape[1])})


def reconstruction_examples(
    samples: xr.Dataset, variable: str, source: SampleSource, model: LatentModel, n_examples: int
) -> dict[str, np.ndarray]:
    """Originals and reconstructions of samples spread evenly over the dataset, for the figure.

    Returns arrays for an ``.npz`` file: ``originals`` and ``reconstructions``
    ``(n, band, ...)`` (the model's input scale), ``times``, ``band_names`` (the wavelengths
    where the store gives them) and ``sample_rate_hz`` (0 for images). Images add where they
    lie, for maps drawn north up: ``grid_dims`` (``lat``, ``lon`` or ``y``, ``x``), ``grid_y`` and
    ``grid_x`` (cell centres: degrees north and east, or km north and east of the site),
    ``sites`` (each example's site) and ``site_latitude``/``site_longitude`` (each example's
    site position, degrees; NaN where the store does not say).
    """
    index = np.unique(np.linspace(0, source.n - 1, min(source.n, n_examples)).astype(int))
    originals = source.unpacking.numpy(source.gather(index), index=index)  # model input
    dims = samples[variable].dims
    # A readable name per channel where the store has one (photometer: wavelengths, colours).
    named = [c for c in ("channel_label", "wavelength") if samples.coords.get(c) is not None]
    bands = next((samples[c] for c in named if samples[c].dims == (dims[1],)), samples[dims[1]])
    examples = {
        "originals": originals,
        "reconstructions": reconstruct(model, originals),
        "times": samples["time"].to_numpy()[index].astype(str),
        "band_names": bands.to_numpy().astype(str),
        "sample_rate_hz": float(samples.attrs.get("sample_rate_hz", 0.0)),
    }
    if len(dims) == 4:  # (time, band, y, x) images on a grid
        examples.update(_example_places(samples, dims, index))
    return examples


def _example_places(samples: xr.Dataset, dims: tuple, index: np.ndarray) -> dict:
    """Grid coordinates and each example's site position (see :func:`reconstruction_examples`)."""
    if "site" in samples.coords:
        sites = samples["site"].to_numpy()[index].astype(str)
    else:
        sites = np.full(len(index), str(samples.attrs.get("site", "")))
    described = {s.get("site"): s for s in decode_attribute(samples.attrs.get("sites"), [])}
    position = [described.get(site, {}) for site in sites]
    return {
        "grid_dims": np.array(dims[2:]),
        "grid_y": samples[dims[2]].to_numpy().astype(np.float64),
        "grid_x": samples[dims[3]].to_numpy().astype(np.float64),
        "sites": sites,
        "site_latitude": np.array([p.get("site_latitude", np.nan) for p in position], float),
        "site_longitude": np.array([p.get("site_longitude", np.nan) for p in position], float),
    }
