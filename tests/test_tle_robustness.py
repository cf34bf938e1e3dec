"""The three fragile spots of the photometer track: frame-time convention, labels that share a
window or match none, and pulse detection under photon noise and band cross-talk."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from latentsky.analysis.labels import match_labels
from latentsky.analysis.pulses import find_pulses, noise_level, quiet_windows
from latentsky.samples.windows import check_frame_time


def _labels(times_ns, names):
    return pd.DataFrame(
        {"time": np.asarray(times_ns, dtype="datetime64[ns]"), "label": list(names)}
    )


def test_match_labels_counts_shared_and_unmatched():
    windows = np.array([0, 10, 20], dtype="datetime64[ms]").astype("datetime64[ns]")
    ms = 1_000_000
    labels = _labels([1 * ms, 2 * ms, 19 * ms, 100 * ms, 11 * ms], ["a", "b", "c", "d", "a"])
    out, counts = match_labels(windows, labels, tolerance_s=0.005)
    assert list(out) == ["a", "a", "c"]  # window 0 keeps its nearest label, "a" at 1 ms
    assert counts == {
        "labels": 5,
        "matched": 3,
        "unmatched": 1,
        "shared_sample": 1,
        "shared_sample_other_label": 1,
    }


def test_match_labels_by_site():
    windows = np.array([0, 0], dtype="datetime64[ns]")
    labels = _labels([0, 0], ["x", "y"]).assign(site=["s2", "s1"])
    out, counts = match_labels(windows, labels, 0.001, sample_sites=np.array(["s1", "s2"]))
    assert list(out) == ["y", "x"] and counts["shared_sample"] == 0


def _quiet(rng, n=8000, rate=(5.0, 0.8, 20.0)):
    """Photon counts of a quiet sky, ``(3, n)``: Poisson, few counts a sample in the UV."""
    return rng.poisson(np.array(rate)[:, None], size=(3, n)).astype(float)


def test_noise_level_of_counts_is_the_poisson_level():
    rng = np.random.default_rng(0)
    x = _quiet(rng)
    np.testing.assert_allclose(noise_level(x), np.sqrt([5.0, 0.8, 20.0]), rtol=0.1)


def test_single_sample_spikes_are_not_pulses():
    rng = np.random.default_rng(1)
    x = _quiet(rng)
    spikes = rng.choice(x.shape[1], size=20, replace=False)
    x[1, spikes] += 25.0  # particle hits: single samples of many sigma
    assert len(find_pulses(x)) == 0
    x[1, 4000:4004] += 25.0  # four samples (40 us) are a pulse
    pulses = find_pulses(x)
    assert len(pulses) == 1 and pulses.bands[0].tolist() == [False, True, False]


def test_crosstalk_makes_one_pulse_not_two():
    rng = np.random.default_rng(2)
    x = _quiet(rng)
    blue = np.zeros(x.shape[1])
    blue[3000:3010] = 400.0
    x[0] += blue
    x[2] += 0.05 * blue  # 5 % of the blue light seen at 777.4 nm
    pulses = find_pulses(x)
    assert len(pulses) == 1 and pulses.bands[0, 0]


def test_quiet_windows_keep_clear_of_pulses():
    rng = np.random.default_rng(3)
    x = _quiet(rng)
    x[2, 4000:4020] += 300.0
    pulses = find_pulses(x)
    starts = quiet_windows(pulses, x.shape[1], 1000, 1000, margin=100)
    for s in starts:
        assert s + 1000 <= 3900 or s >= 4120


@pytest.mark.parametrize("stamped", ["centre", "start"])
def test_frame_time_check_finds_the_convention(stamped):
    frame = 8320
    frame_ns = frame / 1e5 * 1e9
    rng = np.random.default_rng(4)
    events = np.sort(rng.uniform(0, 60e9, 50)).astype(np.int64)
    # Pulses found under the "centre" convention lie half a frame early when files stamp starts.
    shift = int(0.5 * frame_ns) if stamped == "start" else 0
    pulses = np.sort(np.concatenate([events - shift, rng.uniform(0, 60e9, 20).astype(np.int64)]))
    labels = _labels(events, ["sprite"] * 50)
    check = check_frame_time(pulses, labels, frame, configured="centre")
    assert check["best"] == stamped
    assert check["verdict"] == ("plausible" if stamped == "centre" else "implausible")
    # Configured right, the same files pass.
    right = check_frame_time(pulses + shift, labels, frame, configured=stamped)
    assert right["verdict"] == "plausible" and right["best"] == stamped
