"""Autoencoders for sky data, and a registry that rebuilds them from a plain-dict config.

Two kinds of samples share the training code in :mod:`latentsky.training`:

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
import math
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

#: Registered model classes by name (see :func:`register_model`).
MODELS: dict[str, type[LatentModel]] = {}
#: The model used for each data kind when :func:`build_model` is given a data kind.
DATA_KIND_MODELS: dict[str, str] = {}

#: Data for the Beta likelihood is clamped into this open interval (log 0 is -inf).
BETA_DATA_MIN = 1e-6
BETA_DATA_MAX = 1.0 - 1e-5
#: Cap on the Beta VAE's log-precision log(alpha + beta): float32 lgamma stays accurate below it.
MAX_LOG_PRECISION = 12.0


def register_model(name: str, data_kind: str | None = None):
    """Class decorator: make a :class:`LatentModel` subclass buildable by ``name``.

    ``data_kind`` (``"asi"``, ``"photometer"``) also makes it the default model for that kind.
    """

    def decorate(cls: type[LatentModel]) -> type[LatentModel]:
        if name in MODELS:
            raise ValueError(f"model name {name!r} is registered twice")
        cls.kind = name
        MODELS[name] = cls
        if data_kind is not None:
            DATA_KIND_MODELS[data_kind] = name
        return cls

    return decorate


class LatentModel(nn.Module):
    """Base class of the autoencoders: the interface the training loop relies on.

    Subclasses declare ``shape_args`` (the constructor arguments that come from the sample shape,
    in order) and implement ``encode``, ``decode``, ``loss`` and ``reconstruct``. The remaining
    constructor arguments are hyperparameters with defaults, recorded in :attr:`model_config`.
    """

    kind: ClassVar[str] = ""
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
            "kind": self.kind,
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
    kind: str, config: dict | None, sample_shape: tuple[int, ...], seed: int | None = None
) -> LatentModel:
    """Build a registered model.

    Args:
        kind: a model name (``"res_ae"``, ``"beta_vae_1d"``) or a data kind (``"asi"``,
            ``"photometer"``) that selects its default model.
        config: hyperparameters (e.g. ``{"base_channels": 16, "depth": 3, "latent_dim": 32}``);
            missing keys take the class defaults, unknown keys raise ``ValueError``.
        sample_shape: shape of one sample without the batch axis: ``(band, lat, lon)`` for
            images, ``(band, sample)`` for photometer windows.
        seed: if given, the initial weights come from this seed, without disturbing the global RNG.
    """
    name = DATA_KIND_MODELS.get(kind, kind)
    if name not in MODELS:
        known = sorted(set(MODELS) | set(DATA_KIND_MODELS))
        raise ValueError(f"unknown model kind {kind!r}; known: {', '.join(known)}")
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
        model_config["kind"], model_config["params"], tuple(model_config["sample_shape"])
    )


# --------------------------------------------------------------------------------------------
# Building blocks, written for 1-D (dims=1) and 2-D (dims=2) signals alike.


def _conv(dims: int) -> type[nn.Module]:
    return nn.Conv1d if dims == 1 else nn.Conv2d


def _group_norm(channels: int) -> nn.GroupNorm:
    # GroupNorm rather than BatchNorm: per-sample statistics, so a sample's latent and its
    # reconstruction never depend on the other samples in the batch (train and eval agree).
    groups = max(g for g in range(1, 9) if channels % g == 0)
    return nn.GroupNorm(groups, channels)


class ResidualBlock(nn.Module):
    """Pre-activation residual block: (norm, SiLU, conv) twice plus an identity/1x1 shortcut.

    Input ``(B, c_in, *grid)`` -> output ``(B, c_out, *grid)``; the grid is unchanged.
    """

    def __init__(self, c_in: int, c_out: int, dims: int = 2, kernel_size: int = 3):
        super().__init__()
        conv = _conv(dims)
        pad = kernel_size // 2
        self.norm1 = _group_norm(c_in)
        self.conv1 = conv(c_in, c_out, kernel_size, padding=pad)
        self.norm2 = _group_norm(c_out)
        self.conv2 = conv(c_out, c_out, kernel_size, padding=pad)
        self.shortcut = nn.Identity() if c_in == c_out else conv(c_in, c_out, 1)
        # Zero-initialised last conv: every block starts as the identity, which makes a deep
        # residual stack train quickly and stably from the first step.
        nn.init.zeros_(self.conv2.weight)
        nn.init.zeros_(self.conv2.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.conv2(F.silu(self.norm2(h)))
        return self.shortcut(x) + h


def space_to_depth(x: torch.Tensor) -> torch.Tensor:
    """``(B, C, *grid)`` -> ``(B, C * 2**d, *grid / 2)`` for d = 1 or 2 grid axes (even sizes)."""
    if x.ndim == 4:
        return F.pixel_unshuffle(x, 2)
    b, c, n = x.shape
    return x.view(b, c, n // 2, 2).permute(0, 1, 3, 2).reshape(b, 2 * c, n // 2)


def depth_to_space(x: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`space_to_depth`: ``(B, C * 2**d, *grid)`` -> ``(B, C, *grid * 2)``."""
    if x.ndim == 4:
        return F.pixel_shuffle(x, 2)
    b, c2, n = x.shape
    return x.view(b, c2 // 2, 2, n).permute(0, 1, 3, 2).reshape(b, c2 // 2, 2 * n)


class _SpaceToDepthConv(nn.Module):
    """Halve the grid: rearrange 2x2 (or 2) neighbours into channels, then convolve.

    ``(B, c_in, *grid)`` -> ``(B, c_out, *grid / 2)``. Used for the first downsampling, where a
    strided conv on one or three input channels is slow on CPU and this is not.
    """

    def __init__(self, c_in: int, c_out: int, dims: int, kernel_size: int):
        super().__init__()
        self.conv = _conv(dims)(c_in * 2**dims, c_out, kernel_size, padding=kernel_size // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(space_to_depth(x))


class _ConvDepthToSpace(nn.Module):
    """Double the grid: convolve to ``c_out * 2**dims`` channels, then move them into space.

    ``(B, c_in, *grid)`` -> ``(B, c_out, *grid * 2)``. With kernel 1 this equals a transposed
    conv with kernel 2 and stride 2. With kernel 3 it is the output layer: about ten times
    cheaper on CPU than upsampling first and convolving at full resolution to 1-3 channels.
    """

    def __init__(self, c_in: int, c_out: int, dims: int, kernel_size: int):
        super().__init__()
        self.conv = _conv(dims)(c_in, c_out * 2**dims, kernel_size, padding=kernel_size // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return depth_to_space(self.conv(x))


def _padding(size: int, multiple: int) -> tuple[int, int]:
    """(before, after) padding that makes ``size`` a multiple of ``multiple``, centred."""
    total = (-size) % multiple
    return total // 2, total - total // 2


class MultiScaleEncoder(nn.Module):
    """Residual encoder over ``depth`` scales, each at half the resolution of the one before.

    Scale ``s`` has ``channels[s]`` channels on a grid of ``padded / 2**(s+1)``. The latent is a
    linear function of the flattened coarsest map *and* the global averages of every scale, so fine
    scales reach the latent directly instead of only through the coarse map.

    Input ``(B, in_channels, *grid)`` (grid any size; it is zero-padded to a multiple of
    ``2**depth``) -> ``(B, out_features)``.
    """

    def __init__(
        self,
        in_channels: int,
        grid: tuple[int, ...],
        channels: list[int],
        blocks_per_scale: int,
        out_features: int,
        dims: int,
        kernel_size: int,
    ):
        super().__init__()
        conv = _conv(dims)
        depth = len(channels)
        self.pads = [_padding(n, 2**depth) for n in grid]
        padded = [n + sum(p) for n, p in zip(grid, self.pads, strict=True)]
        self.coarse_grid = tuple(n // 2**depth for n in padded)
        self.downs = nn.ModuleList()
        self.stages = nn.ModuleList()
        c_prev = in_channels
        for s, c in enumerate(channels):
            if s == 0:
                self.downs.append(_SpaceToDepthConv(c_prev, c, dims, kernel_size))
            else:
                # Strided conv: kernel k, stride 2, padding k // 2 halves an even grid exactly.
                self.downs.append(conv(c_prev, c, kernel_size, stride=2, padding=kernel_size // 2))
            self.stages.append(
                nn.Sequential(
                    *[ResidualBlock(c, c, dims, kernel_size) for _ in range(blocks_per_scale)]
                )
            )
            c_prev = c
        self.out_norm = _group_norm(channels[-1])
        n_features = channels[-1] * math.prod(self.coarse_grid) + sum(channels)
        self.to_latent = nn.Linear(n_features, out_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # F.pad takes (last-dim before, last-dim after, previous-dim before, ...).
        pad = [p for pair in reversed(self.pads) for p in pair]
        h = F.pad(x, pad)
        summaries = []
        spatial = tuple(range(2, h.ndim))
        for down, stage in zip(self.downs, self.stages, strict=True):
            h = stage(down(h))
            summaries.append(h.mean(dim=spatial))  # (B, c_s): what this scale saw, anywhere
        coarse = F.silu(self.out_norm(h)).flatten(1)  # (B, c_last * prod(coarse_grid))
        return self.to_latent(torch.cat([coarse, *summaries], dim=1))


class MultiScaleDecoder(nn.Module):
    """Mirror of :class:`MultiScaleEncoder` that sees nothing but the latent vector.

    ``z`` is projected to the coarsest map; at every finer scale a further projection of ``z``
    (a coarse-grid map, nearest-upsampled) is added after the upsampling. These per-scale latent
    projections are the U-Net-like multi-scale path; unlike a U-Net's skips they carry ``z`` only.

    Input ``(B, latent_dim)`` -> ``(B, out_channels, *grid)``.
    """

    def __init__(
        self,
        latent_dim: int,
        grid: tuple[int, ...],
        channels: list[int],
        blocks_per_scale: int,
        out_channels: int,
        dims: int,
        kernel_size: int,
    ):
        super().__init__()
        depth = len(channels)
        self.grid = tuple(grid)
        self.pads = [_padding(n, 2**depth) for n in grid]
        padded = [n + sum(p) for n, p in zip(grid, self.pads, strict=True)]
        self.coarse_grid = tuple(n // 2**depth for n in padded)
        self.channels = list(channels)
        n_coarse = math.prod(self.coarse_grid)
        self.from_latent = nn.Linear(latent_dim, channels[-1] * n_coarse)
        # inject[s] feeds scale s < depth-1 (the coarsest scale is from_latent itself).
        self.inject = nn.ModuleList(nn.Linear(latent_dim, c * n_coarse) for c in channels[:-1])
        self.stages = nn.ModuleList(
            nn.Sequential(
                *[ResidualBlock(c, c, dims, kernel_size) for _ in range(blocks_per_scale)]
            )
            for c in channels
        )
        # ups[s] takes scale s+1 to scale s; the last one takes scale 0 to the full grid.
        self.ups = nn.ModuleList(
            _ConvDepthToSpace(channels[s + 1], channels[s], dims, 1) for s in range(depth - 1)
        )
        self.head = nn.Sequential(
            _group_norm(channels[0]),
            nn.SiLU(),
            _ConvDepthToSpace(channels[0], out_channels, dims, kernel_size),
        )

    def _latent_map(self, layer: nn.Linear, z: torch.Tensor, channels: int) -> torch.Tensor:
        return layer(z).view(z.shape[0], channels, *self.coarse_grid)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        depth = len(self.channels)
        h = self.stages[-1](self._latent_map(self.from_latent, z, self.channels[-1]))
        for s in reversed(range(depth - 1)):
            h = self.ups[s](h)
            injected = self._latent_map(self.inject[s], z, self.channels[s])
            factor = 2 ** (depth - 1 - s)
            h = h + F.interpolate(injected, scale_factor=factor, mode="nearest")
            h = self.stages[s](h)
        h = self.head(h)
        # Crop the padding added by the encoder.
        index = [slice(None), slice(None)]
        index += [slice(p[0], p[0] + n) for p, n in zip(self.pads, self.grid, strict=True)]
        return h[tuple(index)]


def masked_mse(prediction: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean squared error over the pixels where ``mask`` is true (all tensors the same shape).

    Uses ``torch.where`` rather than multiplying by the mask, so NaN or inf in masked-out pixels
    of either tensor cannot leak into the result. Returns 0 if nothing is valid.
    """
    squared = torch.where(mask, (prediction.float() - target.float()) ** 2, 0.0)
    return squared.sum() / mask.sum().clamp(min=1)


def _channels(base_channels: int, depth: int, max_channels: int | None = None) -> list[int]:
    channels = [base_channels * 2**s for s in range(depth)]
    return [min(c, max_channels) for c in channels] if max_channels else channels


@register_model("res_ae", data_kind="asi")
class ResidualAutoencoder(LatentModel):
    """U-Net-like residual autoencoder ("Res-AE") for images ``(B, band, lat, lon)``.

    Encoder: ``depth`` scales; scale ``s`` halves the grid (space-to-depth and a conv for the
    first, a strided conv after), then applies ``blocks_per_scale`` residual blocks (GroupNorm,
    SiLU) with ``base_channels * 2**s`` channels, so a 64x64 image with depth 3 ends at 8x8.
    The latent (``latent_dim``) is a linear map of the flattened coarsest map plus the global
    average of every scale. Decoder: the mirror image, with a projection of the latent added at
    every scale. The latent is the only path between the two halves.

    Grids that are not a multiple of ``2**depth`` are zero-padded inside the model and cropped
    back. Inputs may contain NaN (outside the field of view): they are replaced by 0 on input and
    left out of the loss.
    """

    shape_args = ("in_channels", "height", "width")

    def __init__(
        self,
        in_channels: int,
        height: int,
        width: int,
        base_channels: int = 16,
        depth: int = 3,
        latent_dim: int = 32,
        blocks_per_scale: int = 1,
    ):
        super().__init__(
            in_channels=in_channels,
            height=height,
            width=width,
            base_channels=base_channels,
            depth=depth,
            latent_dim=latent_dim,
            blocks_per_scale=blocks_per_scale,
        )
        if depth < 1 or base_channels < 1 or latent_dim < 1 or blocks_per_scale < 0:
            raise ValueError(
                "depth, base_channels, latent_dim must be >= 1 and blocks_per_scale >= 0"
            )
        self.latent_dim = latent_dim
        channels = _channels(base_channels, depth)
        grid = (height, width)
        args = dict(channels=channels, blocks_per_scale=blocks_per_scale, dims=2, kernel_size=3)
        self.encoder = MultiScaleEncoder(in_channels, grid, out_features=latent_dim, **args)
        self.decoder = MultiScaleDecoder(latent_dim, grid, out_channels=in_channels, **args)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Images ``(B, band, lat, lon)``, NaN allowed -> latent ``(B, latent_dim)``."""
        return self.encoder(torch.nan_to_num(x, nan=0.0))

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Latent ``(B, latent_dim)`` -> images ``(B, band, lat, lon)``."""
        return self.decoder(z)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Images ``(B, band, lat, lon)`` -> (reconstruction, same shape; latent ``(B, latent_dim)``)."""
        z = self.encode(x)
        return self.decode(z), z

    def loss(self, batch: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """MSE over the finite pixels of ``batch`` ``(B, band, lat, lon)``; metrics ``mse``."""
        mask = torch.isfinite(batch)
        x = torch.where(mask, batch, 0.0)
        x_hat, _ = self(x)
        loss = masked_mse(x_hat, x, mask)
        return loss, {"mse": loss.detach()}

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """Reconstruction of ``x`` ``(B, band, lat, lon)``, NaN where ``x`` is NaN."""
        x_hat, _ = self(x)
        return torch.where(torch.isfinite(x), x_hat.to(x.dtype), torch.nan)


def _sync_output_ready(module: nn.Module, _incompatible_keys) -> None:
    module._output_ready = bool(module.output_initialised)


@register_model("beta_vae_1d", data_kind="photometer")
class BetaVAE1d(LatentModel):
    """1-D convolutional VAE with a Beta observation model for windows ``(B, band, sample)``.

    The bands are stacked as channels. Encoder and decoder are the multi-scale residual stacks of
    the Res-AE in 1-D (``depth`` halvings of the time axis, channels capped at ``max_channels``).
    The encoder gives a diagonal Gaussian posterior (mean, log-variance); the decoder gives the
    Beta parameters ``alpha, beta > 0`` per band and sample as a mean ``m = sigmoid(u)`` and a
    precision ``k = exp(v)``: ``alpha = m k + eps``, ``beta = (1 - m) k + eps``. Photometer data
    sit near 0 with noise ~1e-3 of the range, which needs precisions ``alpha + beta`` of 1e3-1e5:
    ``exp`` reaches them in a few hundred optimiser steps, where a softplus of the raw output
    would need ~1e5 steps and, from ``alpha, beta ~ 0.7``, settles in the U-shaped Beta
    (``alpha + beta < 2``) that piles its mass at 0 instead. For the same reason the output layer
    starts from the data: on the first training batch its biases are set so that every band's
    mean is that band's median and its spread ``init_spread`` times the band's noise.

    Loss per window: ``-(log p(x | z) - kl_weight * KL)``, averaged over the batch, with
    ``log p = sum log Beta(x; alpha, beta)`` and ``KL = 0.5 * sum(sigma^2 + mu^2 - 2 log sigma - 1)``
    against a standard normal prior. Data must be scaled into [0, 1]; it is clamped to
    ``[1e-6, 1 - 1e-5]``; NaN samples are left out of the likelihood.
    """

    shape_args = ("in_channels", "length")

    def __init__(
        self,
        in_channels: int,
        length: int,
        base_channels: int = 16,
        depth: int = 5,
        latent_dim: int = 50,
        blocks_per_scale: int = 1,
        kernel_size: int = 5,
        max_channels: int = 128,
        kl_weight: float = 1.0,
        eps: float = 1e-4,
        init_spread: float = 10.0,
    ):
        super().__init__(
            in_channels=in_channels,
            length=length,
            base_channels=base_channels,
            depth=depth,
            latent_dim=latent_dim,
            blocks_per_scale=blocks_per_scale,
            kernel_size=kernel_size,
            max_channels=max_channels,
            kl_weight=kl_weight,
            eps=eps,
            init_spread=init_spread,
        )
        if kernel_size % 2 != 1:
            raise ValueError(f"kernel_size must be odd, got {kernel_size}")
        self.latent_dim = latent_dim
        self.kl_weight = float(kl_weight)
        self.eps = float(eps)
        channels = _channels(base_channels, depth, max_channels)
        args = dict(
            channels=channels, blocks_per_scale=blocks_per_scale, dims=1, kernel_size=kernel_size
        )
        # The encoder emits mean and log-variance side by side; the decoder alpha and beta.
        self.encoder = MultiScaleEncoder(
            in_channels, (length,), out_features=2 * latent_dim, **args
        )
        self.decoder = MultiScaleDecoder(
            latent_dim, (length,), out_channels=2 * in_channels, **args
        )
        self.init_spread = float(init_spread)
        # Whether the output layer has been started from the data (saved with the weights, so a
        # resumed or reloaded model is not initialised again).
        self.register_buffer("output_initialised", torch.tensor(False))
        # The same flag as a Python bool, so the training step need not read the buffer back
        # from the device; kept in step with the buffer when weights are loaded.
        self._output_ready = False
        self.register_load_state_dict_post_hook(_sync_output_ready)

    @staticmethod
    def _clean(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mask = torch.isfinite(x)
        x = torch.where(mask, x, 0.5).clamp(BETA_DATA_MIN, BETA_DATA_MAX)
        return x, mask

    def posterior(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Windows ``(B, band, sample)`` -> posterior mean and log-variance, each ``(B, latent_dim)``."""
        x, _ = self._clean(x)
        mu, logvar = self.encoder(x).float().chunk(2, dim=1)
        # Bounded log-variance: exp() of a runaway value would overflow in the KL term.
        return mu, logvar.clamp(-30.0, 20.0)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Windows ``(B, band, sample)`` -> posterior mean ``(B, latent_dim)``."""
        return self.posterior(x)[0]

    def decode(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Latent ``(B, latent_dim)`` -> Beta ``alpha, beta``, each ``(B, band, sample)``, float32."""
        u, v = self.decoder(z).float().chunk(2, dim=1)
        mean = torch.sigmoid(u)
        precision = torch.exp(v.clamp(max=MAX_LOG_PRECISION))
        return mean * precision + self.eps, (1 - mean) * precision + self.eps

    @torch.no_grad()
    def initialise_output(self, x: torch.Tensor) -> None:
        """Set the output biases from clean windows ``x`` ``(B, band, sample)`` in (0, 1).

        Each band's mean starts at the band's median, its standard deviation at ``init_spread``
        times the band's sample-to-sample noise (median absolute first difference).
        """
        x = x.float()
        mean = x.median(dim=2).values.median(dim=0).values.clamp(BETA_DATA_MIN, BETA_DATA_MAX)
        noise = 1.4826 * x.diff(dim=2).abs().transpose(0, 1).flatten(1).median(dim=1).values
        noise = (noise / math.sqrt(2.0) * self.init_spread).clamp(min=1e-6)
        precision = (mean * (1 - mean) / noise**2).clamp(2.0, math.exp(MAX_LOG_PRECISION))
        conv = self.decoder.head[-1].conv  # channels 2j, 2j+1 become output channel j
        bands = x.shape[1]
        bias = conv.bias.view(2, bands, 2)  # (mean logit | log precision, band, pair)
        bias[0] = torch.logit(mean).unsqueeze(1).to(bias.dtype)
        bias[1] = precision.log().unsqueeze(1).to(bias.dtype)
        self.output_initialised.fill_(True)
        self._output_ready = True

    def forward(self, x: torch.Tensor) -> tuple[tuple[torch.Tensor, torch.Tensor], torch.Tensor]:
        """Windows -> ((alpha, beta), posterior mean); uses the mean, no sampling."""
        z = self.encode(x)
        return self.decode(z), z

    @staticmethod
    def beta_log_likelihood(
        x: torch.Tensor, alpha: torch.Tensor, beta: torch.Tensor
    ) -> torch.Tensor:
        """Elementwise ``log Beta(x; alpha, beta)`` for ``x`` in (0, 1); float32 for accuracy."""
        x, alpha, beta = x.float(), alpha.float(), beta.float()
        log_norm = torch.lgamma(alpha) + torch.lgamma(beta) - torch.lgamma(alpha + beta)
        return (alpha - 1) * torch.log(x) + (beta - 1) * torch.log1p(-x) - log_norm

    def loss(self, batch: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Negative ELBO per window, batch mean; metrics ``loglik``, ``kl`` (per window)."""
        x, mask = self._clean(batch)
        if self.training and not self._output_ready:
            self.initialise_output(x)
        mu, logvar = self.posterior(x)
        # Reparameterised sample while training; the mean in eval, so validation is deterministic.
        z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu) if self.training else mu
        alpha, beta = self.decode(z)
        loglik = torch.where(mask, self.beta_log_likelihood(x, alpha, beta), 0.0).flatten(1).sum(1)
        kl = 0.5 * (logvar.exp() + mu**2 - logvar - 1).sum(1)
        loss = -(loglik - self.kl_weight * kl).mean()
        return loss, {"loglik": loglik.mean().detach(), "kl": kl.mean().detach()}

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """Mean of the Beta likelihood at the posterior mean, ``(B, band, sample)``; NaN kept."""
        alpha, beta = self.decode(self.encode(x))
        return torch.where(torch.isfinite(x), (alpha / (alpha + beta)).to(x.dtype), torch.nan)
