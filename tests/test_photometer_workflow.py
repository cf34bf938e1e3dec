"""A photometer dataset run through the real workflow from a user's folder of MMIA FITS files.

The folder is written by the demo generator and then damaged (a file without a band column, a
truncated file); the dataset is configured as real data would be (no `demo_tle`), so this is the
path a user with ASIM files takes. Checks: bad files are skipped and counted through to
summary.json, or stop the run naming the file and the column under `on_bad_input: fail`; a changed
per-dataset clustering override reruns only the clustering and what follows.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
import yaml
from astropy.io import fits
from cf_check import assert_cf
from report_helpers import html_tables, report_pages
from workflow_helpers import ROOT, copy_workflow, run_snakemake, scheduled_rules

from latentsky.demo.tle import TleDemoParams, generate_tle_demo

pytestmark = pytest.mark.slow

MISSING_COLUMN = "PHOT3_photon_flux"


def photometer_config(on_bad_input: str, n_clusters: int = 3) -> dict:
    config = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    config["datasets"] = {
        "mmia": {
            "kind": "photometer",
            "fits_dir": "data/mmia",
            "labels": "data/labels.csv",
            "photometer": {
                "window": {"length": 1000, "stride": 1000},
                "scaling": {"method": "log", "low": -10.0, "high": 200.0, "log_scale": 10.0},
            },
            "overrides": {
                "model": {"base_channels": 4, "depth": 3, "max_channels": 8, "latent_dim": 8},
                "training": {"epochs": 2, "batch_size": 16, "learning_rate": 0.002},
                "embedding": {"subset": "all", "umap_neighbors": 8, "tsne_perplexity": 5},
                "clustering": {"n_clusters": n_clusters, "n_neighbors": 8},
                # A partial nested override: the other analysis.tle keys come from the top level.
                "analysis": {"label_tolerance_s": 0.005, "tle": {"n_candidates": 7}},
            },
        }
    }
    config["on_bad_input"] = on_bad_input
    return config


def drop_column(path: Path, column: str) -> None:
    """Rewrite a FITS file without one column of its table (HDU 1)."""
    with fits.open(path, memmap=False) as hdul:
        kept = [c for c in hdul[1].columns if c.name != column]
        table = fits.BinTableHDU.from_columns(kept, header=hdul[1].header)
        fits.HDUList([fits.PrimaryHDU(header=hdul[0].header), table]).writeto(path, overwrite=True)


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> dict:
    """The generated FITS folder with two damaged files, and which they are."""
    base = tmp_path_factory.mktemp("mmia")
    params = TleDemoParams(seed=3, n_observations=6, frames_per_observation=1, episode_samples=1000)
    generate_tle_demo(base / "mmia", base / "labels.csv", base / "truth", params)
    files = sorted((base / "mmia").glob("*.fits*"))
    assert len(files) == 6
    drop_column(files[1], MISSING_COLUMN)
    files[4].write_bytes(files[4].read_bytes()[:5000])  # truncated mid-table
    return {"base": base, "files": files, "column_missing": files[1], "truncated": files[4]}


def prepare(tmp_path: Path, folder: dict, config: dict) -> Path:
    work = copy_workflow(tmp_path / "repo")
    shutil.copytree(folder["base"], work / "data")
    (work / "config" / "mmia.yaml").write_text(yaml.safe_dump(config))
    return work


@pytest.fixture(scope="module")
def skip_run(tmp_path_factory, folder) -> Path:
    work = prepare(tmp_path_factory.mktemp("skip"), folder, photometer_config("skip"))
    run_snakemake(work, "--cores", "2", "--configfile", "config/mmia.yaml", timeout=900)
    return work


def test_bad_files_are_skipped_and_counted_through_to_the_summary(skip_run):
    summary = json.loads((skip_run / "results/mmia/summary.json").read_text())
    counts = summary["bad_input"]["windows"]
    assert counts["files_read"] == 4
    assert counts["files_unreadable"] == 2
    # Four whole observations of one frame each, 8 windows of 1,000 samples per 8,320-sample frame.
    assert summary["n_windows"] == counts["windows"] == 4 * 8
    store = xr.open_zarr(skip_run / "results/mmia/windows.zarr")
    assert store.sizes["window"] == 32
    assert np.isfinite(store["waveform"].to_numpy()).all()
    assert summary["tle"]["n_windows"] == 32
    # Every label accounted for, and the frame-time convention checked against the labels.
    matching = summary["label_matching"]
    assert matching["labels"] == (
        matching["matched"] + matching["unmatched"] + matching["shared_sample"]
    )
    assert summary["input_checks"]["frame_time"]["configured"] == "centre"
    assert summary["input_checks"]["frame_time"]["verdict"] in ("plausible", "unchecked")


def test_skipped_files_are_named_in_the_log(skip_run, folder):
    log = (skip_run / "results/logs/ingest_photometer/mmia.log").read_text()
    assert folder["column_missing"].name in log and MISSING_COLUMN in log
    assert folder["truncated"].name in log


def test_every_photometer_output_is_there(skip_run):
    results = skip_run / "results/mmia"
    for name in (
        "reconstructions",
        "clusters",
        "training_curves",
        "embeddings_by_label",
        "cluster_label_table",
        "mean_waveforms",
    ):
        assert (results / "figures" / f"{name}.png").stat().st_size > 5000, name
    for name in ("windows.csv", "clusters.csv", "candidates.csv", "summary.json"):
        assert (results / "tle" / name).stat().st_size > 0, name
    candidates = (results / "tle" / "candidates.csv").read_text().splitlines()
    assert len(candidates) == 1 + 7  # header and the overridden n_candidates
    stores = sorted(results.glob("*.zarr"))
    assert [path.name for path in stores] == ["latents.zarr", "windows.zarr"]
    for path in stores:
        assert_cf(path)


def test_the_report_shows_the_photometer_configuration_summary_and_captions(skip_run):
    run_snakemake(skip_run, "--configfile", "config/mmia.yaml", "--report", "results/report.html")
    html = (skip_run / "results/report.html").read_text(errors="replace")
    pages = report_pages(html)
    # No sigma_phi fits; the data-quality page (bad input) as for every dataset.
    assert set(pages) == {"Configuration of mmia", "Summary of mmia", "Data quality: mmia"}
    configuration = pages["Configuration of mmia"]
    dataset = html_tables(configuration)["config-dataset"].set_index("setting")["value"]
    assert dataset["kind"] == "photometer" and dataset["fits_dir"] == "data/mmia"
    model = html_tables(configuration)["config-model"].set_index("setting")["value"]
    assert model["name"] == "beta_vae_1d" and int(model["latent_dim"]) == 8  # the override
    assert "ASIM is a mission" in configuration and "THEMIS" not in configuration
    summary = json.loads((skip_run / "results/mmia/summary.json").read_text())
    headlines = html_tables(pages["Summary of mmia"])["summary"].set_index("quantity")["value"]
    assert int(headlines["n_windows"]) == summary["n_windows"] == 32
    assert float(headlines["knn_accuracy"]) == pytest.approx(summary["knn_accuracy"], abs=1e-4)
    # Captions in the photometer's words: windows, the TLE analysis, no sigma_phi, no sky.
    assert "labelled windows of each label" in html
    assert "the transient-luminous-event analysis" in html
    assert "Photometer windows of dataset" in html and "Projected all-sky images" not in html
    assert "cluster with the highest median sigma_phi" not in html


def test_a_bad_file_stops_the_run_naming_file_and_column(tmp_path, folder):
    work = prepare(tmp_path, folder, photometer_config("fail"))
    result = run_snakemake(
        work,
        "results/mmia/windows.zarr",
        "--cores",
        "1",
        "--configfile",
        "config/mmia.yaml",
        check=False,
        timeout=300,
    )
    assert result.returncode != 0
    assert folder["column_missing"].name in result.stdout
    assert MISSING_COLUMN in result.stdout
    assert not (work / "results/mmia/windows.zarr").exists()


def test_changed_cluster_count_reruns_only_clustering_and_after(skip_run):
    (skip_run / "config" / "more.yaml").write_text(
        yaml.safe_dump(photometer_config("skip", n_clusters=4))
    )
    out = run_snakemake(skip_run, "-n", "--cores", "2", "--configfile", "config/more.yaml").stdout
    rules = set(scheduled_rules(out))
    assert {"cluster_embedding", "analyse_tle_clusters", "summarise_results"} <= rules
    assert not rules & {"ingest_photometer", "train_autoencoder", "encode_latents", "embed_latents"}
