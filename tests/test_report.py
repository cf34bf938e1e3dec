"""The report's pieces without a workflow run: the landing text, the captions and the tables."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import yaml
from jinja2 import Environment

from latentsky import report
from latentsky.config import dataset_configuration, has_scintillation, prepare, report_tables
from latentsky.conventions import ACKNOWLEDGEMENTS
from latentsky.kinds import data_kind

ROOT = Path(__file__).resolve().parents[1]
REPORT = ROOT / "workflow" / "report"


def words(text: str) -> str:
    return " ".join(text.split())


def render(path: Path, **snakemake) -> str:
    """A caption as Snakemake renders it (Jinja2, trim_blocks and lstrip_blocks)."""
    namespace = type("Snakemake", (), snakemake)
    env = Environment(trim_blocks=True, lstrip_blocks=True)
    return env.from_string(path.read_text()).render(snakemake=namespace)


def demo_config():
    config = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    return prepare(config, ROOT / "config" / "schema.yaml")


def test_landing_text_describes_both_tracks_the_datasets_and_the_acknowledgements():
    text = words(render(REPORT / "workflow.rst", config=demo_config()))
    assert "All-sky auroral images and GNSS scintillation" in text
    assert "ASIM photometer windows" in text
    assert "**demo**: kind ``asi``, site FSIM (CHAIN station fsi)" in text
    assert "**tle_demo**: kind ``photometer``" in text
    for acknowledgement in ACKNOWLEDGEMENTS.values():
        assert words(acknowledgement) in text
    assert "configuration shown" not in text  # the old text promised what it did not show


def test_captions_fit_the_kind_of_the_dataset():
    config = demo_config()

    def caption(name, dataset):
        # The params the rules give their captions, from the registry and the configuration.
        kind = data_kind(config["datasets"][dataset]["kind"])
        params = {
            "layout": kind.sample_layout,
            "loss_name": kind.loss_name,
            "samples": kind.sample_noun,
            "findings": kind.findings,
            "scintillation": has_scintillation(config, dataset),
        }
        wildcards = type("W", (), {"dataset": dataset})
        params = type("P", (), params)
        return words(render(REPORT / name, config=config, wildcards=wildcards, params=params))

    assert "sky" in caption("reconstructions.rst", "demo")
    assert "north up" in caption("reconstructions.rst", "demo")
    assert "Beta VAE" in caption("reconstructions.rst", "tle_demo")
    assert "every figure of the dataset" in caption("clusters.rst", "tle_demo")
    for name in ("embeddings_by_label.rst", "cluster_label_table.rst"):
        assert "windows" in caption(name, "tle_demo") and "images" not in caption(name, "tle_demo")
        assert "images" in caption(name, "demo") and "windows" not in caption(name, "demo")
    assert "without a label are light grey" in caption("embeddings_by_label.rst", "tle_demo")
    loss = "negative ELBO (nats per window)"
    assert loss in caption("training_curves.rst", "tle_demo")
    assert "masked mean squared error" in caption("training_curves.rst", "demo")
    for name in ("summary.rst", "summary_table.rst"):
        photometer, auroral = caption(name, "tle_demo"), caption(name, "demo")
        assert "tle_demo" in photometer and "transient-luminous-event" in photometer
        assert "sigma_phi" not in photometer
        assert "sigma_phi" in auroral and "transient" not in auroral
    assert "per hand label" in caption("sigma_phi_distributions.rst", "demo")
    del config["datasets"]["demo"]["labels"]
    unlabelled = caption("sigma_phi_distributions.rst", "demo")
    assert "per hand label" not in unlabelled and "every cluster with" in unlabelled
    # Captions follow the registry, never a kind's name (adding a kind needs no caption edits).
    for path in REPORT.glob("*.rst"):
        assert not re.search(r"""== *["'](asi|photometer)["']""", path.read_text()), path.name


def test_tables_per_dataset():
    config = demo_config()
    assert report_tables(config, "demo") == ["configuration", "summary", "sigma_phi_fits"]
    assert report_tables(config, "tle_demo") == ["configuration", "summary"]
    photometer = dataset_configuration(config, "tle_demo")
    assert "projection" not in photometer["sections"]  # no section of another kind
    assert photometer["sections"]["model"]["name"] == "beta_vae_1d"
    # The dataset's override, not the top-level value.
    override = config["datasets"]["tle_demo"]["overrides"]["training"]["epochs"]
    assert override != config["training"]["epochs"]
    assert photometer["sections"]["training"]["epochs"] == override
    page = report.configuration_page(
        "tle_demo", "photometer", photometer["dataset"], photometer["sections"], ["asim"]
    )
    assert 'data-table="config-training"' in page and "ASIM" in page


def test_summary_and_fit_pages():
    summary = {
        "dataset": "d",
        "n_images": 120,
        "knn_accuracy": 0.98765,
        "training": {"epochs": 2, "final_train_loss": 0.01},
        "highest_sigma_phi_cluster": {
            "cluster": "2",
            "median_sigma_phi_rad": 0.2,
            "n": 30,
            "bright_aurora_labels": ["discrete", "arc"],
            "bright_aurora_fraction": 0.9,
        },
        "bad_input": {"images": {"files_unreadable": 0}},
        "cluster_label_counts": {"0": {"arc": 3}, "1": {"arc": 1, "moon": 4}},
    }
    page = report.summary_page("d", summary)
    assert "<title>Summary of d</title>" in page
    assert re.search(r"knn_accuracy</td><td class=\"number\">0.9877<", page)
    assert 'data-table="cluster_label_counts"' in page
    fits = pd.DataFrame(
        [{"group_type": "cluster", "group": "0", "n": 10, "n_frames": 200, "mu": -2.5}]
    )
    page = report.fits_page("d", fits)
    assert "<th>n_frames</th>" in page and "-2.5" in page
