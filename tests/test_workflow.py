"""The whole DAG, run for real by Snakemake on a tiny demo config in a scratch copy of the repo."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest
import torch
import xarray as xr
import yaml
import zarr
from report_helpers import embedded_files, html_tables, table_rows
from run_helpers import CONFIG, reference_run
from workflow_helpers import AFTER_CLUSTERING, report_file, run_snakemake, scheduled_rules

pytestmark = pytest.mark.slow

UPSTREAM_OF_CLUSTERING = {
    "generate_demo_mirror",
    "download_images",
    "download_skymaps",
    "download_scintillation",
    "build_projection_operator",
    "project_images",
    "stack_images",
    "extract_sigma_phi",
    "train_autoencoder",
    "encode_latents",
    "embed_latents",
}


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """The tiny config run once (shared with the resume and Slurm tests, which compare against it)."""
    return reference_run(tmp_path_factory)


def edited_config(work, name, edit):
    config = yaml.safe_load((work / CONFIG).read_text())
    edit(config)
    (work / "config" / name).write_text(yaml.safe_dump(config))
    return f"config/{name}"


def test_images_store_has_the_documented_layout(tiny_run):
    images = xr.open_zarr(tiny_run / "results/tiny/images.zarr")
    assert images["image"].dims == ("time", "band", "lat", "lon")
    assert images["image"].dtype == np.float32
    assert images.sizes["lat"] == 16 and images.sizes["lon"] == 16
    assert images.sizes["time"] == 5 * 1 * 24  # 5 dates x 1 hour at 150 s cadence
    assert np.all(np.diff(images["time"].to_numpy()) > np.timedelta64(0))
    assert np.all(np.diff(images["lat"].to_numpy()) > 0)
    for key in ("site", "altitude_km", "min_elevation_deg", "skymaps", "normalisation"):
        assert key in images.attrs
    assert images.attrs["altitude_km"] == 110
    values = images["image"].to_numpy()  # counts, NaN outside the field of view
    inside = np.isfinite(values)
    assert 0.3 < inside.mean() < 1.0  # the field of view is a disc inside the grid's box
    np.testing.assert_array_equal(inside.any(axis=(0, 1)), images["fov_mask"].to_numpy())
    assert 3000 < np.nanmedian(values) < 10000  # counts above the demo's ~3,300 bias
    # Stored packed: uint16 counts, 65535 outside the field of view; the model's input scale is
    # the normalisation attribute.
    raw = zarr.open_group(tiny_run / "results/tiny/images.zarr", mode="r")["image"]
    assert raw.dtype == np.uint16 and raw.fill_value == 65535
    scale = json.loads(images.attrs["normalisation"])
    normalised = (values - scale["low_counts"]) / (scale["high_counts"] - scale["low_counts"])
    assert -0.5 < np.nanmedian(normalised) < 1.0
    assert np.nanpercentile(normalised, 99.5) == pytest.approx(1.0, abs=0.05)
    # The model saw the normalised counts with NaN outside the field of view, never the fill.
    examples = np.load(tiny_run / "results/tiny/model/reconstructions.npz")
    originals = examples["originals"]
    assert np.isnan(originals[:, :, ~images["fov_mask"].to_numpy()]).all()  # (n, band, lat, lon)
    assert -0.5 < np.nanmedian(originals) < 1.0


def test_sigma_phi_store_is_aligned_with_images(tiny_run):
    images = xr.open_zarr(tiny_run / "results/tiny/images.zarr")
    sigma = xr.open_zarr(tiny_run / "results/tiny/sigma_phi.zarr")
    np.testing.assert_array_equal(sigma["time"].to_numpy(), images["time"].to_numpy())
    values = sigma["sigma_phi"].to_numpy()
    assert np.isfinite(values).mean() > 0.95
    # The demo writes misleading values (0.5-3 rad) on satellites that the cuts must remove; the
    # planted per-class medians are all below 0.3 rad.
    assert np.nanmedian(values) < 0.3


def test_checkpoint_loads_with_weights_only(tiny_run):
    checkpoint = torch.load(tiny_run / "results/tiny/model/checkpoint.pt", weights_only=True)
    assert "model_config" in checkpoint and "normalisation" in checkpoint
    latents = xr.open_zarr(tiny_run / "results/tiny/latents.zarr")
    assert latents["latent"].shape == (120, 8)


def test_embedding_table_and_fits(tiny_run):
    table = pd.read_csv(tiny_run / "results/tiny/embedding.csv")
    for column in ("time", "label", "umap_x", "umap_y", "tsne_x", "tsne_y", "cluster"):
        assert column in table
    assert "cloudy" not in set(table["label"])
    assert table["cluster"].nunique() == 3
    fits = pd.read_csv(tiny_run / "results/tiny/sigma_phi_fits.csv")
    assert set(fits["group_type"]) == {"cluster", "label"}
    for column in ("n", "mu", "sigma", "median", "ks_statistic"):
        assert column in fits


def test_summary_and_figures(tiny_run):
    summary = json.loads((tiny_run / "results/tiny/summary.json").read_text())
    for key in (
        "knn_accuracy",
        "adjusted_rand_index",
        "sigma_phi_fits",
        "highest_sigma_phi_cluster",
        "gaps",
        "bad_input",
    ):
        assert key in summary
    assert 0 <= summary["knn_accuracy"] <= 1
    for name in (
        "reconstructions",
        "embeddings_by_label",
        "clusters",
        "sigma_phi_distributions",
        "cluster_label_table",
        "training_curves",
    ):
        assert (tiny_run / f"results/tiny/figures/{name}.png").stat().st_size > 5000


def test_report_holds_configuration_fit_and_summary_tables(tiny_run):
    run_snakemake(
        tiny_run,
        "--cores",
        "1",
        "--configfile",
        CONFIG,
        "--report",
        "results/tiny/report.html",
    )
    html = (tiny_run / "results/tiny/report.html").read_text(errors="replace")
    assert "sigma_phi_distributions.png" in html
    pages = [
        content.decode("utf-8", "replace")
        for mime, content in embedded_files(html)
        if mime == "text/html"
    ]

    def page(title):
        matching = [p for p in pages if f"<title>{title}</title>" in p]
        assert matching, f"no page {title!r} among {len(pages)} embedded HTML files"
        return matching[0]

    def table(text, name):
        tables = html_tables(text)
        assert name in tables, f"no table {name!r} in the page ({sorted(tables)})"
        return tables[name]

    # The configuration that produced the results, as it applied to the dataset.
    configuration = page("Configuration of tiny")
    dataset = table(configuration, "config-dataset").set_index("setting")["value"]
    assert dataset["site"] == "fsim" and dataset["gnss_station"] == "fsi"
    clustering = table(configuration, "config-clustering").set_index("setting")["value"]
    assert int(clustering["n_clusters"]) == 3
    assert "NAS5-02099" in configuration  # the THEMIS acknowledgement
    # The fit table: n, mu, sigma, median, intervals, goodness of fit, as in sigma_phi_fits.csv.
    fits = table(page("sigma_phi fits of tiny"), "fits")
    expected = pd.read_csv(tiny_run / "results/tiny/sigma_phi_fits.csv")
    for column in ("n", "mu", "mu_low", "mu_high", "sigma", "median", "lilliefors_pvalue"):
        assert column in fits
    assert len(fits) == len(expected)
    np.testing.assert_allclose(fits["mu"], expected["mu"], rtol=1e-3)
    # The headline numbers of summary.json.
    summary = json.loads((tiny_run / "results/tiny/summary.json").read_text())
    headlines = table(page("Summary of tiny"), "summary").set_index("quantity")["value"]
    assert float(headlines["knn_accuracy"]) == pytest.approx(summary["knn_accuracy"], rel=1e-3)
    assert int(float(headlines["n_images"])) == summary["n_images"]
    # Captions in the auroral track's words: sky maps north up, sigma_phi, no photometer.
    assert "Projected all-sky images" in html and "north up" in html
    assert "cluster with the highest median sigma_phi" in html
    assert "transient-luminous-event" not in html and "Photometer windows of" not in html
    # The landing text describes both tracks and names the dataset.
    assert "ASIM photometer windows" in html or "QVNJTSBwaG90b21ldGVy" in html

    # Gaps, failures and bad input: in the report as in summary.json, each in its own table.
    summary = json.loads((tiny_run / "results/tiny/summary.json").read_text())
    tables = table_rows(report_file(html, "data_quality.html"))
    gaps = {(role, key): int(n) for role, key, n in tables["gaps"][1:]}
    assert gaps == {
        (role, key): n
        for role, counts in summary["gaps"].items()
        for key, n in counts.items()
        if key != "reasons"
    }
    bad = {(store, key): n for store, key, n in tables["bad-input"][1:]}
    assert bad == {
        (store, key): str(n)
        for store, counts in summary["bad_input"].items()
        for key, n in counts.items()
    }
    assert "failures" not in tables and not any(summary["failures"].values())


#: A progress line: done of total, the share done, time spent and the time left (latentsky.progress).
PROGRESS = re.compile(r"(\d+)/(\d+) \S+ \((\d+)%\), \d\d:\d\d elapsed, (\d\d:\d\d|\?) left")


@pytest.mark.parametrize(
    ("job", "work"),
    [
        ("download_images/tiny_fsim_*.log", ["images fsim"]),
        ("download_scintillation/tiny_fsim_*.log", ["ismr fsi"]),
        ("project_images/tiny_fsim_*.log", ["projecting fsim"]),
        ("train_autoencoder/tiny.log", ["training res_ae"]),
        ("embed_latents/tiny.log", ["UMAP layout", "t-SNE"]),
        ("fit_sigma_phi/tiny.log", ["bootstrap replicates"]),
    ],
)
def test_long_jobs_log_progress_with_the_time_left(tiny_run, job, work):
    logs = sorted((tiny_run / "results/logs").glob(job))
    assert logs, job
    for path in logs:
        text = path.read_text()
        for what in work:
            found = [PROGRESS.search(line) for line in text.splitlines() if what in line]
            found = [match for match in found if match]
            assert len(found) >= 2, f"{path.name}: no progress lines for {what!r}"
            assert any(match.group(4) != "?" for match in found), "never a time left"
            last = found[-1]
            assert last.group(1) == last.group(2) and last.group(3) == "100", last.group(0)


def test_changing_n_clusters_reruns_only_clustering_and_after(tiny_run):
    config = edited_config(
        tiny_run, "clusters.yaml", lambda c: c["clustering"].update(n_clusters=4)
    )
    out = run_snakemake(tiny_run, "-n", "--cores", "2", "--configfile", config).stdout
    rules = set(scheduled_rules(out))
    assert "cluster_embedding" in rules
    assert not rules & UPSTREAM_OF_CLUSTERING, rules
    # Only what reads the clusters: not the figures of the embedding by label or site.
    assert rules <= AFTER_CLUSTERING, rules


def test_changing_grid_reruns_projection_but_no_download(tiny_run):
    config = edited_config(
        tiny_run, "grid.yaml", lambda c: c["projection"]["grid"].update(n_lat=32, n_lon=32)
    )
    out = run_snakemake(tiny_run, "-n", "--cores", "2", "--configfile", config).stdout
    rules = set(scheduled_rules(out))
    assert {"build_projection_operator", "project_images", "train_autoencoder"} <= rules
    assert not rules & {
        "generate_demo_mirror",
        "download_images",
        "download_skymaps",
        "download_scintillation",
    }, rules


def test_changing_download_behaviour_reruns_nothing(tiny_run):
    """Retries, time-outs, connection and size limits, redirects: how files are fetched, not
    which; given on the command line on top of the config file, they rerun nothing done."""
    out = run_snakemake(
        tiny_run,
        "-n",
        "--cores",
        "2",
        "--configfile",
        CONFIG,
        "--config",
        "download={retries: 9, read_timeout_s: 5, max_connections_per_host: 1, max_file_mb: 64}",
    ).stdout
    assert scheduled_rules(out) == {} and "Nothing to be done" in out, out[-3000:]
