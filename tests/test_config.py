"""The config schema: described keys with defaults, and bad config stopped before any job."""

from __future__ import annotations

import pandas as pd
import pytest
import yaml
from workflow_helpers import ROOT, copy_workflow, run_snakemake

from latentsky.config import (
    ConfigError,
    dataset_dates,
    dataset_figures,
    download_settings,
    merged,
    model_name,
    prepare,
    sample_bound,
    settings,
)
from latentsky.kinds import KINDS

SCHEMA_PATH = ROOT / "config" / "schema.yaml"
SCHEMA = yaml.safe_load(SCHEMA_PATH.read_text())


def walk(schema, path="config"):
    """(path, subschema) for every property in the schema, following $defs references and the
    branches of if/then/else (a dataset's keys depend on its kind)."""
    if "$ref" in schema:
        schema = {**SCHEMA["$defs"][schema["$ref"].split("/")[-1]], **schema}
    for branch in ("then", "else"):
        if branch in schema:
            yield from walk(schema[branch], path)
    for name, sub in schema.get("properties", {}).items():
        yield f"{path}.{name}", sub, name in schema.get("required", [])
        yield from walk(sub, f"{path}.{name}")
    extra = schema.get("additionalProperties")
    if isinstance(extra, dict):
        yield from walk(extra, f"{path}.<name>")


def test_every_key_is_described_and_has_a_default():
    keys = list(walk(SCHEMA))
    assert len(keys) > 40
    for path, sub, required in keys:
        resolved = {**SCHEMA["$defs"].get(sub.get("$ref", "#/x").split("/")[-1], {}), **sub}
        assert resolved.get("description"), f"{path} has no description"
        optional_without_default = path.endswith(
            (".gnss_station", ".labels", ".demo_mirror", ".demo_tle", ".site", ".sites")
        )
        if not required and not optional_without_default:
            assert "default" in resolved, f"{path} has no default"


def test_every_key_is_explained_in_config_readme():
    readme = (ROOT / "config" / "README.md").read_text()
    for path, _, _ in walk(SCHEMA):
        name = path.rsplit(".", 1)[-1]
        assert f"`{name}`" in readme or f".{name}`" in readme or f"`{name}." in readme, name


def demo_config() -> dict:
    return yaml.safe_load((ROOT / "config" / "config.yaml").read_text())


def refused(edit) -> ConfigError:
    """The error :func:`prepare` raises for the demo config changed by ``edit``."""
    config = demo_config()
    edit(config)
    with pytest.raises(ConfigError) as error:
        prepare(config, SCHEMA_PATH)
    return error.value


def test_the_snakefile_validates_before_any_job(tmp_path):
    """The one end-to-end check: a bad value stops `snakemake` itself, naming the key, with
    nothing written (every other case is checked in-process against the same library call)."""
    work = copy_workflow(tmp_path / "repo")
    config = demo_config()
    config["clustering"]["n_clusterz"] = 4
    (work / "config" / "bad.yaml").write_text(yaml.safe_dump(config))
    result = run_snakemake(
        work, "--cores", "1", "--configfile", "config/bad.yaml", check=False, timeout=120
    )
    assert result.returncode != 0
    assert "n_clusterz" in result.stdout
    assert not (work / "results").exists() and not (work / "resources").exists()


def test_the_demo_config_passes_and_gets_its_defaults():
    config = prepare(demo_config(), SCHEMA_PATH)
    assert config["datasets"]["demo"]["model"] == "res_ae"
    assert config["datasets"]["tle_demo"]["model"] == "beta_vae_1d"
    assert config["training"]["shuffle_buffer"] == 2048
    assert list(config) == sorted(config)  # key order is canonical


@pytest.mark.parametrize(
    ("edit", "key", "words"),
    [
        (lambda c: c["clustering"].update(n_clusterz=4), "clustering.n_clusterz", ["unexpected"]),
        (lambda c: c["clustering"].update(n_clusters=1), "clustering.n_clusters", ["minimum"]),
        (
            lambda c: c["datasets"]["demo"].update(image_source="ftp"),
            "datasets.demo.image_source",
            ["ftp"],
        ),
        (
            lambda c: c["datasets"]["tle_demo"]["overrides"]["training"].update(epochz=3),
            "datasets.tle_demo.overrides.training.epochz",
            ["unexpected"],
        ),
        (
            lambda c: c["datasets"]["tle_demo"]["overrides"]["clustering"].update(n_clusters=1),
            "datasets.tle_demo.overrides.clustering.n_clusters",
            ["minimum"],
        ),
        (
            lambda c: c["datasets"]["tle_demo"].pop("fits_dir"),
            "datasets.tle_demo.fits_dir",
            ["required"],
        ),
        (
            lambda c: c["datasets"]["tle_demo"].update(image_source="berkeley_l1"),
            "datasets.tle_demo.image_source",
            ["unexpected"],
        ),
        (
            lambda c: c["datasets"]["demo"]["dates"].update(start="2024-02-30"),
            "datasets.demo.dates.start",
            ["calendar date"],
        ),
        (
            lambda c: c["datasets"]["demo"]["dates"].update(end="2024-01-01"),
            "datasets.demo.dates",
            ["before"],
        ),
        (lambda c: c["datasets"]["demo"].update(hours_ut=[11, 4]), "datasets.demo.hours_ut", []),
        (lambda c: c["datasets"]["demo"].pop("labels"), "datasets.demo.labels", ["labelled"]),
        (
            lambda c: c["datasets"]["demo"].update(labels="elsewhere.csv"),
            "datasets.demo.labels",
            ["resources/demo_mirror/demo/labels.csv"],
        ),
        (
            lambda c: c["datasets"]["tle_demo"].update(fits_dir="mine"),
            "datasets.tle_demo.fits_dir",
            ["resources/demo_tle/tle_demo/mmia"],
        ),
        (lambda c: c["datasets"]["demo"].update(kind="radar"), "datasets.demo.kind", ["radar"]),
        (
            lambda c: c["datasets"]["demo"].update(sites=[{"site": "gill"}]),
            "datasets.demo",
            ["either"],
        ),
        (
            lambda c: (
                c["datasets"]["demo"].update(sites=[{"site": "gill"}, {"site": "gill"}], site=None)
                or c["datasets"]["demo"].pop("site")
                or c["datasets"]["demo"].pop("gnss_station")
            ),
            "datasets.demo.sites",
            ["gill"],
        ),
        (
            lambda c: c["projection"].update(grid={"frame": "site", "n_lat": 64, "n_lon": 32}),
            "projection.grid",
            ["square"],
        ),
        (
            lambda c: c["projection"].update(normalisation={"scope": "site_ring"}),
            "projection.normalisation.scope",
            ["frame: site"],
        ),
    ],
)
def test_a_bad_config_is_refused_naming_the_key(edit, key, words):
    error = refused(edit)
    assert str(error).startswith(f"config key {key}:")
    for word in words:
        assert word in str(error)


def test_overrides_merge_key_by_key_onto_the_dataset_s_model():
    overrides = demo_config()["datasets"]["tle_demo"]["overrides"]["model"]
    config = prepare(demo_config(), SCHEMA_PATH)
    top = config["model"]["beta_vae_1d"]
    model = settings(config, "tle_demo", "model")
    changed = {key for key in overrides if overrides[key] != top[key]}
    assert changed, "the demo's model overrides should change something"
    assert {key: model[key] for key in overrides} == overrides  # the demo's overrides
    assert "latent_dim" not in overrides and model["latent_dim"] == top["latent_dim"]  # from top
    assert settings(config, "demo", "model") == config["model"]["res_ae"]
    tle = settings(config, "tle_demo", "analysis")
    assert tle["label_tolerance_s"] == 0.005 and tle["tle"] == config["analysis"]["tle"]


def test_a_dataset_may_name_another_registered_model():
    config = demo_config()
    config["datasets"]["demo"]["model"] = "my_model"
    config["model"]["my_model"] = {"width": 3}
    config = prepare(config, SCHEMA_PATH)
    assert model_name(config, "demo") == "my_model"
    assert settings(config, "demo", "model") == {"width": 3}


def test_each_kind_s_default_model_is_the_schema_s():
    branches = {"asi": "asi_dataset", "photometer": "photometer_dataset"}
    for name, kind in KINDS.items():
        default = SCHEMA["$defs"][branches[name]]["properties"]["model"]["default"]
        assert default == kind.default_model


def test_dates_are_listed_inclusively():
    config = prepare(demo_config(), SCHEMA_PATH)
    assert dataset_dates(config, "demo") == [f"2024-01-{d:02d}" for d in range(8, 13)]


def test_merged_keeps_what_the_override_lacks():
    base = {"a": 1, "tle": {"x": 1, "y": 2}}
    assert merged(base, {"tle": {"y": 3}}) == {"a": 1, "tle": {"x": 1, "y": 3}}
    assert base == {"a": 1, "tle": {"x": 1, "y": 2}}  # not changed in place


def test_figures_and_download_settings_follow_the_registries():
    config = prepare(demo_config(), SCHEMA_PATH)
    assert "mean_waveforms" in dataset_figures(config, "tle_demo")
    assert "sigma_phi_distributions" in dataset_figures(config, "demo")
    assert "mean_waveforms" not in dataset_figures(config, "demo")
    skymaps = download_settings(config, "demo", "skymaps", "fsim")
    assert skymaps["source"] == "berkeley_cal"
    assert skymaps["base_url"] == config["datasets"]["demo"]["base_urls"]["berkeley_cal"]
    ismr = download_settings(config, "demo", "scintillation", "fsim")
    assert ismr["station"] == "fsi" and ismr["expected_columns"] == 62


# --- command-line values, checks across keys, the labels CSV --------------------------------------


def test_command_line_values_are_typed_as_the_schema_says():
    config = demo_config()
    # What `snakemake --config` hands over: YAML's base loader keeps every scalar a string.
    config["clustering"] = {"n_clusters": "7"}
    config["training"].update(resume="true", learning_rate="1e-3")
    config["projection"]["fov_radius_km"] = "null"
    config["datasets"]["demo"]["hours_ut"] = ["5", "6"]
    config["datasets"]["tle_demo"]["photometer"]["level"] = "1"
    config["download"] = {"redirect_hosts": ["mirror.example.org"], "retries": "9"}
    config["on_bad_input"] = "fail"
    config = prepare(config, SCHEMA_PATH)
    assert config["clustering"] == {"n_clusters": 7, "n_neighbors": 15, "seed": 0}
    assert config["training"]["resume"] is True and config["training"]["learning_rate"] == 1e-3
    assert config["projection"]["fov_radius_km"] is None
    assert config["datasets"]["demo"]["hours_ut"] == [5, 6]
    assert config["datasets"]["tle_demo"]["photometer"]["level"] == 1
    assert config["download"]["retries"] == 9
    assert config["download"]["redirect_hosts"] == ["mirror.example.org"]


def test_a_command_line_value_of_the_wrong_type_still_names_its_key():
    error = refused(lambda c: c["clustering"].update(n_clusters="seven"))
    assert "n_clusters" in str(error) and "'seven'" in str(error)


def test_command_line_values_apply_on_top_of_the_default_config(tmp_path):
    work = copy_workflow(tmp_path / "repo")
    out = run_snakemake(
        work, "-n", "--config", "clustering={n_clusters: 7}", "on_bad_input=fail", timeout=120
    ).stdout
    assert "cluster_embedding" in out
    bad = run_snakemake(work, "-n", "--config", "hours_ut=[3, 2]", check=False, timeout=120)
    assert bad.returncode != 0 and "hours_ut" in bad.stdout
    assert not (work / "results").exists() and not (work / "resources").exists()


@pytest.mark.parametrize(
    ("edit", "key"),
    [
        (lambda c: c["scintillation"].update(columns={"phi60": 70}), "scintillation.columns.phi60"),
        # sigma_phi read from the satellite column: one of the two names the other
        (lambda c: c["scintillation"].update(columns={"phi60": 3}), "scintillation.columns.svid"),
        (
            lambda c: c["scintillation"].update(columns={"expected_count": 20}),
            "scintillation.columns.lock_time",
        ),
        (lambda c: c["clustering"].update(n_clusters=5000), "clustering.n_clusters"),
        (lambda c: c["clustering"].update(n_neighbors=2400), "clustering.n_neighbors"),
        (lambda c: c["embedding"].update(umap_neighbors=10**6), "embedding.umap_neighbors"),
        (lambda c: c["analysis"].update(knn_neighbors=10**6), "analysis.knn_neighbors"),
        (
            lambda c: c["datasets"]["tle_demo"]["overrides"]["clustering"].update(n_clusters=2000),
            "datasets.tle_demo.overrides.clustering.n_clusters",
        ),
        (
            lambda c: c["datasets"]["demo"]["dates"].update(end="2013-02-30"),
            "datasets.demo.dates.end",
        ),
        (
            lambda c: c["datasets"]["tle_demo"]["photometer"]["colours"].update(
                pairs=[["PHOT1", "PHOT1"]]
            ),
            "datasets.tle_demo.photometer.colours.pairs",
        ),
        (
            lambda c: c["datasets"]["tle_demo"]["photometer"]["colours"].update(
                pairs=[["PHOT1", "PHOT3"], ["PHOT1", "PHOT3"]]
            ),
            "datasets.tle_demo.photometer.colours.pairs",
        ),
        (
            lambda c: c["datasets"]["tle_demo"]["photometer"]["colours"].update(smooth=4),
            "datasets.tle_demo.photometer.colours.smooth",
        ),
        (
            lambda c: c["datasets"]["tle_demo"]["photometer"]["colours"].update(
                pairs=[["PHOT1", "PHOT7"]]
            ),
            "datasets.tle_demo.photometer.colours.pairs.0.1",
        ),
    ],
)
def test_checks_across_keys_run_before_any_job_naming_the_key(edit, key):
    error = refused(edit)
    assert str(error).startswith(f"config key {key}:"), error


def test_sample_bounds_follow_the_dataset():
    config = prepare(demo_config(), SCHEMA_PATH)
    assert sample_bound(config, "demo") == 5 * 8 * 60  # dates x hours x frames at 60 s
    assert sample_bound(config, "tle_demo") == 80 * 25  # windows of 1000 in 3 x 8320 samples
    config["projection"]["frame_interval_s"] = 120
    assert sample_bound(config, "demo") == 5 * 8 * 30


def labelled_config(tmp_path, rows: list[str]) -> dict:
    """The demo config with a real (not generated) dataset whose labels CSV holds ``rows``."""
    path = tmp_path / "labels.csv"
    path.write_text("time,site,label\n" + "".join(row + "\n" for row in rows))
    config = demo_config()
    entry = config["datasets"].pop("demo")
    entry.pop("demo_mirror")
    entry["labels"] = str(path)
    config["datasets"]["study"] = entry
    return config


GOOD_LABEL = "2024-01-08T05:00:03Z,fsim,arc"


@pytest.mark.parametrize(
    ("row", "phrase"),
    [
        ("2024-01-08T05:00:06Z,fsim,aurora", "unknown class 'aurora'"),
        ("2024-01-08 25:00:00,fsim,arc", "does not parse"),
        (",fsim,arc", "empty time"),
        ("2024-01-08T05:00:06Z,,arc", "empty site"),
        ("2024-01-08T05:00:06Z,fsim,", "empty label"),
        ("2024-01-08T05:00:06Z,gill,arc", "site 'gill' is not a site of the dataset"),
        ("2024-01-13T05:00:06Z,fsim,arc", "outside the dataset"),
        ("2024-01-08T12:30:00Z,fsim,arc", "outside the dataset"),
    ],
)
def test_the_labels_csv_is_checked_before_any_job_naming_file_and_line(tmp_path, row, phrase):
    config = labelled_config(tmp_path, [GOOD_LABEL, GOOD_LABEL.replace(":03Z", ":09Z"), row])
    with pytest.raises(ConfigError) as error:
        prepare(config, SCHEMA_PATH)
    message = str(error.value)
    assert message.startswith(
        f"config key datasets.study.labels: {tmp_path / 'labels.csv'} (line 4)"
    )
    assert phrase in message


def test_a_label_of_one_image_with_two_classes_is_refused_naming_both_lines(tmp_path):
    rows = [GOOD_LABEL, "2024-01-08T05:00:06Z,fsim,arc", "2024-01-08T05:00:03Z,FSIM,diffuse"]
    with pytest.raises(ConfigError) as error:
        prepare(labelled_config(tmp_path, rows), SCHEMA_PATH)
    assert "(line 4): fsim at 2024-01-08T05:00:03.000000 is labelled 'diffuse' here" in str(
        error.value
    )
    assert "'arc' on line 2" in str(error.value)
    # The same label twice names one image once: harmless.
    rows = [f"2024-01-08T05:{m:02d}:03Z,fsim,arc" for m in range(20)]
    prepare(labelled_config(tmp_path, [*rows, GOOD_LABEL]), SCHEMA_PATH)


def test_a_spreadsheet_s_labels_csv_reads_as_the_plain_one(tmp_path):
    """A byte-order mark, CRLF line ends, spaces and capitals around the names: the same labels,
    checked and read by one reader (what the check accepts is what the analysis uses)."""
    from latentsky.analysis.labels import read_labels

    plain = tmp_path / "plain.csv"
    plain.write_text(
        "time,site,label\n2024-01-08T05:00:03Z,fsim,arc\n2024-01-08T06:00:00,gill,moon\n"
    )
    exported = tmp_path / "exported.csv"
    exported.write_bytes(
        "\ufeffTime , Site,LABEL\r\n2024-01-08T05:00:03+00:00, FSIM ,Arc\r\n"
        "2024-01-08T07:00:00+01:00,gill , moon\r\n".encode()
    )
    expected = read_labels(plain)
    assert len(expected) == 2
    pd.testing.assert_frame_equal(read_labels(exported), expected)
    pd.testing.assert_frame_equal(read_labels(exported, site="FSIM"), expected.iloc[:1])
    config = labelled_config(tmp_path, [])
    config["datasets"]["study"]["labels"] = str(exported)
    config["datasets"]["study"]["site"] = "fsim"
    with pytest.raises(ConfigError, match=r"\(line 3\): site 'gill' is not a site"):
        prepare(config, SCHEMA_PATH)


def test_a_good_labels_csv_passes_and_bounds_the_labelled_samples(tmp_path):
    rows = [f"2024-01-08T05:{m:02d}:03Z,fsim,arc" for m in range(20)]
    prepare(labelled_config(tmp_path, rows), SCHEMA_PATH)
    # A label names the image nearest to it within 1.5 s: at 3 s cadence, at most two.
    config = labelled_config(tmp_path, rows[:3])
    config["clustering"]["n_clusters"] = 6
    with pytest.raises(ConfigError, match="clustering.n_clusters: 6 is not smaller.*6 labelled"):
        prepare(config, SCHEMA_PATH)


def test_a_labels_file_that_is_not_there_is_named():
    config = labelled_config_missing()
    with pytest.raises(ConfigError, match="datasets.study.labels: no such file: nowhere.csv"):
        prepare(config, SCHEMA_PATH)


def labelled_config_missing() -> dict:
    config = demo_config()
    entry = config["datasets"].pop("demo")
    entry.pop("demo_mirror")
    entry["labels"] = "nowhere.csv"
    config["datasets"]["study"] = entry
    return config
