"""Log-normal fits: parameter recovery, bootstrap coverage, goodness of fit, groups, the pdf.

Tolerances follow from the sample size: for n values of ln X ~ Normal(mu, sigma), the MLE mu has
standard error sigma / sqrt(n) and the MLE sigma about sigma / sqrt(2 n).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import integrate, stats

from latentsky.lognormal import (
    FIT_KEYS,
    _ks_ad_sorted,
    _null_ks_ad,
    fit_groups,
    fit_lognormal,
    lognormal_pdf,
)

MU, SIGMA = -2.5, 0.8  # median exp(-2.5) = 0.082 rad, a typical quiet-to-moderate sigma_phi


def sample(n, seed, mu=MU, sigma=SIGMA):
    return np.random.default_rng(seed).lognormal(mean=mu, sigma=sigma, size=n)


def test_recovers_known_parameters():
    n = 20_000
    fit = fit_lognormal(sample(n, seed=11), n_bootstrap=200, n_lilliefors=0)
    se_mu = SIGMA / math.sqrt(n)  # 0.0057
    se_sigma = SIGMA / math.sqrt(2 * n)  # 0.0040
    assert fit["n"] == n and fit["n_excluded"] == 0
    assert abs(fit["mu"] - MU) < 4 * se_mu
    assert abs(fit["sigma"] - SIGMA) < 4 * se_sigma
    assert fit["median"] == pytest.approx(math.exp(fit["mu"]))
    # The bootstrap interval has the width the standard error predicts (2 * 1.96 SE), within the
    # scatter of 200 resamples.
    assert fit["mu_high"] - fit["mu_low"] == pytest.approx(2 * 1.96 * se_mu, rel=0.2)
    assert fit["sigma_high"] - fit["sigma_low"] == pytest.approx(2 * 1.96 * se_sigma, rel=0.2)
    assert fit["median_low"] == pytest.approx(math.exp(fit["mu_low"]))
    assert fit["median_low"] < fit["median"] < fit["median_high"]


def test_mle_definitions():
    values = np.array([0.05, 0.1, 0.2, 0.4, 0.8])
    logs = np.log(values)
    fit = fit_lognormal(values, n_bootstrap=0, n_lilliefors=0)
    assert fit["mu"] == pytest.approx(logs.sum() / 5)
    # ddof=0: divide by n, as the maximum-likelihood estimate does.
    assert fit["sigma"] == pytest.approx(math.sqrt(((logs - logs.mean()) ** 2).sum() / 5))
    # scipy's own MLE with the location pinned at 0 agrees.
    shape, _, scale = stats.lognorm.fit(values, floc=0)
    assert fit["sigma"] == pytest.approx(shape, rel=1e-6)
    assert fit["median"] == pytest.approx(scale, rel=1e-6)
    assert math.isnan(fit["mu_low"]) and math.isnan(fit["lilliefors_pvalue"])


def test_bootstrap_intervals_cover_the_truth():
    # 200 independent samples of 60 values: a 90% interval should hold the true mu in about 180
    # of them (binomial sd ~ 4.2). The percentile interval of an MLE is a little too narrow at this
    # size, so the bound leaves room for that as well as for chance.
    confidence = 0.90
    hits_mu = hits_sigma = hits_median = 0
    repeats = 200
    for k in range(repeats):
        fit = fit_lognormal(sample(60, seed=1000 + k), 300, confidence, seed=k, n_lilliefors=0)
        hits_mu += fit["mu_low"] <= MU <= fit["mu_high"]
        hits_sigma += fit["sigma_low"] <= SIGMA <= fit["sigma_high"]
        hits_median += fit["median_low"] <= math.exp(MU) <= fit["median_high"]
    assert 0.80 <= hits_mu / repeats <= 0.97
    assert 0.75 <= hits_sigma / repeats <= 0.97
    assert hits_median == hits_mu  # exp is monotonic


def test_bootstrap_is_seeded():
    values = sample(300, seed=5)
    a = fit_lognormal(values, n_bootstrap=100, seed=3, n_lilliefors=50)
    b = fit_lognormal(values, n_bootstrap=100, seed=3, n_lilliefors=50)
    c = fit_lognormal(values, n_bootstrap=100, seed=4, n_lilliefors=50)
    assert a == b
    assert a["mu_low"] != c["mu_low"]


def test_bootstrap_resamples_every_value():
    # 19 values at ln x = 0 and one at ln x = 10 (the last). A resample misses the outlier with
    # probability (19/20)^20 = 0.36 (mu = 0 then) and holds it otherwise (mu >= 0.5): the 2.5th
    # percentile of mu is 0 and the 97.5th at least 0.5, unless the last value is never drawn.
    values = np.array([1.0] * 19 + [math.exp(10.0)])
    fit = fit_lognormal(values, n_bootstrap=400, n_lilliefors=0)
    assert fit["mu_low"] == 0.0
    assert fit["mu_high"] >= 0.5


def test_excludes_and_counts_non_positive_and_nan():
    values = np.concatenate([sample(50, seed=2), [0.0, -0.3, np.nan, np.inf]])
    fit = fit_lognormal(values, n_bootstrap=50, n_lilliefors=0)
    assert fit["n"] == 50 and fit["n_excluded"] == 4
    assert fit["mu"] == pytest.approx(np.log(values[:50]).mean())


@pytest.mark.parametrize("values", [[], [0.1], [0.1, 0.2], [0.1, 0.2, -1.0, np.nan]])
def test_too_few_values_gives_a_row_of_nans(values):
    fit = fit_lognormal(values)
    assert set(fit) == set(FIT_KEYS)
    valid = sum(1 for v in values if v > 0)
    assert fit["n"] == valid and fit["n_excluded"] == len(values) - valid
    assert all(math.isnan(fit[k]) for k in FIT_KEYS if k not in ("n", "n_excluded"))


def test_identical_values_do_not_crash():
    fit = fit_lognormal([0.2, 0.2, 0.2, 0.2], n_bootstrap=20, n_lilliefors=20)
    assert fit["sigma"] == 0.0 and fit["median"] == pytest.approx(0.2)
    assert math.isnan(fit["ks_statistic"]) and math.isnan(fit["lilliefors_pvalue"])


def test_goodness_of_fit_lognormal_vs_uniform():
    n = 500
    lognormal = fit_lognormal(sample(n, seed=21), n_bootstrap=0, n_lilliefors=400)
    # ln of Uniform(0, 1] is minus an exponential: strongly skewed, far from normal.
    uniform = np.random.default_rng(22).uniform(1e-6, 1.0, size=n)
    bad = fit_lognormal(uniform, n_bootstrap=0, n_lilliefors=400)
    # Critical KS distance at 1% for known parameters is about 1.63 / sqrt(n) = 0.073; with
    # estimated parameters it is smaller still (Lilliefors: about 1.03 / sqrt(n) = 0.046).
    assert lognormal["ks_statistic"] < 1.03 / math.sqrt(n)
    assert bad["ks_statistic"] > 1.63 / math.sqrt(n)
    assert lognormal["lilliefors_pvalue"] > 0.01 and lognormal["ad_pvalue"] > 0.01
    assert bad["lilliefors_pvalue"] < 0.01 and bad["ad_pvalue"] < 0.01
    # No simulated sample comes near the uniform data, so the p-value is the smallest a Monte Carlo
    # test with 400 simulations can give, (1 + 0) / (1 + 400), never 0.
    assert bad["lilliefors_pvalue"] == pytest.approx(1 / 401)
    # The classic KS p-value ignores the fitting, so it is never below the corrected one by much.
    assert lognormal["ks_pvalue"] >= lognormal["lilliefors_pvalue"] - 0.05


def test_statistics_agree_with_scipy():
    values = sample(80, seed=31)
    fit = fit_lognormal(values, n_bootstrap=0, n_lilliefors=0)
    y = np.log(values)
    reference = stats.lognorm(s=fit["sigma"], scale=math.exp(fit["mu"]))
    ks = stats.kstest(values, reference.cdf)
    assert fit["ks_statistic"] == pytest.approx(ks.statistic, rel=1e-9)
    assert fit["ks_pvalue"] == pytest.approx(ks.pvalue, rel=1e-6)
    # Anderson-Darling against the fully specified fitted normal, computed by scipy.
    ad = stats.goodness_of_fit(
        stats.norm,
        y,
        known_params={"loc": fit["mu"], "scale": fit["sigma"]},
        statistic="ad",
        n_mc_samples=1,
        rng=0,
    )
    assert fit["ad_statistic"] == pytest.approx(ad.statistic, rel=1e-9)
    # The helpers used for the simulated null distributions give the same numbers.
    z = np.sort((y - fit["mu"]) / fit["sigma"])
    ks_helper, ad_helper = _ks_ad_sorted(z)
    assert float(ks_helper) == pytest.approx(ks.statistic, rel=1e-9)
    assert float(ad_helper) == pytest.approx(ad.statistic, rel=1e-9)


def test_lilliefors_null_matches_the_published_critical_value():
    # Lilliefors (1967), with the large-sample form of Dallal and Wilkinson (1986): the 5% critical
    # KS distance of a normal sample against its own fitted normal is about 0.886 / sqrt(n) for
    # n > 30 (vs 1.36 / sqrt(n) with known parameters). The 95th percentile of 4000 simulations
    # carries about 1.5% Monte Carlo error.
    n = 100
    null_ks, null_ad = _null_ks_ad(n, 4000, np.random.default_rng(7))
    assert np.percentile(null_ks, 95) == pytest.approx(0.886 / math.sqrt(n), rel=0.05)
    # Stephens (1974): the 5% point of A^2 with both parameters estimated is 0.752 / (1 + 0.75/n
    # + 2.25/n^2) = 0.747 at n = 100.
    assert np.percentile(null_ad, 95) == pytest.approx(
        0.752 / (1 + 0.75 / n + 2.25 / n**2), rel=0.06
    )


def test_lilliefors_pvalue_is_calibrated_and_the_classic_one_is_not():
    # Under the null (log-normal data), a valid p-value is uniform: about 10% of them fall below
    # 0.1 (binomial sd over 300 fits: 1.7%). The classic KS p-value, computed as if the fitted
    # parameters were known, is far too large, so it falls below 0.1 much less often.
    p_lilliefors, p_classic = [], []
    for k in range(300):
        fit = fit_lognormal(sample(30, seed=2000 + k), n_bootstrap=0, seed=k, n_lilliefors=100)
        p_lilliefors.append(fit["lilliefors_pvalue"])
        p_classic.append(fit["ks_pvalue"])
    below_lilliefors = np.mean(np.array(p_lilliefors) < 0.1)
    below_classic = np.mean(np.array(p_classic) < 0.1)
    assert 0.05 <= below_lilliefors <= 0.15
    assert below_classic < 0.04


def test_fit_groups_one_sorted_row_per_group():
    rng = np.random.default_rng(51)
    a = rng.lognormal(-3.0, 0.5, size=4000)
    b = rng.lognormal(-1.5, 1.0, size=4000)
    values = np.concatenate([b, a, [0.1, 0.2]])
    groups = np.array(["b"] * 4000 + ["a"] * 4000 + [None, None], dtype=object)
    table = fit_groups(values, groups, n_bootstrap=50, n_lilliefors=0)
    assert list(table.columns) == ["group", *FIT_KEYS]
    assert table["group"].tolist() == ["a", "b"]
    assert table["n"].tolist() == [4000, 4000]
    # 4 standard errors, as in test_recovers_known_parameters.
    assert table["mu"].tolist() == pytest.approx([-3.0, -1.5], abs=4 * 1.0 / math.sqrt(4000))
    assert table["sigma"].tolist() == pytest.approx([0.5, 1.0], abs=4 * 1.0 / math.sqrt(8000))
    # A group's row does not depend on the other groups.
    alone = fit_lognormal(a, n_bootstrap=50, n_lilliefors=0)
    assert table.iloc[0].drop("group").to_dict() == pytest.approx(alone, nan_ok=True)


def test_fit_groups_with_integer_clusters_and_a_tiny_group():
    values = np.concatenate([sample(30, seed=61), [0.3, 0.4]])
    groups = np.array([2] * 30 + [0, 0])
    table = fit_groups(values, groups, group_column="cluster", n_bootstrap=10, n_lilliefors=0)
    assert table["cluster"].tolist() == [0, 2]
    assert table.loc[0, "n"] == 2 and math.isnan(table.loc[0, "mu"])
    with pytest.raises(ValueError, match="differ in length"):
        fit_groups(values, groups[:-1])


def test_pdf_matches_scipy():
    x = np.array([-1.0, 0.0, 1e-4, 0.01, 0.08, 0.5, 3.0])
    got = lognormal_pdf(x, MU, SIGMA)
    expected = stats.lognorm(s=SIGMA, scale=math.exp(MU)).pdf(x)
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=0)
    assert got[0] == 0 and got[1] == 0
    # It is a density: it integrates to 1 (in ln x, where the integrand is smooth).
    log_x = np.linspace(MU - 10 * SIGMA, MU + 10 * SIGMA, 20001)
    integral = integrate.trapezoid(lognormal_pdf(np.exp(log_x), MU, SIGMA) * np.exp(log_x), log_x)
    assert integral == pytest.approx(1.0, abs=1e-9)
