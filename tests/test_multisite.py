"""A dataset of several imager sites through the real workflow (tests/data/multisite.yaml).

Three demo sites with different cameras (turned, off-centre, own vignetting, bias and gain, trees
or a town on the horizon) and their own GNSS stations, projected onto a grid of km from each site
with a common field of view, normalised per site and cell, one model for all. Checks against the
generator's planted truth: every frame keeps its site, takes its own site's station's sigma_phi
and its own site's labels; the store, the summary's site measures and the site figure exist.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest
import xarray as xr
import yaml
from cf_check import assert_cf
from workflow_helpers import ROOT, copy_workflow, run_snakemake

from latentsky.analysis.sites import site_knn
from latentsky.samples.images import COUNTS_FILL

pytestmark = pytest.mark.slow

DATASET = "sites3"
SITES = ("fsim", "gill", "rank")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    work = copy_workflow(tmp_path_factory.mktemp("multisite") / "repo")
    shutil.copyfile(ROOT / "tests/data/multisite.yaml", work / "config/multisite.yaml")
    run_snakemake(work, "--cores", "2", "--configfile", "config/multisite.yaml")
    return work


def truth(work) -> pd.DataFrame:
    table = pd.read_csv(work / f"resources/demo_truth/{DATASET}/truth.csv")
    table["time"] = pd.to_datetime(table["time"], utc=True).dt.tz_localize(None)
    return table.set_index(["site", "time"])


def test_every_frame_keeps_its_site_on_one_grid_of_km(run):
    images = xr.open_zarr(run / f"results/{DATASET}/images.zarr")
    assert images["image"].dims == ("time", "band", "y", "x")
    assert images["y"].attrs["units"] == "km" and float(images["x"].max()) < 400
    sites = images["site"].to_numpy().astype(str)
    assert sorted(set(sites)) == list(SITES)
    pairs = pd.MultiIndex.from_arrays([sites, images["time"].to_numpy()])
    assert not pairs.duplicated().any()
    # Per-site, per-cell normalisation: each site's own range in every cell it sees.
    low = images["normalisation_low"]
    assert low.dims == ("sites", "band", "y", "x") and list(images["sites"].values) == list(SITES)
    assert not np.allclose(low.sel(sites="fsim"), low.sel(sites="gill"), equal_nan=True)
    # The common field of view: nothing beyond 350 km of the site.
    y, x = np.meshgrid(images["y"], images["x"], indexing="ij")
    outside = np.hypot(x, y) > 350 + 50 / 2**0.5  # a cell is in when its centre is
    assert not images["fov_mask"].to_numpy()[outside].any()
    # Each site's frames went through its own operator.
    for site in SITES:
        for day in (run / f"results/{DATASET}/projected/{site}").glob("*.zarr"):
            assert site in xr.open_zarr(day).attrs["skymap"]


def test_each_frame_takes_its_own_stations_sigma_phi_and_its_own_sites_label(run):
    images = xr.open_zarr(run / f"results/{DATASET}/images.zarr")
    sigma = xr.open_zarr(run / f"results/{DATASET}/sigma_phi.zarr")["sigma_phi"].to_numpy()
    planted = truth(run)
    sites = images["site"].to_numpy().astype(str)
    times = images["time"].to_numpy()
    expected = planted.loc[list(zip(sites, times, strict=True)), "sigma_phi"].to_numpy()
    valid = np.isfinite(sigma)
    assert valid.mean() > 0.9
    # ISMR files keep 3 decimals and the median over satellites adds a little noise.
    error = np.abs(sigma[valid] / expected[valid] - 1)
    assert np.median(error) < 0.02 and error.max() < 0.1
    # Against another site's planted values at the nearest time (the sites rotated): far off.
    other = dict(zip(SITES, np.roll(SITES, 1), strict=True))
    frames = pd.DataFrame({"time": times, "site": sites, "sigma": sigma}).sort_values("time")
    frames["other"] = frames["site"].map(other)
    wrong = pd.merge_asof(
        frames,
        planted.reset_index().rename(columns={"site": "other"}).sort_values("time"),
        on="time",
        by="other",
        direction="nearest",
        tolerance=pd.Timedelta(seconds=30),
    ).dropna(subset=["sigma", "sigma_phi"])
    assert np.median(np.abs(wrong["sigma"] / wrong["sigma_phi"] - 1)) > 0.2

    table = pd.read_csv(run / f"results/{DATASET}/embedding.csv")
    table["time"] = pd.to_datetime(table["time"])
    labelled = table.dropna(subset=["label"])
    classes = planted.loc[list(zip(labelled["site"], labelled["time"], strict=True)), "class"]
    np.testing.assert_array_equal(labelled["label"].to_numpy(), classes.to_numpy())
    assert set(labelled["site"]) == set(SITES)


def test_the_summary_measures_site_invariance_and_the_report_draws_it(run):
    summary = json.loads((run / f"results/{DATASET}/summary.json").read_text())
    assert summary["n_sites"] == 3 and summary["site_knn_chance"] == pytest.approx(1 / 3)
    assert 0 <= summary["site_knn_accuracy"] <= 1
    assert 0 <= summary["cross_site_knn_accuracy"] <= 1
    assert set(summary["cross_site_knn_matrix"]) == set(SITES)
    fits = pd.read_csv(run / f"results/{DATASET}/sigma_phi_fits.csv")
    assert {"cluster", "label", "cluster_site"} <= set(fits["group_type"])
    per_site = fits[fits["group_type"] == "cluster_site"]["group"]
    assert {g.split("@")[1] for g in per_site} == set(SITES)
    assert (run / f"results/{DATASET}/figures/embeddings_by_site.png").stat().st_size > 10_000


@pytest.fixture(scope="module")
def options_off(run, tmp_path_factory):
    """The same downloads projected the study's way: one latitude-longitude grid for all sites,
    each site's own field of view, one scale for the dataset (projection and stacking rerun)."""
    work = tmp_path_factory.mktemp("multisite_off") / "repo"
    shutil.copytree(run, work, symlinks=True, ignore=shutil.ignore_patterns(".snakemake"))
    config = yaml.safe_load((work / "config/multisite.yaml").read_text())
    config["projection"].update(
        grid={"frame": "geographic", "n_lat": 16, "n_lon": 16},
        fov_radius_km=None,
        normalisation={"scope": "dataset"},
    )
    (work / "config/multisite.yaml").write_text(yaml.safe_dump(config))
    for stage in ("projection", "projected", "images.zarr"):  # without .snakemake's records
        shutil.rmtree(work / f"results/{DATASET}/{stage}")
    # The target goes first: --configfile takes every path after it.
    target = images_store(work).relative_to(work).as_posix()
    run_snakemake(work, target, "--cores", "2", "--configfile", "config/multisite.yaml")
    return work


def images_store(work):
    return work / f"results/{DATASET}/images.zarr"


def model_inputs(work) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(inputs (frames, cells in the field of view), site of each frame, night of each frame)."""
    images = xr.open_zarr(images_store(work), mask_and_scale=False)
    counts = images["image"].to_numpy()[:, 0].astype(np.float64)
    counts[counts == COUNTS_FILL] = np.nan
    sites = images["site"].to_numpy().astype(str)
    if "normalisation_low" in images:
        index = np.searchsorted(images["sites"].to_numpy().astype(str), sites)
        low = images["normalisation_low"].to_numpy()[index, 0]
        high = images["normalisation_high"].to_numpy()[index, 0]
    else:
        scale = json.loads(images.attrs["normalisation"])
        low, high = scale["low_counts"], scale["high_counts"]
    inputs = ((counts - low) / (high - low))[:, images["fov_mask"].to_numpy()]
    nights = pd.DatetimeIndex(images["time"].to_numpy()).floor("D").to_numpy()
    return np.nan_to_num(inputs), sites, nights  # the model sees 0 where a site has no sky


def test_the_options_hide_the_camera_that_the_study_s_inputs_give_away(run, options_off):
    """Against the planted sites: with the options off, the model's inputs predict the site
    from skies of other nights almost surely; with them on, hardly better than chance."""
    inputs, sites, nights = model_inputs(run)
    on = site_knn(inputs, sites, groups=nights)
    inputs, sites, nights = model_inputs(options_off)
    off = site_knn(inputs, sites, groups=nights)
    assert off.accuracy > 0.9, off
    assert on.accuracy <= on.chance + 0.15, on


def test_stores_are_cf_and_name_every_site_and_station(run):
    results = run / f"results/{DATASET}"
    for path in [*results.glob("*.zarr"), *results.glob("projected/*/*.zarr")]:
        assert_cf(path)
    sigma = xr.open_zarr(results / "sigma_phi.zarr")
    assert json.loads(sigma.attrs["gnss_stations"]) == {"fsim": "fsi", "gill": "gil", "rank": "ran"}
    described = {s["site"]: s for s in json.loads(sigma.attrs["sites"])}
    assert set(described) == set(SITES) and described["gill"]["gnss_station"] == "gil"
    assert all("site_latitude" in s for s in described.values())
    # Records are per station: frames of two sites at one moment are two records.
    images = xr.open_zarr(results / "images.zarr")
    np.testing.assert_array_equal(sigma["site"].to_numpy(), images["site"].to_numpy())
    fits = pd.read_csv(results / "sigma_phi_fits.csv")
    clusters = fits[fits["group_type"] == "cluster"]
    per_site = fits[fits["group_type"] == "cluster_site"]
    assert clusters["n"].sum() == per_site["n"].sum()  # each site's records, counted once
