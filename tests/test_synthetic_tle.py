"""The seeded photometer demo: MMIA file layout, planted event physics, labels and truth.

One small demo (12 observations of 2 frames) is generated once per module and shared; the physics
checks call :func:`episode_signal` directly on noiseless signals.
"""

from __future__ import annotations

import csv
import filecmp
import json

import numpy as np
import pandas as pd
import pytest
from astropy.io import fits

from latentsky.analysis.labels import match_labels, read_labels
from latentsky.demo.tle import (
    SAMPLES_PER_FRAME,
    SATURATION,
    TYPES,
    TleDemoParams,
    episode_signal,
    generate_tle_demo,
    plan_observations,
    rise_time_10_90,
)
from latentsky.instruments.mmia import LEVEL_COLUMNS, find_fits_files, read_mmia_fits
from latentsky.samples.windows import Scaling, WindowSettings, read_observations, window_pieces

US = 10.0  # microseconds per sample at 100 kHz
T = np.arange(1000) * US  # one 10 ms episode


def small_params(**changes) -> TleDemoParams:
    fractions = {name: 1.0 for name in TYPES}  # every type well represented in a small demo
    params = dict(
        seed=3,
        n_observations=12,
        frames_per_observation=2,
        episode_samples=1000,
        fractions=fractions,
        split_fraction=0.5,
    )
    params.update(changes)
    return TleDemoParams(**params)


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    root = tmp_path_factory.mktemp("tle")
    params = small_params()
    summary = generate_tle_demo(root / "fits", root / "labels.csv", root / "truth", params)
    return root, params, summary


def test_files_have_the_real_layout(demo):
    root, params, summary = demo
    files = find_fits_files(root / "fits")
    assert files == sorted(summary["fits_files"])
    assert len(files) > params.n_observations  # some observations are split over two files
    with fits.open(files[0]) as hdul:
        assert isinstance(hdul[1], fits.BinTableHDU)
        names = set(hdul[1].columns.names)
        assert {"frame_time_phot", "observation_id", "latitude", "longitude"} <= names
        assert set(LEVEL_COLUMNS[1]) <= names
        for name in LEVEL_COLUMNS[1]:
            assert hdul[1].columns[name].format == f"{SAMPLES_PER_FRAME}E"
            assert hdul[1].columns[name].unit == "uW/m^2"
        assert hdul[1].data["frame_time_phot"][0].endswith("+00:00")


def test_same_seed_same_bytes(demo, tmp_path):
    root, params, _ = demo
    again = generate_tle_demo(
        tmp_path / "fits", tmp_path / "labels.csv", tmp_path / "truth", params
    )
    for path in again["fits_files"]:
        assert filecmp.cmp(path, root / "fits" / path.name, shallow=False)
    assert filecmp.cmp(tmp_path / "labels.csv", root / "labels.csv", shallow=False)
    other = small_params(seed=4)
    assert plan_observations(other)[0].types != plan_observations(params)[0].types


def test_observations_rejoin_whole_and_in_order(demo):
    root, params, _ = demo
    counts: dict = {}
    observations = dict(read_observations(find_fits_files(root / "fits"), counts))
    assert len(observations) == params.n_observations
    assert counts["gaps"] == 0 and counts["overlapping_frames"] == 0
    for segments in observations.values():
        assert len(segments) == 1
        assert segments[0].n_samples == params.samples_per_observation
    # Some second parts were written with their rows in reverse time order.
    reversed_rows = 0
    for path in find_fits_files(root / "fits"):
        times = read_mmia_fits(path).time
        reversed_rows += bool(len(times) > 1 and np.all(np.diff(times) < np.timedelta64(0)))
    assert reversed_rows >= 1 or params.frames_per_observation < 3


def test_windows_match_planted_episodes(demo):
    """Windows cut with the episode length tile the episodes; each label lands on the window that
    holds its event's peak, and every label is accounted for (placed, unmatched or shared)."""
    root, params, _ = demo
    truth = pd.read_csv(root / "truth" / "truth.csv")
    settings = WindowSettings(length=params.episode_samples, stride=params.episode_samples)
    ds = next(window_pieces(find_fits_files(root / "fits"), settings, Scaling(), {}))
    assert (
        ds.sizes["window"] == len(truth) == params.n_observations * params.episodes_per_observation
    )
    starts = pd.to_datetime(truth["start_time"], utc=True).dt.tz_localize(None).to_numpy()
    np.testing.assert_array_equal(np.sort(ds["start_time"].to_numpy()), np.sort(starts))
    labels = read_labels(root / "labels.csv", site="asim")
    matched, counts = match_labels(ds["time"].to_numpy(), labels, tolerance_s=0.005)
    assert counts["labels"] == counts["matched"] + counts["unmatched"] + counts["shared_sample"]
    assert counts["unmatched"] == 0  # every label time lies inside some window
    # A label's window is the one holding its time (the event's peak or a quiet moment).
    window_start = ds["start_time"].to_numpy()
    length = np.timedelta64(int(params.episode_samples * US * 1e3), "ns")
    label_times = labels["time"].to_numpy(dtype="datetime64[ns]")
    for j in np.flatnonzero(pd.notna(matched)):
        inside = (label_times >= window_start[j]) & (label_times < window_start[j] + length)
        assert matched[j] in set(labels["label"][inside])
    # About half of each type is labelled, at least one of each.
    n_labelled = pd.Series(matched).value_counts()
    n_total = truth["type"].value_counts()
    for kind in TYPES:
        assert 1 <= n_labelled.get(kind, 0) <= n_total[kind]
    assert abs(n_labelled.sum() / len(truth) - params.labelled_fraction) < 0.15


def test_noise_offsets_and_saturation(demo):
    root, params, _ = demo
    settings = WindowSettings(length=params.episode_samples, stride=params.episode_samples)
    ds = next(window_pieces(find_fits_files(root / "fits"), settings, Scaling(high=1e4), {}))
    flux = Scaling(high=1e4).invert(ds["waveform"].to_numpy())
    assert np.all(flux.max(axis=(0, 2)) <= SATURATION + 1e-3)
    # Bright lightning clips flat at the 777.4 nm saturation level in some windows.
    assert np.any(np.sum(np.isclose(flux[:, 2], SATURATION[2]), axis=1) >= 3)
    background = ds["baseline_flux"].to_numpy()
    per_observation = pd.DataFrame(background).groupby(ds["observation"].to_numpy()).median()
    assert per_observation[2].std() > 0.3  # the sky background differs between observations
    noise = ds["noise_flux"].to_numpy()
    assert np.all(noise.mean(axis=0) > 0.05)


def test_lightning_is_red_and_blue_with_little_uv():
    rng = np.random.default_rng(0)
    for _ in range(20):
        signal, info = episode_signal("lightning", T, rng)
        peak337, peakuv, peak777 = signal.max(axis=1)
        assert peak777 > peak337 > 0 and peakuv < 0.02 * peak777
        assert info["onset_us"] < T[-1]


def test_elves_are_uv_short_and_lead_the_777nm_light():
    rng = np.random.default_rng(1)
    for _ in range(20):
        signal, info = episode_signal("elve", T, rng)
        uv, red = signal[1], signal[2]
        assert uv.max() > red.max() and uv.max() > signal[0].max()
        above = np.flatnonzero(uv > 0.1 * uv.max())
        assert (above[-1] - above[0]) * US < 1000.0  # under 1 ms
        first_uv = T[np.argmax(uv > 0)]
        first_red = T[np.argmax(red > 0)]
        assert 50.0 - US <= first_red - first_uv <= 90.0 + US


def test_blue_corona_discharges_are_337nm_fast_risers():
    rng = np.random.default_rng(2)
    fine = np.linspace(0, 10_000, 1_000_001)  # 0.01 us steps: rise times from the shape itself
    for _ in range(10):
        signal, info = episode_signal("blue_corona", fine, rng)
        assert (
            signal[2].max() <= 0.03 * signal[0].max() and signal[1].max() <= 0.1 * signal[0].max()
        )
        y = signal[0] / signal[0].max()
        rise = fine[np.argmax(y >= 0.9)] - fine[np.argmax(y >= 0.1)]
        assert 10.0 - 0.05 <= rise <= 30.0 + 0.05
        assert rise == pytest.approx(info["rise_time_us"], abs=0.05)


def test_sprites_glow_blue_for_about_1p3_ms_after_a_stroke():
    rng = np.random.default_rng(3)
    for _ in range(10):
        signal, info = episode_signal("sprite", T, rng)
        stroke = info["onset_us"]
        start = stroke + info["sprite_delay_us"]
        assert start > stroke and 1000.0 <= info["sprite_length_us"] <= 1600.0
        # After the stroke has faded, 337 nm stays up for the sprite's length and then falls.
        blue_excess = signal[0] - signal[2] * (signal[0][T < start].max() / signal[2].max())
        during = blue_excess[(T > start + 100) & (T < start + info["sprite_length_us"] - 100)]
        assert during.min() > 0.5 * blue_excess.max()


def test_blue_jets_start_with_a_10us_flash_then_pulse():
    rng = np.random.default_rng(4)
    for _ in range(10):
        signal, info = episode_signal("blue_jet", T, rng)
        blue = signal[0]
        onset = int(info["onset_us"] // US)
        flash = blue[onset : onset + 5]
        assert flash.max() == blue.max()
        assert np.count_nonzero(flash > 0.5 * blue.max()) <= 2  # ~10 us at 10 us per sample
        assert info["n_pulses"] >= 1
        later = blue[onset + 20 :]
        assert later.max() > 0.1 * blue.max()  # pulsing goes on after the flash


def test_background_episodes_are_empty_and_pulse_helpers_agree():
    signal, info = episode_signal("background", T, np.random.default_rng(5))
    assert not signal.any() and info == {}
    # ln 9 for a pure (1 - exp(-t)) rise, the limit of a very slow decay.
    assert rise_time_10_90(1.0, 1e7) == pytest.approx(np.log(9.0), abs=0.01)


def test_level_0_demo_reads_as_counts(tmp_path):
    params = small_params(n_observations=2, level=0, split_fraction=0.0)
    summary = generate_tle_demo(tmp_path / "f", tmp_path / "l.csv", tmp_path / "t", params)
    read = read_mmia_fits(summary["fits_files"][0])
    assert read.level == 0 and read.units == "counts"
    assert read.flux[0].min() >= 0 and np.all(read.flux[0] == np.round(read.flux[0]))


def test_truth_and_labels_files(demo):
    root, params, summary = demo
    planted = json.loads((root / "truth" / "planted.json").read_text())
    assert planted["types"] == list(TYPES)
    assert sum(planted["episodes_per_type"].values()) == summary["n_episodes"]
    with (root / "labels.csv").open() as handle:
        header = next(csv.reader(handle))
    assert header == ["time", "site", "observation_id", "label"]
    with pytest.raises(ValueError, match="fractions"):
        TleDemoParams(fractions={"ufo": 1.0}).validate()


def test_frame_time_convention_is_read_as_configured(tmp_path):
    """Files that stamp frame starts, read with ``frame_time="start"``, give the same frame centres
    as files that stamp centres read with the default."""
    times = {}
    for stamped in ("centre", "start"):
        params = small_params(n_observations=2, split_fraction=0.0, frame_time=stamped)
        out = generate_tle_demo(
            tmp_path / stamped / "fits",
            tmp_path / stamped / "l.csv",
            tmp_path / stamped / "t",
            params,
        )
        times[stamped] = read_mmia_fits(out["fits_files"][0], frame_time=stamped).time
        wrong = read_mmia_fits(out["fits_files"][0]).time
    np.testing.assert_array_equal(times["centre"], times["start"])
    assert np.all(times["centre"] - wrong == np.timedelta64(41_600_000, "ns"))
    with pytest.raises(ValueError, match="frame_time"):
        read_mmia_fits(out["fits_files"][0], frame_time="middle")


def test_ingest_warns_when_files_stamp_frame_starts(tmp_path, caplog):
    """Files that stamp frame starts, ingested as if they stamped centres: the labelled events
    miss the pulses by half a frame, and the check says so and names the right convention."""
    import json
    import logging

    from latentsky.samples.windows import write_windows_store
    from latentsky.stores import open_zarr

    params = small_params(n_observations=6, split_fraction=0.0, frame_time="start")
    generate_tle_demo(tmp_path / "fits", tmp_path / "labels.csv", tmp_path / "truth", params)
    labels = read_labels(tmp_path / "labels.csv")
    photometer = {
        "pattern": "**/*.fits*",
        "level": "auto",
        "join_tolerance_us": 50,
        "window": {"length": 512, "stride": 1000, "centre": "pulse"},
        "scaling": {},
    }
    log = logging.getLogger("latentsky.test_frame_time")
    checks = {}
    for configured in ("centre", "start"):
        out = tmp_path / f"{configured}.zarr"
        with caplog.at_level(logging.INFO, logger=log.name):
            write_windows_store(
                tmp_path / "fits",
                {**photometer, "frame_time": configured},
                out,
                log=log,
                labels=labels,
            )
        checks[configured] = json.loads(open_zarr(out).attrs["input_checks"])["frame_time"]
    assert checks["centre"]["verdict"] == "implausible" and checks["centre"]["best"] == "start"
    assert checks["start"]["verdict"] == "plausible"
    assert checks["start"]["share_on_pulse"]["start"] >= 0.9
    assert "photometer.frame_time: start" in caplog.text
