"""The right skymap for the right imager, and frames that do not belong to their file's span:
chosen and checked per file (real GILL stream0 files, the real GAKO skymap's geometry)."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest
import scipy.sparse
import xarray as xr

from latentsky.acquisition.sources import SOURCES
from latentsky.errors import BadInputError
from latentsky.instruments.themis import FrameRead, file_span, read_ucalgary_skymap
from latentsky.projection.geometry import build_projection_operator, grid_covering, project_frames
from latentsky.projection.skymaps import SkymapChooser, SkymapEntry, choose_skymap
from latentsky.samples.images import TimeCheck, ingest_files

DAY = dt.date(2014, 3, 10)
ENTRIES = [
    SkymapEntry("a.sav", "gill", "themis19", dt.date(2012, 1, 1)),
    SkymapEntry("b.sav", "gill", "themis19", dt.date(2014, 1, 1)),
    SkymapEntry("c.sav", "gill", "themis20", dt.date(2014, 3, 1)),
    SkymapEntry("d.sav", "gill", "themis21", dt.date(2014, 4, 1)),  # not yet valid
    SkymapEntry("e.sav", "gill", "themis22", dt.date(2013, 1, 1), dt.date(2013, 12, 31)),
]


@pytest.mark.parametrize(
    ("imager", "expected"),
    [("themis19", "b.sav"), ("themis20", "c.sav"), ("", "c.sav")],
)
def test_each_imager_takes_its_newest_skymap_valid_on_the_date(imager, expected):
    assert choose_skymap("f", DAY, "gill", imager, ENTRIES).name == expected


@pytest.mark.parametrize("imager", ["themis21", "themis22", "themis99"])
def test_an_imager_without_a_valid_skymap_is_refused_naming_the_file(imager):
    with pytest.raises(BadInputError, match=rf"^x/f\.pgm: no skymap of imager {imager} at gill"):
        choose_skymap("x/f.pgm", DAY, "gill", imager, ENTRIES)


def test_a_skymap_without_imager_serves_every_imager_of_its_site():
    entries = [SkymapEntry("cal.cdf", "gill")]
    assert choose_skymap("f", DAY, "gill", "themis19", entries).name == "cal.cdf"
    with pytest.raises(BadInputError):
        choose_skymap("f", DAY, "gill", "themis19", [SkymapEntry("cal.cdf", "gako")])


def chooser(loaded):
    return SkymapChooser("gill", DAY, ENTRIES[:3], load=lambda e: loaded[e.name])


@pytest.mark.parametrize(
    ("name", "site", "imager", "phrase"),
    [
        ("20140310_0600_gill_themis19_full.pgm", "gako", "themis19", "names site 'gako'"),
        ("20140310_0600_gako_themis19_full.pgm", "", "", "its name is of site 'gako'"),
        ("20140310_0600_gill_themis19_full.pgm", "gill", "themis20", "names imager 'themis20'"),
    ],
)
def test_a_file_whose_identity_disagrees_is_refused(name, site, imager, phrase):
    frames, stamps = np.zeros((1, 2, 2), np.uint16), np.zeros(1, "datetime64[ns]")
    read = FrameRead(frames, stamps, site=site, imager=imager)
    with pytest.raises(BadInputError, match=phrase):
        chooser({})(name, read)


def test_each_file_is_projected_with_its_own_imager_s_skymap(shared_data, tmp_path):
    """Two files of one date from two imagers; the second imager's skymap is the first's turned
    upside down: each file's stored frames are its own skymap's projection."""
    skymap = read_ucalgary_skymap(shared_data / "themis/gako/themis_skymap_gako_20110305-+_vXX.sav")
    grid = grid_covering([skymap], 110.0, 10.0, 16, 16)
    first, mask = build_projection_operator(skymap, grid, 110.0, 10.0)
    turned = scipy.sparse.csr_matrix(first[:, ::-1])  # pixels taken in reverse order
    loaded = {"b.sav": (first, mask), "c.sav": (turned, mask)}
    source = (shared_data / "themis/gill/20140310_0605_gill_themis19_full.pgm").read_bytes()
    other = source.replace(b"themis19", b"themis20").replace(b"06:05:", b"06:06:")
    files = [tmp_path / "20140310_0605_gill_themis19_full.pgm"]
    files.append(tmp_path / "20140310_0606_gill_themis20_full.pgm")
    files[0].write_bytes(source)
    files[1].write_bytes(other)
    read = SOURCES["ucalgary_stream0"].frame_reader("gill", skip_bad_frames=False)
    counts = ingest_files(
        files, read, None, None, grid, tmp_path / "d.zarr", {}, operators=chooser(loaded)
    )
    assert counts["files_read"] == 2
    stored = xr.open_zarr(tmp_path / "d.zarr", mask_and_scale=False)
    assert stored.attrs["skymap"] == "b.sav, c.sav"
    images = stored["image"].to_numpy()[:, 0]
    for k, (path, operator) in enumerate(zip(files, (first, turned), strict=True)):
        expected = project_frames(operator, mask, read(path).frames, dtype=np.uint16)
        np.testing.assert_array_equal(images[20 * k : 20 * (k + 1)], expected)


# --- frame times against the span of their file ------------------------------------------------


def times(*seconds) -> np.ndarray:
    return np.datetime64("2014-03-10T06:05:00", "ns") + np.array(
        [int(s * 1e9) for s in seconds]
    ).astype("timedelta64[ns]")


SPAN = file_span("20140310_0605_gill_themis19_full.pgm.gz")


def test_a_file_s_span_is_its_minute_or_hour():
    assert SPAN == (
        np.datetime64("2014-03-10T06:04:58.5", "ns"),
        np.datetime64("2014-03-10T06:06:01.5", "ns"),
    )
    assert file_span("thg_l1_asf_gill_2014031006_v01.cdf")[1] == np.datetime64(
        "2014-03-10T07:00:01.5", "ns"
    )
    assert file_span("other.pgm") is None


@pytest.mark.parametrize(
    ("seconds", "culprit", "counter", "phrase"),
    [
        ((0, 3, 6, 200, 12, 15), 3, "times_outside_file", "outside the span"),
        ((0, 3, 6, -240, 12, 15), 3, "times_outside_file", "outside the span"),
        ((0, 3, 45, 9, 12, 15), 2, "times_out_of_order", "out of order"),
        ((0, 3, 6, 9, 12, 1), 5, "times_out_of_order", "out of order"),
        ((0, 3, 6, 6, 12, 15), 3, "duplicate_times", "repeats"),
    ],
)
def test_the_frame_out_of_place_is_the_one_named_and_dropped(seconds, culprit, counter, phrase):
    check = TimeCheck(skip=True)
    keep = check.keep("f.pgm", times(*seconds), SPAN)
    assert np.flatnonzero(~keep).tolist() == [culprit]
    assert getattr(check, counter) == 1
    others = {"times_outside_file", "times_out_of_order", "duplicate_times"} - {counter}
    assert all(getattr(check, name) == 0 for name in others)
    with pytest.raises(BadInputError, match=rf"^f\.pgm \(frame {culprit}\): time .*{phrase}"):
        TimeCheck(skip=False).keep("f.pgm", times(*seconds), SPAN)
