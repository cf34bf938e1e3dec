"""The U-Net-like residual autoencoder ("Res-AE") for projected images."""

from __future__ import annotations

import torch

from latentsky.models import LatentModel, register_model
from latentsky.models.blocks import MultiScaleDecoder, MultiScaleEncoder, _channels, masked_mse


@register_model("res_ae")
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
