"""The workflow's configuration: validated once, before any job, and read per dataset.

The Snakefile calls :func:`prepare` on the loaded configuration. It validates the whole config
against ``config/schema.yaml`` (filling in defaults), puts every mapping in key order (Snakemake
compares params by their text, so a reordered config file would otherwise rerun everything),
validates each dataset's ``overrides`` merged onto the values they replace, and runs the checks
that involve more than one key. Every error is a :class:`ConfigError` that names the key.

Rules then read a dataset's settings with :func:`settings`, the top-level section with the
dataset's overrides on top, and its dates with :func:`dataset_dates`.

Values given on the command line (``snakemake --config key=value``) reach the config as text
(Snakemake parses nested values with YAML's base loader, which keeps every scalar a string):
:func:`prepare` first gives each such string the type the schema asks for (``'7'`` becomes 7 where an
integer is due), so overrides work on top of the default config or of a ``--configfile``.

Only the standard library, PyYAML and Snakemake's validator are used (Snakemake itself depends on
PyYAML): the Snakefile imports this module.
"""

from __future__ import annotations

import copy
import datetime as dt
import math
import re
from pathlib import Path

from latentsky.kinds import SCINTILLATION_ACKNOWLEDGEMENT, data_kind
from latentsky.labelcheck import LabelsError, check_labels_csv

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

    Command-line values are typed first (:func:`coerce`); then the schema, the overrides and every
    check that involves more than one key run, all before any job.

    Raises:
        ConfigError: naming the key of the first problem found.
    """
    schema_tree = _load_schema(schema)
    coerce(config, schema_tree, schema_tree)
    _validate(config, schema, "config", set_default=True)
    sort_keys(config)
    _check_ismr_columns(config)
    for dataset, entry in config["datasets"].items():
        kind = data_kind(entry["kind"])
        entry.setdefault("model", kind.default_model)
        for section, values in entry.get("overrides", {}).items():
            if values:
                _check_override(config, dataset, section, schema)
        _check_demo_paths(dataset, entry)
        _check_sites(config, dataset, entry)
        _check_colours(dataset, entry)
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
        n_labels = _check_labels_file(config, dataset, entry)
        _check_sample_counts(config, dataset, n_labels)
    return config


# --- command-line values: typed as the schema says ------------------------------------------------


def _load_schema(schema) -> dict:
    import yaml

    with open(schema) as handle:
        return yaml.safe_load(handle)


def _resolve(node: dict, root: dict) -> dict:
    while isinstance(node, dict) and "$ref" in node:
        name = node["$ref"].rsplit("/", 1)[-1]
        node = {**root["$defs"][name], **{k: v for k, v in node.items() if k != "$ref"}}
    return node


def _branch(node: dict, value: dict, root: dict) -> dict:
    """The branch of an ``if``/``then``/``else`` schema that ``value`` takes (kinds of dataset)."""
    test = node.get("if")
    if not test:
        return node
    holds = all(
        key in value and value[key] == rule.get("const")
        for key, rule in test.get("properties", {}).items()
    ) and all(key in value for key in test.get("required", []))
    chosen = node.get("then" if holds else "else", {})
    return {**node, **_resolve(chosen, root)}


def _scalar(text: str, node: dict):
    """``text`` as the type ``node`` asks for, or ``text`` unchanged when it is one of the
    allowed strings or does not parse as YAML."""
    import yaml

    types = node.get("type")
    types = [types] if isinstance(types, str) else list(types or [])
    enum = node.get("enum")
    if "string" in types or (enum is not None and text in enum):
        return text
    if not types and enum is None:
        return text
    if {"number", "integer"} & set(types):
        for parse in (int, float):  # YAML 1.1 reads 1e-3 as text
            try:
                return parse(text)
            except ValueError:
                pass
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        return text
    return text if isinstance(value, str) else value


def coerce(value, node: dict, root: dict):
    """Give the strings in ``value`` (a config or part of one) the types its schema ``node`` asks
    for, in place where ``value`` is a mapping or a list; return the (possibly new) value.

    ``snakemake --config clustering='{n_clusters: 7}'`` hands over ``{'n_clusters': '7'}``: the
    schema says integer, so 7 it becomes. A string that is allowed as it is, or that does not parse,
    stays a string, and validation then names it.
    """
    node = _resolve(node or {}, root)
    if isinstance(value, str):
        typed = _scalar(value, node)
        if isinstance(typed, str):
            return typed
        value = typed
        if not isinstance(value, dict | list):
            return value
    if isinstance(value, dict):
        node = _branch(node, value, root)
        properties = node.get("properties", {})
        extra = node.get("additionalProperties")
        for key in list(value):
            sub = properties.get(key, extra if isinstance(extra, dict) else None)
            if sub is not None:
                value[key] = coerce(value[key], sub, root)
    elif isinstance(value, list) and isinstance(node.get("items"), dict):
        value[:] = [coerce(item, node["items"], root) for item in value]
    return value


# --- checks across keys ---------------------------------------------------------------------------


def _check_ismr_columns(config: dict) -> None:
    """Every ISMR column read must lie within the row (``scintillation.columns.expected_count``),
    and no two quantities may be read from one column."""
    columns = config["scintillation"]["columns"]
    read_from: dict[int, str] = {}
    for name, number in sorted(columns.items()):
        if name != "expected_count" and read_from.setdefault(number, name) != name:
            raise ConfigError(
                f"scintillation.columns.{name}",
                f"column {number} is scintillation.columns.{read_from[number]}'s too",
            )
    count = columns.get("expected_count")
    if count is None:
        return
    for name, number in sorted(columns.items()):
        if name != "expected_count" and number > count:
            raise ConfigError(
                f"scintillation.columns.{name}",
                f"column {number} lies beyond the {count} columns of a row "
                "(scintillation.columns.expected_count)",
            )


#: Frame cadence of the THEMIS imagers (s): the most frames an hour of real data can hold is
#: 3600 / 3.
THEMIS_CADENCE_S = 3.0
#: Samples of one MMIA photometer frame (the demo generator's frames).
MMIA_FRAME_SAMPLES = 8320


def sample_bound(config: dict, dataset: str) -> int | None:
    """The most samples a dataset can give, where the config alone says it; None otherwise.

    Image datasets: dates x hours x sites x frames an hour (at the demo's cadence, or THEMIS's 3 s,
    thinned by ``projection.frame_interval_s``). Photometer demos: the generated observations'
    windows. A local folder of FITS files: unknown.
    """
    entry = config["datasets"][dataset]
    if data_kind(entry["kind"]).sited:
        cadence = entry.get("demo_mirror", {}).get("cadence_s", THEMIS_CADENCE_S)
        step = max(cadence, config["projection"].get("frame_interval_s", 0) or 0)
        hours = entry["hours_ut"][1] - entry["hours_ut"][0] + 1
        per_hour = math.ceil(3600 / step)
        return (
            len(dataset_dates(config, dataset))
            * hours
            * per_hour
            * len(dataset_sites(config, dataset))
        )
    demo = entry.get("demo_tle")
    if demo:
        window = entry.get("photometer", {}).get("window", {})
        if window.get("centre") == "trigger":
            return demo["n_observations"]
        samples = demo["frames_per_observation"] * MMIA_FRAME_SAMPLES
        return demo["n_observations"] * math.ceil(samples / window.get("stride", 5000))
    return None


def _check_sample_counts(config: dict, dataset: str, n_labels: int | None) -> None:
    """Cluster and neighbour counts must be smaller than the samples they work on, where the
    config (and the labels CSV) say how many there can be at most."""
    total = sample_bound(config, dataset)
    embedding = settings(config, dataset, "embedding")
    embedded = total
    if embedding["subset"] == "labelled" and n_labels is not None:
        # A label names one image, or a few where its tolerance spans several frames.
        tolerance = settings(config, dataset, "analysis")["label_tolerance_s"]
        cadence = (
            config["datasets"][dataset].get("demo_mirror", {}).get("cadence_s", THEMIS_CADENCE_S)
        )
        sited = data_kind(config["datasets"][dataset]["kind"]).sited
        per_label = 1 + int(2 * tolerance // cadence) if sited else 1
        labelled = n_labels * per_label
        embedded = labelled if embedded is None else min(embedded, labelled)
    if embedded is None:
        return
    where = "samples" if embedded == total else "labelled samples"
    clustering = settings(config, dataset, "clustering")
    analysis = settings(config, dataset, "analysis")
    for key, value in (
        ("clustering.n_clusters", clustering["n_clusters"]),
        ("clustering.n_neighbors", clustering["n_neighbors"]),
        ("embedding.umap_neighbors", embedding["umap_neighbors"]),
        ("analysis.knn_neighbors", analysis["knn_neighbors"]),
    ):
        if value >= embedded:
            raise ConfigError(
                _dataset_key(config, dataset, key),
                f"{value} is not smaller than the number of samples dataset {dataset} can give "
                f"({embedded} {where} at most)",
            )


def _dataset_key(config: dict, dataset: str, key: str) -> str:
    """``key``, or the dataset's override of it when it has one."""
    section, name = key.split(".", 1)
    if name in config["datasets"][dataset].get("overrides", {}).get(section, {}):
        return f"datasets.{dataset}.overrides.{key}"
    return key


def known_classes(config: dict, dataset: str) -> set[str]:
    """The label classes a dataset's labels CSV may use: the kind's own (OATH's six for images,
    the TLE and ordinary labels for photometers) and every class the analysis names."""
    analysis = settings(config, dataset, "analysis")
    named = set(analysis["exclude_labels"]) | set(analysis["bright_aurora_labels"])
    own = data_kind(config["datasets"][dataset]["kind"]).label_classes
    if own:
        return named | set(own)
    tle = analysis.get("tle", {})
    return named | set(tle.get("tle_labels", [])) | set(tle.get("ordinary_labels", []))


def _check_labels_file(config: dict, dataset: str, entry: dict) -> int | None:
    """Check the labels CSV now, before any job, when it exists already (a demo's is generated by
    its rule and checked when read). Returns its number of rows, or None."""
    path = entry.get("labels")
    if not path:
        return None
    generated = any(generator in entry for generator in DEMO_FOLDERS)
    if not Path(path).is_file():
        if generated:
            return None
        raise ConfigError(f"datasets.{dataset}.labels", f"no such file: {path}")
    span = None
    if data_kind(entry["kind"]).sited:
        days = dataset_dates(config, dataset)
        first, last = entry["hours_ut"]
        span = (
            dt.datetime.fromisoformat(days[0]),
            dt.datetime.fromisoformat(days[-1]) + dt.timedelta(days=1),
            (first, last),
        )
    try:
        return len(
            check_labels_csv(
                path, known_classes(config, dataset), site_names(config, dataset) or None, span
            )
        )
    except LabelsError as error:
        raise ConfigError(f"datasets.{dataset}.labels", str(error)) from None


def _check_colours(dataset: str, entry: dict) -> None:
    """Photometer colour settings, by the same check as the ingest's (each pair two different
    bands, listed once; an odd running mean), naming the key."""
    from latentsky.samples.colours import settings_problem

    colours = entry.get("photometer", {}).get("colours", {})
    problem = settings_problem(colours.get("pairs", []), colours.get("smooth", 5))
    if problem:
        raise ConfigError(f"datasets.{dataset}.photometer.colours.{problem[0]}", problem[1])


def _check_sites(config: dict, dataset: str, entry: dict) -> None:
    """An image dataset names its sites one way, each once; the site frame needs square cells."""
    if not data_kind(entry["kind"]).sited:  # only imager datasets name sites
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
    if grid["frame"] != "site" and config["projection"]["normalisation"]["scope"] == "site_ring":
        raise ConfigError(
            "projection.normalisation.scope",
            "site_ring takes rings around each site: it needs projection.grid.frame: site",
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
    """Validate against the schema; a ConfigError names the offending key: ``key`` is ``config``
    for the whole config, or the override (``datasets.<name>.overrides.<section>``) whose merged
    section is being checked."""
    from snakemake.exceptions import WorkflowError
    from snakemake.utils import validate

    try:
        validate(config, str(schema), set_default=set_default)
    except WorkflowError as error:
        raise ConfigError(*_schema_error(str(error), key)) from None


def _schema_error(text: str, key: str) -> tuple[str, str]:
    """(key, reason) of a validation message: the key from its ``On instance[...]`` path and the
    name it reports missing or unexpected; the reason from its ``ValidationError`` line."""
    found = re.search(r"On instance((?:\[[^\]]*\])*):", text)
    parts = (
        [a or b for a, b in re.findall(r"\['([^']*)'\]|\[(\d+)\]", found.group(1))] if found else []
    )
    named = re.search(r"\('([^']+)' was unexpected\)|'([^']+)' is a required property", text)
    if named:
        parts.append(named.group(1) or named.group(2))
    if key != "config":
        parts = [key, *parts[1:]]  # the override's own key, then the path within its section
    reason = re.search(r"ValidationError: (.*)", text)
    detail = reason.group(1).strip() if reason else text.strip().splitlines()[0]
    return ".".join(parts) or key, f"{detail} (schema: config/schema.yaml)"


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


def report_tables(config: dict, dataset: str) -> list[str]:
    """The report's tables of a dataset (``results/<dataset>/report/<name>.html``)."""
    tables = ["configuration", "summary"]
    if has_scintillation(config, dataset):
        tables.append("sigma_phi_fits")
    return tables


def dataset_targets(config: dict, dataset: str) -> list[str]:
    """What the default target builds for a dataset: its summary, its figures (PNG for the
    report, PDF for papers) and its report tables (paths under ``results/<dataset>/``)."""
    figures = [
        f"results/{dataset}/figures/{name}.{ext}"
        for name in dataset_figures(config, dataset)
        for ext in ("png", "pdf")
    ]
    tables = [f"results/{dataset}/report/{name}.html" for name in report_tables(config, dataset)]
    return [f"results/{dataset}/summary.json", *figures, *tables]


def dataset_acknowledgement(config: dict, dataset: str) -> list[str]:
    """The data providers a dataset's results acknowledge (keys of
    ``latentsky.conventions.ACKNOWLEDGEMENTS``): its kind's, and the GNSS network's where a
    site has a station."""
    keys = list(data_kind(config["datasets"][dataset]["kind"]).acknowledgement)
    return keys + ([SCINTILLATION_ACKNOWLEDGEMENT] if has_scintillation(config, dataset) else [])


def dataset_configuration(config: dict, dataset: str) -> dict:
    """Every setting a dataset's results depend on: its config entry and each config section
    as it applies to it (overrides merged; sections of other kinds left out)."""
    downloads = data_kind(config["datasets"][dataset]["kind"]).downloads
    names = ["projection"] if downloads else []  # download settings: how, not which
    names += ["scintillation"] if has_scintillation(config, dataset) else []
    names += ["model", "training", "embedding", "clustering", "analysis"]
    sections = {name: settings(config, dataset, name) for name in names}
    sections["model"] = {"name": model_name(config, dataset), **sections["model"]}
    sections["on_bad_input"] = {"on_bad_input": config["on_bad_input"]}
    return {"dataset": dict(config["datasets"][dataset]), "sections": sections}


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
