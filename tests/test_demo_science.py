"""The default demo, run for real end to end, must recover what its generators planted.

This is the acceptance run of both studies: it uses config/config.yaml unchanged (the auroral
dataset `demo` and the photometer dataset `tle_demo`), reads the planted truth (which no rule of the
workflow reads) and checks the science against it, recomputing the photometer scores with
scikit-learn from the per-window tables rather than trusting summary.json alone.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from sklearn.metrics import adjusted_rand_score, roc_auc_score
from sklearn.model_selection import StratifiedKFold, cross_val_score
from sklearn.neighbors import KNeighborsClassifier
from workflow_helpers import copy_workflow, run_snakemake, scheduled_rules

# Both demos end to end, then the report: about 9 min on 2 cores, more on a loaded machine.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(2400)]


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    work = copy_workflow(tmp_path_factory.mktemp("demo"))
    run_snakemake(work, "--cores", "2", timeout=1800)
    run_snakemake(work, "--report", "results/report.html", timeout=600)
    results = work / "results" / "demo"
    truth = work / "resources" / "demo_truth" / "demo"
    return {
        "work": work,
        "summary": json.loads((results / "summary.json").read_text()),
        "fits": pd.read_csv(results / "sigma_phi_fits.csv"),
        "planted": json.loads((truth / "planted.json").read_text()),
        "truth": pd.read_csv(truth / "truth.csv", parse_dates=["time"]),
        "embedding": pd.read_csv(results / "embedding.csv"),
    }


def test_demo_is_big_enough(demo):
    truth = demo["truth"]
    assert len(truth) >= 2000
    assert truth["time"].dt.date.nunique() >= 5
    assert set(truth["class"]) == {"arc", "diffuse", "discrete", "moon", "clear", "cloudy"}


def test_latents_separate_the_labelled_classes(demo):
    assert demo["summary"]["knn_accuracy"] >= 0.85


def test_spectral_clusters_agree_with_the_labels(demo):
    assert demo["summary"]["adjusted_rand_index"] >= 0.5


def test_lognormal_fits_recover_the_planted_parameters(demo):
    planted = demo["planted"]["sigma_phi_lognormal"]
    fits = demo["fits"][demo["fits"]["group_type"] == "label"].set_index("group")
    checked = 0
    for label, row in fits.iterrows():
        if row["n"] < 100:
            continue
        checked += 1
        assert abs(row["mu"] - planted[label]["mu"]) <= 0.1, (label, row["mu"])
        assert abs(row["sigma"] - planted[label]["sigma"]) <= 0.1, (label, row["sigma"])
    assert checked >= 5  # every class except the excluded cloudy one


def test_highest_sigma_phi_cluster_is_bright_aurora(demo):
    top = demo["summary"]["highest_sigma_phi_cluster"]
    table = demo["embedding"]
    members = table[table["cluster"].astype(str) == top["cluster"]]
    fraction = members["label"].isin(["discrete", "arc"]).mean()
    assert fraction >= 0.7, members["label"].value_counts().to_dict()
    assert top["bright_aurora_fraction"] == pytest.approx(fraction)


# --- the photometer study (dataset tle_demo) --------------------------------------------------------

TLE_TYPES = ["elve", "blue_corona", "sprite", "blue_jet"]
ORDINARY_TYPES = ["lightning", "background"]


def microseconds(times):
    return pd.to_datetime(times, utc=True).dt.tz_localize(None).dt.round("us")


@pytest.fixture(scope="module")
def tle(demo):
    results = demo["work"] / "results" / "tle_demo"
    truth = pd.read_csv(
        demo["work"] / "resources" / "demo_tle" / "tle_demo" / "truth" / "truth.csv"
    )
    truth["t"] = microseconds(truth["time"])
    windows = pd.read_csv(results / "tle" / "windows.csv")
    windows["t"] = microseconds(windows["time"])
    # Every window is one planted episode (window length = episode length in the demo config).
    windows = windows.merge(truth[["t", "type", "observation_id"]], on="t", how="left")
    embedding = pd.read_csv(results / "embedding.csv")
    embedding["t"] = microseconds(embedding["time"])
    embedding = embedding.merge(truth[["t", "type"]], on="t", how="left")
    return {
        "results": results,
        "summary": json.loads((results / "summary.json").read_text()),
        "truth": truth,
        "windows": windows,
        "embedding": embedding,
    }


def test_photometer_demo_plants_every_type(tle):
    counts = tle["truth"]["type"].value_counts()
    assert set(counts.index) == set(TLE_TYPES + ORDINARY_TYPES)
    assert counts.sum() >= 1500
    assert all(counts[t] >= 40 for t in TLE_TYPES), counts.to_dict()


def test_windows_store_layout_and_no_window_crosses_an_observation(tle):
    store = xr.open_zarr(tle["results"] / "windows.zarr")
    assert store["waveform"].dims == ("window", "band", "sample")
    assert store.sizes["band"] == 3 and store.sizes["window"] == len(tle["truth"])
    for coord in ("observation", "start_time", "time", "latitude", "longitude"):
        assert store[coord].dims == ("window",)
    assert json.loads(store.attrs["band_wavelengths"]) == {
        "PHOT1": "337 nm",
        "PHOT2": "180-230 nm",
        "PHOT3": "777.4 nm",
    }
    assert store.attrs["units"] == "uW/m^2"
    waveform = store["waveform"].to_numpy()
    assert np.nanmin(waveform) >= 0 and np.nanmax(waveform) <= 1
    # Each window matches exactly one planted episode of its own observation, starts on time order
    # within it and lies inside it.
    windows = tle["windows"]
    assert windows["type"].notna().all()
    assert (windows["observation"] == windows["observation_id"]).all()
    start = pd.to_datetime(store["start_time"].to_numpy())
    truth_start = microseconds(tle["truth"].set_index("t").loc[windows["t"], "start_time"])
    assert (abs(start.round("us") - truth_start.to_numpy()) <= pd.Timedelta("1us")).all()


def test_photometer_labels_are_the_planted_types(tle):
    embedded = tle["embedding"]
    assert len(embedded) >= 800
    assert (embedded["label"] == embedded["type"]).all()


def test_photometer_latents_separate_the_planted_types(tle):
    assert tle["summary"]["knn_accuracy"] >= 0.85
    # Independently, with scikit-learn, over every window (labelled or not).
    latents = xr.open_zarr(tle["results"] / "latents.zarr")["latent"].to_numpy()
    folds = StratifiedKFold(5, shuffle=True, random_state=0)
    accuracy = cross_val_score(
        KNeighborsClassifier(5), latents, tle["windows"]["type"], cv=folds
    ).mean()
    assert accuracy >= 0.85


def test_photometer_clusters_agree_with_the_planted_types(tle):
    assert tle["summary"]["adjusted_rand_index"] >= 0.5
    embedded = tle["embedding"]
    assert adjusted_rand_score(embedded["type"], embedded["cluster"]) >= 0.5


def test_anomaly_score_ranks_planted_tles_above_ordinary_windows(tle):
    assert tle["summary"]["anomaly_roc_auc"] >= 0.8
    windows = tle["windows"]
    scored = windows[windows["type"].isin(TLE_TYPES + ORDINARY_TYPES)]
    auc = roc_auc_score(scored["type"].isin(TLE_TYPES), scored["neg_elbo"])
    assert auc >= 0.8


def test_tle_candidates_are_mostly_planted_tles(tle):
    candidates = pd.read_csv(tle["results"] / "tle" / "candidates.csv")
    candidates["t"] = microseconds(candidates["time"])
    planted = candidates.merge(tle["truth"][["t", "type"]], on="t")
    assert len(planted) == len(candidates) >= 20
    assert planted["type"].isin(TLE_TYPES).mean() >= 0.5, planted["type"].value_counts()
    # Not one kind only: the table takes each band-signature kind's best windows in turn.
    assert planted.loc[planted["type"].isin(TLE_TYPES), "type"].nunique() >= 2
    for column in ("cluster", "neg_elbo", "ratio_uv_777", "ratio_337_777", "rise_time_us_777"):
        assert column in candidates


def test_photometer_figures_are_in_the_report(demo):
    report = (demo["work"] / "results" / "report.html").read_text(errors="replace")
    for name in (
        "reconstructions",
        "embeddings_by_label",
        "clusters",
        "cluster_label_table",
        "training_curves",
        "mean_waveforms",
    ):
        figure = demo["work"] / "results" / "tle_demo" / "figures" / f"{name}.png"
        assert figure.stat().st_size > 10_000, figure
        assert f"tle_demo/figures/{name}.png" in report, name
    assert "tle_demo/tle/candidates.csv" in report


# --- rerun scope on the default config: what a changed value feeds, and nothing else --------------

DOWNLOADS = {"generate_demo_mirror", "generate_tle_demo", "download_images"}
DOWNLOADS |= {"download_skymaps", "download_scintillation"}


def dry_run(demo, *config):
    out = run_snakemake(demo["work"], "-n", "--config", *config).stdout
    return scheduled_rules(out), out


def test_a_new_n_clusters_on_the_command_line_reruns_the_clustering_only(demo):
    rules, out = dry_run(demo, "clustering={n_clusters: 7}")
    assert rules.get("cluster_embedding") == 1, out[-3000:]  # tle_demo overrides n_clusters
    assert set(rules) <= {
        "cluster_embedding",
        "fit_sigma_phi",
        "summarise_results",
        "plot_clusters",
        "plot_cluster_label_table",
        "plot_sigma_phi_distributions",
        "all",
    }, rules


def test_on_bad_input_on_the_command_line_reruns_what_reads_it_not_the_downloads(demo):
    rules, out = dry_run(demo, "on_bad_input=fail")
    assert {"project_images", "extract_sigma_phi", "ingest_photometer"} <= set(rules), out[-3000:]
    assert not set(rules) & (DOWNLOADS | {"build_projection_operator"}), rules


def test_download_behaviour_on_the_command_line_reruns_nothing(demo):
    rules, out = dry_run(
        demo,
        "download={retries: 9, read_timeout_s: 5, max_connections_per_host: 2, max_file_mb: 50}",
    )
    assert rules == {}, out[-3000:]
    assert "Nothing to be done" in out
