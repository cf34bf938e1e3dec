"""The seeded demo-data generator: archive layouts, file formats, planted truth and its physics.

One small demo (5 nights x 1 UT hour, one frame every 5 minutes) is generated once per module and
shared; checks that need the full-size plan call :func:`plan_nights`, which renders nothing.
"""

from __future__ import annotations

import csv
import datetime as dt
import filecmp
import gzip
import json
import math
import time

import cdflib
import numpy as np
import pytest
from astropy import units as u
from astropy.time import Time

from latentsky.acquisition import layouts
from latentsky.demo.aurora import (
    CLASSES,
    SIGMA_PHI_LOGNORMAL,
    DemoParams,
    Renderer,
    generate_demo_mirror,
    plan_nights,
)
from latentsky.instruments.gpstime import gps_to_utc
from latentsky.instruments.themis import read_berkeley_calibration, read_themis_l1_cdf

NIGHTS = [dt.date(2019, 1, 5) + dt.timedelta(days=k) for k in range(5)]
SITE = "fsim"
EARTH_KM = 6371.2


def small_params(**changes) -> DemoParams:
    params = dict(nights=NIGHTS, first_hour=6, last_hour=6, cadence_s=300.0, seed=3)
    params.update(changes)
    return DemoParams(**params)


def hours(params: DemoParams) -> list[dt.datetime]:
    return [
        h
        for d in params.nights
        for h in layouts.hours_of_night(d, params.first_hour, params.last_hour)
    ]


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    root = tmp_path_factory.mktemp("demo")
    params = small_params()
    summary = generate_demo_mirror(root / "mirror", root / "labels.csv", root / "truth", params)
    return root, params, summary


@pytest.fixture(scope="module")
def truth(demo):
    root = demo[0]
    with (root / "truth" / "truth.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    times = np.array([np.datetime64(r["time"].rstrip("Z"), "ms") for r in rows])
    classes = np.array([r["class"] for r in rows])
    sigma = np.array([float(r["sigma_phi"]) for r in rows])
    return times, classes, sigma


@pytest.fixture(scope="module")
def frames(demo):
    """All frames as stored (Berkeley orientation), (N, 256, 256), and their epochs in ms."""
    root, params, _ = demo
    stacks, epochs = [], []
    for hour in hours(params):
        cdf = cdflib.CDF(root / "mirror" / "themis_l1" / layouts.berkeley_l1_cdf(SITE, hour))
        stacks.append(cdf.varget(f"thg_asf_{SITE}"))
        epochs.append(cdf.varget(f"thg_asf_{SITE}_epoch"))
    return np.concatenate(stacks), np.concatenate(epochs)


@pytest.fixture(scope="module")
def calibration(demo):
    root, _, _ = demo
    path = root / "mirror" / "themis_cal" / layouts.berkeley_calibration_cdf(SITE)
    cdf = cdflib.CDF(path)
    return {name: cdf.varget(name) for name in cdf.cdf_info().zVariables}


def read_ismr(path):
    with gzip.open(path, "rt") as fh:
        lines = fh.read().splitlines()
    return [line.split(",") for line in lines]


# --------------------------------------------------------------------------------------------
# Layouts and formats
# --------------------------------------------------------------------------------------------


def test_files_land_at_the_archive_layout_paths(demo):
    root, params, summary = demo
    mirror = root / "mirror"
    expected_l1 = [mirror / "themis_l1" / layouts.berkeley_l1_cdf(SITE, h) for h in hours(params)]
    expected_ismr = [mirror / "chain_ismr" / layouts.chain_ismr("fsi", h) for h in hours(params)]
    assert all(p.is_file() for p in expected_l1 + expected_ismr)
    assert (mirror / "themis_cal" / "thg_l2_asc_fsim_19700101_v01.cdf").is_file()
    assert summary["l1_cdfs"] == expected_l1
    assert summary["ismr_files"] == expected_ismr
    assert (root / "truth" / "truth.csv").is_file()
    planted = json.loads((root / "truth" / "planted.json").read_text())
    assert planted["classes"] == list(CLASSES)
    assert planted["sigma_phi_lognormal"]["discrete"] == {"mu": -1.5, "sigma": 0.5}
    assert planted["params"]["nights"][0] == "2019-01-05"


def test_level1_cdf_variables_types_and_times(demo):
    root, params, _ = demo
    for hour in hours(params):
        cdf = cdflib.CDF(root / "mirror" / "themis_l1" / layouts.berkeley_l1_cdf(SITE, hour))
        image = cdf.varinq("thg_asf_fsim")
        assert image.Data_Type_Description == "CDF_UINT2"
        assert image.Dim_Sizes == [256, 256] and image.Rec_Vary
        assert cdf.varinq("thg_asf_fsim_epoch").Data_Type_Description == "CDF_EPOCH"
        data = cdf.varget("thg_asf_fsim")
        assert data.dtype == np.uint16 and data.shape == (12, 256, 256)
        times = np.array(cdflib.cdfepoch.to_datetime(cdf.varget("thg_asf_fsim_epoch")))
        start = np.datetime64(hour, "ns")
        assert (times >= start).all() and (times < start + np.timedelta64(1, "h")).all()
        steps = np.diff(times).astype("timedelta64[ms]").astype(float) / 1000.0
        assert np.allclose(steps, 300.0, atol=0.1)
        # Each exposure starts ~3 s after its cadence step, like hh:mm:03.05.
        into_step = (times - start).astype("timedelta64[ms]").astype(float) / 1000.0 % 300.0
        assert ((into_step > 3.0) & (into_step < 3.1)).all()
        assert cdf.varattsget("thg_asf_fsim")["DEPEND_0"] == "thg_asf_fsim_epoch"
        unix = cdf.varget("thg_asf_fsim_time")
        assert np.array_equal(unix, np.floor(unix))  # whole seconds, as in the real files


def test_level1_cdf_mimics_the_real_sample(demo, shared_data):
    """Every variable of the real GAKO file exists with the same type, shape, variance, attributes."""
    root, params, _ = demo
    real = cdflib.CDF(shared_data / "themis" / "gako" / "thg_l1_asf_gako_2011010617_v01.cdf")
    ours = cdflib.CDF(
        root / "mirror" / "themis_l1" / layouts.berkeley_l1_cdf(SITE, hours(params)[0])
    )
    our_vars = ours.cdf_info().zVariables
    for name in real.cdf_info().zVariables:
        mine = name.replace("gako", SITE)
        assert mine in our_vars, mine
        a, b = real.varinq(name), ours.varinq(mine)
        assert (a.Data_Type, a.Dim_Sizes, a.Rec_Vary) == (b.Data_Type, b.Dim_Sizes, b.Rec_Vary), (
            name
        )
        missing = set(real.varattsget(name)) - set(ours.varattsget(mine))
        assert not missing, (name, missing)
    assert set(real.globalattsget()) <= set(ours.globalattsget())


def test_the_project_readers_read_the_mirror(demo, frames):
    """The workflow's own readers accept the files and undo the 180-degree Berkeley rotation."""
    root, params, _ = demo
    path = root / "mirror" / "themis_l1" / layouts.berkeley_l1_cdf(SITE, hours(params)[0])
    canonical, times = read_themis_l1_cdf(path, SITE)
    assert np.array_equal(canonical, frames[0][:12, ::-1, ::-1])
    assert times.dtype == np.dtype("datetime64[ns]") and times.size == 12
    skymap = read_berkeley_calibration(
        root / "mirror" / "themis_cal" / layouts.berkeley_calibration_cdf(SITE), SITE
    )
    assert skymap.site_lat == pytest.approx(61.76, abs=1e-4)
    assert skymap.site_lon == pytest.approx(-121.23, abs=1e-4)
    assert skymap.site_alt_km == pytest.approx(0.27, abs=1e-4)
    assert set(skymap.corner_lat) == {90.0, 110.0, 150.0}
    # Canonical orientation: north at the top, east on the left.
    assert skymap.azimuth[5, 128] == pytest.approx(0.0, abs=2.0) or skymap.azimuth[5, 128] > 358.0
    assert skymap.azimuth[128, 5] == pytest.approx(90.0, abs=2.0)
    assert skymap.corner_lat[110.0][10, 128] > skymap.site_lat > skymap.corner_lat[110.0][246, 128]
    assert skymap.corner_lon[110.0][128, 10] > skymap.site_lon > skymap.corner_lon[110.0][128, 246]


def test_calibration_file_contents(calibration):
    elev, azim = calibration["thg_asf_fsim_elev"], calibration["thg_asf_fsim_azim"]
    assert elev.shape == azim.shape == (256, 256) and elev.dtype == np.float32
    rows, cols = np.mgrid[0:256, 0:256]
    radius = np.hypot(rows - 127.5, cols - 127.5)
    assert np.isnan(elev[radius > 0.49 * 256 + 1]).all()
    assert np.isfinite(elev[radius < 0.49 * 256 - 1]).all()
    assert np.nanmax(elev) > 89.0 and np.nanmin(elev) >= 0.0
    # Equidistant fisheye: zenith angle proportional to radius.
    inside = radius < 120
    assert np.allclose(90.0 - elev[inside], 90.0 * radius[inside] / (0.49 * 256), atol=0.01)
    # Stored rotated by 180 degrees: south at the top row, west on the left.
    assert azim[5, 128] == pytest.approx(180.0, abs=2.0)
    assert azim[128, 5] == pytest.approx(270.0, abs=2.0)
    assert calibration["thg_asc_fsim_glon"] == pytest.approx(-121.23, abs=1e-4)
    assert calibration["thg_asc_fsim_alti"] == pytest.approx(270.0)
    assert np.array_equal(calibration["thg_asf_fsim_alti"], [90000.0, 110000.0, 150000.0])
    glat, glon = calibration["thg_asf_fsim_glat"], calibration["thg_asf_fsim_glon"]
    assert glat.shape == glon.shape == (3, 257, 257)
    assert np.nanmin(glon) >= 0.0 and np.nanmax(glon) < 360.0
    assert np.isnan(glat[:, 0, 0]).all() and np.isfinite(glat[:, 128, 128]).all()
    # Higher emission reaches farther: the 150 km map spans more latitude than the 90 km map.
    spans = [np.nanmax(glat[i]) - np.nanmin(glat[i]) for i in range(3)]
    assert spans[0] < spans[1] < spans[2]


def test_corner_maps_agree_with_elevation_and_azimuth(calibration):
    """Independent spherical geometry: elevation and bearing of each 110 km pixel centre."""
    glat = np.radians(calibration["thg_asf_fsim_glat"][1].astype(np.float64))
    glon = np.radians(calibration["thg_asf_fsim_glon"][1].astype(np.float64))
    # Pixel centres from corner averages of unit vectors.
    vec = np.stack([np.cos(glat) * np.cos(glon), np.cos(glat) * np.sin(glon), np.sin(glat)])
    centre = vec[:, :-1, :-1] + vec[:, 1:, :-1] + vec[:, :-1, 1:] + vec[:, 1:, 1:]
    centre /= np.linalg.norm(centre, axis=0)
    lat1, lon1 = math.radians(61.76), math.radians(-121.23)
    site = np.array(
        [math.cos(lat1) * math.cos(lon1), math.cos(lat1) * math.sin(lon1), math.sin(lat1)]
    )
    psi = np.arccos(np.clip(np.tensordot(site, centre, axes=1), -1, 1))
    r_site, r_shell = EARTH_KM + 0.27, EARTH_KM + 110.0
    elevation = np.degrees(np.arctan2(r_shell * np.cos(psi) - r_site, r_shell * np.sin(psi)))
    lat2 = np.arcsin(centre[2])
    lon2 = np.arctan2(centre[1], centre[0])
    bearing = (
        np.degrees(
            np.arctan2(
                np.sin(lon2 - lon1) * np.cos(lat2),
                math.cos(lat1) * np.sin(lat2) - math.sin(lat1) * np.cos(lat2) * np.cos(lon2 - lon1),
            )
        )
        % 360.0
    )
    elev = calibration["thg_asf_fsim_elev"]
    azim = calibration["thg_asf_fsim_azim"]
    ok = (elev > 15.0) & (elev < 80.0)
    assert ok.sum() > 20000
    assert np.abs(elevation[ok] - elev[ok]).max() < 0.3
    daz = (bearing[ok] - azim[ok] + 180.0) % 360.0 - 180.0
    assert np.abs(daz).max() < 0.5


def test_frames_have_a_pedestal_and_a_dark_rim(frames, truth, calibration):
    data = frames[0].astype(np.float64)
    elev = calibration["thg_asf_fsim_elev"]
    outside = np.isnan(elev)
    zenith = elev > 70.0
    clear = truth[1] == "clear"
    assert clear.sum() >= 3
    zenith_level = np.median(data[clear][:, zenith], axis=1)
    assert ((zenith_level > 3300.0) & (zenith_level < 3800.0)).all()
    rim = np.median(data[:, outside], axis=1)
    assert ((rim > 2200.0) & (rim < 2450.0)).all()


def test_stars_sit_where_the_sky_puts_them(frames, truth, calibration):
    """Bright catalogue stars appear at the stored calibration's pixel for their altitude/azimuth.

    Altitude and azimuth come from astropy's sidereal time and the textbook formulas, so a wrong
    rotation of the frames, of the calibration or of the sky would all show.
    """
    times, classes, _ = truth
    stars = Renderer(small_params()).stars
    elev = np.radians(calibration["thg_asf_fsim_elev"].astype(np.float64))
    azim = np.radians(calibration["thg_asf_fsim_azim"].astype(np.float64))
    pixel_vec = np.stack([np.cos(elev) * np.sin(azim), np.cos(elev) * np.cos(azim), np.sin(elev)])
    lat = math.radians(61.76)
    checked = 0
    for i in np.flatnonzero(classes == "clear")[:4]:
        lst = Time(str(times[i]), scale="utc").sidereal_time("mean", longitude=-121.23 * u.deg).rad
        ha = lst - stars.ra
        alt = np.arcsin(
            np.sin(lat) * np.sin(stars.dec) + np.cos(lat) * np.cos(stars.dec) * np.cos(ha)
        )
        az = np.arctan2(
            -np.cos(stars.dec) * np.sin(ha),
            np.sin(stars.dec) * np.cos(lat) - np.cos(stars.dec) * np.sin(lat) * np.cos(ha),
        )
        frame = frames[0][i].astype(np.float64)
        for s in np.argsort(-stars.flux * (alt > np.radians(40.0)))[:3]:
            star_vec = np.array(
                [np.cos(alt[s]) * np.sin(az[s]), np.cos(alt[s]) * np.cos(az[s]), np.sin(alt[s])]
            )
            r, c = np.unravel_index(
                np.nanargmax(np.tensordot(star_vec, pixel_vec, axes=1)), elev.shape
            )
            near = frame[r - 1 : r + 2, c - 1 : c + 2].max()
            background = np.median(frame[r - 8 : r + 9, c - 8 : c + 9])
            assert near - background > 300.0, (i, s, near, background)
            checked += 1
    assert checked >= 6


# --------------------------------------------------------------------------------------------
# Scintillation files
# --------------------------------------------------------------------------------------------


def test_ismr_rows_have_62_fields_and_minute_end_times(demo):
    root, params, summary = demo
    for hour, path in zip(hours(params), summary["ismr_files"], strict=True):
        rows = read_ismr(path)
        assert all(len(r) == 62 for r in rows)
        week = np.array([int(r[0]) for r in rows])
        tow = np.array([float(r[1]) for r in rows])
        utc = gps_to_utc(week, tow)
        start = np.datetime64(hour, "ns")
        minutes = (utc - start) / np.timedelta64(60, "s")
        assert np.array_equal(np.unique(minutes), np.arange(1, 61))  # minute ends inside the hour
        per_minute = np.bincount(minutes.astype(int))[1:]
        assert per_minute.min() >= 8 and per_minute.max() <= 12
        svid = np.array([int(r[2]) for r in rows])
        assert svid.min() >= 1 and svid.max() <= 32
        assert any("nan" in r for r in rows)


def _minute_table(demo):
    """{minute end (ISO string, s): (n, 3) array of (elevation, lock time, phi60)} over all files."""
    _, _, summary = demo
    table = {}
    for path in summary["ismr_files"]:
        rows = read_ismr(path)
        ends = gps_to_utc([int(r[0]) for r in rows], [float(r[1]) for r in rows])
        values = np.array([(float(r[5]), float(r[24]), float(r[13])) for r in rows])
        for end in np.unique(ends):
            table[str(end.astype("datetime64[s]"))] = values[ends == end]
    return table


def test_quality_cuts_recover_the_planted_sigma_phi(demo, truth):
    times, _, sigma = truth
    table = _minute_table(demo)
    errors_cut, errors_raw_median, errors_raw_mean = [], [], []
    for t, s in zip(times, sigma, strict=True):
        end = (t.astype("datetime64[m]") + np.timedelta64(1, "m")).astype("datetime64[s]")
        rows = table[str(end)]
        good = (rows[:, 0] >= 30.0) & (rows[:, 1] >= 200.0)
        assert good.sum() >= 2
        assert (~good).sum() >= 1  # there is always something for the cuts to remove
        errors_cut.append(abs(np.median(rows[good, 2]) / s - 1.0))
        errors_raw_median.append(abs(np.median(rows[:, 2]) / s - 1.0))
        errors_raw_mean.append(abs(np.mean(rows[:, 2]) / s - 1.0))
    assert max(errors_cut) < 0.06 and np.median(errors_cut) < 0.02
    # Without the cuts the satellites that fail them dominate.
    assert min(errors_raw_mean) > 0.2 and np.median(errors_raw_mean) > 2.0
    assert np.mean(np.array(errors_raw_median) > 0.1) > 0.3


# --------------------------------------------------------------------------------------------
# Labels, truth and the planted classes
# --------------------------------------------------------------------------------------------


def test_labels_are_an_oath_style_subset(demo, truth):
    root, _, _ = demo
    times, classes, _ = truth
    with (root / "labels.csv").open() as fh:
        reader = csv.reader(fh)
        assert next(reader) == ["time", "site", "label"]
        rows = list(reader)
    assert {r[2] for r in rows} == set(CLASSES)
    assert {r[1] for r in rows} == {SITE}
    class_of = dict(zip((str(t) + "Z" for t in times), classes, strict=True))
    assert all(class_of[r[0]] == r[2] for r in rows)
    assert 0.4 * len(times) <= len(rows) <= 0.6 * len(times)


def test_default_plan_covers_all_classes_with_realistic_episodes():
    episodes, _, sigma = plan_nights(DemoParams())
    minutes = {c: 0 for c in CLASSES}
    log_sigma = {c: [] for c in CLASSES}
    for k, night in enumerate(episodes):
        assert night[0].start == 0 and night[-1].stop == 480
        for a, b in zip(night[:-1], night[1:], strict=True):
            assert a.stop == b.start and a.cls != b.cls
        for ep in night:
            assert 10 <= ep.stop - ep.start <= 49
            minutes[ep.cls] += ep.stop - ep.start
            log_sigma[ep.cls].extend(np.log(sigma[k, ep.start : ep.stop]))
    assert min(minutes.values()) >= 250, minutes
    for cls, (mu, sd) in SIGMA_PHI_LOGNORMAL.items():
        assert np.mean(log_sigma[cls]) == pytest.approx(mu, abs=0.1)
        assert np.std(log_sigma[cls]) == pytest.approx(sd, abs=0.08)


def test_brightness_follows_the_physics(frames, truth, calibration):
    """Mean counts above 10 degrees elevation: discrete > arc > clear; clouds and moon > clear."""
    classes = truth[1]
    sky = calibration["thg_asf_fsim_elev"] > 10.0
    mean = frames[0][:, sky].mean(axis=1)
    by_class = {c: mean[classes == c].mean() for c in CLASSES}
    assert by_class["discrete"] > by_class["arc"] > by_class["clear"]
    assert by_class["discrete"] > max(by_class["diffuse"], by_class["cloudy"], by_class["moon"])
    for cls in ("diffuse", "moon", "cloudy"):
        assert by_class[cls] > by_class["clear"] + 300.0, by_class


def test_seeded_runs_are_identical_and_seeds_matter(tmp_path, demo):
    root, params, summary = demo
    again = generate_demo_mirror(tmp_path / "m", tmp_path / "labels.csv", tmp_path / "t", params)
    # CDF variables are identical (the files themselves differ only in the time stamps of the gzip
    # headers that cdflib writes); everything else is byte-identical.
    for a, b in zip(summary["l1_cdfs"], again["l1_cdfs"], strict=True):
        first, second = cdflib.CDF(a), cdflib.CDF(b)
        for name in first.cdf_info().zVariables:
            assert np.array_equal(first.varget(name), second.varget(name)), (a, name)
    for a, b in zip(summary["ismr_files"], again["ismr_files"], strict=True):
        assert filecmp.cmp(a, b, shallow=False), a
    assert filecmp.cmp(summary["calibration_cdf"], again["calibration_cdf"], shallow=False)
    assert filecmp.cmp(root / "labels.csv", tmp_path / "labels.csv", shallow=False)
    assert filecmp.cmp(root / "truth" / "truth.csv", tmp_path / "t" / "truth.csv", shallow=False)

    other = small_params(seed=4)
    generate_demo_mirror(tmp_path / "o", tmp_path / "o.csv", tmp_path / "ot", other)
    path = tmp_path / "o" / "themis_l1" / layouts.berkeley_l1_cdf(SITE, hours(other)[0])
    first = cdflib.CDF(summary["l1_cdfs"][0]).varget("thg_asf_fsim")
    assert not np.array_equal(first, cdflib.CDF(path).varget("thg_asf_fsim"))


def test_bad_parameters_are_refused(tmp_path):
    with pytest.raises(ValueError, match="nights"):
        generate_demo_mirror(
            tmp_path, tmp_path / "l.csv", tmp_path / "t", small_params(nights=NIGHTS[:4])
        )
    with pytest.raises(ValueError, match="labelled_fraction"):
        small_params(labelled_fraction=1.5).validate()
    with pytest.raises(ValueError, match="cadence_s"):
        small_params(cadence_s=0.0).validate()


def test_a_default_size_hour_renders_quickly():
    """60 full-size frames of the default demo: the whole 2,400-frame demo must stay near a minute."""
    params = DemoParams()
    renderer = Renderer(params)
    episodes, contexts, _ = plan_nights(params)
    rng = np.random.default_rng(0)
    start = time.process_time()
    for minute in range(60):
        ep = next(e for e in episodes[0] if e.start <= minute < e.stop)
        when = np.datetime64("2019-01-05T04:00:03", "ms") + np.timedelta64(minute, "m")
        renderer.render(ep, contexts[0], when, minute + 0.05, rng, rng)
    assert time.process_time() - start < 3.0
