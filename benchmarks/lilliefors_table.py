"""Monte Carlo percentage points of the Lilliefors statistic, for latentsky.analysis.lognormal's table.

Simulates the null distribution of the KS distance of a normal sample to the normal fitted with its
own mean and n - 1 standard deviation (the Lilliefors statistic), for sample sizes from 10 to 5000,
and prints the percentage points of Stephens' modified statistic D* = D (sqrt(n) - 0.01 +
0.85/sqrt(n)) at upper-tail probabilities from 0.999 to 0.15: per n, then the mean over n, which is
``_LILLIEFORS_BODY`` in workflow/scripts/latentsky/analysis/lognormal.py. Seeded; about 30 s.

    .venv/bin/python benchmarks/lilliefors_table.py
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "workflow" / "scripts"))
from latentsky.analysis.lognormal import _ks_ad_sorted, _stephens_factor  # noqa: E402

#: Upper-tail probabilities of the table.
P = (0.999, 0.99, 0.95, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.25, 0.2, 0.15)
#: Sample sizes and the number of simulated samples of each.
SIZES = {10: 400_000, 20: 400_000, 50: 200_000, 100: 200_000, 200: 100_000, 500: 100_000,
         1000: 60_000, 2000: 40_000, 5000: 20_000}  # fmt: skip
BLOCK_ELEMENTS = 2_000_000


def lilliefors_null(n: int, samples: int, rng: np.random.Generator) -> np.ndarray:
    """Simulated Lilliefors statistics (samples,) of standard normal samples of size n."""
    out = []
    rows = max(1, BLOCK_ELEMENTS // n)
    for start in range(0, samples, rows):
        z = np.sort(rng.standard_normal((min(rows, samples - start), n)), axis=1)
        z = (z - z.mean(axis=1, keepdims=True)) / z.std(axis=1, ddof=1, keepdims=True)
        out.append(_ks_ad_sorted(z)[0])
    return np.concatenate(out)


def main():
    rng = np.random.default_rng(2024)
    points = []
    print("n      " + " ".join(f"{p:>6}" for p in P))
    for n, samples in SIZES.items():
        d_star = lilliefors_null(n, samples, rng) * _stephens_factor(n)
        points.append(np.quantile(d_star, 1.0 - np.array(P)))
        print(f"{n:<6} " + " ".join(f"{x:6.3f}" for x in points[-1]), flush=True)
    points = np.array(points)
    print("mean   " + " ".join(f"{x:6.3f}" for x in points.mean(axis=0)))
    print("spread " + " ".join(f"{x:6.3f}" for x in np.ptp(points, axis=0)))


if __name__ == "__main__":
    main()
