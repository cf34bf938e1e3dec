"""Window and cluster features of photometer data, candidate ranking and the ROC AUC."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from latentsky.analysis.tle import (
    align_on_peak,
    anomaly_auc,
    band_ratios,
    cluster_table,
    cluster_waveforms,
    feature_table,
    rank_candidates,
    robust_noise,
    roc_auc,
    window_features,
)
from latentsky.demo.tle import episode_signal, pulse, rise_for

FS = 100_000.0  # Hz
US = 1e6 / FS  # microseconds per sample


def trapezoid(n: int, start: int, rise: int, top: int, fall: int, height: float) -> np.ndarray:
    """0 until ``start``, a linear rise over ``rise`` samples, flat ``top`` samples, linear fall."""
    x = np.zeros(n)
    up = np.arange(1, rise + 1) / rise
    x[start : start + rise] = up
    x[start + rise : start + rise + top] = 1.0
    x[start + rise + top : start + rise + top + fall] = (
        up[::-1][1:].tolist() + [0.0] if fall else []
    )
    return height * x


def test_rise_time_and_duration_of_known_shapes():
    n = 400
    windows = np.zeros((1, 3, n))
    # Band 0: linear rise over 20 samples: 10 % -> 90 % is 16 samples = 160 us.
    windows[0, 0] = 5.0 + trapezoid(n, 100, 20, 30, 0, 80.0)
    windows[0, 0, 150:] = 5.0
    # Band 1: a Gaussian of sigma 6 samples: FWHM = 2.3548 * 6 samples.
    t = np.arange(n)
    windows[0, 1] = 2.0 + 40.0 * np.exp(-0.5 * ((t - 200) / 6.0) ** 2)
    # Band 2: nothing but a tiny wiggle (no pulse).
    windows[0, 2] = 1.0 + 1e-3 * np.sin(t)
    f = window_features(windows, FS)
    assert f["baseline_flux"][0, 0] == pytest.approx(5.0)
    assert f["peak_flux"][0, 0] == pytest.approx(80.0)
    assert f["rise_time_us"][0, 0] == pytest.approx(16 * US, abs=0.5)
    assert f["duration_us"][0, 1] == pytest.approx(2 * np.sqrt(2 * np.log(2)) * 6 * US, rel=0.02)
    assert np.isnan(f["rise_time_us"][0, 2]) and np.isnan(f["duration_us"][0, 2])


def test_rise_time_of_a_planted_blue_corona_discharge():
    """Sub-sample interpolation resolves the 10-30 us rises of blue corona discharges."""
    t = np.arange(1000) * US
    rise = rise_for(20.0, 50.0)
    shape = pulse(t, onset=3000.0, rise=rise, decay=50.0)
    # 10-90 % rise of (1 - exp(-t/r)) exp(-t/d), from a fine grid (independent of sampling).
    fine = np.linspace(0, 300, 300_001)
    y = pulse(fine, 0.0, rise, 50.0)
    expected = fine[np.argmax(y >= 0.9)] - fine[np.argmax(y >= 0.1)]
    windows = 1.0 + 60.0 * np.stack([shape, 0.05 * shape, 0.01 * shape])[np.newaxis]
    measured = window_features(windows, FS)["rise_time_us"][0, 0]
    assert expected == pytest.approx(20.0, abs=0.05)
    assert measured == pytest.approx(expected, abs=US)  # within one sample


def test_robust_noise_ignores_pulses_and_slow_drifts():
    rng = np.random.default_rng(0)
    x = 2.0 * rng.standard_normal((3, 20_000)) + np.linspace(0, 50, 20_000)
    x[:, 5000:5050] += 500.0
    np.testing.assert_allclose(robust_noise(x), 2.0, rtol=0.03)


def test_band_ratios_and_signatures():
    # Rows: lightning, elve, blue corona (no 777.4 nm at all), quiet. Bands 337, UV, 777.4 nm.
    peak = np.array([[40.0, 0.5, 100.0], [8.0, 30.0, 10.0], [50.0, 3.0, 0.1], [0.2, 0.1, 0.3]])
    noise = np.full((4, 3), 0.25)
    table = band_ratios(peak, noise)
    assert list(table["signature"]) == ["lightning_like", "uv_dominant", "blue_dominant", "quiet"]
    assert table["ratio_337_777"][0] == pytest.approx(0.4)
    assert table["ratio_uv_777"][1] == pytest.approx(3.0)
    # No 777.4 nm: the denominator is its detection limit (6 noise levels), not ~0.
    assert table["ratio_337_777"][2] == pytest.approx(50.0 / 1.5)
    assert np.isnan(table["ratio_uv_777"][3])
    assert table["signature_score"][2] > table["signature_score"][1] > table["signature_score"][0]


def test_features_tell_planted_types_apart():
    """On noisy planted episodes, the band signature follows the published signatures."""
    rng = np.random.default_rng(1)
    t = np.arange(1000) * US
    kinds = ["lightning", "elve", "blue_corona", "background"] * 10
    windows = []
    for kind in kinds:
        signal, _ = episode_signal(kind, t, rng)
        noise = np.array([0.25, 0.08, 0.35])[:, np.newaxis] * rng.standard_normal((3, 1000))
        windows.append(signal + np.array([1.0, 0.2, 3.0])[:, np.newaxis] + noise)
    table = feature_table(window_features(np.stack(windows), FS))
    table["kind"] = kinds
    by_kind = table.groupby("kind")["signature"].agg(lambda s: s.value_counts().index[0])
    assert by_kind.to_dict() == {
        "background": "quiet",
        "blue_corona": "blue_dominant",
        "elve": "uv_dominant",
        "lightning": "lightning_like",
    }
    blue = table[table["kind"] == "blue_corona"]
    assert blue["rise_time_us_337"].median() < 40.0
    assert table[table["kind"] == "elve"]["duration_us_uv"].max() < 1000.0


def test_align_on_peak_shifts_without_wrapping():
    x = np.zeros((2, 3, 11))
    x[0, :, 2] = 10.0
    x[1, :, 9] = 10.0
    x[:, :, 0] = 1.0  # a marker at the first sample: it must move, not wrap around
    aligned = align_on_peak(x, noise=np.ones((2, 3)))
    assert np.all(aligned[:, :, 5] == 10.0)
    assert np.all(aligned[0, :, 3] == 1.0)  # first sample moved right by 3
    assert np.all(np.isnan(aligned[0, :, :3]))  # padding, not the window's end wrapped round
    assert np.all(np.isnan(aligned[1, :, 7:]))
    assert np.all(np.isnan(aligned[1, :, :1]) | (aligned[1, :, :1] == 0))


def test_cluster_waveforms_recover_the_shape_of_shifted_pulses():
    rng = np.random.default_rng(2)
    n, s = 60, 200
    shape = 30.0 * np.exp(-0.5 * ((np.arange(s) - 100) / 4.0) ** 2)
    windows = np.empty((n, 3, s))
    clusters = np.repeat([0, 1, -1], n // 3)
    for i in range(n):
        where = rng.integers(-40, 40)
        pulse_ = np.roll(shape, where) if clusters[i] == 0 else 0.2 * np.roll(shape, where)
        windows[i] = pulse_ + 0.1 * rng.standard_normal((3, s))
    out = cluster_waveforms(windows, clusters, align=True, n_examples=3)
    np.testing.assert_array_equal(out["clusters"], [0, 1])
    np.testing.assert_array_equal(out["n"], [20, 20])
    np.testing.assert_allclose(out["mean"][0, 0, 90:111], shape[90:111], atol=1.0)
    np.testing.assert_allclose(out["mean"][1, 2, 90:111], 0.2 * shape[90:111], atol=0.5)
    assert np.nanmax(out["std"][0, :, 90:111]) < 1.0
    for k, cluster in enumerate(out["clusters"]):
        assert np.all(clusters[out["examples"][k]] == cluster)
    # Without alignment, the pulses at different places smear out.
    smeared = cluster_waveforms(windows, clusters, align=False)
    assert np.nanmax(smeared["mean"][0, 0]) < 0.7 * shape.max()


def test_cluster_table_and_candidate_ranking():
    rng = np.random.default_rng(3)
    n = 40
    table = pd.DataFrame(
        {
            "peak_flux_337": rng.uniform(1, 50, n),
            "peak_flux_777": rng.uniform(1, 50, n),
            "ratio_337_777": rng.uniform(0.1, 10, n),
            "signature": rng.choice(["quiet", "lightning_like", "blue_dominant"], n),
            "signature_score": rng.normal(size=n),
            "neg_elbo": rng.normal(size=n),
            "cluster": rng.integers(-1, 3, n),
            "label": rng.choice(["a", "b", None], n),
        }
    )
    summary = cluster_table(table)
    clustered = table[table["cluster"] >= 0]
    assert list(summary["cluster"]) == sorted(clustered["cluster"].unique())
    assert list(summary["n"]) == list(clustered.groupby("cluster").size())
    assert summary["median_neg_elbo"].tolist() == pytest.approx(
        clustered.groupby("cluster")["neg_elbo"].median().tolist()
    )
    shares = summary[[c for c in summary if c.startswith("share_")]].sum(axis=1)
    np.testing.assert_allclose(shares, 1.0)

    table.loc[:3, "signature"] = "uv_dominant"  # two TLE signature kinds
    tle = table["signature"].isin(["uv_dominant", "blue_dominant"])
    ranked = rank_candidates(table, balance_signatures=False)
    assert list(ranked["rank"]) == list(range(1, len(ranked) + 1))
    assert (ranked["signature"] != "quiet").all()
    # TLE signatures first, each part by candidate score.
    n_tle = int(tle.sum())
    assert ranked["signature"].head(n_tle).isin(["uv_dominant", "blue_dominant"]).all()
    assert (ranked["signature"].iloc[n_tle:] == "lightning_like").all()
    assert ranked["candidate_score"].head(n_tle).is_monotonic_decreasing
    assert ranked["candidate_score"].iloc[n_tle:].is_monotonic_decreasing
    # The top candidate: no TLE-signature window is better on both scores.
    top = ranked.iloc[0]
    rest = table[tle]
    better = (rest["neg_elbo"] > top["neg_elbo"]) & (
        rest["signature_score"] > top["signature_score"]
    )
    assert not better.any()
    assert len(rank_candidates(table, n=10)) == 10

    # Balanced: each TLE kind's best window, then each one's second best..., then lightning-like.
    balanced = rank_candidates(table, balance_signatures=True)
    assert len(balanced) == len(table[table["signature"] != "quiet"])
    assert set(balanced["signature"].head(2)) == {"uv_dominant", "blue_dominant"}
    assert (balanced["rank_in_signature"].head(2) == 1).all()
    assert balanced["rank_in_signature"].head(8).is_monotonic_increasing
    assert (balanced["signature"].iloc[n_tle:] == "lightning_like").all()
    for _, rows in balanced.groupby("signature"):
        assert rows["candidate_score"].is_monotonic_decreasing


def test_roc_auc_matches_sklearn():
    rng = np.random.default_rng(4)
    scores = np.round(rng.normal(size=300), 1)  # with ties
    positive = rng.random(300) < 0.3
    scores[positive] += 0.8
    assert roc_auc(scores, positive) == pytest.approx(roc_auc_score(positive, scores))
    assert np.isnan(roc_auc(scores, np.zeros(300, bool)))


def test_anomaly_auc_uses_only_the_named_labels():
    scores = np.array([5.0, 4.0, 1.0, 0.0, 100.0, -100.0])
    labels = ["elve", "sprite", "lightning", "background", "unknown", None]
    result = anomaly_auc(scores, labels, ["elve", "sprite"], ["lightning", "background"])
    assert result == {"auc": 1.0, "n_positive": 2, "n_negative": 2}
