"""The config schema: described keys with defaults, and bad config stopped before any job."""

from __future__ import annotations

import yaml
from workflow_helpers import ROOT, copy_workflow, run_snakemake

SCHEMA = yaml.safe_load((ROOT / "config" / "schema.yaml").read_text())


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
            (".gnss_station", ".labels", ".demo_mirror", ".demo_tle")
        )
        if not required and not optional_without_default:
            assert "default" in resolved, f"{path} has no default"


def test_every_key_is_explained_in_config_readme():
    readme = (ROOT / "config" / "README.md").read_text()
    for path, _, _ in walk(SCHEMA):
        name = path.rsplit(".", 1)[-1]
        assert f"`{name}`" in readme or f".{name}`" in readme or f"`{name}." in readme, name


def bad_run(tmp_path, edit):
    work = copy_workflow(tmp_path / "repo")
    config = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    edit(config)
    (work / "config" / "bad.yaml").write_text(yaml.safe_dump(config))
    result = run_snakemake(
        work, "--cores", "1", "--configfile", "config/bad.yaml", check=False, timeout=120
    )
    assert result.returncode != 0
    assert not (work / "results").exists() and not (work / "resources").exists()
    return result.stdout


def test_misspelt_key_stops_the_run_naming_it(tmp_path):
    out = bad_run(tmp_path, lambda c: c["clustering"].update(n_clusterz=4))
    assert "n_clusterz" in out


def test_out_of_range_value_stops_the_run_naming_the_key(tmp_path):
    out = bad_run(tmp_path, lambda c: c["clustering"].update(n_clusters=1))
    assert "n_clusters" in out and "minimum" in out


def test_wrong_enum_value_names_the_key(tmp_path):
    out = bad_run(tmp_path, lambda c: c["datasets"]["demo"].update(image_source="ftp"))
    assert "image_source" in out and "ftp" in out


def test_misspelt_override_names_the_dataset_and_the_key(tmp_path):
    out = bad_run(
        tmp_path, lambda c: c["datasets"]["tle_demo"]["overrides"]["training"].update(epochz=3)
    )
    assert "datasets.tle_demo.overrides.training" in out and "epochz" in out


def test_out_of_range_override_is_refused_as_at_top_level(tmp_path):
    out = bad_run(
        tmp_path,
        lambda c: c["datasets"]["tle_demo"]["overrides"]["clustering"].update(n_clusters=1),
    )
    assert "datasets.tle_demo.overrides.clustering" in out and "minimum" in out


def test_photometer_dataset_without_its_folder_names_the_key(tmp_path):
    out = bad_run(tmp_path, lambda c: c["datasets"]["tle_demo"].pop("fits_dir"))
    assert "fits_dir" in out


def test_image_keys_are_refused_on_a_photometer_dataset(tmp_path):
    out = bad_run(tmp_path, lambda c: c["datasets"]["tle_demo"].update(image_source="berkeley_l1"))
    assert "image_source" in out
