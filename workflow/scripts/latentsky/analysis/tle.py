"""Features of photometer windows and clusters, and the ranking of TLE candidates.

Per window and band (:func:`window_features`, on the flux in physical units, unclipped):

* ``baseline_flux``: median of the window (the background under the event);
* ``noise_flux``: white-noise level, a clipped RMS of the first differences
  (:func:`latentsky.analysis.pulses.noise_level`: right for photon counts too, where the median
  absolute difference is 0);
* ``peak_flux``: the highest sample above the baseline;
* ``rise_time_us``: 10 % to 90 % of the peak on the leading edge of the main pulse;
* ``duration_us``: full width at half maximum of the main pulse;
* ``late_fraction``: the share of the band's light (above the baseline, from 50 us before the
  window's brightest moment, all bands together in noise units, to 3 ms after it) arriving
  0.3-3 ms after that moment. A stroke has the same share in every band (one light curve seen
  through three filters); a sprite's delayed blue emission raises the 337 nm share far above the
  777.4 nm one; a blue jet's pulses after its flash give it a large 337 nm share, a corona
  discharge's single flash (tens to a few hundred us) a small one.

Timings are interpolated linearly between samples, so rise times of one or two samples (10-30 us,
as for blue corona discharges) are still resolved. A band has a pulse only where at least
``min_samples`` consecutive samples (30 us) lie ``min_snr`` noise levels above the baseline: a
single-sample photon or particle spike is no pulse (it made 8 % of quiet windows "lightning-like").
A band with no pulse has NaN rise time and duration, and its peak counts as 0 in the ratios.

Per window, across bands (:func:`band_ratios`): the peak ratios UV/777.4 nm and 337/777.4 nm, with
the 777.4 nm peak floored at its detection limit, and a *band signature*: ordinary lightning is
bright at 777.4 and 337 nm with little UV; elves are dominated by UV; blue corona discharges and
blue jets are 337 nm with little or no 777.4 nm.

Per cluster (:func:`cluster_waveforms`, :func:`cluster_table`): the mean and spread of the three-band
waveforms (each window aligned on its brightest sample first), typical example windows, and the
medians of the features. :func:`rank_candidates` ranks windows as TLE candidates by anomaly score
(negative ELBO) and band signature. Shapes: flux ``(window, band, sample)``; per-window features
``(window, band)``.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd

from latentsky.analysis.pulses import MIN_SAMPLES, noise_level

#: A band "has a pulse" when its peak exceeds this many times its noise level.
MIN_SNR = 6.0
#: Short names of the bands in the order of :data:`latentsky.samples.windows.BANDS`.
BAND_SHORT = ("337", "uv", "777")
#: Signature thresholds on the peak ratios (see :func:`band_ratios`).
UV_DOMINANT_RATIO = 1.0
BLUE_DOMINANT_RATIO = 2.5
SIGNATURES = (
    "quiet",
    "lightning_like",
    "uv_dominant",
    "blue_dominant",
    "blue_pulses",
    "delayed_blue",
)
#: The TLE signatures (all but quiet and lightning-like), which the candidates table ranks first.
TLE_SIGNATURES = ("uv_dominant", "blue_dominant", "blue_pulses", "delayed_blue")
#: A blue-dominated window with this share of its 337 nm light arriving late is ``blue_pulses``
#: (a jet's flash and the pulses after it), else it stays ``blue_dominant`` (a single flash).
BLUE_PULSES_LATE = 0.2
#: Light "arrives late" from this long after the brightest 777.4 nm moment up to LATE_END_US.
LATE_START_US = 300.0
LATE_END_US = 3000.0
#: A stroke with this much more of its 337 nm light arriving late than of its 777.4 nm light
#: (shares of the band's light, see ``late_fraction``) carries delayed blue emission: a sprite.
DELAYED_BLUE_EXCESS = 0.05


def robust_noise(flux: np.ndarray) -> np.ndarray:
    """White-noise level of ``(..., sample)`` data: ``1.4826 * median|diff| / sqrt 2``, ``(...)``.

    First differences remove slow signals, and the median ignores the few samples of a pulse, so
    this measures the sample-to-sample noise even in a window with an event. Floored at 1e-12.
    """
    diff = np.abs(np.diff(np.asarray(flux, dtype=np.float64), axis=-1))
    sigma = 1.4826 * np.nanmedian(diff, axis=-1) / np.sqrt(2.0)
    return np.maximum(np.nan_to_num(sigma, nan=0.0), 1e-12)


def _crossing(y: np.ndarray, level: np.ndarray, before: np.ndarray, upward: bool) -> np.ndarray:
    """Fractional sample where each row of ``y`` crosses ``level`` next to ``before``.

    ``upward``: the last crossing at or before index ``before`` (from below ``level`` to at or
    above it); else the first crossing after ``before`` (from at or above to below). Rows ``(R,
    S)``, ``level`` and ``before`` ``(R,)``; returns ``(R,)`` float, NaN where there is none.
    """
    r, s = y.shape
    index = np.arange(s)
    below = y < level[:, np.newaxis]
    if upward:
        # Last sample below the level, before the peak; the crossing lies between it and the next.
        mask = below & (index < before[:, np.newaxis])
        i = np.where(mask, index, -1).max(axis=1)
    else:
        mask = below & (index > before[:, np.newaxis])
        i = np.where(mask, index, s).min(axis=1)
        i = i - 1  # last sample at or above the level; the crossing lies after it
    valid = (i >= 0) & (i < s - 1)
    i = np.clip(i, 0, s - 2)
    rows = np.arange(r)
    y0, y1 = y[rows, i], y[rows, i + 1]
    with np.errstate(divide="ignore", invalid="ignore"):
        frac = np.where(y1 != y0, (level - y0) / (y1 - y0), 0.5)
    out = i + np.clip(frac, 0.0, 1.0)
    return np.where(valid, out, np.nan)


def window_features(
    flux: np.ndarray,
    sample_rate_hz: float,
    min_snr: float = MIN_SNR,
    min_samples: int = MIN_SAMPLES,
) -> dict[str, np.ndarray]:
    """Per-window, per-band features of photometer windows.

    Args:
        flux: ``(window, band, sample)`` in physical units (uW/m^2 or counts), not clipped.
        sample_rate_hz: samples per second (100 kHz for MMIA).
        min_snr, min_samples: a band has a pulse where ``min_samples`` consecutive samples lie
            ``min_snr`` noise levels above the baseline (else NaN timings).

    Returns:
        ``{"baseline_flux", "noise_flux", "peak_flux", "rise_time_us", "duration_us",
        "has_pulse"}``, each ``(window, band)`` float64 (``has_pulse`` bool), fluxes in the input
        units, times in microseconds.
    """
    x = np.asarray(flux, dtype=np.float64)
    if x.ndim != 3:
        raise ValueError(f"flux must be (window, band, sample), got shape {x.shape}")
    w, b, s = x.shape
    baseline = np.nanmedian(x, axis=-1)
    noise = noise_level(x)
    y = (x - baseline[..., np.newaxis]).reshape(w * b, s)
    y = np.nan_to_num(y, nan=-np.inf)  # a NaN sample is never a peak nor above a level
    top = np.argmax(y, axis=1)
    peak = y[np.arange(w * b), top]
    hot = y > min_snr * noise.reshape(-1, 1)
    width = min(min_samples, s)
    has_pulse = np.lib.stride_tricks.sliding_window_view(hot, width, axis=1).all(-1).any(-1)
    us = 1e6 / sample_rate_hz
    t10 = _crossing(y, 0.1 * peak, top, upward=True)
    t90 = _crossing(y, 0.9 * peak, top, upward=True)
    half_up = _crossing(y, 0.5 * peak, top, upward=True)
    half_down = _crossing(y, 0.5 * peak, top, upward=False)
    # A pulse already high at the window start has no measurable rise: NaN, not a short rise.
    rise = np.where(has_pulse, (t90 - t10) * us, np.nan)
    duration = np.where(has_pulse, (half_down - half_up) * us, np.nan)
    above = np.nan_to_num(y, neginf=0.0).reshape(w, b, s)
    # The window's brightest moment: where the bands together stand furthest above their noise.
    anchor = np.argmax((above / noise[..., np.newaxis]).sum(axis=1), axis=1)
    late = _late_fraction(above, anchor, us)
    return {
        "baseline_flux": baseline,
        "noise_flux": noise,
        "peak_flux": np.where(np.isfinite(peak), peak, np.nan).reshape(w, b),
        "rise_time_us": rise.reshape(w, b),
        "duration_us": duration.reshape(w, b),
        "has_pulse": has_pulse.reshape(w, b),
        "late_fraction": late,
    }


def _late_fraction(y: np.ndarray, anchor: np.ndarray, us: float) -> np.ndarray:
    """Share of each band's light arriving late (see the module's description).

    ``y``: ``(window, band, sample)`` above the baseline; ``anchor``: ``(window,)`` the sample of
    the window's brightest moment. Returns ``(window, band)``; NaN where the band's light in the
    span is not positive.
    """
    w, b, s = y.shape
    t = (np.arange(s)[np.newaxis, :] - anchor[:, np.newaxis]) * us  # (window, sample), us
    span = (t >= -50.0) & (t <= LATE_END_US)
    late = (t >= LATE_START_US) & (t <= LATE_END_US)
    total = np.einsum("wbs,ws->wb", y, span.astype(np.float64))
    after = np.einsum("wbs,ws->wb", y, late.astype(np.float64))
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(total > 0, after / total, np.nan)


def band_ratios(
    peak_flux: np.ndarray,
    noise_flux: np.ndarray,
    min_snr: float = MIN_SNR,
    has_pulse: np.ndarray | None = None,
    late_fraction: np.ndarray | None = None,
) -> pd.DataFrame:
    """Peak ratios and band signature of each window.

    Args:
        peak_flux, noise_flux: ``(window, 3)`` in band order 337 nm, UV, 777.4 nm (as from
            :func:`window_features`).
        has_pulse: ``(window, 3)`` bool, which bands have a pulse (of the minimum width); None
            takes a peak over ``min_snr`` noise levels (older stores).
        late_fraction: ``(window, 3)`` (from :func:`window_features`); a lightning-like window
            whose 337 nm share exceeds its 777.4 nm share by :data:`DELAYED_BLUE_EXCESS` is
            ``delayed_blue`` (a sprite's glow after its stroke), and a blue-dominated one with
            :data:`BLUE_PULSES_LATE` of its 337 nm light late is ``blue_pulses`` (a jet). None:
            neither.

    Returns:
        DataFrame with ``ratio_uv_777`` and ``ratio_337_777`` (the 777.4 nm peak floored at
        ``min_snr`` noise levels, so a band with no 777.4 nm light gives a large but finite ratio;
        NaN when no band has a pulse), ``signature`` (one of :data:`SIGNATURES`) and
        ``signature_score``: log10 of the larger ratio, high for UV- or blue-dominated windows.
    """
    peak = np.asarray(peak_flux, dtype=np.float64)
    noise = np.asarray(noise_flux, dtype=np.float64)
    pulse = peak >= min_snr * noise if has_pulse is None else np.asarray(has_pulse, dtype=bool)
    any_pulse = pulse.any(axis=1)
    # A band without a pulse counts by its detection limit (777.4 nm) or not at all (the others):
    # a lone photon spike is no light.
    floor = np.maximum(np.where(pulse[:, 2], peak[:, 2], 0.0), min_snr * noise[:, 2])
    numerators = np.where(pulse[:, :2], np.maximum(peak[:, :2], 0.0), 0.0)
    ratio_337 = np.where(any_pulse, numerators[:, 0] / floor, np.nan)
    ratio_uv = np.where(any_pulse, numerators[:, 1] / floor, np.nan)
    signature = np.full(len(peak), "lightning_like", dtype=object)
    # Lightning is bright at 777.4 nm: a pulse without one there is blue or UV whatever the ratio
    # to the 777.4 nm detection limit (a faint corona discharge under a bright sky).
    no_777 = ~pulse[:, 2]
    signature[pulse[:, 0] & ((ratio_337 >= BLUE_DOMINANT_RATIO) | no_777)] = "blue_dominant"
    # UV over 777.4 nm and at least as strong as 337 nm: the elve signature wins over "blue".
    uv = (
        pulse[:, 1]
        & ((ratio_uv >= UV_DOMINANT_RATIO) | no_777)
        & ((peak[:, 1] >= peak[:, 0]) | ~pulse[:, 0])
    )
    signature[uv] = "uv_dominant"
    if late_fraction is not None:
        late = np.asarray(late_fraction, dtype=np.float64)
        excess = np.nan_to_num(late[:, 0] - late[:, 2], nan=0.0)
        delayed = (signature == "lightning_like") & pulse[:, 0] & (excess >= DELAYED_BLUE_EXCESS)
        signature[delayed] = "delayed_blue"
        pulsing = (signature == "blue_dominant") & (np.nan_to_num(late[:, 0]) >= BLUE_PULSES_LATE)
        signature[pulsing] = "blue_pulses"
        # Score: the excess on the scale of the ratios (the threshold scores like a ratio of 2.5).
        score_delayed = np.log10(np.maximum(excess, 1e-6) * 2.5 / DELAYED_BLUE_EXCESS)
    signature[~any_pulse] = "quiet"
    with np.errstate(divide="ignore"):
        score = np.log10(np.maximum(np.fmax(ratio_uv, ratio_337), 1e-6))
    if late_fraction is not None:
        score = np.where(signature == "delayed_blue", score_delayed, score)
    return pd.DataFrame(
        {
            "ratio_uv_777": ratio_uv,
            "ratio_337_777": ratio_337,
            "signature": signature,
            "signature_score": score,
        }
    )


def feature_table(features: dict[str, np.ndarray], min_snr: float = MIN_SNR) -> pd.DataFrame:
    """Flat per-window table: ``<feature>_<band>`` columns (bands 337, uv, 777) plus the ratios
    and signature of :func:`band_ratios`. ``features`` maps names to ``(window, 3)`` arrays."""
    columns = {}
    names = ("peak_flux", "baseline_flux", "noise_flux", "rise_time_us", "duration_us")
    for name in names + tuple(n for n in ("late_fraction",) if n in features):
        values = np.asarray(features[name], dtype=np.float64)
        for j, band in enumerate(BAND_SHORT):
            columns[f"{name}_{band}"] = values[:, j]
    table = pd.DataFrame(columns)
    ratios = band_ratios(
        features["peak_flux"],
        features["noise_flux"],
        min_snr,
        features.get("has_pulse"),
        features.get("late_fraction"),
    )
    return pd.concat([table, ratios], axis=1)


# --------------------------------------------------------------------------------------------
# Clusters


def align_on_peak(windows: np.ndarray, noise: np.ndarray | None = None) -> np.ndarray:
    """Shift each window so that its brightest moment sits at the centre sample; NaN-padded.

    The brightest moment is the sample where the bands together stand furthest above their
    baselines in units of their noise. Windows are shifted, never wrapped or reversed: the samples
    that move out are dropped and the ones that move in are NaN. ``(window, band, sample)`` ->
    same shape, float64.
    """
    x = np.asarray(windows, dtype=np.float64)
    w, b, s = x.shape
    if noise is None:
        noise = robust_noise(x)
    baseline = np.nanmedian(x, axis=-1, keepdims=True)
    strength = np.nansum((x - baseline) / noise[..., np.newaxis], axis=1)  # (window, sample)
    shift = s // 2 - np.argmax(strength, axis=1)
    out = np.full_like(x, np.nan)
    source = np.arange(s)[np.newaxis, :] - shift[:, np.newaxis]  # out[j] = x[j - shift]
    valid = (source >= 0) & (source < s)
    rows, cols = np.nonzero(valid)
    out[rows, :, cols] = x[rows, :, source[rows, cols]]
    return out


def cluster_waveforms(
    windows,
    clusters: np.ndarray,
    align: bool = True,
    n_examples: int = 3,
    max_windows: int | None = 2000,
    seed: int = 0,
) -> dict[str, np.ndarray]:
    """Mean and spread of the waveforms of each cluster, and its most typical windows.

    Args:
        windows: ``(window, band, sample)`` array (e.g. in uW/m^2), or a function that returns
            the windows at an array of indices (so a store larger than memory is read one
            cluster at a time).
        clusters: ``(window,)`` integer cluster numbers (negative: not clustered, left out).
        align: align every window on its brightest moment first (:func:`align_on_peak`); pulses
            at different places in their windows would otherwise average into a smear.
        n_examples: example windows per cluster: those closest (RMS over the samples both have)
            to the cluster's mean waveform.
        max_windows: at most this many windows per cluster (a seeded random choice) enter the
            mean, spread and example search; None for all.
        seed: seed of that choice.

    Returns:
        ``clusters`` (C,), ``n`` (C,) cluster sizes, ``mean`` and ``std`` (C, band, sample) over
        the windows (ignoring padding), and ``examples`` (C, n_examples) window indices, -1 where a
        cluster has fewer windows.
    """
    load = windows if callable(windows) else (lambda index: np.asarray(windows)[index])
    clusters = np.asarray(clusters)
    ids = np.unique(clusters[clusters >= 0])
    rng = np.random.default_rng(seed)
    mean = std = None
    count = np.zeros(len(ids), dtype=np.int64)
    examples = np.full((len(ids), n_examples), -1, dtype=np.int64)
    for k, cluster in enumerate(ids):
        members = np.flatnonzero(clusters == cluster)
        count[k] = len(members)
        if max_windows is not None and len(members) > max_windows:
            members = np.sort(rng.choice(members, size=max_windows, replace=False))
        x = np.asarray(load(members), dtype=np.float64)
        if x.ndim != 3 or len(x) != len(members):
            raise ValueError(f"expected ({len(members)}, band, sample) windows, got {x.shape}")
        if align:
            x = align_on_peak(x)
        if mean is None:
            mean = np.full((len(ids), *x.shape[1:]), np.nan)
            std = np.full_like(mean, np.nan)
        # Samples that are padding in every member give "mean of empty slice": NaN is right.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            mean[k] = np.nanmean(x, axis=0)
            std[k] = np.nanstd(x, axis=0)
            distance = np.sqrt(np.nanmean((x - mean[k]) ** 2, axis=(1, 2)))
        order = members[np.argsort(np.nan_to_num(distance, nan=np.inf), kind="stable")]
        examples[k, : min(n_examples, len(order))] = order[:n_examples]
    if mean is None:
        mean = std = np.empty((0, 0, 0))
    return {"clusters": ids, "n": count, "mean": mean, "std": std, "examples": examples}


def cluster_table(table: pd.DataFrame, cluster_column: str = "cluster") -> pd.DataFrame:
    """Per-cluster summary of a per-window table (from :func:`feature_table`, plus ``neg_elbo``
    and optionally ``label``): size, medians of the peaks, ratios, rise times and durations, the
    median anomaly score, the share of each band signature and (with labels) the commonest label.

    Rows with a missing or negative cluster are left out. One row per cluster, ascending.
    """
    clustered = table[table[cluster_column].notna() & (table[cluster_column] >= 0)].copy()
    clustered[cluster_column] = clustered[cluster_column].astype(int)
    medians = [
        c
        for c in clustered.columns
        if c.startswith(("peak_flux_", "rise_time_us_", "duration_us_", "ratio_"))
        or c == "neg_elbo"
    ]
    groups = clustered.groupby(cluster_column)
    out = groups[medians].median().add_prefix("median_")
    out.insert(0, "n", groups.size())
    shares = pd.crosstab(clustered[cluster_column], clustered["signature"], normalize="index")
    for name in SIGNATURES:
        out[f"share_{name}"] = shares[name] if name in shares else 0.0
    if "label" in clustered and clustered["label"].notna().any():
        labelled = clustered.dropna(subset=["label"])
        out["n_labelled"] = labelled.groupby(cluster_column).size()
        out["n_labelled"] = out["n_labelled"].fillna(0).astype(int)
        out["commonest_label"] = labelled.groupby(cluster_column)["label"].agg(
            lambda v: v.value_counts().index[0]
        )
    return out.reset_index()


# --------------------------------------------------------------------------------------------
# Candidates and scores


def percentile_rank(values: np.ndarray) -> np.ndarray:
    """Rank of each value as a fraction in (0, 1] (ties share their average rank; NaN lowest)."""
    series = pd.Series(np.asarray(values, dtype=np.float64))
    return series.rank(method="average", na_option="bottom", pct=True).to_numpy()


def rank_candidates(
    table: pd.DataFrame, n: int | None = None, balance_signatures: bool = True
) -> pd.DataFrame:
    """Rank windows as TLE candidates: TLE band signatures first, then by how unusual they are.

    ``table`` needs ``neg_elbo`` (the anomaly score: negative ELBO under the trained model),
    ``signature`` and ``signature_score``. Adds ``anomaly_percentile`` and
    ``signature_percentile`` (fractions of windows at or below, 1 = most unusual / most UV- or
    blue-dominated), ``candidate_score`` (their mean) and ``rank_in_signature`` (1 = the best
    window of its signature kind). Quiet windows (no pulse in any band) are not candidates.

    Windows with a TLE signature (:data:`TLE_SIGNATURES`: UV-dominant, blue-dominant, delayed
    blue) come before lightning-like ones, which follow by ``candidate_score``: the anomaly score
    alone ranks faint elves and corona discharges *below* bright strokes (a faint flash costs the
    likelihood less), and a sprite's stroke makes it lightning-like by its peaks, so neither score
    alone puts every TLE type above ordinary lightning, while the band signature, a physical
    criterion, does. Within the TLE signatures, with ``balance_signatures`` the order takes each
    kind's best window, then each kind's second best, and so on (ties by ``candidate_score``);
    otherwise it is plain ``candidate_score``. The balance is there because the scores are not
    comparable across kinds: a plain sort fills the table with bright blue events (41 of the demo's
    top 50 were blue jets, and no elve). Returns the first ``n`` (all if None) with ``rank`` from 1.
    """
    ranked = table.copy()
    ranked["anomaly_percentile"] = percentile_rank(ranked["neg_elbo"])
    signature = ranked["signature_score"].where(ranked["signature"] != "quiet")
    ranked["signature_percentile"] = percentile_rank(signature)
    ranked["candidate_score"] = 0.5 * (
        ranked["anomaly_percentile"] + ranked["signature_percentile"]
    )
    ranked = ranked[ranked["signature"] != "quiet"]
    ranked = ranked.sort_values("candidate_score", ascending=False, kind="stable")
    ranked["rank_in_signature"] = ranked.groupby("signature").cumcount() + 1
    ordinary = ~ranked["signature"].isin(TLE_SIGNATURES)
    within = ranked["rank_in_signature"] * int(balance_signatures)
    ranked = ranked.assign(_ordinary=ordinary, _within=within.where(~ordinary, 0))
    ranked = ranked.sort_values(
        ["_ordinary", "_within", "candidate_score"], ascending=[True, True, False], kind="stable"
    ).drop(columns=["_ordinary", "_within"])
    if n is not None:
        ranked = ranked.head(n)
    ranked.insert(0, "rank", np.arange(1, len(ranked) + 1))
    return ranked.reset_index(drop=True)


def roc_auc(scores: np.ndarray, positive: np.ndarray) -> float:
    """Area under the ROC curve of ``scores`` for telling ``positive`` (bool) from the rest.

    The Mann-Whitney form: the probability that a random positive scores higher than a random
    negative, ties counting one half. NaN if either group is empty.
    """
    scores = np.asarray(scores, dtype=np.float64)
    positive = np.asarray(positive, dtype=bool)
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = pd.Series(scores).rank(method="average").to_numpy()
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def anomaly_auc(
    scores: np.ndarray,
    labels: Sequence,
    positive_labels: Sequence[str],
    negative_labels: Sequence[str],
) -> dict:
    """ROC AUC of the anomaly score for windows labelled ``positive_labels`` (e.g. the TLE types)
    against those labelled ``negative_labels`` (ordinary lightning, background); other and missing
    labels are left out. Returns ``{"auc", "n_positive", "n_negative"}``."""
    labels = np.asarray(labels, dtype=object)
    is_pos = np.isin(labels, list(positive_labels))
    is_neg = np.isin(labels, list(negative_labels))
    keep = is_pos | is_neg
    return {
        "auc": roc_auc(np.asarray(scores)[keep], is_pos[keep]),
        "n_positive": int(is_pos.sum()),
        "n_negative": int(is_neg.sum()),
    }
