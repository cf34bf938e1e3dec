"""Log-normal fits of sigma_phi per cluster, with bootstrap intervals and goodness-of-fit tests.

If X is log-normal, ln X ~ Normal(mu, sigma). The maximum-likelihood estimates are the mean and the
standard deviation **with ddof=0** of ln X (the MLE of a normal variance divides by n, not n - 1;
for the cluster sizes here, hundreds to thousands of values, the difference is negligible).
The median of X is exp(mu).

Goodness of fit. The classic Kolmogorov-Smirnov p-value (``ks_pvalue``) assumes the reference
distribution was fixed in advance; here mu and sigma were estimated from the same data, which pulls
the fitted CDF towards the empirical one, so that p-value is too large (optimistic). The
Lilliefors-corrected p-value (``lilliefors_pvalue``) fixes this by a parametric bootstrap: the KS
statistic of a normal sample against its own fitted normal has a null distribution that depends on n
only (location-scale invariance), so it is simulated from standard normal samples of the same size,
each standardised with its own MLE mean and ddof=0 standard deviation, exactly as the data are.
(statsmodels' ``lilliefors`` and scipy's ``goodness_of_fit`` standardise with ddof=1 instead, so
their statistics differ slightly from ``ks_statistic``; each test is valid with its own null.)
The Anderson-Darling statistic (``ad_statistic``, more sensitive in the tails) gets its p-value from
the same simulations.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import special, stats

#: Keys of the dict returned by :func:`fit_lognormal`, in order.
FIT_KEYS = (
    "n",
    "n_excluded",
    "mu",
    "sigma",
    "median",
    "mu_low",
    "mu_high",
    "sigma_low",
    "sigma_high",
    "median_low",
    "median_high",
    "ks_statistic",
    "ks_pvalue",
    "lilliefors_pvalue",
    "ad_statistic",
    "ad_pvalue",
)
#: Fewest valid values for a fit; below that the row is NaN.
MIN_VALUES = 3
# Cap on the elements of one vectorised resampling block (about 16 MB of float64), so that a
# cluster of 35,000 values does not need a 1000 x 35,000 array at once.
_MAX_BLOCK_ELEMENTS = 2_000_000


def _blocks(total: int, n: int):
    """(start, stop) blocks of resamples, each with at most ``_MAX_BLOCK_ELEMENTS`` elements."""
    rows = max(1, _MAX_BLOCK_ELEMENTS // max(n, 1))
    for start in range(0, total, rows):
        yield start, min(total, start + rows)


def _ks_ad_sorted(z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """KS distance and Anderson-Darling A^2 of sorted ``z`` (..., n) against the standard normal.

    KS = max_i max(i/n - F(z_i), F(z_i) - (i-1)/n);
    A^2 = -n - (1/n) sum_i (2i - 1) [ln F(z_i) + ln(1 - F(z_{n+1-i}))].
    1 - F is taken as F(-z), exact in the upper tail; ln of ndtr is accurate down to z of about -37,
    far beyond any standardised sample, and much cheaper than ``log_ndtr`` in the simulations.
    """
    n = z.shape[-1]
    i = np.arange(1, n + 1)
    cdf = special.ndtr(z)
    ks = np.maximum((i / n - cdf).max(axis=-1), (cdf - (i - 1) / n).max(axis=-1))
    log_sf_reversed = np.log(special.ndtr(-z))[..., ::-1]
    ad = -n - ((2 * i - 1) * (np.log(cdf) + log_sf_reversed)).sum(axis=-1) / n
    return ks, ad


def _standardise_sorted(y: np.ndarray) -> np.ndarray:
    """Sort along the last axis and standardise with the MLE (ddof=0) mean and std."""
    y = np.sort(y, axis=-1)
    mean = y.mean(axis=-1, keepdims=True)
    std = y.std(axis=-1, keepdims=True)
    return (y - mean) / std


def _null_ks_ad(n: int, n_simulations: int, rng: np.random.Generator):
    """Simulated null distributions (n_simulations,) of the KS and AD statistics for size n."""
    ks = np.empty(n_simulations)
    ad = np.empty(n_simulations)
    for start, stop in _blocks(n_simulations, n):
        z = _standardise_sorted(rng.standard_normal((stop - start, n)))
        ks[start:stop], ad[start:stop] = _ks_ad_sorted(z)
    return ks, ad


def _bootstrap(y: np.ndarray, n_bootstrap: int, rng: np.random.Generator):
    """Bootstrap replicates (n_bootstrap,) of the MLE mu and sigma of ``y`` (n,)."""
    mus = np.empty(n_bootstrap)
    sigmas = np.empty(n_bootstrap)
    for start, stop in _blocks(n_bootstrap, y.size):
        resample = y[rng.integers(0, y.size, size=(stop - start, y.size))]
        mus[start:stop] = resample.mean(axis=1)
        sigmas[start:stop] = resample.std(axis=1)
    return mus, sigmas


def _monte_carlo_pvalue(observed: float, null: np.ndarray) -> float:
    # (1 + #{null >= observed}) / (1 + M): never exactly 0, and exact in level for M simulations.
    return float((1 + np.count_nonzero(null >= observed)) / (1 + null.size))


def fit_lognormal(
    values,
    n_bootstrap: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
    n_lilliefors: int = 1000,
) -> dict:
    """Maximum-likelihood log-normal fit of positive values, with uncertainties and fit tests.

    Parameters
    ----------
    values : array-like of any shape, e.g. sigma_phi in rad. NaN, infinite and non-positive values
        are excluded and counted in ``n_excluded``.
    n_bootstrap : number of bootstrap resamples for the percentile intervals (0: intervals NaN).
    confidence : coverage of the intervals, e.g. 0.95 -> 2.5th and 97.5th percentiles.
    seed : seed of the random generator (bootstrap first, then the Lilliefors simulations), so the
        result is reproducible.
    n_lilliefors : number of simulated normal samples for the Lilliefors-corrected KS and the AD
        p-values (0: those p-values NaN). Costs about n_lilliefors * n normal draws and sorts.

    Returns
    -------
    dict with the keys :data:`FIT_KEYS`:
    ``n`` (valid values used), ``n_excluded``; ``mu`` and ``sigma``: mean and standard deviation
    (ddof=0, the MLE) of ln(values), in ln-units of the input; ``median`` = exp(mu), in units of the
    input; ``mu_low``/``mu_high``, ``sigma_low``/``sigma_high``, ``median_low``/``median_high``:
    bootstrap percentile intervals (the median interval is exp of the mu interval, exp being
    monotonic); ``ks_statistic``: KS distance to the fitted log-normal; ``ks_pvalue``: the classic KS
    p-value, **optimistic** because the parameters were fitted to the same data;
    ``lilliefors_pvalue``: KS p-value corrected for the estimation by parametric bootstrap;
    ``ad_statistic`` and ``ad_pvalue``: Anderson-Darling against the fitted log-normal, p-value from
    the same simulations. With fewer than :data:`MIN_VALUES` valid values everything but ``n`` and
    ``n_excluded`` is NaN; with identical values (sigma = 0) the intervals are degenerate and the
    fit tests NaN.
    """
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence}")
    if n_bootstrap < 0 or n_lilliefors < 0:
        raise ValueError("n_bootstrap and n_lilliefors must be >= 0")
    x = np.asarray(values, dtype=np.float64).ravel()
    valid = np.isfinite(x) & (x > 0)
    y = np.log(x[valid])
    result = dict.fromkeys(FIT_KEYS, np.nan)
    result["n"] = int(y.size)
    result["n_excluded"] = int(x.size - y.size)
    if y.size < MIN_VALUES:
        return result

    mu = float(y.mean())
    sigma = float(y.std())  # ddof=0: the maximum-likelihood estimate
    result.update(mu=mu, sigma=sigma, median=float(np.exp(mu)))

    rng = np.random.default_rng(seed)
    if n_bootstrap > 0:
        mus, sigmas = _bootstrap(y, n_bootstrap, rng)
        tail = 100.0 * (1.0 - confidence) / 2.0
        mu_low, mu_high = np.percentile(mus, [tail, 100.0 - tail])
        sigma_low, sigma_high = np.percentile(sigmas, [tail, 100.0 - tail])
        result.update(
            mu_low=float(mu_low),
            mu_high=float(mu_high),
            sigma_low=float(sigma_low),
            sigma_high=float(sigma_high),
            median_low=float(np.exp(mu_low)),
            median_high=float(np.exp(mu_high)),
        )

    if sigma > 0:
        ks = stats.kstest(y, "norm", args=(mu, sigma))
        ad = float(_ks_ad_sorted(np.sort((y - mu) / sigma))[1])
        result.update(ks_statistic=float(ks.statistic), ks_pvalue=float(ks.pvalue), ad_statistic=ad)
        if n_lilliefors > 0:
            null_ks, null_ad = _null_ks_ad(y.size, n_lilliefors, rng)
            result["lilliefors_pvalue"] = _monte_carlo_pvalue(float(ks.statistic), null_ks)
            result["ad_pvalue"] = _monte_carlo_pvalue(ad, null_ad)
    return result


def fit_groups(values, groups, group_column: str = "group", **kwargs) -> pd.DataFrame:
    """:func:`fit_lognormal` for each group (e.g. cluster), one row per group in sorted order.

    ``values`` and ``groups`` are (N,) arrays; values whose group is missing (NaN/None) belong to
    no group. Every group uses the same ``seed``, so a group's row does not depend on which other
    groups exist. ``kwargs`` go to :func:`fit_lognormal`. Columns: ``group_column`` then
    :data:`FIT_KEYS`.
    """
    values = np.asarray(values, dtype=np.float64).ravel()
    labels = pd.Series(np.asarray(groups).ravel())
    if labels.size != values.size:
        raise ValueError(f"values ({values.size}) and groups ({labels.size}) differ in length")
    has_group = labels.notna().to_numpy()
    rows = []
    for name in sorted(labels[has_group].unique()):
        members = has_group & (labels == name).to_numpy()
        rows.append({group_column: name, **fit_lognormal(values[members], **kwargs)})
    return pd.DataFrame(rows, columns=[group_column, *FIT_KEYS])


def lognormal_pdf(x, mu: float, sigma: float) -> np.ndarray:
    """Log-normal probability density at ``x`` (any shape; 0 where x <= 0).

    pdf(x) = exp(-(ln x - mu)^2 / (2 sigma^2)) / (x sigma sqrt(2 pi)), in 1 / (units of x).
    """
    x = np.asarray(x, dtype=np.float64)
    pdf = np.zeros_like(x)
    positive = x > 0
    log_x = np.log(x[positive])
    pdf[positive] = np.exp(-((log_x - mu) ** 2) / (2.0 * sigma**2)) / (
        x[positive] * sigma * np.sqrt(2.0 * np.pi)
    )
    return pdf
