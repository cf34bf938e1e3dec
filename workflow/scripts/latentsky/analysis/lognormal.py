"""Log-normal fits of sigma_phi per cluster, with bootstrap intervals and goodness-of-fit tests.

Independent units. One sigma_phi record covers 60 s, so up to 20 stream0 frames (3-s cadence)
carry the same value; treating them as 20 independent values makes every interval about
sqrt(20) = 4.5 times too narrow and every test far too confident. Given each value's ``units`` (the
record that measured it), a fit first takes **one value per unit**: every record counts once in
each group that holds at least one of its frames, however many frames that is. The frame count
is not a weight because it says how often the camera fired, not how the ionosphere behaved; with
one frame per record (a 60-s cadence) the fit is exactly the fit of the frames. The fit, the
bootstrap (which resamples units) and the goodness-of-fit tests then all see the independent
values; ``n`` counts them and ``n_frames`` the frames behind them.

Intervals are bias-corrected and accelerated (BCa, Efron 1987) bootstrap intervals: the
percentile interval adjusted by the bootstrap's median bias z0 and the acceleration a from the
jackknife (leave one unit out, in closed form for a mean and a standard deviation). The plain
percentile interval of the MLE sigma covers the truth too rarely for small groups (85% for a
nominal 95% at 30 units, 90% at 60); BCa brings that to 89% and 92%, and both parameters reach
94-95% from about 100 units (tests/test_lognormal.py checks 92-98% over 400 planted datasets).

If X is log-normal, ln X ~ Normal(mu, sigma). The maximum-likelihood estimates are the mean and the
standard deviation **with ddof=0** of ln X (the MLE of a normal variance divides by n, not n - 1;
for the cluster sizes here, hundreds to thousands of values, the difference is negligible).
The median of X is exp(mu).

Goodness of fit. The classic Kolmogorov-Smirnov p-value (``ks_pvalue``) assumes the reference
distribution was fixed in advance; here mu and sigma were estimated from the same data, which pulls
the fitted CDF towards the empirical one, so that p-value is too large (optimistic). The null
distribution of a normality statistic with estimated mean and variance depends on n only
(location-scale invariance), and published approximations of it give the corrected p-values without
simulating anything per fit:

- ``lilliefors_pvalue``: the Lilliefors test (the KS distance D to the fitted normal). In the tail
  (p <= 0.1) the analytic approximation of Dallal and Wilkinson (1986), fitted for 5 <= n <= 100;
  for n > 100 it is evaluated at n = 100 with the D that has the same modified statistic
  D* = D (sqrt(n) - 0.01 + 0.85 / sqrt(n)) of Stephens (1974), whose percentage points hardly depend
  on n. (Dallal and Wilkinson's own extrapolation, D (n/100)^0.49, overstated simulated tail
  p-values by a quarter at n = 2000 and by more beyond; this mapping stayed within 20% up to
  n = 20,000.) Above p = 0.1, linear interpolation of p in D* between Monte Carlo percentage points
  (:data:`_LILLIEFORS_BODY`, from ``benchmarks/lilliefors_table.py``).
- ``ad_pvalue``: the Anderson-Darling test, with Stephens' modified statistic
  A*^2 = A^2 (1 + 0.75/n + 2.25/n^2) and the piecewise p-value formula of D'Agostino and Stephens
  (1986, Table 4.9) for a normal with both parameters estimated.

These approximations were derived for the statistics of the sample standardised with the **n - 1**
standard deviation, as in Lilliefors (1967) and Stephens (1974). The p-values are therefore computed
from the sample standardised that way, which is the published test exactly; the reported
``ks_statistic`` and ``ad_statistic`` stay the distances to the maximum-likelihood (ddof=0) fit.
The two standardisations differ by the factor sqrt(n / (n - 1)), which moves D by at most 0.121 / n
(under 1% of the median D from n = 500 on). tests/test_lognormal.py checks both p-values against a
null simulated in the test: within 0.03 for p >= 0.1 and 25% (relative) below, for n = 20 to 2000.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import special, stats

#: Keys of the dict returned by :func:`fit_lognormal`, in order.
FIT_KEYS = (
    "n",
    "n_frames",
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
#: Fewest valid values for the Lilliefors and Anderson-Darling p-values (NaN below): the published
#: approximations start at n = 5 (Dallal and Wilkinson) and the Anderson-Darling formula is off by
#: up to 0.09 in the body of the distribution at n = 5, 0.06 at n = 8 (Monte Carlo check).
MIN_GOF_VALUES = 8
# Cap on the elements of one vectorised resampling block (about 16 MB of float64), so that a
# cluster of 35,000 values does not need a 1000 x 35,000 array at once.
_MAX_BLOCK_ELEMENTS = 2_000_000

# (upper-tail probability p, percentage point of Stephens' modified Lilliefors statistic D*) for
# p >= 0.15: the Monte Carlo mean over 10 <= n <= 5000 from benchmarks/lilliefors_table.py, closed
# by (1, 0). Over that range of n the points vary by +-0.01 in D*, about +-0.025 in p.
_LILLIEFORS_BODY = (
    (1.0, 0.0),
    (0.999, 0.319),
    (0.99, 0.367),
    (0.95, 0.420),
    (0.9, 0.454),
    (0.8, 0.500),
    (0.7, 0.538),
    (0.6, 0.574),
    (0.5, 0.609),
    (0.4, 0.646),
    (0.3, 0.690),
    (0.25, 0.716),
    (0.2, 0.745),
    (0.15, 0.781),
)


def _blocks(total: int, n: int):
    """(start, stop) blocks of resamples, each with at most ``_MAX_BLOCK_ELEMENTS`` elements."""
    rows = max(1, _MAX_BLOCK_ELEMENTS // max(n, 1))
    for start in range(0, total, rows):
        yield start, min(total, start + rows)


def _ks_ad_sorted(z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """KS distance and Anderson-Darling A^2 of sorted ``z`` (..., n) against the standard normal.

    KS = max_i max(i/n - F(z_i), F(z_i) - (i-1)/n);
    A^2 = -n - (1/n) sum_i (2i - 1) [ln F(z_i) + ln(1 - F(z_{n+1-i}))].
    1 - F is taken as F(-z) and both logarithms by ``log_ndtr``, exact far into the tails.
    """
    n = z.shape[-1]
    i = np.arange(1, n + 1)
    cdf = special.ndtr(z)
    ks = np.maximum((i / n - cdf).max(axis=-1), (cdf - (i - 1) / n).max(axis=-1))
    log_sf_reversed = special.log_ndtr(-z)[..., ::-1]
    ad = -n - ((2 * i - 1) * (special.log_ndtr(z) + log_sf_reversed)).sum(axis=-1) / n
    return ks, ad


def _stephens_factor(n: int) -> float:
    """D* / D, Stephens' (1974) modification of the Lilliefors statistic for n values."""
    return np.sqrt(n) - 0.01 + 0.85 / np.sqrt(n)


def _lilliefors_pvalue(d: float, n: int) -> float:
    """Upper-tail p-value of the Lilliefors statistic ``d`` for ``n`` >= 5 values.

    ``d`` is the KS distance of the sample standardised with its mean and n - 1 standard deviation.
    Dallal-Wilkinson where it gives p <= 0.1 (for n > 100 at n = 100 and the same D*), else
    interpolation in :data:`_LILLIEFORS_BODY` up to that approximation's own 10% point, so that p
    is continuous and non-increasing in ``d``. See the module docstring.
    """
    m = min(n, 100)
    d_m = d * _stephens_factor(n) / _stephens_factor(m)  # the same D* at m values (d when n <= 100)
    # Dallal and Wilkinson (1986), fitted for 5 <= m <= 100 where p <= 0.1:
    # ln p = -7.01256 d^2 (m + 2.78019) + 2.99587 d sqrt(m + 2.78019) - 0.122119
    #        + 0.974598 / sqrt(m) + 1.67997 / m, a downward parabola -a d^2 + b d + c.
    a = 7.01256 * (m + 2.78019)
    b = 2.99587 * np.sqrt(m + 2.78019)
    c = -0.122119 + 0.974598 / np.sqrt(m) + 1.67997 / m
    # Its 10% point is the larger root of ln p = ln 0.1 (the other one is negative).
    d_m10 = (b + np.sqrt(b * b + 4.0 * a * (c - np.log(0.1)))) / (2.0 * a)
    if d_m >= d_m10:
        return float(np.exp(-a * d_m**2 + b * d_m + c))
    p_knots, x_knots = zip(*_LILLIEFORS_BODY, (0.1, d_m10 * _stephens_factor(m)), strict=True)
    return float(np.interp(d_m * _stephens_factor(m), x_knots, p_knots))


def _anderson_darling_pvalue(a2: float, n: int) -> float:
    """Upper-tail p-value of A^2 for a normal with estimated mean and variance (n - 1 standardised).

    D'Agostino and Stephens (1986, Table 4.9), with the modified statistic
    Z = A^2 (1 + 0.75/n + 2.25/n^2): p = 1 - exp(-13.436 + 101.14 Z - 223.73 Z^2) for Z < 0.2;
    1 - exp(-8.318 + 42.796 Z - 59.938 Z^2) for 0.2 <= Z < 0.34; exp(0.9177 - 4.279 Z - 1.38 Z^2)
    for 0.34 <= Z < 0.6; exp(1.2937 - 5.709 Z + 0.0186 Z^2) from 0.6 on. The pieces meet to within
    0.004 in p.
    """
    z = a2 * (1.0 + 0.75 / n + 2.25 / n**2)
    if z < 0.2:
        p = 1.0 - np.exp(-13.436 + 101.14 * z - 223.73 * z**2)
    elif z < 0.34:
        p = 1.0 - np.exp(-8.318 + 42.796 * z - 59.938 * z**2)
    elif z < 0.6:
        p = np.exp(0.9177 - 4.279 * z - 1.38 * z**2)
    else:
        # The last parabola turns up beyond its vertex at 5.709 / (2 * 0.0186) = 153.5, where p is
        # already about 1e-190; holding it there keeps p non-increasing.
        z = min(z, 5.709 / (2.0 * 0.0186))
        p = np.exp(1.2937 - 5.709 * z + 0.0186 * z**2)
    return float(min(max(p, 0.0), 1.0))


def _bootstrap(y: np.ndarray, n_bootstrap: int, rng: np.random.Generator, progress=None):
    """Bootstrap replicates (n_bootstrap,) of the MLE mu and sigma of ``y`` (n,).

    ``progress`` (optional) is called with the number of replicates done after each block.
    """
    mus = np.empty(n_bootstrap)
    sigmas = np.empty(n_bootstrap)
    for start, stop in _blocks(n_bootstrap, y.size):
        resample = y[rng.integers(0, y.size, size=(stop - start, y.size))]
        mus[start:stop] = resample.mean(axis=1)
        sigmas[start:stop] = resample.std(axis=1)
        if progress is not None:
            progress(stop - start)
    return mus, sigmas


def _jackknife(y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Leave-one-out MLE mu and sigma of ``y`` (n,), each (n,), in closed form (O(n))."""
    n = y.size
    centred = y - y.mean()  # centring first keeps the sums of squares accurate
    total, squares = centred.sum(), (centred**2).sum()
    mu = (total - centred) / (n - 1)
    variance = (squares - centred**2) / (n - 1) - mu**2
    return mu + y.mean(), np.sqrt(np.maximum(variance, 0.0))


def _bca_interval(
    replicates: np.ndarray, estimate: float, jackknife: np.ndarray, confidence: float
) -> tuple[float, float]:
    """BCa bootstrap interval (Efron 1987) of one statistic.

    z0 = Phi^-1(share of replicates below the estimate, ties counted half); acceleration
    a = sum(d^3) / (6 sum(d^2)^1.5) with d the jackknife values' deviations from their mean; the
    interval is the replicates' percentiles at Phi(z0 + (z0 + z) / (1 - a (z0 + z))) for
    z = Phi^-1 of each tail. Falls back to the percentile interval where z0 or a is undefined
    (every replicate on one side, a degenerate jackknife).
    """
    tail = (1.0 - confidence) / 2.0
    levels = np.array([tail, 1.0 - tail])
    below = (np.sum(replicates < estimate) + 0.5 * np.sum(replicates == estimate)) / replicates.size
    d = jackknife.mean() - jackknife
    spread = (d**2).sum()
    if 0.0 < below < 1.0 and spread > 0.0:
        z0 = special.ndtri(below)
        a = (d**3).sum() / (6.0 * spread**1.5)
        z = special.ndtri(levels)
        levels = special.ndtr(z0 + (z0 + z) / (1.0 - a * (z0 + z)))
    low, high = np.percentile(replicates, 100.0 * levels)
    return float(low), float(high)


def unit_values(values, units=None) -> tuple[np.ndarray, int, int]:
    """ln of one value per independent unit: (ln values (n_units,), frames used, frames excluded).

    ``values`` (N,): NaN, infinite and non-positive values are excluded (and counted). ``units``
    (N,) names the unit (e.g. the sigma_phi record) of each value; None: every value is its own
    unit. Units keep the order of their first value; a unit's value is the mean of the ln values
    of its members, which are equal when the unit is a record. A valid value whose unit is
    missing (None, NaN, NaT) is a unit of its own.
    """
    x = np.asarray(values, dtype=np.float64).ravel()
    valid = np.isfinite(x) & (x > 0)
    y = np.log(x[valid])
    if units is None:
        return y, int(y.size), int(x.size - y.size)
    units = pd.Series(np.asarray(units, dtype=object).ravel())
    if units.size != x.size:
        raise ValueError(f"values ({x.size}) and units ({units.size}) differ in length")
    codes, uniques = pd.factorize(units[valid], sort=False)
    codes = np.asarray(codes)
    alone = codes < 0  # no unit: a unit of its own
    codes[alone] = len(uniques) + np.arange(alone.sum())
    n_units = len(uniques) + int(alone.sum())
    per_unit = np.bincount(codes, weights=y, minlength=n_units) / np.bincount(
        codes, minlength=n_units
    )
    return per_unit, int(y.size), int(x.size - y.size)


def fit_lognormal(
    values,
    n_bootstrap: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
    units=None,
    progress=None,
) -> dict:
    """Maximum-likelihood log-normal fit of positive values, with uncertainties and fit tests.

    Parameters
    ----------
    values : array-like of any shape, e.g. sigma_phi in rad. NaN, infinite and non-positive values
        are excluded and counted in ``n_excluded``.
    n_bootstrap : number of bootstrap resamples for the BCa intervals (0: intervals NaN).
    confidence : coverage of the intervals, e.g. 0.95.
    seed : seed of the bootstrap's random generator, so the result is reproducible.
    units : optional, same length as ``values``: the independent unit of each value (the
        sigma_phi record). The fit, bootstrap and tests use one value per unit (see
        :func:`unit_values` and the module docstring). None: every value is independent.
    progress : optional callable, called with the number of bootstrap replicates done.

    Returns
    -------
    dict with the keys :data:`FIT_KEYS`:
    ``n`` (independent values used: units, or valid values without ``units``), ``n_frames``
    (valid values behind them), ``n_excluded`` (values excluded); ``mu`` and ``sigma``: mean and
    standard deviation (ddof=0, the MLE) of ln(values), in ln-units of the input; ``median`` =
    exp(mu), in units of the input; ``mu_low``/``mu_high``, ``sigma_low``/``sigma_high``,
    ``median_low``/``median_high``: BCa bootstrap intervals over units (the median interval is
    exp of the mu interval, exp being monotonic); ``ks_statistic``: KS distance to the fitted log-normal; ``ks_pvalue``: the classic
    KS p-value, **optimistic** because the parameters were fitted to the same data;
    ``lilliefors_pvalue``: the Lilliefors test's p-value, corrected for the estimation;
    ``ad_statistic`` and ``ad_pvalue``: Anderson-Darling against the fitted log-normal and its
    corrected p-value (both p-values analytic, see the module docstring). With fewer than
    :data:`MIN_VALUES` valid values everything but ``n`` and ``n_excluded`` is NaN; with fewer than
    :data:`MIN_GOF_VALUES` the two corrected p-values are NaN; with identical values (sigma = 0) the
    intervals are degenerate and the fit tests NaN.
    """
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence}")
    if n_bootstrap < 0:
        raise ValueError("n_bootstrap must be >= 0")
    y, n_frames, n_excluded = unit_values(values, units)
    result = dict.fromkeys(FIT_KEYS, np.nan)
    result.update(n=int(y.size), n_frames=n_frames, n_excluded=n_excluded)
    if y.size < MIN_VALUES:
        return result

    mu = float(y.mean())
    sigma = float(y.std())  # ddof=0: the maximum-likelihood estimate
    result.update(mu=mu, sigma=sigma, median=float(np.exp(mu)))

    if n_bootstrap > 0:
        mus, sigmas = _bootstrap(y, n_bootstrap, np.random.default_rng(seed), progress)
        jack_mu, jack_sigma = _jackknife(y)
        mu_low, mu_high = _bca_interval(mus, mu, jack_mu, confidence)
        sigma_low, sigma_high = _bca_interval(sigmas, sigma, jack_sigma, confidence)
        result.update(
            mu_low=float(mu_low),
            mu_high=float(mu_high),
            sigma_low=float(sigma_low),
            sigma_high=float(sigma_high),
            median_low=float(np.exp(mu_low)),
            median_high=float(np.exp(mu_high)),
        )

    if sigma > 0:
        z = np.sort((y - mu) / sigma)
        ks = stats.kstest(y, "norm", args=(mu, sigma))
        ad = float(_ks_ad_sorted(z)[1])
        result.update(ks_statistic=float(ks.statistic), ks_pvalue=float(ks.pvalue), ad_statistic=ad)
        if y.size >= MIN_GOF_VALUES:
            # The published approximations are for the n - 1 standardisation (module docstring).
            ks_1, ad_1 = _ks_ad_sorted(z * np.sqrt((y.size - 1) / y.size))
            result["lilliefors_pvalue"] = _lilliefors_pvalue(float(ks_1), y.size)
            result["ad_pvalue"] = _anderson_darling_pvalue(float(ad_1), y.size)
    return result


def fit_groups(values, groups, group_column: str = "group", units=None, **kwargs) -> pd.DataFrame:
    """:func:`fit_lognormal` for each group (e.g. cluster), one row per group in sorted order.

    ``values`` and ``groups`` are (N,) arrays; values whose group is missing (NaN/None) belong to
    no group. ``units`` (N,), optional: each value's independent unit (its sigma_phi record);
    within a group a unit counts once. Every group uses the same ``seed``, so a group's row does
    not depend on which other groups exist. ``kwargs`` go to :func:`fit_lognormal`. Columns:
    ``group_column`` then :data:`FIT_KEYS`.
    """
    values = np.asarray(values, dtype=np.float64).ravel()
    labels = pd.Series(np.asarray(groups).ravel())
    if labels.size != values.size:
        raise ValueError(f"values ({values.size}) and groups ({labels.size}) differ in length")
    if units is not None:
        units = np.asarray(units, dtype=object).ravel()
        if units.size != values.size:
            raise ValueError(f"values ({values.size}) and units ({units.size}) differ in length")
    has_group = labels.notna().to_numpy()
    rows = []
    for name in sorted(labels[has_group].unique()):
        members = has_group & (labels == name).to_numpy()
        fit = fit_lognormal(
            values[members], units=None if units is None else units[members], **kwargs
        )
        rows.append({group_column: name, **fit})
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


def fit_table(values, groupings: dict, units=None, **kwargs) -> pd.DataFrame:
    """:func:`fit_groups` for each grouping of the same values, stacked.

    ``groupings`` maps a group type (``"cluster"``, ``"label"``, ``"cluster_site"``) to the
    ``(N,)`` group of every value (None/NaN: in no group). ``units`` (N,), optional: each value's
    independent unit (see :func:`fit_lognormal`). Returns columns ``group_type``, ``group`` and
    :data:`FIT_KEYS`, group types in the order given, empty ones left out.
    """
    values = np.asarray(values, dtype=np.float64)
    tables = []
    for group_type, groups in groupings.items():
        groups = pd.Series(np.asarray(groups, dtype=object))
        if not groups.notna().any():
            continue
        fit = fit_groups(values, groups.to_numpy(), group_column="group", units=units, **kwargs)
        fit.insert(0, "group_type", group_type)
        tables.append(fit)
    return pd.concat(tables, ignore_index=True) if tables else pd.DataFrame()


def count_groups(groupings: dict) -> int:
    """The number of rows :func:`fit_table` gives for ``groupings`` (for progress reports)."""
    return sum(
        pd.Series(np.asarray(g, dtype=object)).dropna().nunique() for g in groupings.values()
    )
