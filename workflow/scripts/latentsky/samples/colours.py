"""Colour channels: the ratio of two photometer bands over time, as extra inputs for the model.

What tells transient luminous events from lightning is mostly colour and its timing: an elve is
UV before 777.4 nm, a corona discharge 337 nm with no 777.4 nm, a sprite a stroke followed by
light far bluer than the stroke's. The scaled bands carry this only implicitly (each band is in
its own noise units, so the difference of two scaled bands is not the flux ratio), and a VAE
spends its latent space on what costs the most likelihood: the stroke's shape and brightness.
A colour channel states the ratio outright, in physical flux, sample by sample, so the
likelihood pays for getting the colour (and when it changes) wrong.

For bands ``a`` and ``b`` of one window, with ``f`` the flux above the window's median sky,
smoothed over ``smooth`` samples and clipped at 0, and ``n`` the white-noise level of that
smoothed flux:

    r = log((f_a + floor * n_a) / (f_b + floor * n_b))       (the flux ratio)
    q = log((f_a / n_a + floor) / (f_b / n_b + floor))       (the same in noise units)
    g = clip((max(f_a / n_a, f_b / n_b) - 3) / 5, 0, 1)
    colour = 0.5 + 0.5 * tanh((g r + (1 - g) q) / 3)

The floor makes a band at its noise level read as "no light" instead of a random ratio. The gate
``g`` hands over from the flux ratio, where either band is more than a few noise levels above
the sky, to the noise-unit ratio where neither is: on quiet sky that is noise around 0.5 (about
+-0.1 where a band counts a few photons per sample, as the UV does) whatever the sky's own tint
(the flux ratio there is the tint of moonlit or city-lit cloud, not an event's colour).

That noise is kept on purpose, and it decides what the channel does for the anomaly score. A
channel exactly constant on quiet sky lets the Beta likelihood's precision run away there (about
6 nats per sample), and the score then mostly counts how many samples hold light, ranking long
lightning above short elves. Shrunk to the bands' few hundredths (tried), the model finds
elves and blue corona discharges ordinary (anomaly AUC against lightning about 0.5 to 0.7). Left
as it is, quiet sky costs nats and the well-defined colour of a long stroke costs few, so
lightning scores lowest; jets and corona discharges, whose colour departs far from anything
else, score high (with the Beta VAE's precision per sample, AUC 0.99 and more against quiet
sky too; 0.72 to 0.98 for corona discharges with its precision per window); elves and sprites
score no higher than quiet sky, above lightning. The latent space separates the types as well or
better this way (see the README's table).

``tanh(r / 3)`` spreads ratios from about 1/20 to 20 over most of (0, 1). The result is in (0, 1)
like the scaled bands, so the Beta observation model takes it as it is. NaN in either band gives
NaN.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from latentsky.analysis.pulses import noise_level

#: Significance (noise levels of the smoothed flux) below which the colour is the noise-unit
#: ratio, and over how many more the flux ratio takes over.
GATE_START, GATE_WIDTH = 3.0, 5.0
#: Log ratio that ``tanh`` maps to 0.5 + 0.38 (a factor e^3, about 20).
LOG_RATIO_SCALE = 3.0


def settings_problem(pairs, smooth: int) -> tuple[str, str] | None:
    """What is wrong with colour settings, as ``(key, reason)`` (``key``: ``pairs`` or
    ``smooth``), or None: the one check behind both :class:`Colours` and the config check."""
    for pair in pairs:
        if len(pair) != 2 or pair[0] == pair[1]:
            return "pairs", f"a colour is two different bands, got {list(pair)}"
    if len({tuple(p) for p in pairs}) < len(pairs):
        return "pairs", "a band pair is listed twice"
    if smooth < 1 or smooth % 2 != 1:
        return "smooth", f"colour smooth must be an odd number of samples, got {smooth}"
    return None


@dataclass(frozen=True)
class Colours:
    """Which band ratios become extra model channels, and how (see the module docstring).

    ``pairs``: ``(numerator, denominator)`` band names (e.g. ``("PHOT1", "PHOT3")``: 337 nm over
    777.4 nm); empty for none (the study's input: the bands alone). ``floor``: noise levels
    added to each band before the ratio. ``smooth``: samples of the running mean (odd).
    """

    pairs: tuple[tuple[str, str], ...] = ()
    floor: float = 1.0
    smooth: int = 5

    def __post_init__(self):
        object.__setattr__(self, "pairs", tuple(tuple(p) for p in self.pairs))
        problem = settings_problem(self.pairs, self.smooth)
        if problem:
            raise ValueError(problem[1])
        if not self.floor > 0:
            raise ValueError(f"colour floor must be > 0 noise levels, got {self.floor}")

    @classmethod
    def from_config(cls, values: dict | None) -> Colours:
        """From a dataset's ``photometer.colours`` (``pairs``, ``floor``, ``smooth``)."""
        values = values or {}
        return cls(
            pairs=tuple(tuple(p) for p in values.get("pairs", ())),
            floor=float(values.get("floor", 1.0)),
            smooth=int(values.get("smooth", 5)),
        )

    def names(self) -> list[str]:
        """Channel names, ``"PHOT1/PHOT3"``."""
        return [f"{a}/{b}" for a, b in self.pairs]

    def labels(self, band_labels: dict[str, str]) -> list[str]:
        """Short readable names for figures, ``"337/777.4 nm ratio"``."""

        def bare(band):
            return band_labels.get(band, band).removesuffix(" nm")

        return [f"{bare(a)}/{bare(b)} nm ratio" for a, b in self.pairs]

    def as_json(self) -> str:
        return json.dumps(
            {"pairs": [list(p) for p in self.pairs], "floor": self.floor, "smooth": self.smooth}
        )

    def apply(self, flux, bands: Sequence[str]) -> np.ndarray:
        """Windows ``(window, band, sample)`` of flux -> float32 ``(window, colour, sample)``."""
        x = np.asarray(flux, dtype=np.float64)
        out = np.empty((x.shape[0], len(self.pairs), x.shape[-1]), dtype=np.float32)
        if not self.pairs:
            return out
        index = {name: i for i, name in enumerate(bands)}
        missing = sorted({b for p in self.pairs for b in p} - set(index))
        if missing:
            raise ValueError(f"colour bands {missing} are not among the bands {list(bands)}")
        valid = np.isfinite(x)
        signal = np.where(valid, x - np.nanmedian(x, axis=-1, keepdims=True), 0.0)
        # Smoothed, then clipped: clipping first would turn the sky's noise into a positive bias.
        signal = np.clip(_running_mean(signal, self.smooth), 0.0, None)
        # The noise of the smoothed flux: that of the raw flux over sqrt(smooth) (white noise).
        noise = noise_level(x)[..., np.newaxis] / np.sqrt(self.smooth)
        snr = signal / noise
        for k, (a, b) in enumerate(self.pairs):
            i, j = index[a], index[b]
            ratio = np.log(
                (signal[:, i] + self.floor * noise[:, i])
                / (signal[:, j] + self.floor * noise[:, j])
            )
            # Where neither band has light, the same ratio in noise units: noise around 0.
            sky = np.log((snr[:, i] + self.floor) / (snr[:, j] + self.floor))
            gate = np.clip((np.maximum(snr[:, i], snr[:, j]) - GATE_START) / GATE_WIDTH, 0, 1)
            mixed = gate * ratio + (1 - gate) * sky
            colour = 0.5 + 0.5 * np.tanh(mixed / LOG_RATIO_SCALE)
            out[:, k] = np.where(valid[:, i] & valid[:, j], colour, np.nan)
        return out


def _running_mean(x: np.ndarray, width: int) -> np.ndarray:
    """Centred running mean over the last axis; the ends average over what is there."""
    if width == 1:
        return x
    half = width // 2
    padded = np.pad(x, [(0, 0)] * (x.ndim - 1) + [(half, half)])
    total = np.cumsum(padded, axis=-1)
    total = np.concatenate([np.zeros_like(total[..., :1]), total], axis=-1)
    sums = total[..., width:] - total[..., :-width]
    ones = np.pad(np.ones(x.shape[-1]), (half, half))
    counts = np.convolve(ones, np.ones(width), mode="valid")
    return sums / counts
