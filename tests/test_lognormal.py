"""Log-normal fits: parameter recovery, bootstrap coverage, goodness of fit, groups, the pdf.

Tolerances follow from the sample size: for n values of ln X ~ Normal(mu, sigma), the MLE mu has
standard error sigma / sqrt(n) and the MLE sigma about sigma / sqrt(2 n).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import integrate, stats

from latentsky.analysis.lognormal import (
    FIT_KEYS,
    MIN_GOF_VALUES,
    _anderson_darling_pvalue,
    _ks_ad_sorted,
    _lilliefors_pvalue,
    fit_groups,
    fit_lognormal,
    lognormal_pdf,
)

MU, SIGMA = -2.5, 0.8  # median exp(-2.5) = 0.082 rad, a typical quiet-to-moderate sigma_phi


def sample(n, seed, mu=MU, sigma=SIGMA):
    return np.random.default_rng(seed).lognormal(mean=mu, sigma=sigma, size=n)


def test_recovers_known_parameters():
    n = 20_000
    fit = fit_lognormal(sample(n, seed=11), n_bootstrap=200)
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
    fit = fit_lognormal(values, n_bootstrap=0)
    assert fit["mu"] == pytest.approx(logs.sum() / 5)
    # ddof=0: divide by n, as the maximum-likelihood estimate does.
    assert fit["sigma"] == pytest.approx(math.sqrt(((logs - logs.mean()) ** 2).sum() / 5))
    # scipy's own MLE with the location pinned at 0 agrees.
    shape, _, scale = stats.lognorm.fit(values, floc=0)
    assert fit["sigma"] == pytest.approx(shape, rel=1e-6)
    assert fit["median"] == pytest.approx(scale, rel=1e-6)
    assert math.isnan(fit["mu_low"])


def test_bootstrap_intervals_cover_the_truth():
    # 200 independent samples of 60 values: a 90% interval should hold the true mu in about 180
    # of them (binomial sd ~ 4.2). The percentile interval of an MLE is a little too narrow at this
    # size, so the bound leaves room for that as well as for chance.
    confidence = 0.90
    hits_mu = hits_sigma = hits_median = 0
    repeats = 200
    for k in range(repeats):
        fit = fit_lognormal(sample(60, seed=1000 + k), 300, confidence, seed=k)
        hits_mu += fit["mu_low"] <= MU <= fit["mu_high"]
        hits_sigma += fit["sigma_low"] <= SIGMA <= fit["sigma_high"]
        hits_median += fit["median_low"] <= math.exp(MU) <= fit["median_high"]
    assert 0.80 <= hits_mu / repeats <= 0.97
    assert 0.75 <= hits_sigma / repeats <= 0.97
    assert hits_median == hits_mu  # exp is monotonic


def planted_records(seed, n_records=100, max_frames=20):
    """Frames of one synthetic dataset: each of ``n_records`` sigma_phi records (independent,
    log-normal with MU, SIGMA) is shared by 1 to ``max_frames`` frames, as stream0 frames share
    a 60-s record. Returns (frame values, frame record ids)."""
    rng = np.random.default_rng(seed)
    records = rng.lognormal(MU, SIGMA, n_records)
    frames = rng.integers(1, max_frames + 1, n_records)
    record_of_frame = np.repeat(np.arange(n_records), frames)
    return records[record_of_frame], record_of_frame


def test_record_bootstrap_reaches_nominal_coverage():
    # 400 planted datasets of 100 records with 1-20 frames each: the 95% intervals over records
    # must hold the planted mu and sigma 92-98% of the time (binomial sd of the rate: 1.1%).
    # Resampling frames as if independent (the old defect) holds them far less often.
    repeats, hits, naive = 400, np.zeros(2), np.zeros(2)
    for k in range(repeats):
        values, records = planted_records(seed=5000 + k)
        fit = fit_lognormal(values, n_bootstrap=500, seed=k, units=records)
        assert fit["n"] == 100 and fit["n_frames"] == len(values)
        hits += [
            fit["mu_low"] <= MU <= fit["mu_high"],
            fit["sigma_low"] <= SIGMA <= fit["sigma_high"],
        ]
        if k < 100:
            frames = fit_lognormal(values, n_bootstrap=200, seed=k)
            naive += [
                frames["mu_low"] <= MU <= frames["mu_high"],
                frames["sigma_low"] <= SIGMA <= frames["sigma_high"],
            ]
    coverage = hits / repeats
    assert 0.92 <= coverage[0] <= 0.98, f"mu: {coverage[0]:.3f}"
    assert 0.92 <= coverage[1] <= 0.98, f"sigma: {coverage[1]:.3f}"
    assert (naive / 100 < 0.7).all(), naive


def test_a_record_counts_once_whatever_its_frames():
    # One record of 20 frames at ln x = 3 among 9 single-frame records at ln x = 0: as records
    # mu = 0.3 (the frames would say 60 / 29 = 2.07), and the record's frames are all counted.
    values = np.exp(np.array([3.0] * 20 + [0.0] * 9))
    records = np.array(["r"] * 20 + [f"q{i}" for i in range(9)], dtype=object)
    fit = fit_lognormal(values, n_bootstrap=0, units=records)
    assert fit["n"] == 10 and fit["n_frames"] == 29 and fit["n_excluded"] == 0
    assert fit["mu"] == pytest.approx(0.3)
    # Without records every frame counts; a missing record makes a frame a unit of its own.
    assert fit_lognormal(values, n_bootstrap=0)["mu"] == pytest.approx(60 / 29)
    records[:2] = None
    assert fit_lognormal(values, n_bootstrap=0, units=records)["n"] == 12
    # With one frame per record the fit is the fit of the frames, bootstrap included.
    single = sample(80, seed=8)
    assert fit_lognormal(single, 100, units=np.arange(80)) == fit_lognormal(single, 100)


def test_fit_groups_count_a_record_once_per_group():
    values = np.array([0.1, 0.1, 0.1, 0.2, 0.3, 0.3, 0.4, 0.5])
    records = np.array([1, 1, 1, 2, 3, 3, 4, 5])
    groups = np.array(["a", "a", "b", "a", "b", "b", "a", "a"], dtype=object)
    table = fit_groups(values, groups, units=records, n_bootstrap=0).set_index("group")
    assert table.loc["a", "n"] == 4 and table.loc["a", "n_frames"] == 5  # records 1, 2, 4, 5
    assert table.loc["b", "n"] == 2 and table.loc["b", "n_frames"] == 3  # records 1, 3
    with pytest.raises(ValueError, match="units"):
        fit_groups(values, groups, units=records[:-1])


def test_bootstrap_is_seeded():
    values = sample(300, seed=5)
    a = fit_lognormal(values, n_bootstrap=100, seed=3)
    b = fit_lognormal(values, n_bootstrap=100, seed=3)
    c = fit_lognormal(values, n_bootstrap=100, seed=4)
    assert a == b
    assert a["mu_low"] != c["mu_low"]


def test_bootstrap_resamples_every_value():
    # 19 values at ln x = 0 and one at ln x = 10 (the last). A resample misses the outlier with
    # probability (19/20)^20 = 0.36 (mu = 0 then) and holds it otherwise (mu >= 0.5): the 2.5th
    # percentile of mu is 0 and the 97.5th at least 0.5, unless the last value is never drawn.
    values = np.array([1.0] * 19 + [math.exp(10.0)])
    fit = fit_lognormal(values, n_bootstrap=400)
    assert fit["mu_low"] == 0.0
    assert fit["mu_high"] >= 0.5


def test_excludes_and_counts_non_positive_and_nan():
    values = np.concatenate([sample(50, seed=2), [0.0, -0.3, np.nan, np.inf]])
    fit = fit_lognormal(values, n_bootstrap=50)
    assert fit["n"] == 50 and fit["n_excluded"] == 4
    assert fit["mu"] == pytest.approx(np.log(values[:50]).mean())


@pytest.mark.parametrize("values", [[], [0.1], [0.1, 0.2], [0.1, 0.2, -1.0, np.nan]])
def test_too_few_values_gives_a_row_of_nans(values):
    fit = fit_lognormal(values)
    assert set(fit) == set(FIT_KEYS)
    valid = sum(1 for v in values if v > 0)
    assert fit["n"] == valid and fit["n_excluded"] == len(values) - valid
    assert fit["n_frames"] == valid
    assert all(math.isnan(fit[k]) for k in FIT_KEYS if k not in ("n", "n_frames", "n_excluded"))


def test_identical_values_do_not_crash():
    fit = fit_lognormal([0.2, 0.2, 0.2, 0.2], n_bootstrap=20)
    assert fit["sigma"] == 0.0 and fit["median"] == pytest.approx(0.2)
    assert math.isnan(fit["ks_statistic"]) and math.isnan(fit["lilliefors_pvalue"])


def test_goodness_of_fit_lognormal_vs_uniform():
    n = 500
    lognormal = fit_lognormal(sample(n, seed=21), n_bootstrap=0)
    # ln of Uniform(0, 1] is minus an exponential: strongly skewed, far from normal.
    uniform = np.random.default_rng(22).uniform(1e-6, 1.0, size=n)
    bad = fit_lognormal(uniform, n_bootstrap=0)
    # Critical KS distance at 1% for known parameters is about 1.63 / sqrt(n) = 0.073; with
    # estimated parameters it is smaller still (Lilliefors: about 1.03 / sqrt(n) = 0.046).
    assert lognormal["ks_statistic"] < 1.03 / math.sqrt(n)
    assert bad["ks_statistic"] > 1.63 / math.sqrt(n)
    assert lognormal["lilliefors_pvalue"] > 0.01 and lognormal["ad_pvalue"] > 0.01
    # Far out in the tails of both null distributions (the analytic p-values are not floored at
    # 1 / (1 + simulations) as Monte Carlo ones are).
    assert bad["lilliefors_pvalue"] < 1e-6 and bad["ad_pvalue"] < 1e-6
    # The classic KS p-value ignores the fitting, so it is never below the corrected one by much.
    assert lognormal["ks_pvalue"] >= lognormal["lilliefors_pvalue"] - 0.05


def test_statistics_agree_with_scipy():
    values = sample(80, seed=31)
    fit = fit_lognormal(values, n_bootstrap=0)
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
    # The helper behind the corrected p-values gives the same numbers.
    z = np.sort((y - fit["mu"]) / fit["sigma"])
    ks_helper, ad_helper = _ks_ad_sorted(z)
    assert float(ks_helper) == pytest.approx(ks.statistic, rel=1e-9)
    assert float(ad_helper) == pytest.approx(ad.statistic, rel=1e-9)


def simulated_null(n, samples, seed):
    """Lilliefors D and A^2 (samples,) of standard normal samples of size n, each standardised with
    its own mean and n - 1 standard deviation, the convention of the published approximations."""
    rng = np.random.default_rng(seed)
    ks, ad = [], []
    rows = max(1, 2_000_000 // n)
    for start in range(0, samples, rows):
        z = np.sort(rng.standard_normal((min(rows, samples - start), n)), axis=1)
        z = (z - z.mean(axis=1, keepdims=True)) / z.std(axis=1, ddof=1, keepdims=True)
        block_ks, block_ad = _ks_ad_sorted(z)
        ks.append(block_ks)
        ad.append(block_ad)
    return np.concatenate(ks), np.concatenate(ad)


@pytest.mark.parametrize(("n", "samples"), [(20, 100_000), (200, 40_000), (2000, 12_000)])
def test_analytic_pvalues_match_a_simulated_null(n, samples):
    # At the statistic values that the simulated null puts at upper-tail probability p, the
    # analytic p-values should give p back. Tolerances: 0.03 where p >= 0.1 (the Lilliefors table is
    # one curve for all n, +-0.025; D'Agostino-Stephens is off by ~0.01 here), 25% of p below
    # (Dallal-Wilkinson and D'Agostino-Stephens are within ~10%; the simulated tail probability
    # carries up to 9% Monte Carlo error at p = 0.01 with 12,000 samples).
    null_ks, null_ad = simulated_null(n, samples, seed=n)
    p = np.array([0.9, 0.5, 0.3, 0.2, 0.15, 0.1, 0.05, 0.02, 0.01])
    tolerance = np.where(p >= 0.1, 0.03, 0.25 * p)
    ks_points = np.quantile(null_ks, 1.0 - p)
    ad_points = np.quantile(null_ad, 1.0 - p)
    lilliefors = np.array([_lilliefors_pvalue(d, n) for d in ks_points])
    anderson_darling = np.array([_anderson_darling_pvalue(a2, n) for a2 in ad_points])
    assert np.all(np.abs(lilliefors - p) <= tolerance), np.round(lilliefors - p, 4)
    assert np.all(np.abs(anderson_darling - p) <= tolerance), np.round(anderson_darling - p, 4)


def test_analytic_pvalues_at_the_published_percentage_points():
    # Independent of the simulations: Stephens (1974), normal with both parameters estimated, upper
    # 10%, 5%, 2.5% and 1% points of the modified statistics: A^2 (1 + 0.75/n + 2.25/n^2) = 0.631,
    # 0.752, 0.873, 1.035 (the D'Agostino-Stephens formula was fitted to these, so within 2%) and
    # D (sqrt(n) - 0.01 + 0.85/sqrt(n)) = 0.819, 0.895, 0.955, 1.035, asymptotic values that lie
    # a little below the points at finite n (hence 20%).
    for n in (50, 1000):
        for level, a_star, d_star in [
            (0.10, 0.631, 0.819),
            (0.05, 0.752, 0.895),
            (0.025, 0.873, 0.955),
            (0.01, 1.035, 1.035),
        ]:
            a2 = a_star / (1 + 0.75 / n + 2.25 / n**2)
            d = d_star / (math.sqrt(n) - 0.01 + 0.85 / math.sqrt(n))
            assert _anderson_darling_pvalue(a2, n) == pytest.approx(level, rel=0.02)
            assert _lilliefors_pvalue(d, n) == pytest.approx(level, rel=0.2)


@pytest.mark.parametrize("n", [MIN_GOF_VALUES, 50, 100, 101, 2000, 35_000])
def test_analytic_pvalues_are_probabilities_falling_with_the_statistic(n):
    # Fine grids from far inside to far beyond the bodies of the null distributions: p stays in
    # [0, 1], starts near 1 and does not jump where the Lilliefors p-value changes from the
    # table to Dallal-Wilkinson (p = 0.1). Lilliefors p never rises; Anderson-Darling's published
    # pieces meet to within 0.004 (a rise of 0.0025 where the last one starts, at 0.6).
    d = np.linspace(0.0, 3.0, 30_001) / math.sqrt(n)
    lilliefors = np.array([_lilliefors_pvalue(x, n) for x in d])
    a2 = np.concatenate([np.linspace(0.0, 3.0, 30_001), np.linspace(3.0, 200.0, 1_001)])
    anderson_darling = np.array([_anderson_darling_pvalue(x, n) for x in a2])
    for p in (lilliefors, anderson_darling):
        assert np.all((p >= 0) & (p <= 1))
        assert p[0] > 0.99 and p[-1] < 1e-20
        assert np.abs(np.diff(p)).max() < 0.005
    assert np.all(np.diff(lilliefors) <= 0)
    assert np.diff(anderson_darling).max() <= 0.003


def test_corrected_pvalues_use_the_published_standardisation():
    # The approximations are for the sample standardised with the n - 1 standard deviation (scipy's
    # anderson does the same), not the ddof=0 fit whose distances are reported; at n = 40 the two
    # conventions give p-values about 5% apart.
    values = sample(40, seed=43)
    y = np.log(values)
    fit = fit_lognormal(values, n_bootstrap=0)
    d = stats.kstest(y, "norm", args=(y.mean(), y.std(ddof=1))).statistic
    a2 = stats.anderson(y, "norm", method="interpolate").statistic
    assert fit["lilliefors_pvalue"] == pytest.approx(_lilliefors_pvalue(d, 40), rel=1e-9)
    assert fit["ad_pvalue"] == pytest.approx(_anderson_darling_pvalue(a2, 40), rel=1e-9)
    assert fit["ks_statistic"] != pytest.approx(d, rel=1e-3)


def test_corrected_pvalues_need_enough_values():
    values = sample(MIN_GOF_VALUES, seed=41)
    enough = fit_lognormal(values, n_bootstrap=0)
    too_few = fit_lognormal(values[:-1], n_bootstrap=0)
    assert 0 < enough["lilliefors_pvalue"] <= 1 and 0 < enough["ad_pvalue"] <= 1
    assert math.isnan(too_few["lilliefors_pvalue"]) and math.isnan(too_few["ad_pvalue"])
    assert not math.isnan(too_few["ks_statistic"]) and not math.isnan(too_few["ad_statistic"])


def test_corrected_pvalues_are_calibrated_and_the_classic_one_is_not():
    # Under the null (log-normal data), a valid p-value is uniform: about 10% of them fall below
    # 0.1 (binomial sd over 1000 fits: 0.95%). The classic KS p-value, computed as if the fitted
    # parameters were known, is far too large, so it falls below 0.1 much less often.
    fits = [fit_lognormal(sample(30, seed=2000 + k), n_bootstrap=0) for k in range(1000)]
    for key in ("lilliefors_pvalue", "ad_pvalue"):
        assert 0.07 <= np.mean([fit[key] < 0.1 for fit in fits]) <= 0.13, key
    assert np.mean([fit["ks_pvalue"] < 0.1 for fit in fits]) < 0.03


def test_fit_groups_one_sorted_row_per_group():
    rng = np.random.default_rng(51)
    a = rng.lognormal(-3.0, 0.5, size=4000)
    b = rng.lognormal(-1.5, 1.0, size=4000)
    values = np.concatenate([b, a, [0.1, 0.2]])
    groups = np.array(["b"] * 4000 + ["a"] * 4000 + [None, None], dtype=object)
    table = fit_groups(values, groups, n_bootstrap=50)
    assert list(table.columns) == ["group", *FIT_KEYS]
    assert table["group"].tolist() == ["a", "b"]
    assert table["n"].tolist() == [4000, 4000]
    # 4 standard errors, as in test_recovers_known_parameters.
    assert table["mu"].tolist() == pytest.approx([-3.0, -1.5], abs=4 * 1.0 / math.sqrt(4000))
    assert table["sigma"].tolist() == pytest.approx([0.5, 1.0], abs=4 * 1.0 / math.sqrt(8000))
    # A group's row does not depend on the other groups.
    alone = fit_lognormal(a, n_bootstrap=50)
    assert table.iloc[0].drop("group").to_dict() == pytest.approx(alone, nan_ok=True)


def test_fit_groups_with_integer_clusters_and_a_tiny_group():
    values = np.concatenate([sample(30, seed=61), [0.3, 0.4]])
    groups = np.array([2] * 30 + [0, 0])
    table = fit_groups(values, groups, group_column="cluster", n_bootstrap=10)
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
