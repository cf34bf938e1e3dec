"""Autoencoders for sky data, and a registry that rebuilds them from a plain-dict config.

Two kinds of samples share the training code in :mod:`latentsky.models.training`:

* ``asi`` images, one sample shaped ``(band, lat, lon)``, go to :class:`ResidualAutoencoder`
  (registered as ``"res_ae"``), a U-Net-like residual autoencoder with a deterministic latent;
* ``photometer`` windows, one sample shaped ``(band, sample)``, go to :class:`BetaVAE1d`
  (registered as ``"beta_vae_1d"``), a 1-D convolutional VAE with a Beta observation model.

Every model subclasses :class:`LatentModel` and so offers the same interface to the training loop:
``encode(x) -> z`` (a deterministic latent; the posterior mean for a VAE), ``decode(z)``,
``forward(x)``, ``loss(batch) -> (loss, metrics)``, ``reconstruct(x)`` and ``model_config``, a
plain dict from which :func:`model_from_config` rebuilds the same architecture. A new model plugs
in by subclassing :class:`LatentModel` and decorating the class with :func:`register_model`.

In both models the latent vector is the only path from the encoder to the decoder: the decoder's
multi-scale inputs are projections of ``z``, never encoder feature maps, because the downstream
science (embedding, clustering) reads the latent and must see everything the decoder uses.
"""

from __future__ import annotations

import inspect
from typing import Any, ClassVar

import torch
from torch import nn

#: Registered model classes by name (see :func:`register_model`).
MODELS: dict[str, type[LatentModel]] = {}


def register_model(name: str):
    """Class decorator: make a :class:`LatentModel` subclass buildable by ``name``, the name a
    config gives (``model: {name: ...}``). Which model a data kind uses by default is the data
    kind's business (:mod:`latentsky.kinds`)."""

    def decorate(cls: type[LatentModel]) -> type[LatentModel]:
        if name in MODELS:
            raise ValueError(f"model name {name!r} is registered twice")
        cls.name = name
        MODELS[name] = cls
        return cls

    return decorate


class LatentModel(nn.Module):
    """Base class of the autoencoders: the interface the training loop relies on.

    Subclasses declare ``shape_args`` (the constructor arguments that come from the sample shape,
    in order) and implement ``encode``, ``decode``, ``loss`` and ``reconstruct``. The remaining
    constructor arguments are hyperparameters with defaults, recorded in :attr:`model_config`.
    """

    name: ClassVar[str] = ""
    #: Constructor arguments taken from the sample shape, e.g. ("in_channels", "height", "width").
    shape_args: ClassVar[tuple[str, ...]] = ()
    latent_dim: int

    def __init__(self, **hparams: Any):
        super().__init__()
        self.sample_shape = tuple(int(hparams[name]) for name in self.shape_args)
        self.hparams = {k: v for k, v in hparams.items() if k not in self.shape_args}

    @property
    def model_config(self) -> dict:
        """Plain dict (strings, numbers, lists) from which :func:`model_from_config` rebuilds us."""
        return {
            "name": self.name,
            "sample_shape": list(self.sample_shape),
            "params": dict(self.hparams),
        }

    @classmethod
    def hyperparameters(cls) -> dict[str, Any]:
        """The tunable constructor arguments and their defaults."""
        signature = inspect.signature(cls.__init__)
        return {
            name: p.default
            for name, p in signature.parameters.items()
            if name != "self" and name not in cls.shape_args
        }

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Samples ``(B, *sample_shape)`` -> latent ``(B, latent_dim)``."""
        raise NotImplementedError

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Latent ``(B, latent_dim)`` -> decoder output (model-specific)."""
        raise NotImplementedError

    def loss(self, batch: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Scalar training loss of a batch ``(B, *sample_shape)``, and scalar metric tensors.

        Metrics stay tensors on the batch's device (detached): converting them to Python
        numbers here would make the host wait for the device at every step."""
        raise NotImplementedError

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """Best point reconstruction of ``x``, same shape, NaN where ``x`` is NaN."""
        raise NotImplementedError


def build_model(
    name: str, config: dict | None, sample_shape: tuple[int, ...], seed: int | None = None
) -> LatentModel:
    """Build a registered model.

    Args:
        name: a registered model name (``"res_ae"``, ``"beta_vae_1d"``).
        config: hyperparameters (e.g. ``{"base_channels": 16, "depth": 3, "latent_dim": 32}``);
            missing keys take the class defaults, unknown keys raise ``ValueError``.
        sample_shape: shape of one sample without the batch axis: ``(band, lat, lon)`` for
            images, ``(band, sample)`` for photometer windows.
        seed: if given, the initial weights come from this seed, without disturbing the global RNG.
    """
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; registered: {', '.join(sorted(MODELS))}")
    cls = MODELS[name]
    config = dict(config or {})
    allowed = cls.hyperparameters()
    unknown = sorted(set(config) - set(allowed))
    if unknown:
        raise ValueError(
            f"unknown hyperparameter(s) {unknown} for model {name!r}; allowed: {sorted(allowed)}"
        )
    if len(sample_shape) != len(cls.shape_args):
        raise ValueError(
            f"model {name!r} expects samples shaped {cls.shape_args}, got shape {tuple(sample_shape)}"
        )
    kwargs = dict(zip(cls.shape_args, (int(n) for n in sample_shape), strict=True))
    kwargs.update(config)
    if seed is None:
        return cls(**kwargs)
    # fork_rng keeps the caller's RNG stream untouched, so building a model has no side effects.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return cls(**kwargs)


def model_from_config(model_config: dict) -> LatentModel:
    """Rebuild an (untrained) model from :attr:`LatentModel.model_config`."""
    return build_model(
        model_config["name"], model_config["params"], tuple(model_config["sample_shape"])
    )


# The models themselves; importing them registers them.
from latentsky.models import beta_vae, res_ae  # noqa: E402, F401
