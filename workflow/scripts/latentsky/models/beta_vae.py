"""The 1-D convolutional VAE with a Beta observation model for photometer windows."""

from __future__ import annotations

import math

import torch
from torch import nn

from latentsky.models import LatentModel, register_model
from latentsky.models.blocks import MultiScaleDecoder, MultiScaleEncoder, _channels

#: Data for the Beta likelihood is clamped into this open interval (log 0 is -inf).
BETA_DATA_MIN = 1e-6
BETA_DATA_MAX = 1.0 - 1e-5
#: Where the Beta precision varies: per window, band and sample, or per window and band only.
PRECISIONS = ("sample", "window")
#: Cap on the Beta VAE's log-precision log(alpha + beta): float32 lgamma stays accurate below it.
MAX_LOG_PRECISION = 12.0


def _sync_output_ready(module: nn.Module, _incompatible_keys) -> None:
    module._output_ready = bool(module.output_initialised)


@register_model("beta_vae_1d")
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

    With ``precision="window"`` (the config's default) ``v`` is averaged over the window's
    samples first, so each window gets one precision per band: the noise of its sky (a UV band
    counting a few photons a sample is grainier) but no excuse for one stretch of it. With
    ``"sample"`` the decoder may lower the precision just where it cannot reproduce the light; on
    the demo it did so under a sprite's late blue glow instead of encoding the glow (median
    337 nm precision 16 in sprite windows, 211 to 350 in most others), which left sprites next to
    lightning in the latent space (README, "Precision per window"). The argument's default stays
    ``"sample"``, so that a checkpoint saved before the option existed is rebuilt as trained.

    ``global_max`` adds each encoder scale's global maximum to the averages the latent is read
    from (see :class:`MultiScaleEncoder`): the config turns it on, the argument's default is off
    for the same reason as ``precision``'s.

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
        precision: str = "sample",
        global_max: bool = False,
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
            precision=precision,
            global_max=global_max,
        )
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
        if kernel_size % 2 != 1:
            raise ValueError(f"kernel_size must be odd, got {kernel_size}")
        self.latent_dim = latent_dim
        self.kl_weight = float(kl_weight)
        self.eps = float(eps)
        self.precision = precision
        channels = _channels(base_channels, depth, max_channels)
        args = dict(
            channels=channels, blocks_per_scale=blocks_per_scale, dims=1, kernel_size=kernel_size
        )
        # The encoder emits mean and log-variance side by side; the decoder alpha and beta.
        self.encoder = MultiScaleEncoder(
            in_channels, (length,), out_features=2 * latent_dim, global_max=global_max, **args
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
        if self.precision == "window":
            v = v.mean(dim=2, keepdim=True).expand_as(u)
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
