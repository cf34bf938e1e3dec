"""The seeded demo-data generator: archive layouts, file formats, planted truth and its physics.

One small demo (5 nights x 1 UT hour, one frame every 5 minutes) is generated once per module and
shared, and so is a small four-site demo (the default sites at 128 x 128 pixels); checks that need
the full-size plan call :func:`plan_nights`, which renders nothing.
"""

from __future__ import annotations

import csv
import datetime as dt
import filecmp
import gzip
import hashlib
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
    DARK_COUNTS,
    DEFAULT_SITES,
    PEDESTAL_COUNTS,
    SIGMA_PHI_LOGNORMAL,
    DemoParams,
    DemoSite,
    Imager,
    Renderer,
    generate_demo_mirror,
    generate_multisite_mirror,
    plan_nights,
)
from latentsky.instruments.gpstime import gps_to_utc
from latentsky.instruments.themis import read_berkeley_calibration, read_themis_l1_cdf
from latentsky.projection.geometry import pixel_lat_lon, ray_lat_lon

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


@pytest.mark.parametrize("imager", [Imager(), DEFAULT_SITES[3].imager], ids=["reference", "fsmi"])
def test_a_default_size_hour_renders_quickly(imager):
    """60 full-size frames of the default demo: the whole 2,400-frame demo must stay near a minute.

    A turned, offset, obstructed camera costs the same (its differences live in per-pixel arrays
    computed once), so a demo of n sites takes n times as long.
    """
    params = DemoParams()
    renderer = Renderer(params, imager)
    episodes, contexts, _ = plan_nights(params)
    rng = np.random.default_rng(0)
    start = time.process_time()
    for minute in range(60):
        ep = next(e for e in episodes[0] if e.start <= minute < e.stop)
        when = np.datetime64("2019-01-05T04:00:03", "ms") + np.timedelta64(minute, "m")
        renderer.render(ep, contexts[0], when, minute + 0.05, rng, rng)
    assert time.process_time() - start < 3.0


# --------------------------------------------------------------------------------------------
# Imager differences and the multi-site demo
# --------------------------------------------------------------------------------------------

#: Digest (:func:`_digest`) of the shared single-site demo, computed with the generator as it was
#: before imagers and multi-site demos existed (commit 21fc6a3): the single-site demo must not
#: change.
SINGLE_SITE_DIGEST = "4d0194fba22ebf2d15986eacbb4c6dc806a5b8c37f4b5922cbcc3a6ac52a83e9"
MULTI_SIZE = 128
SITE_CODES = [s.site for s in DEFAULT_SITES]


def _digest(root) -> str:
    """SHA-256 over every file under ``root``, by relative path: the variables of level-1 CDFs
    (their gzip headers carry the time of writing), the bytes of every other file."""
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*")):
        if not path.is_file():
            continue
        digest.update(str(path.relative_to(root)).encode())
        if path.name.startswith("thg_l1"):
            cdf = cdflib.CDF(path)
            for name in cdf.cdf_info().zVariables:
                values = np.asarray(cdf.varget(name))
                digest.update(name.encode() + str(values.dtype).encode() + values.tobytes())
        else:
            digest.update(path.read_bytes())
    return digest.hexdigest()


def _same_mirror_files(first, second) -> None:
    """Assert that two mirrors hold the same files: equal CDF variables, equal bytes otherwise."""
    names = sorted(p.relative_to(first) for p in first.rglob("*") if p.is_file())
    assert names == sorted(p.relative_to(second) for p in second.rglob("*") if p.is_file())
    for name in names:
        if name.name.startswith("thg_l1"):
            a, b = cdflib.CDF(first / name), cdflib.CDF(second / name)
            for var in a.cdf_info().zVariables:
                assert np.array_equal(a.varget(var), b.varget(var)), (name, var)
        else:
            assert filecmp.cmp(first / name, second / name, shallow=False), name


def _multisite(root, sites=DEFAULT_SITES, **changes) -> dict:
    arguments = dict(nights=NIGHTS, first_hour=6, last_hour=6, cadence_s=300.0)
    arguments.update(changes)
    return generate_multisite_mirror(
        root / "mirror", root / "labels.csv", root / "truth", sites, **arguments
    )


def _site_params(site: DemoSite, size: int = MULTI_SIZE) -> DemoParams:
    return DemoParams(
        site=site.site,
        station=site.station,
        site_lat=site.lat,
        site_lon=site.lon,
        site_alt_km=site.alt_km,
        nights=NIGHTS,
        seed=site.seed,
        image_size=size,
    )


@pytest.fixture(scope="module")
def multisite(tmp_path_factory):
    """The default four sites, 5 nights x 1 hour at a 5-minute cadence, 128 x 128 pixels."""
    root = tmp_path_factory.mktemp("multisite")
    return root, _multisite(root, image_size=MULTI_SIZE)


@pytest.fixture(scope="module")
def multisite_truth(multisite):
    with (multisite[0] / "truth" / "truth.csv").open() as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="module")
def site_data(multisite, multisite_truth):
    """{site: (canonical frames (N, 128, 128) float, classes (N,), skymap)} read by the readers."""
    root, summary = multisite
    data = {}
    for code in SITE_CODES:
        frames = np.concatenate(
            [read_themis_l1_cdf(p, code)[0] for p in summary["sites"][code]["l1_cdfs"]]
        )
        classes = np.array([r["class"] for r in multisite_truth if r["site"] == code])
        skymap = read_berkeley_calibration(summary["sites"][code]["calibration_cdf"], code)
        data[code] = (frames.astype(np.float64), classes, skymap)
    return data


def test_the_single_site_demo_is_unchanged(demo):
    assert _digest(demo[0]) == SINGLE_SITE_DIGEST


def test_a_neutral_site_gets_the_single_site_demo_files(demo, tmp_path):
    """Reference camera, same position and seed: the multi-site path writes the same files."""
    root, params, _ = demo
    site = DemoSite(params.site, params.station, 61.76, -121.23, 0.27, seed=params.seed)
    _multisite(tmp_path, [site])
    _same_mirror_files(root / "mirror", tmp_path / "mirror")
    assert filecmp.cmp(root / "labels.csv", tmp_path / "labels.csv", shallow=False)
    with (root / "truth" / "truth.csv").open() as a, (tmp_path / "truth" / "truth.csv").open() as b:
        single, multi = list(csv.reader(a)), list(csv.reader(b))
    assert multi[0] == ["time", "site", "class", "sigma_phi"]
    assert [[r[0], r[2], r[3]] for r in multi[1:]] == single[1:]
    assert {r[1] for r in multi[1:]} == {"fsim"}


def test_every_site_lands_in_one_mirror(multisite):
    root, summary = multisite
    mirror = root / "mirror"
    demo_hours = hours(small_params())
    assert summary["n_sites"] == 4 and list(summary["sites"]) == SITE_CODES
    for site in DEFAULT_SITES:
        mine = summary["sites"][site.site]
        l1 = [mirror / "themis_l1" / layouts.berkeley_l1_cdf(site.site, h) for h in demo_hours]
        ismr = [mirror / "chain_ismr" / layouts.chain_ismr(site.station, h) for h in demo_hours]
        assert mine["l1_cdfs"] == l1 and all(p.is_file() for p in l1)
        assert mine["ismr_files"] == ismr and all(p.is_file() for p in ismr)
        calibration = mirror / "themis_cal" / layouts.berkeley_calibration_cdf(site.site)
        assert mine["calibration_cdf"] == calibration
        assert mine["n_frames"] == 60 == sum(mine["frames_per_class"].values())
        skymap = read_berkeley_calibration(mine["calibration_cdf"], site.site)
        assert skymap.elevation.shape == (MULTI_SIZE, MULTI_SIZE)
        assert (skymap.site_lat, skymap.site_lon) == pytest.approx((site.lat, site.lon), abs=1e-4)
        assert skymap.site_alt_km == pytest.approx(site.alt_km, abs=1e-4)
    assert summary["n_frames"] == 240
    assert summary["n_labelled"] == sum(v["n_labelled"] for v in summary["sites"].values())


def test_each_calibration_describes_its_turned_and_offset_camera(site_data):
    """Zenith at the optical centre, the turned azimuths, the moved horizon circle, and corner maps
    that agree with the elevation and azimuth."""
    centre = (MULTI_SIZE - 1) / 2.0
    for site in DEFAULT_SITES:
        skymap = site_data[site.site][2]
        elev, azim = skymap.elevation, skymap.azimuth
        row0 = centre + site.imager.centre_offset_px[0]
        col0 = centre + site.imager.centre_offset_px[1]
        zr, zc = np.unravel_index(np.nanargmax(elev), elev.shape)
        assert abs(zr - row0) <= 0.5 and abs(zc - col0) <= 0.5, site.site
        rows, cols = np.mgrid[0:MULTI_SIZE, 0:MULTI_SIZE]
        radius = np.hypot(rows - row0, cols - col0)
        inside = radius < 0.49 * MULTI_SIZE - 1
        assert np.allclose(
            90.0 - elev[inside], 90.0 * radius[inside] / (0.49 * MULTI_SIZE), atol=0.01
        )
        assert np.isnan(elev[radius > 0.49 * MULTI_SIZE + 1]).all()
        # Straight up from the optical centre the camera looks toward rotation_deg, and east of
        # that is 90 degrees counter-clockwise (to the left when not turned).
        # (The nearest pixels are within half a pixel of the line: about one degree off it.)
        up = azim[int(row0) - 30, int(col0)]
        left = azim[int(row0), int(col0) - 30]
        rotation = site.imager.rotation_deg
        assert abs((up - rotation + 180.0) % 360.0 - 180.0) < 2.0, site.site
        assert abs((left - rotation - 90.0 + 180.0) % 360.0 - 180.0) < 2.0, site.site
        # Pixel centres from the 110 km corner map sit where the rays through their elevation
        # and azimuth meet 110 km (within a tenth of a pixel's footprint).
        lat_c, lon_c = pixel_lat_lon(skymap, 110.0)
        lat_r, lon_r = ray_lat_lon(
            skymap.site_lat, skymap.site_lon, skymap.site_alt_km, elev, azim, 110.0
        )
        ok = (elev > 15.0) & np.isfinite(lat_c)
        coslat = np.cos(np.radians(lat_r))
        miss_km = 111.2 * np.hypot(lat_c - lat_r, (lon_c - lon_r) * coslat)
        step_km = 111.2 * np.hypot(np.diff(lat_r, axis=1), np.diff(lon_r, axis=1) * coslat[:, 1:])
        assert (miss_km[:, 1:][ok[:, 1:]] < 0.1 * step_km[ok[:, 1:]]).all(), site.site


def test_a_point_source_lands_where_each_sites_calibration_says(site_data):
    """A bright star placed at a known altitude/azimuth (right ascension from astropy's sidereal
    time) is rendered into a full frame; the site's stored calibration, interpolated at the
    star's centroid, points at that altitude/azimuth within a quarter of a pixel."""
    when = np.datetime64("2019-01-06T07:30:03", "ms")
    pixel_deg = 90.0 / (0.49 * MULTI_SIZE)
    for site in DEFAULT_SITES:
        skymap = site_data[site.site][2]
        el, az = np.radians(skymap.elevation), np.radians(skymap.azimuth)
        pixel_vec = np.stack([np.cos(el) * np.sin(az), np.cos(el) * np.cos(az), np.sin(el)])
        params = _site_params(site)
        renderer = Renderer(params, site.imager)
        episodes, contexts, _ = plan_nights(params)
        clear = next(e for e in episodes[0] if e.cls == "clear")
        lst = Time(str(when), scale="utc").sidereal_time("mean", longitude=site.lon * u.deg).rad
        lat = math.radians(site.lat)
        for alt_deg, az_deg in [(70.0, 30.0), (40.0, 200.0), (25.0, 300.0), (55.0, 110.0)]:
            alt, azimuth = math.radians(alt_deg), math.radians(az_deg)
            dec = math.asin(
                math.sin(lat) * math.sin(alt) + math.cos(lat) * math.cos(alt) * math.cos(azimuth)
            )
            hour_angle = math.atan2(
                -math.sin(azimuth) * math.cos(alt),
                math.cos(lat) * math.sin(alt) - math.sin(lat) * math.cos(alt) * math.cos(azimuth),
            )
            renderer.stars.ra = np.array([lst - hour_angle])
            renderer.stars.dec = np.array([dec])
            renderer.stars.flux = np.array([2e5])
            rng = np.random.default_rng(0)
            frame = renderer.render(clear, contexts[0], when, clear.start, rng, rng).astype(float)
            r, c = np.unravel_index(np.argmax(frame), frame.shape)
            window = frame[r - 2 : r + 3, c - 2 : c + 3] - np.median(
                frame[r - 8 : r + 9, c - 8 : c + 9]
            )
            window = np.maximum(window, 0.0)
            rows, cols = np.mgrid[r - 2 : r + 3, c - 2 : c + 3]
            row = (window * rows).sum() / window.sum()
            col = (window * cols).sum() / window.sum()
            # Bilinear interpolation of the calibration's line-of-sight vectors at the centroid.
            r0, c0 = int(row), int(col)
            fr, fc = row - r0, col - c0
            v = (
                pixel_vec[:, r0, c0] * (1 - fr) * (1 - fc)
                + pixel_vec[:, r0 + 1, c0] * fr * (1 - fc)
                + pixel_vec[:, r0, c0 + 1] * (1 - fr) * fc
                + pixel_vec[:, r0 + 1, c0 + 1] * fr * fc
            )
            star = np.array(
                [
                    math.cos(alt) * math.sin(azimuth),
                    math.cos(alt) * math.cos(azimuth),
                    math.sin(alt),
                ]
            )
            miss = math.degrees(math.acos(min(1.0, v @ star / np.linalg.norm(v))))
            assert miss < 0.25 * pixel_deg, (site.site, alt_deg, az_deg, miss)


def test_obstructions_are_dark_where_planted(site_data):
    """Below an obstruction's top in its sector pixels read the pedestal (no sky light); beside
    it and above it they see the sky."""
    checked = 0
    for site in DEFAULT_SITES:
        frames, _, skymap = site_data[site.site]
        elev, azim = skymap.elevation, skymap.azimuth
        pedestal = PEDESTAL_COUNTS + site.imager.bias_counts
        for az_from, az_to, top in site.imager.obstructions:
            sector = (azim - az_from) % 360.0 <= (az_to - az_from) % 360.0
            inner = (azim - az_from - 3.0) % 360.0 <= (az_to - az_from - 6.0) % 360.0
            # Above 4 degrees: inside the lens rim, where the pedestal is full.
            blocked = inner & (elev > 4.0) & (elev < top - 1.5)
            beside = ~sector & (elev > 4.0) & (elev < top - 1.5)
            above = inner & (elev > top + 1.5) & (elev < top + 6.0)
            assert blocked.sum() > 20 and above.sum() > 10, (site.site, az_from)
            blocked_level = np.median(frames[:, blocked], axis=1)
            assert np.abs(blocked_level - pedestal).max() < 5.0, (site.site, az_from)
            assert (np.median(frames[:, beside], axis=1) > pedestal + 150.0).all()
            assert (np.median(frames[:, above], axis=1) > pedestal + 150.0).all()
            checked += 1
    assert checked == 3


def test_light_domes_show_where_planted(site_data):
    """In clear frames the low sky toward each site's town is brighter than the opposite sky, by
    much more at RANK's bright town and not at all at GILL (no town)."""
    excess = {}
    for site in DEFAULT_SITES:
        frames, classes, skymap = site_data[site.site]
        elev, azim = skymap.elevation, skymap.azimuth
        low = (elev > 3.0) & (elev < 12.0)

        def toward(azimuth, low=low, azim=azim):
            return low & (np.abs((azim - azimuth + 180.0) % 360.0 - 180.0) < 15.0)

        dome = site.imager.light_dome_azimuth_deg
        clear = frames[classes == "clear"]
        assert len(clear) >= 5
        excess[site.site] = np.median(
            np.median(clear[:, toward(dome)], axis=1)
            - np.median(clear[:, toward(dome + 180.0)], axis=1)
        )
    assert excess["rank"] > 400.0, excess
    assert excess["fsim"] > 100.0 and excess["fsmi"] > 100.0, excess
    assert abs(excess["gill"]) < 100.0, excess
    assert excess["rank"] > 2.0 * max(excess["fsim"], excess["fsmi"]), excess


def test_each_imager_has_its_own_levels_noise_and_vignetting(site_data):
    """Outside the field of view: dark level plus bias, read noise as set. Clear sky at 20-30
    degrees elevation against the zenith follows each camera's vignetting."""
    ratio = {}
    for site in DEFAULT_SITES:
        frames, classes, skymap = site_data[site.site]
        im = site.imager
        rim = frames[:, np.isnan(skymap.elevation)]
        assert np.median(rim) == pytest.approx(DARK_COUNTS + im.bias_counts, abs=2.0)
        sd = 1.4826 * np.median(np.abs(rim - np.median(rim)))
        assert sd == pytest.approx(im.read_noise_counts, rel=0.2), site.site
        clear = frames[classes == "clear"] - (PEDESTAL_COUNTS + im.bias_counts)
        zenith = np.median(clear[:, skymap.elevation > 80.0], axis=1)
        middle = np.median(clear[:, (skymap.elevation > 20.0) & (skymap.elevation < 30.0)], axis=1)
        ratio[site.site] = np.median(middle / zenith)
    throughput = {
        s.site: s.imager.vignetting_floor
        + (1 - s.imager.vignetting_floor)
        * math.cos(math.radians(65.0)) ** s.imager.vignetting_power
        for s in DEFAULT_SITES
    }
    assert sorted(ratio, key=ratio.get) == sorted(throughput, key=throughput.get)


def test_gain_scales_light_and_bias_shifts_levels():
    """Noise-free renders of one scene: a camera with gain g and bias b reads g times the light
    over a pedestal b higher, at every field-of-view pixel."""
    params = small_params(image_size=64)
    episodes, contexts, _ = plan_nights(params)
    k, arc = next((k, e) for k, night in enumerate(episodes) for e in night if e.cls == "arc")
    quiet = dict(read_noise_counts=0.0, counts_per_pe=0.0)
    frames = {}
    for name, imager in (
        ("reference", Imager(**quiet)),
        ("other", Imager(gain=1.3, bias_counts=400.0, **quiet)),
    ):
        renderer = Renderer(params, imager)
        rng = np.random.default_rng(1)
        when = np.datetime64("2019-01-05T06:10:03", "ms")
        frames[name] = renderer.render(arc, contexts[k], when, arc.start + 1.0, rng, rng)
        geom = renderer.geom
    hot = np.zeros(64 * 64, bool)
    hot[renderer.hot] = True
    fov = np.zeros(64 * 64, bool)
    fov[geom.fov_index] = True
    pedestal = geom.pedestal_fov - 400.0  # the reference pedestal, per field-of-view pixel
    light = frames["reference"].ravel()[fov & ~hot] - pedestal[~hot[fov]]
    other = frames["other"].ravel()[fov & ~hot] - pedestal[~hot[fov]] - 400.0
    bright = light > 200.0
    assert bright.sum() > 100
    assert np.allclose(other[bright] / light[bright], 1.3, rtol=0.01)
    outside = ~fov & ~hot
    assert np.array_equal(
        frames["other"].ravel()[outside], frames["reference"].ravel()[outside] + 400
    )


def test_every_site_shows_the_six_classes(site_data):
    """Per site, mean light above 10 degrees over its pedestal: discrete > arc > clear, and the
    other classes well above clear, whatever the camera."""
    for site in DEFAULT_SITES:
        frames, classes, skymap = site_data[site.site]
        sky = skymap.elevation > 10.0
        light = frames[:, sky].mean(axis=1) - (PEDESTAL_COUNTS + site.imager.bias_counts)
        by_class = {c: light[classes == c].mean() for c in CLASSES}
        assert by_class["discrete"] > by_class["arc"] > by_class["clear"], (site.site, by_class)
        for cls in ("diffuse", "moon", "cloudy"):
            assert by_class[cls] > by_class["clear"] + 200.0, (site.site, by_class)


def test_labels_and_truth_cover_every_site(multisite, multisite_truth):
    root, summary = multisite
    with (root / "labels.csv").open() as fh:
        reader = csv.reader(fh)
        assert next(reader) == ["time", "site", "label"]
        labels = list(reader)
    assert [r[1] for r in labels] == sorted((r[1] for r in labels), key=SITE_CODES.index)
    class_of = {(r["time"], r["site"]): r["class"] for r in multisite_truth}
    assert len(class_of) == len(multisite_truth) == 240
    assert all(class_of[(t, s)] == label for t, s, label in labels)
    planted = json.loads((root / "truth" / "planted.json").read_text())
    assert planted["classes"] == list(CLASSES)
    assert planted["params"]["image_size"] == MULTI_SIZE
    assert list(planted["sites"]) == SITE_CODES
    for site in DEFAULT_SITES:
        mine = [r for r in labels if r[1] == site.site]
        assert {r[2] for r in mine} == set(CLASSES)
        assert len(mine) == summary["sites"][site.site]["n_labelled"]
        truth = planted["sites"][site.site]
        assert truth["station"] == site.station and truth["seed"] == site.seed
        assert truth["imager"]["rotation_deg"] == site.imager.rotation_deg
        assert truth["sigma_phi_mu_offset"] == site.sigma_phi_mu_offset
        for cls, (mu, sd) in SIGMA_PHI_LOGNORMAL.items():
            assert truth["sigma_phi_lognormal"][cls]["mu"] == pytest.approx(
                mu + site.sigma_phi_mu_offset, abs=1e-9
            )
            assert truth["sigma_phi_lognormal"][cls]["sigma"] == sd
        counts = {
            c: sum(r["site"] == site.site and r["class"] == c for r in multisite_truth)
            for c in CLASSES
        }
        assert truth["frames_per_class"] == counts


def test_each_station_carries_its_sites_sigma_phi(multisite, multisite_truth):
    """The satellites that pass the quality cuts in a station's files carry its site's truth."""
    _, summary = multisite
    for site in DEFAULT_SITES:
        path = summary["sites"][site.site]["ismr_files"][0]
        rows = read_ismr(path)
        ends = gps_to_utc([int(r[0]) for r in rows], [float(r[1]) for r in rows])
        values = np.array([(float(r[5]), float(r[24]), float(r[13])) for r in rows])
        mine = [r for r in multisite_truth if r["site"] == site.site][:12]  # the first hour
        for r in mine:
            t = np.datetime64(r["time"].rstrip("Z"), "ms")
            end = (t.astype("datetime64[m]") + np.timedelta64(1, "m")).astype(ends.dtype)
            rows_now = values[ends == end]
            good = (rows_now[:, 0] >= 30.0) & (rows_now[:, 1] >= 200.0)
            assert np.median(rows_now[good, 2]) == pytest.approx(float(r["sigma_phi"]), rel=0.06)


def test_default_sites_plant_their_own_sigma_phi_relations():
    """Full-size plans (nothing rendered): each site's ln sigma_phi per class has its planted mean,
    and every site's arcs outscintillate every site's quiet classes."""
    for site in DEFAULT_SITES:
        episodes, _, sigma = plan_nights(DemoParams(seed=site.seed), site.lognormal())
        log_sigma = {c: [] for c in CLASSES}
        for k, night in enumerate(episodes):
            for ep in night:
                log_sigma[ep.cls].extend(np.log(sigma[k, ep.start : ep.stop]))
        for cls, (mu, _) in site.lognormal().items():
            assert np.mean(log_sigma[cls]) == pytest.approx(mu, abs=0.1), (site.site, cls)
    lowest_arc = min(s.lognormal()["arc"][0] for s in DEFAULT_SITES)
    quiet = ("diffuse", "moon", "clear", "cloudy")
    assert lowest_arc > max(s.lognormal()[c][0] for s in DEFAULT_SITES for c in quiet)
    assert len({s.sigma_phi_mu_offset for s in DEFAULT_SITES}) == len(DEFAULT_SITES)


def test_default_sites_differ_strongly():
    """The differences that make naive latents separate by site (the issue's list)."""
    imagers = [s.imager for s in DEFAULT_SITES]
    assert 3 <= len(DEFAULT_SITES) <= 4
    assert len({(s.lat, s.lon) for s in DEFAULT_SITES}) == len(DEFAULT_SITES)
    turns = [im.rotation_deg % 360.0 for im in imagers]
    for i, a in enumerate(turns):
        for b in turns[i + 1 :]:
            assert abs((a - b + 180.0) % 360.0 - 180.0) >= 30.0
    assert sum(max(map(abs, im.centre_offset_px)) >= 3.0 for im in imagers) >= len(imagers) - 1
    biases = [im.bias_counts for im in imagers]
    assert max(biases) - min(biases) >= 500.0
    gains = [im.gain for im in imagers]
    assert max(gains) / min(gains) >= 1.5
    assert len({(im.vignetting_floor, im.vignetting_power) for im in imagers}) == len(imagers)
    assert len({im.read_noise_counts for im in imagers}) >= 3
    assert 1 <= sum(bool(im.obstructions) for im in imagers) <= 2
    assert max(im.light_dome_counts for im in imagers) >= 3 * Imager().light_dome_counts


def test_multisite_reruns_are_identical_and_sites_independent(multisite, multisite_truth, tmp_path):
    root, _ = multisite
    _multisite(tmp_path, image_size=MULTI_SIZE)
    _same_mirror_files(root / "mirror", tmp_path / "mirror")
    for name in ("labels.csv", "truth/truth.csv", "truth/planted.json"):
        assert filecmp.cmp(root / name, tmp_path / name, shallow=False), name
    sequences = [tuple(r["class"] for r in multisite_truth if r["site"] == s) for s in SITE_CODES]
    assert len(set(sequences)) == len(SITE_CODES)


def test_bad_multisite_parameters_are_refused(tmp_path):
    fsim = DEFAULT_SITES[0]

    def gill(**changes):
        return DemoSite(
            **{
                **dict(site="gill", station="gil", lat=56.38, lon=-94.64, alt_km=0.14, seed=1),
                **changes,
            }
        )

    cases = [
        ([], "at least one"),
        ([fsim, gill(site="fsim")], "site"),
        ([fsim, gill(station="fsi")], "station"),
        ([fsim, gill(seed=0)], "seed"),
        ([gill(sigma_phi_mu_offset=0.8)], "offset"),
        ([gill(imager={"gain": 0.0})], "gain"),
        ([gill(imager={"centre_offset_px": [20, 0]})], "centre_offset_px"),
        ([gill(imager={"obstructions": [[0, 10, 95]]})], "obstructions"),
    ]
    for sites, message in cases:
        with pytest.raises(ValueError, match=message):
            _multisite(tmp_path, sites, image_size=64)
    assert not (tmp_path / "mirror").exists()  # refused before writing anything
    # Imager fields from a config mapping (lists for tuples) make the same imager.
    config = {"rotation_deg": 35.0, "obstructions": [[200, 290, 14]], "centre_offset_px": [5, -4]}
    assert gill(imager=config).imager == Imager(
        rotation_deg=35.0, obstructions=((200.0, 290.0, 14.0),), centre_offset_px=(5.0, -4.0)
    )
