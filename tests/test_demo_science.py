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
from sklearn.metrics import adjusted_rand_score, balanced_accuracy_score, roc_auc_score
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from workflow_helpers import AFTER_CLUSTERING, copy_workflow, run_snakemake, scheduled_rules

from latentsky.analysis.labels import match_labels
from latentsky.instruments.mmia import BANDS

# Both demos end to end, then the report: about 9 min on 2 cores, more on a loaded machine.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(2400)]


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    work = copy_workflow(tmp_path_factory.mktemp("demo"))
    # One torch thread for training: beside the other test process on two cores, two threads
    # made an epoch three times slower (each waits at every barrier for the one descheduled).
    # Only the order of floating-point sums differs from a two-thread run.
    run_snakemake(work, "--cores", "2", "--set-threads", "train_autoencoder=1", timeout=1800)
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
#: Balanced kNN accuracy over the six planted types that the demo must reach (issue 14 asks 0.85;
#: the shipped config gives 0.93 to 0.98 in summary.json at generator seeds 7, 2 and 3 with
#: training seeds 0 and 1, in cosine distance, and 0.89 to 0.95 with the Euclidean kNN that the
#: independent check below uses: see the README's photometer tables). Held a little lower, for
#: other CPUs' rounding.
BALANCED_KNN = 0.83
ORDINARY_TYPES = ["lightning", "background"]


def microseconds(times):
    return pd.to_datetime(times, utc=True).dt.tz_localize(None).dt.round("us")


@pytest.fixture(scope="module")
def tle(demo):
    results = demo["work"] / "results" / "tle_demo"
    truth = pd.read_csv(
        demo["work"] / "resources" / "demo_tle" / "tle_demo" / "truth" / "truth.csv"
    )
    windows = pd.read_csv(results / "tle" / "windows.csv", parse_dates=["time"])
    # Windows lie around detected pulses, not on the planted episodes: each gets the type of the
    # planted event (or quiet moment) nearest its time, as the workflow matches hand labels.
    planted = truth[truth["labellable"] == 1]
    everything = pd.DataFrame(
        {
            "time": pd.to_datetime(planted["time"], utc=True).dt.tz_localize(None),
            "label": planted["type"].to_numpy(),
            "observation_id": planted["observation_id"].to_numpy(),
        }
    ).sort_values("time")
    tolerance = demo_settings()["overrides"]["analysis"]["label_tolerance_s"]
    windows["type"], _ = match_labels(windows["time"].dt.tz_localize(None), everything, tolerance)
    embedding = pd.read_csv(results / "embedding.csv")
    embedding["type"] = windows["type"].to_numpy()[embedding["index"].to_numpy()]
    return {
        "results": results,
        "summary": json.loads((results / "summary.json").read_text()),
        "truth": truth,
        "windows": windows,
        "typed": windows[windows["type"].notna()],
        "embedding": embedding,
    }


def demo_settings() -> dict:
    import yaml
    from workflow_helpers import ROOT

    return yaml.safe_load((ROOT / "config" / "config.yaml").read_text())["datasets"]["tle_demo"]


def test_photometer_demo_plants_every_type(tle):
    counts = tle["truth"]["type"].value_counts()
    assert set(counts.index) == set(TLE_TYPES + ORDINARY_TYPES)
    assert counts.sum() >= 1500
    assert all(counts[t] >= 40 for t in TLE_TYPES), counts.to_dict()


def test_windows_store_layout_and_no_window_crosses_an_observation(tle):
    store = xr.open_zarr(tle["results"] / "windows.zarr")
    assert store["waveform"].dims == ("window", "channel", "sample")
    assert store.sizes["band"] == 3 and store.sizes["window"] == len(tle["windows"])
    # The demo's model input: the three bands, then its two colour channels (337 nm and UV
    # over 777.4 nm), each in (0, 1).
    assert list(store["channel"].to_numpy()) == [*BANDS, "PHOT1/PHOT3", "PHOT2/PHOT3"]
    colour = store["waveform"].isel(channel=slice(3, None)).to_numpy()
    assert 0 < np.nanmin(colour) and np.nanmax(colour) < 1
    for coord in ("observation", "start_time", "time", "latitude", "longitude", "on_pulse"):
        assert store[coord].dims == ("window",)
    assert json.loads(store.attrs["band_wavelengths"]) == {
        "PHOT1": "337 nm",
        "PHOT2": "180-230 nm",
        "PHOT3": "777.4 nm",
    }
    assert store.attrs["units"] == "uW/m^2"
    waveform = store["waveform"].to_numpy()
    assert np.nanmin(waveform) >= 0 and np.nanmax(waveform) <= 1
    # Every planted event of every type has its own window, within its own observation.
    typed = tle["typed"]
    assert set(typed["type"]) == set(TLE_TYPES + ORDINARY_TYPES)
    events = tle["truth"][
        (tle["truth"]["type"] != "background") & (tle["truth"]["labellable"] == 1)
    ]
    assert typed["type"].isin(TLE_TYPES + ["lightning"]).sum() >= 0.95 * len(events)
    check = tle["summary"]["input_checks"]["frame_time"]
    assert check["verdict"] == "plausible" and check["best"] == "centre"
    matching = tle["summary"]["label_matching"]
    assert matching["labels"] == (
        matching["matched"] + matching["unmatched"] + matching["shared_sample"]
    )


def test_photometer_labels_are_the_planted_types(tle):
    embedded = tle["embedding"]
    assert len(embedded) >= 700
    labelled = embedded.dropna(subset=["label"])
    assert (labelled["label"] == labelled["type"]).mean() >= 0.97


def test_photometer_latents_separate_the_planted_types(tle):
    assert tle["summary"]["knn_accuracy"] >= 0.85
    summary = tle["summary"]
    assert summary["tle"]["knn_metric"] == "cosine"
    assert summary["balanced_knn_accuracy"] >= BALANCED_KNN
    assert summary["tle"]["euclidean"]["balanced_knn_accuracy"] >= BALANCED_KNN
    # The faint, colour-defined types the colour channels brought out (0.63 and 0.88 before; now
    # 0.91 to 0.95 and 0.96 to 1.00 over three generator seeds and two training seeds).
    assert summary["knn_recall"]["elve"] >= 0.6 and summary["knn_recall"]["blue_corona"] >= 0.7
    # Sprites and jets (cosine kNN, the default): 0.78 to 1.00 and 0.79 to 0.95 over three
    # generator seeds and two training seeds, 0.87 and 0.88 here at seed 7 (Euclidean: 0.74 to
    # 0.90 and 0.70 to 0.89, 0.74 and 0.77 here); at seed 7 sprites were 0.61 here before the
    # encoder read each scale's maximum, and 0.43 with a precision per sample.
    assert summary["knn_recall"]["sprite"] >= 0.6 and summary["knn_recall"]["blue_jet"] >= 0.6
    # Independently, with scikit-learn, over every typed window (labelled or not).
    latents = xr.open_zarr(tle["results"] / "latents.zarr")["latent"].to_numpy()
    typed = tle["typed"]
    folds = StratifiedKFold(5, shuffle=True, random_state=0)
    predicted = cross_val_predict(
        make_pipeline(StandardScaler(), KNeighborsClassifier(5)),
        latents[typed.index],
        typed["type"],
        cv=folds,
    )
    assert (predicted == typed["type"]).mean() >= 0.85
    assert balanced_accuracy_score(typed["type"], predicted) >= BALANCED_KNN


def test_photometer_clusters_agree_with_the_planted_types(tle):
    assert tle["summary"]["adjusted_rand_index"] >= 0.5
    # Issue 14's bar for spectral clusters of the latents at as many clusters as types: 0.84 to
    # 0.87 over nine runs of the demo's photometer dataset (0.86 here; 0.87 to 0.90 on the UMAP
    # layout). On a 15-neighbour graph one of them split the 560 background windows in two
    # instead (0.47), as the UMAP clusters did with a precision per sample (0.48 at seed 7).
    ari = tle["summary"]["ari_at_n_types"], tle["summary"]["tle"]["ari_at_n_types_umap"]
    assert min(ari) >= 0.6, ari
    embedded = tle["embedding"].dropna(subset=["type"])
    assert adjusted_rand_score(embedded["type"], embedded["cluster"]) >= 0.5


def test_anomaly_score_ranks_planted_tles_above_ordinary_windows(tle):
    """Every TLE type against lightning (summary) and, independently, the blue ones against
    lightning and quiet sky alike. Elves and sprites score like quiet sky (the colour channels'
    quiet-sky noise costs nats; see the README), so the pooled AUC is held lower: that is why the
    candidates table ranks by band signature first."""
    by_type = tle["summary"]["anomaly_auc_by_type"]
    assert by_type["blue_corona"] >= 0.9 and by_type["blue_jet"] >= 0.9, by_type
    assert by_type["elve"] >= 0.8, by_type
    # TLEs against lightning and quiet sky: 0.64 to 0.81 over generator seeds 7, 2, 3 and two
    # training seeds (0.68 here; 0.68 / 0.80 / 0.82 before the encoder read each scale's maximum,
    # after which sprite windows rank lower against lightning: README, "Global maxima").
    assert tle["summary"]["anomaly_roc_auc"] >= 0.6
    scored = tle["typed"]
    for kind in ("blue_corona", "blue_jet"):
        keep = scored["type"].isin([kind, *ORDINARY_TYPES])
        auc = roc_auc_score(scored.loc[keep, "type"] == kind, scored.loc[keep, "neg_elbo"])
        # Corona discharges 0.77 to 0.95 over three generator seeds and two training seeds (0.95
        # here at seed 7), jets 0.99 or more; corona 0.92 to 0.94 with a precision per sample,
        # which let sprites' glows go unencoded (README).
        assert auc >= 0.75, (kind, auc)


def test_tle_candidates_hold_every_tle_type_and_little_lightning(tle):
    """The issue's alternative to an anomaly AUC of 0.8 per type: the top 50 hold every TLE type
    and at most 20 % ordinary lightning."""
    candidates = pd.read_csv(tle["results"] / "tle" / "candidates.csv")
    typed = candidates.merge(tle["windows"][["window", "type"]], on="window")
    assert len(typed) == len(candidates) >= 50
    top = typed.head(50)
    assert set(TLE_TYPES) <= set(top["type"].dropna()), top["type"].value_counts()
    assert (top["type"] == "lightning").mean() <= 0.2, top["type"].value_counts()
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
    assert set(rules) <= AFTER_CLUSTERING, rules


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
