"""Every store of the tiny run reads as CF with xarray and cf-xarray (tests/cf_check.py), and says
what another reader needs: the site and imager of the images, the station and signal of sigma_phi,
the record behind every sigma_phi value."""

from __future__ import annotations

import json

import numpy as np
import pytest
import xarray as xr
from cf_check import assert_cf
from run_helpers import reference_run

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    return reference_run(tmp_path_factory)


def stores(run):
    results = run / "results" / "tiny"
    return sorted([*results.glob("*.zarr"), *results.glob("projected/*/*.zarr")])


def test_every_store_is_cf(tiny_run):
    found = stores(tiny_run)
    names = {path.name for path in found}
    assert {"images.zarr", "sigma_phi.zarr", "latents.zarr"} <= names
    assert len(found) == 3 + 5  # and one projected store per date
    for path in found:
        assert_cf(path)


def test_images_store_says_where_the_imager_stands(tiny_run):
    images = xr.open_zarr(tiny_run / "results/tiny/images.zarr")
    assert images.attrs["site"] == "fsim"
    # The demo's Fort Simpson imager (geographic, from the calibration file).
    assert images.attrs["site_latitude"] == pytest.approx(61.76, abs=0.1)
    assert images.attrs["site_longitude"] == pytest.approx(-121.23, abs=0.1)
    sites = json.loads(images.attrs["sites"])
    assert sites[0]["site"] == "fsim" and "site_latitude" in sites[0]
    assert "NAS5-02099" in images.attrs["acknowledgement"]
    assert images["lat"].attrs["standard_name"] == "latitude"


def test_sigma_phi_store_names_station_signal_and_records(tiny_run):
    sigma = xr.open_zarr(tiny_run / "results/tiny/sigma_phi.zarr")
    attrs = sigma.attrs
    assert attrs["gnss_station"] == "fsi" and attrs["site"] == "fsim"
    assert "L1 C/A" in attrs["gnss_signal"] and attrs["ismr_phi60_column"] == 14
    assert attrs["site_latitude"] == pytest.approx(61.76, abs=0.1)
    assert json.loads(attrs["gnss_stations"]) == {"fsim": "fsi"}
    assert "CHAIN" in attrs["acknowledgement"]
    assert json.loads(attrs["bad_input"])["files"] == 5  # JSON, not a Python repr
    # Every value names its record: the end of the 60-s record covering the image.
    values = sigma["sigma_phi"].to_numpy()
    record = sigma["record_time"].to_numpy()
    times = sigma["time"].to_numpy()
    assert np.array_equal(np.isfinite(values), ~np.isnat(record))
    covered = ~np.isnat(record)
    lag = (record[covered] - times[covered]) / np.timedelta64(1, "s")
    assert np.all((lag > 0) & (lag <= 60))


def test_no_job_logged_a_zarr_warning(tiny_run):
    # Jobs log their warnings (latentsky.logs.log_to_file); zarr warns when a store holds a type
    # other implementations may not read (the old format-3 stores gave 21 such warnings a run).
    logs = sorted((tiny_run / "results/logs").rglob("*.log"))
    assert len(logs) > 20
    warned = [
        f"{path.relative_to(tiny_run)}: {line}"
        for path in logs
        for line in path.read_text().splitlines()
        if "py.warnings" in line and "zarr" in line.lower()
    ]
    assert not warned, "\n".join(warned)
