"""Building blocks of the autoencoders, written for 1-D (dims=1) and 2-D (dims=2) signals alike."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


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
    scales reach the latent directly instead of only through the coarse map. With ``global_max``
    each scale's global maximum joins its average: a feature that fires anywhere (a one-sample
    flash, a glow that starts late in a window) reaches the latent at full strength, where the
    average dilutes it by the share of the grid it covers. The maximum is taken over the cells
    that cover data, not over those that cover only the zero padding.

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
        global_max: bool = False,
    ):
        super().__init__()
        conv = _conv(dims)
        depth = len(channels)
        self.global_max = bool(global_max)
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
        n_summaries = 2 if self.global_max else 1
        n_features = channels[-1] * math.prod(self.coarse_grid) + n_summaries * sum(channels)
        self.to_latent = nn.Linear(n_features, out_features)
        # Per scale, the cells that cover data rather than only the zero padding (an index for
        # (B, C, *grid)): the maximum is taken over them alone, so the padding's edge responses
        # cannot win it.
        self.valid = [
            (slice(None), slice(None))
            + tuple(
                slice(before // 2 ** (s + 1), -(-(before + n) // 2 ** (s + 1)))
                for n, (before, _) in zip(grid, self.pads, strict=True)
            )
            for s in range(depth)
        ]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # F.pad takes (last-dim before, last-dim after, previous-dim before, ...).
        pad = [p for pair in reversed(self.pads) for p in pair]
        h = F.pad(x, pad)
        summaries = []
        spatial = tuple(range(2, h.ndim))
        for down, stage, valid in zip(self.downs, self.stages, self.valid, strict=True):
            h = stage(down(h))
            summaries.append(h.mean(dim=spatial))  # (B, c_s): what this scale saw, anywhere
            if self.global_max:
                summaries.append(h[valid].amax(dim=spatial))  # (B, c_s): strongest response
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
