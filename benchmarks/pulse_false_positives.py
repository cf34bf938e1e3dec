"""False-positive rate of the band signature on quiet windows of photon counts (issue 14).

Quiet sky as a photometer counts it: Poisson photoelectrons per 10 us sample (337 nm, UV and
777.4 nm at the rates given), plus single-sample spikes (energetic particles) at a given rate per
sample, plus, optionally, a few percent of band cross-talk of a blue corona discharge. Prints the
share of quiet windows called anything but "quiet" by the old rule (Gaussian noise from the median
absolute difference, one sample over 6 noise levels) and by the current one (clipped RMS of the
differences, at least 3 samples), and the share of corona discharges called "lightning-like".

    .venv/bin/python benchmarks/pulse_false_positives.py
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "workflow" / "scripts"))

from latentsky.analysis.tle import band_ratios, robust_noise, window_features  # noqa: E402


def old_signature(flux: np.ndarray) -> np.ndarray:
    """The rule before issue 14: Gaussian noise from the median |difference|, one-sample peaks."""
    baseline = np.nanmedian(flux, axis=-1, keepdims=True)
    peak = (flux - baseline).max(axis=-1)
    noise = robust_noise(flux)
    pulse = peak >= 6.0 * noise
    floor = np.maximum(peak[:, 2], 6.0 * noise[:, 2])
    ratio_337, ratio_uv = np.maximum(peak[:, 0], 0) / floor, np.maximum(peak[:, 1], 0) / floor
    signature = np.full(len(peak), "lightning_like", dtype=object)
    signature[pulse[:, 0] & (ratio_337 >= 2.5)] = "blue_dominant"
    signature[pulse[:, 1] & (ratio_uv >= 1.0) & (peak[:, 1] >= peak[:, 0])] = "uv_dominant"
    signature[~pulse.any(axis=1)] = "quiet"
    return signature


def new_signature(flux: np.ndarray) -> np.ndarray:
    f = window_features(flux, 1e5)
    return band_ratios(f["peak_flux"], f["noise_flux"], has_pulse=f["has_pulse"])[
        "signature"
    ].to_numpy()


def main(n: int = 2000, length: int = 1000, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    out = {}
    for rates in ((3.0, 0.3, 10.0), (8.0, 1.5, 30.0), (1.0, 0.1, 3.0)):
        flux = rng.poisson(np.array(rates)[None, :, None], size=(n, 3, length)).astype(float)
        hits = rng.random(flux.shape) < 2e-4  # particle hits, about one per window in all
        flux[hits] += rng.uniform(5, 30, hits.sum())
        out[f"quiet rates {rates}"] = {
            "before": float(np.mean(old_signature(flux) != "quiet")),
            "after": float(np.mean(new_signature(flux) != "quiet")),
        }
    # Blue corona discharges (337 nm, 20-80 us) seen with 2-5 % cross-talk into the other bands.
    flux = rng.poisson(np.array([3.0, 0.3, 10.0])[None, :, None], size=(n, 3, length)).astype(float)
    t = np.arange(length)
    amplitude = np.exp(rng.uniform(np.log(20), np.log(400), n))
    width = rng.uniform(2, 8, n)
    shape = amplitude[:, None] * np.exp(-0.5 * ((t - 300) / width[:, None]) ** 2)
    crosstalk = rng.uniform(0.02, 0.05, (n, 2))
    flux[:, 0] += rng.poisson(shape)
    flux[:, 1] += rng.poisson(crosstalk[:, :1] * shape)
    flux[:, 2] += rng.poisson(crosstalk[:, 1:] * shape)
    out["corona lightning_like"] = {
        "before": float(np.mean(old_signature(flux) == "lightning_like")),
        "after": float(np.mean(new_signature(flux) == "lightning_like")),
    }
    return out


if __name__ == "__main__":
    print(json.dumps(main(), indent=1))
