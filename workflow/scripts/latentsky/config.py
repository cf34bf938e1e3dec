"""The workflow's configuration: validated once, before any job, and read per dataset.

The Snakefile calls :func:`prepare` on the loaded configuration. It validates the whole config
against ``config/schema.yaml`` (filling in defaults), puts every mapping in key order (Snakemake
compares params by their text, so a reordered config file would otherwise rerun everything),
validates each dataset's ``overrides`` merged onto the values they replace, and runs the checks
that involve more than one key. Every error is a :class:`ConfigError` that names the key.

Rules then read a dataset's settings with :func:`settings`, the top-level section with the
dataset's overrides on top, and its dates with :func:`dataset_dates`.

Only the standard library and Snakemake's validator are used: the Snakefile imports this module.
"""

from __future__ import annotations

import copy
import datetime as dt
from pathlib import Path

from latentsky.kinds import data_kind

#: Where each demo generator writes a dataset's files: its labels (and photometer FITS files).
DEMO_FOLDERS = {"demo_mirror": "resources/demo_mirror/{}", "demo_tle": "resources/demo_tle/{}"}


class ConfigError(ValueError):
    """A configuration value that cannot be used; the message starts with the config key."""

    def __init__(self, key: str, reason: str):
        self.key = key
        super().__init__(f"config key {key}: {reason}")


def sort_keys(mapping: dict) -> dict:
    """Reorder ``mapping`` and every nested mapping by key, in place; return it."""
    for key in sorted(mapping):
        value = mapping.pop(key)
        if isinstance(value, dict):
            sort_keys(value)
        mapping[key] = value
    return mapping


def merged(base: dict, override: dict) -> dict:
    """``base`` with the keys of ``override`` replaced, nested mappings merged key by key (so a
    partial ``analysis.tle`` override keeps the other ``tle`` keys)."""
    result = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            value = merged(base[key], value)
        result[key] = value
    return result


def model_name(config: dict, dataset: str) -> str:
    """The registered model a dataset trains: its ``model`` key, else its kind's default."""
    entry = config["datasets"][dataset]
    return entry.get("model") or data_kind(entry["kind"]).default_model


def model_settings(config: dict, dataset: str) -> dict:
    """The dataset's model: its registered name and hyperparameters."""
    return {
        "name": model_name(config, dataset),
        "hyperparameters": settings(config, dataset, "model"),
    }


def settings(config: dict, dataset: str, section: str) -> dict:
    """A config section as it applies to one dataset: the top-level values with the dataset's
    ``overrides.<section>`` on top. For ``model``: the hyperparameters of the dataset's model."""
    if section == "model":
        base = config["model"].get(model_name(config, dataset), {})
    else:
        base = config[section]
    return merged(base, config["datasets"][dataset].get("overrides", {}).get(section, {}))


def dataset_sites(config: dict, dataset: str) -> list[dict]:
    """The imager sites of a dataset, each ``{"site": ..., "gnss_station": ...}`` (the station
    only where there is one), from either ``site``/``gnss_station`` or ``sites``."""
    entry = config["datasets"][dataset]
    if "sites" in entry:
        return [dict(item) for item in entry["sites"]]
    if "site" not in entry:
        return []
    one = {"site": entry["site"]}
    if "gnss_station" in entry:
        one["gnss_station"] = entry["gnss_station"]
    return [one]


def site_names(config: dict, dataset: str) -> list[str]:
    return [item["site"] for item in dataset_sites(config, dataset)]


def station_sites(config: dict, dataset: str) -> list[str]:
    """The sites of a dataset that have a GNSS station."""
    return [item["site"] for item in dataset_sites(config, dataset) if "gnss_station" in item]


def has_scintillation(config: dict, dataset: str) -> bool:
    """Whether any site of the dataset has a GNSS station."""
    return bool(station_sites(config, dataset))


def dataset_dates(config: dict, dataset: str) -> list[str]:
    """UT dates (YYYY-MM-DD) of a dataset, both ends included."""
    dates = config["datasets"][dataset]["dates"]
    bounds = []
    for end in ("start", "end"):
        try:
            bounds.append(dt.date.fromisoformat(dates[end]))
        except ValueError:
            raise ConfigError(
                f"datasets.{dataset}.dates.{end}", f"{dates[end]!r} is not a calendar date"
            ) from None
    start, end = bounds
    if end < start:
        raise ConfigError(f"datasets.{dataset}.dates", f"end {end} is before start {start}")
    return [str(start + dt.timedelta(days=n)) for n in range((end - start).days + 1)]


def prepare(config: dict, schema: str | Path) -> dict:
    """Validate ``config`` in place (defaults filled in, keys sorted) and return it.

    Raises:
        ConfigError: naming the key of the first problem found.
    """
    _validate(config, schema, "config", set_default=True)
    sort_keys(config)
    for dataset, entry in config["datasets"].items():
        kind = data_kind(entry["kind"])
        entry.setdefault("model", kind.default_model)
        for section, values in entry.get("overrides", {}).items():
            if values:
                _check_override(config, dataset, section, schema)
        _check_demo_paths(dataset, entry)
        _check_sites(config, dataset, entry)
        if "dates" in entry:
            dataset_dates(config, dataset)
        hours = entry.get("hours_ut")
        if hours and hours[0] > hours[1]:
            raise ConfigError(
                f"datasets.{dataset}.hours_ut", f"first hour {hours[0]} is after last {hours[1]}"
            )
        subset = settings(config, dataset, "embedding")["subset"]
        if subset == "labelled" and "labels" not in entry:
            raise ConfigError(
                f"datasets.{dataset}.labels",
                "embedding.subset is 'labelled' but the dataset has no labels; "
                "give a labels CSV or set embedding.subset to 'all'",
            )
    return config


def _check_sites(config: dict, dataset: str, entry: dict) -> None:
    """An image dataset names its sites one way, each once; the site frame needs square cells."""
    if entry["kind"] != "asi":
        return
    key = f"datasets.{dataset}"
    if ("site" in entry) == ("sites" in entry):
        raise ConfigError(key, "give either `site` (with `gnss_station`) or `sites`, not both")
    if "sites" in entry and "gnss_station" in entry:
        raise ConfigError(f"{key}.gnss_station", "with `sites`, each site names its own station")
    names = site_names(config, dataset)
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise ConfigError(f"{key}.sites", f"site(s) {repeated} listed twice")
    grid = config["projection"]["grid"]
    if grid["frame"] == "site" and grid["n_lat"] != grid["n_lon"]:
        raise ConfigError(
            "projection.grid", "the site frame has square cells: n_lat must equal n_lon"
        )


def _check_demo_paths(dataset: str, entry: dict) -> None:
    """A demo dataset reads what its generator writes: the paths must be the generated ones."""
    for generator, folder in DEMO_FOLDERS.items():
        if generator not in entry:
            continue
        folder = folder.format(dataset)
        for key, path in (("labels", f"{folder}/labels.csv"), ("fits_dir", f"{folder}/mmia")):
            if key in entry and entry[key] != path:
                raise ConfigError(
                    f"datasets.{dataset}.{key}",
                    f"the demo generator writes it at {path}, got {entry[key]}",
                )


def _check_override(config: dict, dataset: str, section: str, schema) -> None:
    """Hold ``datasets.<dataset>.overrides.<section>`` to the schema of the value it replaces."""
    effective = settings(config, dataset, section)
    if section == "model":
        effective = {**config["model"], model_name(config, dataset): effective}
    candidate = copy.deepcopy({**config, section: effective})
    _validate(candidate, schema, f"datasets.{dataset}.overrides.{section}", set_default=False)


def _validate(config: dict, schema, key: str, set_default: bool) -> None:
    from snakemake.exceptions import WorkflowError
    from snakemake.utils import validate

    try:
        validate(config, str(schema), set_default=set_default)
    except WorkflowError as error:
        raise ConfigError(key, str(error)) from None


def dataset_figures(config: dict, dataset: str) -> list[str]:
    """The figures of a dataset (names under ``results/<dataset>/figures/``)."""
    entry = config["datasets"][dataset]
    figures = ["reconstructions", "clusters", "training_curves"]
    figures += data_kind(entry["kind"]).figures
    if "labels" in entry:
        figures += ["embeddings_by_label", "cluster_label_table"]
    if has_scintillation(config, dataset):
        figures.append("sigma_phi_distributions")
    if len(dataset_sites(config, dataset)) > 1:
        figures.append("embeddings_by_site")
    return figures


def download_settings(config: dict, dataset: str, role: str, site: str) -> dict:
    """What a download job of ``role`` (``images``, ``skymaps``, ``scintillation``) needs for
    one site of a dataset."""
    from latentsky.acquisition.sources import dataset_source

    entry = config["datasets"][dataset]
    (this,) = [item for item in dataset_sites(config, dataset) if item["site"] == site]
    values = dataset_source(entry, role)
    if role == "skymaps":
        return {**values, "site": site, "dates": dataset_dates(config, dataset)}
    values["hours_ut"] = entry["hours_ut"]
    if role == "images":
        return {**values, "site": site}
    columns = config["scintillation"]["columns"]["expected_count"]
    return {**values, "station": this["gnss_station"], "expected_columns": columns}


def demo_mirror_settings(config: dict, dataset: str) -> dict:
    """The demo generator's settings, with the dataset's site(s), station(s), dates and hours."""
    entry = config["datasets"][dataset]
    sites = [
        {"site": item["site"], "station": item.get("gnss_station", "xxx")}
        for item in dataset_sites(config, dataset)
    ]
    values = {
        **entry["demo_mirror"],
        "dates": dataset_dates(config, dataset),
        "hours_ut": entry["hours_ut"],
    }
    if "sites" in entry:
        return {**values, "sites": sites}
    return {**values, **sites[0]}
