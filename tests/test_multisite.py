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
from workflow_helpers import ROOT, copy_workflow, run_snakemake

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
