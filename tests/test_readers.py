"""Readers on the real THEMIS sample files (../shared/data), and on damaged copies of them.

Expected values come from ../shared/data/README.md, from the file names, or from an independent
reader of the same bytes (cdflib, scipy.io.readsav, themis_imager_readfile), never from the code
under test.
"""

from __future__ import annotations

import bz2
import datetime as dt
import gzip
import shutil
import warnings

import cdflib
import numpy as np
import pytest
import scipy.io
from cdflib import cdfwrite
from scipy.ndimage import median_filter

from latentsky.errors import BadInputError
from latentsky.instruments.themis import (
    Skymap,
    read_berkeley_calibration,
    read_themis_l1_cdf,
    read_themis_pgm,
    read_themis_pgm_frames,
    read_ucalgary_skymap,
)

L1_NAME = "themis/gako/thg_l1_asf_gako_2011010617_v01.cdf"
SAV_NAME = "themis/gako/themis_skymap_gako_20110305-+_vXX.sav"
PGM_GZ_NAME = "themis/gill/20140310_0600_gill_themis19_full.pgm.gz"
PGM_NAME = "themis/gill/20140310_0605_gill_themis19_full.pgm"
MS = np.timedelta64(1, "ms")


def _minute_of(name: str) -> np.datetime64:
    """The minute a stream0 file covers, from its name (YYYYMMDD_HHMM_...)."""
    day, hhmm = name.split("/")[-1].split("_")[:2]
    return np.datetime64(f"{day[:4]}-{day[4:6]}-{day[6:]}T{hhmm[:2]}:{hhmm[2:]}", "ns")


def _raw_sav(path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return scipy.io.readsav(str(path))["skymap"][0]


# ----------------------------------------------------------------------------- level-1 CDF


def test_l1_cdf_facts(shared_data):
    frames, times = read_themis_l1_cdf(shared_data / L1_NAME, "gako")
    assert frames.shape == (23, 256, 256)
    assert frames.dtype == np.uint16
    assert times.dtype == np.dtype("datetime64[ns]")
    assert abs(times[0] - np.datetime64("2011-01-06T17:00:00.053")) <= MS
    start = np.datetime64("2011-01-06T17:00:00")
    assert np.count_nonzero((times >= start) & (times < start + np.timedelta64(12, "s"))) == 4
    assert np.all((times >= start) & (times < start + np.timedelta64(1, "h")))
    assert np.all(np.diff(times) > np.timedelta64(0))


def test_l1_cdf_is_rotated_180_from_storage(shared_data):
    """Canonical = Berkeley storage with both image axes reversed (README, star-verified)."""
    raw = cdflib.CDF(str(shared_data / L1_NAME)).varget("thg_asf_gako")
    frames, _ = read_themis_l1_cdf(shared_data / L1_NAME, "GAKO")  # site case does not matter
    np.testing.assert_array_equal(frames, raw[:, ::-1, ::-1])
    assert frames.flags["C_CONTIGUOUS"]


@pytest.mark.parametrize("keep", [100, 5000, 0.5])
def test_l1_cdf_truncated(shared_data, tmp_path, keep):
    data = (shared_data / L1_NAME).read_bytes()
    n = int(len(data) * keep) if isinstance(keep, float) else keep
    bad = tmp_path / "thg_l1_asf_gako_2011010617_v01.cdf"
    bad.write_bytes(data[:n])
    with pytest.raises(BadInputError, match="thg_l1_asf_gako_2011010617_v01.cdf") as info:
        read_themis_l1_cdf(bad, "gako")
    assert info.value.path == str(bad)


def test_l1_cdf_flipped_magic(shared_data, tmp_path):
    data = bytearray((shared_data / L1_NAME).read_bytes())
    data[:4] = bytes(b ^ 0xFF for b in data[:4])
    bad = tmp_path / "flipped.cdf"
    bad.write_bytes(bytes(data))
    with pytest.raises(BadInputError, match="flipped.cdf"):
        read_themis_l1_cdf(bad, "gako")


def _write_cdf(path, variables):
    """Write {name: (cdf type, array, record-varying)} with cdflib."""
    cdf = cdfwrite.CDF(str(path), delete=True)
    for name, (kind, data, rec_vary) in variables.items():
        dims = list(data.shape[1:]) if rec_vary else list(data.shape)
        spec = {
            "Variable": name,
            "Data_Type": kind,
            "Num_Elements": 1,
            "Rec_Vary": rec_vary,
            "Dim_Sizes": dims,
        }
        cdf.write_var(spec, var_attrs={}, var_data=data)
    cdf.close()


def _epochs(n):
    return np.asarray(
        cdflib.cdfepoch.compute_epoch([[2011, 1, 6, 17, 0, 3 * k, 0] for k in range(n)])
    )


def test_l1_cdf_missing_epoch_variable(tmp_path):
    path = tmp_path / "no_epoch.cdf"
    frames = np.arange(2 * 256 * 256, dtype=np.uint16).reshape(2, 256, 256)
    _write_cdf(path, {"thg_asf_gako": (cdfwrite.CDF.CDF_UINT2, frames, True)})
    with pytest.raises(BadInputError, match="no_epoch.cdf") as info:
        read_themis_l1_cdf(path, "gako")
    assert info.value.where == "thg_asf_gako_epoch"


def test_l1_cdf_takes_its_frame_shape_from_the_file_and_checks_counts(tmp_path):
    small = tmp_path / "small.cdf"
    stored = np.arange(2 * 128 * 96, dtype=np.uint16).reshape(2, 128, 96)
    _write_cdf(
        small,
        {
            "thg_asf_gako": (cdfwrite.CDF.CDF_UINT2, stored, True),
            "thg_asf_gako_epoch": (cdfwrite.CDF.CDF_EPOCH, _epochs(2), True),
        },
    )
    frames, _ = read_themis_l1_cdf(small, "gako")  # another imager's size reads the same way
    np.testing.assert_array_equal(frames, stored[:, ::-1, ::-1])
    flat = tmp_path / "flat.cdf"
    _write_cdf(
        flat,
        {
            "thg_asf_gako": (cdfwrite.CDF.CDF_UINT2, np.zeros((2, 128 * 96), np.uint16), True),
            "thg_asf_gako_epoch": (cdfwrite.CDF.CDF_EPOCH, _epochs(2), True),
        },
    )
    with pytest.raises(BadInputError, match="flat.cdf.*2 times for 1 frames"):
        read_themis_l1_cdf(flat, "gako")
    mismatch = tmp_path / "mismatch.cdf"
    _write_cdf(
        mismatch,
        {
            "thg_asf_gako": (cdfwrite.CDF.CDF_UINT2, np.zeros((3, 256, 256), np.uint16), True),
            "thg_asf_gako_epoch": (cdfwrite.CDF.CDF_EPOCH, _epochs(2), True),
        },
    )
    with pytest.raises(BadInputError, match="mismatch.cdf.*2 times for 3 frames"):
        read_themis_l1_cdf(mismatch, "gako")


def test_l1_cdf_written_round_trip(tmp_path):
    """A file in the Berkeley layout comes back rotated, with its times."""
    stored = np.random.default_rng(1).integers(0, 65535, (3, 256, 256), dtype=np.uint16)
    path = tmp_path / "thg_l1_asf_abcd_2011010617_v01.cdf"
    _write_cdf(
        path,
        {
            "thg_asf_abcd": (cdfwrite.CDF.CDF_UINT2, stored, True),
            "thg_asf_abcd_epoch": (cdfwrite.CDF.CDF_EPOCH, _epochs(3), True),
        },
    )
    frames, times = read_themis_l1_cdf(path, "abcd")
    np.testing.assert_array_equal(frames, stored[:, ::-1, ::-1])
    np.testing.assert_array_equal(
        times, np.datetime64("2011-01-06T17:00:00") + np.arange(3) * np.timedelta64(3, "s")
    )


# ----------------------------------------------------------------------------- stream0 PGM


@pytest.mark.parametrize("name", [PGM_GZ_NAME, PGM_NAME])
def test_pgm_facts(shared_data, name):
    frames, times = read_themis_pgm(shared_data / name)
    assert frames.shape == (20, 256, 256)
    assert frames.dtype == np.uint16
    assert times.dtype == np.dtype("datetime64[ns]")
    minute = _minute_of(name)
    assert np.all((times >= minute) & (times < minute + np.timedelta64(60, "s")))
    cadence = np.diff(times) / np.timedelta64(1, "s")
    np.testing.assert_allclose(cadence, 3.0, atol=0.1)
    if name == PGM_GZ_NAME:
        assert times[0] == np.datetime64("2014-03-10T06:00:00.063119")


@pytest.mark.parametrize("name", [PGM_GZ_NAME, PGM_NAME])
def test_pgm_matches_official_reader(shared_data, name):
    """Same pixels, rows in file order (no flip), and the same per-frame request times."""
    import themis_imager_readfile

    images, meta, problems = themis_imager_readfile.read(str(shared_data / name), quiet=True)
    assert problems == []
    frames, times = read_themis_pgm(shared_data / name)
    np.testing.assert_array_equal(frames, np.moveaxis(images, 2, 0))
    expected = [
        np.datetime64(m["Image request start"].replace(" UTC", "").replace(" ", "T"), "ns")
        for m in meta
    ]
    np.testing.assert_array_equal(times, np.array(expected, dtype="datetime64[ns]"))


def test_pgm_truncated_plain(shared_data, tmp_path):
    data = (shared_data / PGM_NAME).read_bytes()
    full, full_times = read_themis_pgm(shared_data / PGM_NAME)
    bad = tmp_path / "20140310_0605_gill_themis19_full.pgm"
    bad.write_bytes(data[: len(data) // 2])  # cuts frame 9 (each frame is ~1/20 of the file)
    with pytest.raises(BadInputError, match="20140310_0605_gill_themis19_full.pgm") as info:
        read_themis_pgm(bad)
    assert info.value.where == "frame 9"
    got = read_themis_pgm_frames(bad, skip_bad_frames=True)
    assert got.n_skipped == 1 and len(got.problems) == 1
    np.testing.assert_array_equal(got.frames, full[:9])
    np.testing.assert_array_equal(got.times, full_times[:9])


def test_pgm_truncated_gzip_keeps_complete_frames(shared_data, tmp_path):
    data = (shared_data / PGM_GZ_NAME).read_bytes()
    full, full_times = read_themis_pgm(shared_data / PGM_GZ_NAME)
    bad = tmp_path / "20140310_0600_gill_themis19_full.pgm.gz"
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(BadInputError, match="pgm.gz"):
        read_themis_pgm(bad)
    got = read_themis_pgm_frames(bad, skip_bad_frames=True)
    assert 0 < len(got.frames) < 20
    assert got.n_skipped >= 1
    assert "truncated" in got.problems[-1]
    n = len(got.frames)
    np.testing.assert_array_equal(got.frames, full[:n])
    np.testing.assert_array_equal(got.times, full_times[:n])


def test_pgm_corrupt_gzip_is_rejected_even_when_skipping(shared_data, tmp_path):
    """A failed gzip checksum cannot be pinned to a frame, so nothing from the file is trusted."""
    data = bytearray((shared_data / PGM_GZ_NAME).read_bytes())
    data[len(data) // 3] ^= 0xFF
    bad = tmp_path / "20140310_0600_gill_themis19_full.pgm.gz"
    bad.write_bytes(bytes(data))
    with pytest.raises(BadInputError, match="corrupt"):
        read_themis_pgm_frames(bad, skip_bad_frames=True)


def _frame_header_offsets(data: bytes, marker: bytes) -> list[int]:
    """Offsets of ``marker`` in each frame header (frames start with b'P5\\n#\"')."""
    starts = []
    pos = 0
    while (pos := data.find(b'P5\n#"', pos)) >= 0:
        starts.append(pos)
        pos += 1
    return [data.index(marker, s) for s in starts]


@pytest.mark.parametrize(
    "marker, damage",
    [
        (b"\n65535\n", lambda b: b[:1] + b"6X535" + b[6:]),  # maximum-value line
        (b'"Image request start" ', lambda b: b[:23] + b"X" + b[24:]),  # a digit of the year
    ],
)
def test_pgm_damaged_frame_header(shared_data, tmp_path, marker, damage):
    """Frame 3's header is damaged: strict reading names frame 3; skipping keeps the other 19
    frames, each still paired with its own time (the official reader shifts them by one)."""
    data = (shared_data / PGM_NAME).read_bytes()
    full, full_times = read_themis_pgm(shared_data / PGM_NAME)
    at = _frame_header_offsets(data, marker)[3]
    piece = data[at : at + 30]
    bad = tmp_path / "20140310_0605_gill_themis19_full.pgm"
    bad.write_bytes(data[:at] + damage(piece) + data[at + 30 :])
    with pytest.raises(BadInputError) as info:
        read_themis_pgm(bad)
    assert info.value.where == "frame 3" and "20140310_0605" in str(info.value)
    got = read_themis_pgm_frames(bad, skip_bad_frames=True)
    assert got.n_skipped == 1
    keep = np.arange(20) != 3
    np.testing.assert_array_equal(got.times, full_times[keep])
    np.testing.assert_array_equal(got.frames, full[keep])


def test_pgm_bz2(shared_data, tmp_path):
    full, full_times = read_themis_pgm(shared_data / PGM_NAME)
    packed = tmp_path / "20140310_0605_gill_themis19_full.pgm.bz2"
    packed.write_bytes(bz2.compress((shared_data / PGM_NAME).read_bytes(), compresslevel=1))
    frames, times = read_themis_pgm(packed)
    np.testing.assert_array_equal(frames, full)
    np.testing.assert_array_equal(times, full_times)


def test_pgm_not_a_pgm(tmp_path):
    junk = tmp_path / "20140310_0600_gill_themis19_full.pgm.gz"
    junk.write_bytes(gzip.compress(b"hello, not an image\n" * 50))
    for skip in (False, True):
        with pytest.raises(BadInputError, match="pgm.gz"):
            read_themis_pgm_frames(junk, skip_bad_frames=skip)
    notgz = tmp_path / "x.pgm.gz"
    notgz.write_bytes(b"plain bytes")
    with pytest.raises(BadInputError, match="x.pgm.gz"):
        read_themis_pgm(notgz)


def test_pgm_orientation_by_moon_motion(shared_data):
    """Raw PGM rows have the handedness of canonical (.sav) arrays, no mirror flip.

    Without a GILL skymap the imager's rotation is unknown, but the sense in which azimuth turns
    in the image is not: the Moon (the bright compact spot, at ~28 deg elevation) moves to higher
    azimuth between the 06:00 and 06:05 files, so in canonical orientation it must turn the same
    way round the image centre as azimuth turns in the GAKO skymap arrays. A mirrored reader
    would turn it the other way.
    """
    from astropy.utils import iers

    iers.conf.auto_download = False  # no network: the bundled tables cover 2014
    import astropy.units as u
    from astropy.coordinates import AltAz, EarthLocation, get_body
    from astropy.time import Time

    spots, mid_times = [], []
    for name in (PGM_GZ_NAME, PGM_NAME):
        frames, times = read_themis_pgm(shared_data / name)
        image = np.median(frames.astype(np.float64), axis=0)
        # The brightest compact spot well inside the horizon (the rim has bright arcs).
        compact = image - median_filter(image, size=9)
        rr, cc = np.indices(image.shape)
        compact[np.hypot(rr - 127.5, cc - 127.5) > 110] = -np.inf
        r, c = np.unravel_index(np.argmax(compact), image.shape)
        box = image[r - 4 : r + 5, c - 4 : c + 5]
        weight = np.clip(box - (box.min() + 0.5 * (box.max() - box.min())), 0, None)
        rows, cols = np.mgrid[r - 4 : r + 5, c - 4 : c + 5]
        spots.append(np.array([(weight * rows).sum(), (weight * cols).sum()]) / weight.sum())
        mid_times.append(times[len(times) // 2])

    # Predicted Moon motion from the site in the file header (GILL, 56.3539 N, -94.6557 E).
    site = EarthLocation(lat=56.3539 * u.deg, lon=-94.6557 * u.deg, height=0 * u.m)
    moon = [
        get_body("moon", Time(str(t)), site).transform_to(
            AltAz(obstime=Time(str(t)), location=site)
        )
        for t in mid_times
    ]
    assert moon[0].alt.deg > 15  # the bright spot can be the Moon
    d_az = (moon[1].az.deg - moon[0].az.deg + 180) % 360 - 180
    assert abs(d_az) > 0.5

    def turn(center, p0, p1):
        """Sign of the turn about ``center`` from p0 to p1, in (col, -row) display axes."""
        a = np.array([p0[1] - center[1], -(p0[0] - center[0])])
        b = np.array([p1[1] - p0[1], -(p1[0] - p0[0])])
        return np.sign(a[0] * b[1] - a[1] * b[0])

    # Sense of increasing azimuth in canonical arrays, from the GAKO skymap around its zenith.
    sky = read_ucalgary_skymap(shared_data / SAV_NAME)
    zenith = np.unravel_index(np.nanargmax(sky.elevation), sky.elevation.shape)
    ring = np.abs(sky.elevation - 45) < 0.5
    rows, cols = np.nonzero(ring)
    az = sky.azimuth[ring]
    p_a = (rows[np.argmin(np.abs(az - 100))], cols[np.argmin(np.abs(az - 100))])
    p_b = (rows[np.argmin(np.abs(az - 110))], cols[np.argmin(np.abs(az - 110))])
    canonical_sense = turn(zenith, p_a, p_b)
    assert canonical_sense != 0

    spot_sense = turn((127.5, 127.5), spots[0], spots[1])
    assert spot_sense == canonical_sense * np.sign(d_az)
    # The spot moved by about the predicted angle (pixels are ~0.75 deg near 28 deg elevation).
    moved = np.hypot(*(spots[1] - spots[0]))
    assert 0.5 < moved < 5


# ----------------------------------------------------------------------------- skymaps


def test_ucalgary_skymap_facts(shared_data):
    path = shared_data / SAV_NAME
    sky = read_ucalgary_skymap(path)
    raw = _raw_sav(path)
    assert isinstance(sky, Skymap)
    assert sky.elevation.shape == sky.azimuth.shape == (256, 256)
    assert sky.imager == "themis20"
    assert sky.source == path.name
    assert sky.valid_from == dt.date(2011, 3, 5)
    # Canonical orientation is readsav's, unchanged.
    np.testing.assert_array_equal(sky.elevation, raw["FULL_ELEVATION"])
    np.testing.assert_array_equal(sky.azimuth, raw["FULL_AZIMUTH"])
    # NaN outside the field of view (image corners), finite at the centre.
    assert np.isnan(sky.elevation[0, 0]) and np.isnan(sky.elevation[-1, -1])
    assert np.isfinite(sky.elevation[128, 128])
    # Mapping altitudes: the file holds metres, the Skymap km.
    file_alt_m = np.asarray(raw["FULL_MAP_ALTITUDE"], dtype=float)
    assert sorted(sky.corner_lat) == sorted(file_alt_m / 1000.0)
    assert set(sky.corner_lat) == set(sky.corner_lon) == {90.0, 110.0, 150.0}
    file_lon = np.asarray(raw["FULL_MAP_LONGITUDE"], dtype=float)
    assert np.nanmin(file_lon) >= 0 and np.nanmax(file_lon) > 180  # 0..360 in the file
    for i, alt in enumerate(file_alt_m / 1000.0):
        lat, lon = sky.corner_lat[alt], sky.corner_lon[alt]
        assert lat.shape == lon.shape == (257, 257)
        np.testing.assert_array_equal(lat, raw["FULL_MAP_LATITUDE"][i])
        assert np.nanmin(lon) >= -180 and np.nanmax(lon) <= 180
        np.testing.assert_allclose(lon, file_lon[i] - 360.0, atol=1e-9)  # GAKO is at -145
        assert np.isnan(lat[0, 0]) and np.isfinite(lat[128, 128])
    assert sky.site_lat == pytest.approx(float(raw["SITE_MAP_LATITUDE"]))
    assert sky.site_lon == pytest.approx(float(raw["SITE_MAP_LONGITUDE"]) - 360.0)
    assert -180 <= sky.site_lon <= 180
    assert sky.site_alt_km == pytest.approx(float(raw["SITE_MAP_ALTITUDE"]) / 1000.0)


@pytest.mark.parametrize("keep", [10, 0.5, -10])
def test_ucalgary_skymap_truncated(shared_data, tmp_path, keep):
    data = (shared_data / SAV_NAME).read_bytes()
    n = int(len(data) * keep) if isinstance(keep, float) else keep % len(data)
    bad = tmp_path / "themis_skymap_gako_20110305-+_vXX.sav"
    bad.write_bytes(data[:n])
    with pytest.raises(BadInputError, match="themis_skymap_gako_20110305"):
        read_ucalgary_skymap(bad)


def test_ucalgary_skymap_not_a_skymap(tmp_path):
    other = tmp_path / "other.sav"
    other.write_bytes(b"SR\x00\x04" + bytes(range(256)))  # IDL save magic, then junk
    with pytest.raises(BadInputError, match="other.sav"):
        read_ucalgary_skymap(other)


def _berkeley_cal_from(
    sky: Skymap, path, site: str, *, corners: bool, record_dim: bool, fill: bool = False
):
    """Write ``sky`` as a Berkeley calibration CDF: image arrays rotated 180 degrees (Berkeley
    storage), longitudes 0..360, altitudes in metres, optionally with a leading record axis and
    with the CDF fill value -1e31 instead of NaN."""

    def rot(a):
        a = np.ascontiguousarray(a[..., ::-1, ::-1])
        return np.where(np.isnan(a), -1e31, a) if fill else a

    lead = (lambda a: a[np.newaxis]) if record_dim else (lambda a: a)
    real4 = cdfwrite.CDF.CDF_REAL4
    variables = {
        f"thg_asf_{site}_elev": (real4, lead(rot(sky.elevation).astype(np.float32)), record_dim),
        f"thg_asf_{site}_azim": (real4, lead(rot(sky.azimuth).astype(np.float32)), record_dim),
        f"thg_asc_{site}_glat": (real4, np.array([sky.site_lat], np.float32), False),
        f"thg_asc_{site}_glon": (real4, np.array([sky.site_lon % 360.0], np.float32), False),
        f"thg_asc_{site}_alti": (real4, np.array([sky.site_alt_km * 1000.0], np.float32), False),
    }
    if corners:
        alts = sorted(sky.corner_lat)
        glat = np.stack([rot(sky.corner_lat[a]) for a in alts]).astype(np.float32)
        glon = np.stack([rot(sky.corner_lon[a] % 360.0) for a in alts]).astype(np.float32)
        variables[f"thg_asf_{site}_glat"] = (real4, lead(glat), record_dim)
        variables[f"thg_asf_{site}_glon"] = (real4, lead(glon), record_dim)
        variables[f"thg_asf_{site}_alti"] = (
            real4,
            np.array([a * 1000.0 for a in alts], np.float32),
            False,
        )
    _write_cdf(path, variables)


@pytest.mark.parametrize("record_dim, fill", [(True, False), (False, True)])
def test_berkeley_calibration_round_trip(shared_data, tmp_path, record_dim, fill):
    sky = read_ucalgary_skymap(shared_data / SAV_NAME)
    path = tmp_path / "thg_l2_asc_gako_19700101_v01.cdf"
    _berkeley_cal_from(sky, path, "gako", corners=True, record_dim=record_dim, fill=fill)
    cal = read_berkeley_calibration(path, "gako")
    assert cal.source == path.name
    np.testing.assert_allclose(cal.elevation, sky.elevation, atol=1e-4, equal_nan=True)
    np.testing.assert_allclose(cal.azimuth, sky.azimuth, atol=1e-4, equal_nan=True)
    assert cal.site_lat == pytest.approx(sky.site_lat, abs=1e-4)
    assert cal.site_lon == pytest.approx(sky.site_lon, abs=1e-4)
    assert cal.site_alt_km == pytest.approx(sky.site_alt_km, abs=1e-6)
    assert sorted(cal.corner_lat) == pytest.approx(sorted(sky.corner_lat))
    for alt in sky.corner_lat:
        key = min(cal.corner_lat, key=lambda k, alt=alt: abs(k - alt))
        np.testing.assert_allclose(
            cal.corner_lat[key], sky.corner_lat[alt], atol=1e-4, equal_nan=True
        )
        lon = cal.corner_lon[key]
        assert np.nanmin(lon) >= -180 and np.nanmax(lon) <= 180
        np.testing.assert_allclose(lon, sky.corner_lon[alt], atol=1e-3, equal_nan=True)


def test_berkeley_calibration_without_corners_and_missing(shared_data, tmp_path):
    sky = read_ucalgary_skymap(shared_data / SAV_NAME)
    path = tmp_path / "thg_l2_asc_gako_19700101_v01.cdf"
    _berkeley_cal_from(sky, path, "gako", corners=False, record_dim=True)
    cal = read_berkeley_calibration(path, "gako")
    assert cal.corner_lat == {} and cal.corner_lon == {}
    np.testing.assert_allclose(cal.elevation, sky.elevation, atol=1e-4, equal_nan=True)
    with pytest.raises(BadInputError, match="thg_l2_asc_gako_19700101_v01.cdf") as info:
        read_berkeley_calibration(path, "fsim")  # variables named for another site
    assert info.value.where == "thg_asf_fsim_elev"
    truncated = tmp_path / "cut.cdf"
    shutil.copy(path, truncated)
    truncated.write_bytes(path.read_bytes()[:200])
    with pytest.raises(BadInputError, match="cut.cdf"):
        read_berkeley_calibration(truncated, "gako")
