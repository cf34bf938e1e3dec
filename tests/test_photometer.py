"""MMIA photometer files: the FITS reader (levels 0 and 1, broken files), joining, windows, scaling.

Files are written here with astropy directly, column by column, so the reader is checked against
the layout itself rather than against the demo generator (which has tests of its own).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from astropy.io import fits
from cf_check import assert_cf

from latentsky.errors import BadInputError
from latentsky.instruments.mmia import (
    BAND_WAVELENGTHS,
    BANDS,
    LEVEL_COLUMNS,
    SAMPLE_RATE_HZ,
    find_fits_files,
    parse_frame_times,
    read_mmia_fits,
)
from latentsky.samples.windows import (
    Scaling,
    WindowSettings,
    cut_windows,
    empty_windows,
    frames_of_observation,
    join_observation,
    read_observations,
    store_attrs,
    trigger_window_starts,
    window_pieces,
    window_starts,
    windows_dataset,
)
from latentsky.stores import ChunkedStoreWriter, annotate_store, open_zarr

FRAME = 100  # samples per frame in these small files (the real files have 8,320)
NS_PER_SAMPLE = 10_000  # 100 kHz
T0 = np.datetime64("2019-01-05T12:00:00", "ns")


def iso(t: np.datetime64) -> str:
    return str(t.astype("datetime64[us]")) + "+00:00"


def frame_centres(first_sample: int, n_frames: int, frame: int = FRAME) -> list[np.datetime64]:
    """Centre times of consecutive frames whose first frame starts at sample ``first_sample``."""
    return [
        T0 + np.timedelta64((first_sample + k * frame) * NS_PER_SAMPLE + frame * NS_PER_SAMPLE // 2)
        for k in range(n_frames)
    ]


def ramp_flux(first_sample: int, n_samples: int) -> np.ndarray:
    """(3, n) flux whose value is the global sample number (+ band offset): order is visible."""
    s = np.arange(first_sample, first_sample + n_samples, dtype=np.float32)
    return np.stack([s, s + 0.25, s + 0.5])


def write_mmia(
    path,
    flux_frames,
    centres,
    observation_id=1,
    level=1,
    drop=(),
    vla=False,
    extra=None,
    triggers=None,
):
    """Write an MMIA-like FITS file: one row per frame, band vectors, scalar metadata columns.

    ``flux_frames``: list of (3, n) arrays (one per row); ``drop``: column names to leave out;
    ``vla``: write the bands as variable-length arrays (so frames may differ in length);
    ``extra``: further columns; ``triggers``: (rows, 3) bool trigger flags.
    """
    rows = len(flux_frames)
    names = LEVEL_COLUMNS[level]
    columns = [
        fits.Column("observation_id", format="K", array=np.full(rows, observation_id)),
        fits.Column("frame_time_phot", format="32A", array=np.array([iso(c) for c in centres])),
        fits.Column("latitude", format="D", array=np.linspace(10.0, 10.1, rows)),
        fits.Column("longitude", format="D", array=np.linspace(179.95, 180.05, rows)),
    ]
    for b, name in enumerate(names):
        values = [np.asarray(f[b]) for f in flux_frames]
        if level == 0:
            values = [v.astype(np.uint16) for v in values]
        if vla:
            fmt = "PI()" if level == 0 else "PE()"
            columns.append(fits.Column(name, format=fmt, array=np.array(values, dtype=object)))
        else:
            n = values[0].size
            fmt = f"{n}I" if level == 0 else f"{n}E"
            kwargs = {"bzero": 32768} if level == 0 else {"unit": "uW/m^2"}
            columns.append(fits.Column(name, format=fmt, array=np.stack(values), **kwargs))
    if triggers is not None:
        for b in range(3):
            columns.append(fits.Column(f"PHOT{b + 1}DataTrigger", format="L", array=triggers[:, b]))
    columns += list(extra or [])
    columns = [c for c in columns if c.name not in drop]
    hdul = fits.HDUList([fits.PrimaryHDU(), fits.BinTableHDU.from_columns(columns)])
    hdul.writeto(path, overwrite=True)
    return path


def observation_file(path, first_sample=0, n_frames=3, observation_id=1, level=1, **kw):
    flux = ramp_flux(first_sample, n_frames * FRAME)
    frames = [flux[:, k * FRAME : (k + 1) * FRAME] for k in range(n_frames)]
    return write_mmia(
        path, frames, frame_centres(first_sample, n_frames), observation_id, level, **kw
    )


# --------------------------------------------------------------------------------------------
# Reading one file


def test_reads_level_1(tmp_path):
    path = observation_file(tmp_path / "l1.fits", first_sample=0, n_frames=3)
    read = read_mmia_fits(path)
    assert read.level == 1 and read.units == "uW/m^2"
    assert len(read.flux) == 3 and read.flux[0].shape == (3, FRAME)
    assert read.flux[0].dtype == np.float32
    np.testing.assert_array_equal(read.flux[1][0], np.arange(FRAME, 2 * FRAME))
    np.testing.assert_array_equal(read.flux[2][2], np.arange(2 * FRAME, 3 * FRAME) + 0.5)
    assert read.time.dtype == np.dtype("datetime64[ns]")
    np.testing.assert_array_equal(read.time, np.array(frame_centres(0, 3)))
    np.testing.assert_array_equal(read.observation_id, [1, 1, 1])
    assert read.n_skipped == 0 and not read.has_trigger_flags


def test_reads_level_0_counts(tmp_path):
    counts = np.array([[60000, 1, 40000] * 20] * 3, dtype=np.uint16)  # above int16 range too
    frames = [counts[:, : FRAME // 2 * 2][:, :60], counts[:, :60] + 1]
    path = write_mmia(tmp_path / "l0.fits", frames, frame_centres(0, 2, 60), level=0)
    read = read_mmia_fits(path)
    assert read.level == 0 and read.units == "counts"
    np.testing.assert_array_equal(read.flux[0], counts[:, :60].astype(np.float32))
    np.testing.assert_array_equal(read.flux[1], counts[:, :60].astype(np.float32) + 1)
    # Asking for level 1 of a level-0 file names the missing columns.
    with pytest.raises(BadInputError, match="PHOT1_photon_flux"):
        read_mmia_fits(path, level=1)


def test_reads_variable_length_columns_and_trigger_flags(tmp_path):
    frames = [ramp_flux(0, 80), ramp_flux(80, 120)]
    triggers = np.array([[False, False, False], [False, True, False]])
    path = write_mmia(
        tmp_path / "vla.fits",
        frames,
        [T0, T0 + np.timedelta64(1, "ms")],
        vla=True,
        triggers=triggers,
    )
    read = read_mmia_fits(path)
    assert [f.shape for f in read.flux] == [(3, 80), (3, 120)]
    np.testing.assert_array_equal(read.trigger, [False, True])
    assert read.has_trigger_flags


def test_parse_frame_times_accepts_real_variants():
    values = [
        b"2019-01-05T12:00:00.000010+00:00",
        "2019-01-05T12:00:00.5Z",
        "2019-01-05 12:00:01",
        "x",
    ]
    times = parse_frame_times(values)
    assert times[0] == np.datetime64("2019-01-05T12:00:00.000010", "ns")
    assert times[1] == np.datetime64("2019-01-05T12:00:00.5", "ns")
    assert times[2] == np.datetime64("2019-01-05T12:00:01", "ns")
    assert np.isnat(times[3])


# --------------------------------------------------------------------------------------------
# Broken files: fail with the file and column named, or skip and count


@pytest.mark.parametrize("column", ["PHOT2_photon_flux", "frame_time_phot", "observation_id"])
def test_missing_column_names_file_and_column(tmp_path, column):
    path = observation_file(tmp_path / "bad.fits", drop=(column,))
    with pytest.raises(BadInputError) as raised:
        read_mmia_fits(path)
    assert str(path) in str(raised.value) and column in str(raised.value)


def test_bands_of_different_lengths(tmp_path):
    good = ramp_flux(0, 100)
    bad = [good[0], good[1][:90], good[2]]  # PHOT2 is short in the second frame
    frames = [good, bad, ramp_flux(200, 100)]
    path = write_mmia(tmp_path / "lengths.fits", frames, frame_centres(0, 3), vla=True)
    with pytest.raises(BadInputError) as raised:
        read_mmia_fits(path)
    message = str(raised.value)
    assert str(path) in message and "row 1" in message
    assert "different lengths" in message and "PHOT2_photon_flux 90" in message
    read = read_mmia_fits(path, skip_bad_frames=True)
    assert read.n_skipped == 1 and len(read.flux) == 2
    np.testing.assert_array_equal(read.rows, [0, 2])
    assert "PHOT2_photon_flux 90" in read.problems[0]


@pytest.mark.parametrize(
    ("frame", "what"),
    [
        (np.zeros((3, 0), np.float32), "hold no samples"),
        (np.full((3, 100), np.nan, np.float32), "no finite sample"),
    ],
)
def test_empty_frames(tmp_path, frame, what):
    frames = [ramp_flux(0, 100), frame, ramp_flux(200, 100)]
    path = write_mmia(tmp_path / "empty.fits", frames, frame_centres(0, 3), vla=True)
    with pytest.raises(BadInputError, match=f"row 1.*{what}"):
        read_mmia_fits(path)
    read = read_mmia_fits(path, skip_bad_frames=True)
    assert read.n_skipped == 1 and len(read.flux) == 2


def test_band_flagged_absent_and_bad_time(tmp_path):
    exists = fits.Column("PHOT3Data_exists", format="L", array=np.array([True, False, True]))
    path = observation_file(tmp_path / "absent.fits", extra=[exists])
    with pytest.raises(BadInputError, match="row 1.*PHOT3Data_exists"):
        read_mmia_fits(path)
    assert read_mmia_fits(path, skip_bad_frames=True).n_skipped == 1

    frames = [ramp_flux(0, 100)] * 2
    path = write_mmia(tmp_path / "time.fits", frames, frame_centres(0, 2))
    with fits.open(path, mode="update") as hdul:
        hdul[1].data["frame_time_phot"][0] = "not a time"
    with pytest.raises(BadInputError, match="row 0.*frame_time_phot"):
        read_mmia_fits(path)


def test_unreadable_files(tmp_path):
    garbage = tmp_path / "garbage.fits"
    garbage.write_bytes(b"SIMPLE  =  this is no FITS file" * 10)
    with pytest.raises(BadInputError, match="garbage.fits"):
        read_mmia_fits(garbage)
    image = tmp_path / "image.fits"
    fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(np.zeros((4, 4)))]).writeto(image)
    with pytest.raises(BadInputError, match="not a binary table"):
        read_mmia_fits(image)


def test_many_files_skip_and_count_or_fail(tmp_path):
    observation_file(tmp_path / "a.fits", 0, 3, observation_id=1)
    observation_file(tmp_path / "b.fits", 0, 3, observation_id=2, drop=("PHOT1_photon_flux",))
    frames = [ramp_flux(0, 100), np.zeros((3, 0), np.float32)]
    write_mmia(tmp_path / "c.fits", frames, frame_centres(0, 2), observation_id=3, vla=True)
    paths = find_fits_files(tmp_path)
    counts: dict = {}
    seen = dict(read_observations(paths, counts, skip_bad_input=True))
    assert sorted(seen) == [1, 3]
    assert counts["files_unreadable"] == 1 and counts["files_read"] == 2
    assert counts["frames_skipped"] == 1 and counts["observations"] == 2
    with pytest.raises(BadInputError, match="b.fits.*PHOT1_photon_flux"):
        dict(read_observations(paths, {}, skip_bad_input=False))


def test_files_of_another_level_are_bad_input(tmp_path):
    observation_file(tmp_path / "a.fits", observation_id=1, level=1)
    observation_file(tmp_path / "b.fits", observation_id=2, level=0)
    counts, described = {}, {}
    found = read_observations(
        find_fits_files(tmp_path), counts, skip_bad_input=True, described=described
    )
    assert [o for o, _ in found] == [1]
    assert counts["files_unreadable"] == 1 and described["level"] == 1


# --------------------------------------------------------------------------------------------
# Joining frames into segments


def joined(tmp_path, files, **kw):
    reads = [read_mmia_fits(p, skip_bad_frames=True) for p in files]
    return join_observation(frames_of_observation(reads, 1), 1, **kw)


def test_join_puts_frames_of_several_files_in_time_order(tmp_path):
    flux = ramp_flux(0, 5 * FRAME)
    frames = [flux[:, k * FRAME : (k + 1) * FRAME] for k in range(5)]
    centres = frame_centres(0, 5)
    a = write_mmia(tmp_path / "a.fits", [frames[3], frames[0]], [centres[3], centres[0]])
    b = write_mmia(  # rows in reverse time order
        tmp_path / "b.fits", [frames[4], frames[2], frames[1]], [centres[4], centres[2], centres[1]]
    )
    segments, counts, _ = joined(tmp_path, [a, b])
    assert len(segments) == 1 and counts["frames"] == 5 and counts["gaps"] == 0
    np.testing.assert_array_equal(segments[0].flux, flux)
    assert segments[0].start_ns == T0.astype(np.int64)


def test_join_splits_at_gaps_and_tolerates_jitter(tmp_path):
    flux = ramp_flux(0, 4 * FRAME)
    frames = [flux[:, k * FRAME : (k + 1) * FRAME] for k in range(4)]
    centres = frame_centres(0, 4)
    centres[1] += np.timedelta64(20, "us")  # jitter, within the default 50 us
    centres[3] += np.timedelta64(5, "ms")  # a gap of 500 samples before the last frame
    path = write_mmia(tmp_path / "gap.fits", frames, centres)
    segments, counts, _ = joined(tmp_path, [path])
    assert counts["gaps"] == 1 and [s.n_samples for s in segments] == [3 * FRAME, FRAME]
    np.testing.assert_array_equal(segments[0].flux, flux[:, : 3 * FRAME])
    np.testing.assert_array_equal(segments[1].flux, flux[:, 3 * FRAME :])
    # With a tolerance below the jitter, the late frame leaves a gap before it and the next,
    # on time, overlaps it: inconsistent times are bad input, not silently joined.
    with pytest.raises(BadInputError, match="row 2.*overlaps.*row 1"):
        joined(tmp_path, [path], tolerance_s=5e-6)


def test_join_drops_duplicates_and_refuses_overlaps(tmp_path):
    flux = ramp_flux(0, 3 * FRAME)
    frames = [flux[:, k * FRAME : (k + 1) * FRAME] for k in range(3)]
    centres = frame_centres(0, 3)
    a = write_mmia(tmp_path / "a.fits", frames, centres)
    b = write_mmia(tmp_path / "b.fits", frames[1:2], centres[1:2])  # the same frame again
    segments, counts, _ = joined(tmp_path, [a, b])
    assert counts["duplicate_frames"] == 1 and segments[0].n_samples == 3 * FRAME

    overlap = [centres[1] + np.timedelta64(300, "us")]  # starts 30 samples into frame 2
    c = write_mmia(tmp_path / "c.fits", [frames[0] + 1000], overlap)
    with pytest.raises(BadInputError, match="overlaps") as raised:
        joined(tmp_path, [a, c])
    assert "c.fits" in str(raised.value) and "a.fits" in str(raised.value)
    segments, counts, problems = joined(tmp_path, [a, c], skip_bad_frames=True)
    assert counts["overlapping_frames"] == 1 and len(problems) == 1
    np.testing.assert_array_equal(segments[0].flux, flux)


# --------------------------------------------------------------------------------------------
# Windows


def test_window_starts():
    np.testing.assert_array_equal(window_starts(10, 4, 4), [0, 4])
    np.testing.assert_array_equal(window_starts(10, 4, 3), [0, 3, 6])
    assert window_starts(3, 4, 1).size == 0
    np.testing.assert_array_equal(trigger_window_starts(100, 10, [50, 2, 98, 51]), [0, 45, 46, 90])


def test_windows_never_cross_an_observation_boundary(tmp_path):
    """Two observations that abut in time exactly: no window mixes their samples."""
    observation_file(tmp_path / "a.fits", first_sample=0, n_frames=3, observation_id=1)
    observation_file(tmp_path / "b.fits", first_sample=3 * FRAME, n_frames=3, observation_id=2)
    settings = WindowSettings(length=70, stride=50)
    counts: dict = {}
    pieces = list(window_pieces(find_fits_files(tmp_path), settings, Scaling(high=1e4), counts))
    ds = pieces[0]
    flux = Scaling(high=1e4).invert(ds["waveform"].to_numpy())
    first = flux[:, 0, 0]  # the global sample number of each window's first sample
    observation = ds["observation"].to_numpy()
    assert set(observation) == {1, 2}
    # Every window lies inside its own observation's samples [0, 300) or [300, 600).
    lo = np.where(observation == 1, 0, 3 * FRAME)
    assert np.all(first >= lo) and np.all(first + settings.length <= lo + 3 * FRAME)
    assert counts["windows"] == 2 * len(window_starts(3 * FRAME, 70, 50))
    # ... and each window is its samples in time order, never reversed.
    offsets = flux[:, 0, :] - first[:, np.newaxis]
    np.testing.assert_allclose(offsets, np.broadcast_to(np.arange(70.0), offsets.shape), atol=0.1)


def test_window_coordinates_and_scaling(tmp_path):
    observation_file(tmp_path / "a.fits", first_sample=0, n_frames=3, observation_id=7)
    settings = WindowSettings(length=100, stride=100)
    scaling = Scaling(high=1000.0)
    ds = next(window_pieces(find_fits_files(tmp_path), settings, scaling, {}))
    assert ds["waveform"].dims == ("window", "channel", "sample")
    assert ds.sizes == {"window": 3, "band": 3, "channel": 3, "sample": 100}
    assert list(ds["band"].to_numpy()) == list(BANDS)
    assert list(ds["channel"].to_numpy()) == list(BANDS)  # no colour channels unless asked
    assert list(ds["wavelength"].to_numpy()) == [BAND_WAVELENGTHS[b] for b in BANDS]
    expected_start = T0 + np.arange(3) * np.timedelta64(100 * NS_PER_SAMPLE, "ns")
    np.testing.assert_array_equal(ds["start_time"].to_numpy(), expected_start)
    np.testing.assert_array_equal(
        ds["time"].to_numpy(), expected_start + np.timedelta64(50 * NS_PER_SAMPLE, "ns")
    )
    # Longitude runs 179.95 -> 180.05 over the frame centres: interpolated across the date line.
    lon = ds["longitude"].to_numpy()
    assert np.all((lon >= -180) & (lon < 180)) and np.all(np.abs(np.abs(lon) - 180) < 0.1)
    # The peak feature is of the unscaled flux: the ramp rises by 99 within each window.
    np.testing.assert_allclose(ds["peak_flux"].to_numpy(), 99 / 2, atol=0.6)


def test_trigger_centred_windows(tmp_path):
    flux = np.ones((3, 3 * FRAME), np.float32) + 0.01 * np.random.default_rng(0).standard_normal(
        (3, 3 * FRAME)
    ).astype(np.float32)
    flux[2, 130] = 50.0  # a flash in the second frame
    frames = [flux[:, k * FRAME : (k + 1) * FRAME] for k in range(3)]
    triggers = np.array([[False] * 3, [False, False, True], [False] * 3])
    path = write_mmia(tmp_path / "t.fits", frames, frame_centres(0, 3), triggers=triggers)
    segments, _, _ = joined(tmp_path, [path])
    starts, anchors = cut_windows(segments[0], 40, 40, centre="trigger")
    assert (anchors == -1).all()
    np.testing.assert_array_equal(starts, [110])  # 130 - 40 // 2
    assert cut_windows(segments[0], 40, 40, centre="none")[0].size == 7


def test_scaling_round_trip_and_record():
    linear = Scaling()  # the study: 0..210 uW/m^2
    np.testing.assert_allclose(linear.apply([-5.0, 0.0, 105.0, 210.0, 500.0]), [0, 0, 0.5, 1, 1])
    log = Scaling(method="log", low=0.0, high=210.0, log_scale=2.0)
    x = np.array([0.0, 0.5, 3.0, 80.0, 210.0])
    np.testing.assert_allclose(log.invert(log.apply(x)), x, rtol=1e-5, atol=1e-5)
    assert log.apply([1.0])[0] > 1.0 / 210.0  # faint signals take more of the range
    record = json.loads(store_attrs("uW/m^2", log, WindowSettings(), {})["normalisation"])
    assert record == {
        "method": "log",
        "low": 0.0,
        "high": 210.0,
        "log_scale": 2.0,
        "baseline": "none",
        "unit": "flux",
        "units": "uW/m^2",
    }
    assert Scaling.from_dict(record) == log
    with pytest.raises(ValueError, match="high > low"):
        Scaling(low=5, high=5)


def test_scaling_above_the_window_background():
    """``window_median``: each window's per-band median is taken off before scaling, and the
    store's ``baseline_flux`` (the same median) gives the flux back."""
    rng = np.random.default_rng(0)
    flux = rng.normal(0.0, 0.3, (5, 3, 200)) + rng.uniform(1, 8, (5, 3, 1))
    flux[:, 2, 100:110] += 50.0
    scaling = Scaling(method="log", low=-10.0, high=200.0, log_scale=10.0, baseline="window_median")
    scaled = scaling.apply(flux)
    assert scaled.min() > 0 and scaled.max() < 1
    quiet = scaled[:, :, :50]
    # Without the background the quiet parts of all windows sit at the same level.
    assert np.ptp(np.median(quiet, axis=2)) < 0.01
    baseline = np.median(flux, axis=2, keepdims=True)
    np.testing.assert_allclose(scaling.invert(scaled, baseline), flux, atol=1e-3)
    with pytest.raises(ValueError, match="baselines"):
        scaling.invert(scaled)
    with pytest.raises(ValueError, match="baseline"):
        Scaling(baseline="mean")


def test_store_round_trip(tmp_path):
    observation_file(tmp_path / "a.fits", 0, 3, observation_id=1)
    observation_file(tmp_path / "b.fits", 0, 2, observation_id=2)
    settings = WindowSettings(length=50, stride=50)
    scaling = Scaling(high=1000.0)
    counts, described = {}, {}
    store = ChunkedStoreWriter(tmp_path / "windows.zarr", dim="window", chunk_len=4)
    for piece in window_pieces(
        find_fits_files(tmp_path), settings, scaling, counts, block_windows=4, described=described
    ):
        store.add(piece)
    attrs = store_attrs(described["units"], scaling, settings, counts)
    store.commit(attrs, empty=empty_windows(50))
    ds = open_zarr(tmp_path / "windows.zarr")
    assert ds["waveform"].dims == ("window", "channel", "sample")
    np.testing.assert_array_equal(ds["window"].to_numpy(), np.arange(10))
    np.testing.assert_array_equal(ds["observation"].to_numpy(), [1] * 6 + [2] * 4)
    assert json.loads(ds.attrs["band_wavelengths"])["PHOT3"] == "777.4 nm"
    assert ds.attrs["units"] == "uW/m^2" and json.loads(ds.attrs["bad_input"])["windows"] == 10
    assert ds["peak_flux"].attrs["units"] == "uW/m^2"
    # A CF store (the workflow's ingest adds the source and the ASIM acknowledgement).
    annotate_store(tmp_path / "windows.zarr", source="test files", acknowledgement="ASIM")
    assert_cf(tmp_path / "windows.zarr")


def test_windows_dataset_rejects_windows_outside_the_segment(tmp_path):
    path = observation_file(tmp_path / "a.fits", 0, 1)
    segment = joined(tmp_path, [path])[0][0]
    with pytest.raises(ValueError, match="outside"):
        windows_dataset(segment, np.array([60]), 50, Scaling(), "uW/m^2")
    assert SAMPLE_RATE_HZ == 1e9 / NS_PER_SAMPLE
