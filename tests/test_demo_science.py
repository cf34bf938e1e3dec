"""The default demo, run for real end to end, must recover what its generator planted.

This is the acceptance run of the auroral pipeline: it uses config/config.yaml unchanged, reads the
planted truth (which no rule of the workflow reads) and checks the science against it.
"""

from __future__ import annotations

import json

import pandas as pd
import pytest
from workflow_helpers import copy_workflow, run_snakemake

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    work = copy_workflow(tmp_path_factory.mktemp("demo"))
    run_snakemake(work, "--cores", "2", timeout=1800)
    results = work / "results" / "demo"
    truth = work / "resources" / "demo_truth" / "demo"
    return {
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
