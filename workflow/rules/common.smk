# Helper functions for the rules: which files exist per dataset, and which config values each rule
# uses (passed as params so that Snakemake's rerun triggers see every value a rule depends on).

import datetime as dt

from snakemake.exceptions import WorkflowError
from snakemake.utils import validate


def sort_keys_in_place(mapping):
    """Reorder every nested dict by key. Snakemake compares params by their repr, so without this
    a config file that merely lists keys in another order would rerun every job."""
    for key in sorted(mapping):
        value = mapping.pop(key)
        if isinstance(value, dict):
            sort_keys_in_place(value)
        mapping[key] = value


sort_keys_in_place(config)
DATASETS = config["datasets"]

# The sample store each kind of dataset trains on, and its data variable. The generic stages
# (training, encoding, embedding, clustering, figures, summary) only need these two names.
SAMPLE_STORES = {
    "asi": {"store": "images.zarr", "variable": "image", "name": "images"},
    "photometer": {"store": "windows.zarr", "variable": "waveform", "name": "windows"},
}


wildcard_constraints:
    dataset="[A-Za-z0-9_-]+",
    date=r"\d{4}-\d{2}-\d{2}",


def dataset_dates(dataset):
    """UT dates (YYYY-MM-DD) of a dataset, inclusive of both ends."""
    dates = DATASETS[dataset]["dates"]
    start = dt.date.fromisoformat(dates["start"])
    end = dt.date.fromisoformat(dates["end"])
    if end < start:
        raise ValueError(
            f"config key datasets.{dataset}.dates: end {end} is before start {start}"
        )
    return [str(start + dt.timedelta(days=n)) for n in range((end - start).days + 1)]


def kind_of(dataset):
    return DATASETS[dataset]["kind"]


def merged(base, override):
    """`base` with the keys of `override` replaced, nested dicts merged key by key (so a partial
    `analysis.tle` override keeps the other `tle` keys). Keys keep `base`'s order."""
    result = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            value = merged(base[key], value)
        result[key] = value
    return result


def settings(dataset, section):
    """A config section as it applies to one dataset: the top-level values, with the dataset's
    `overrides.<section>` on top. `model` is the section of the dataset's kind."""
    base = config["model"][kind_of(dataset)] if section == "model" else config[section]
    return merged(base, DATASETS[dataset]["overrides"].get(section, {}))


def check_overrides():
    """Validate every dataset's merged settings against the top-level schema, so that an override
    is held to the same types, ranges and key names as the value it replaces."""
    for dataset in DATASETS:
        for section, values in DATASETS[dataset]["overrides"].items():
            if not values:
                continue
            effective = settings(dataset, section)
            if section == "model":
                effective = {**config["model"], kind_of(dataset): effective}
            try:
                validate(
                    {**config, section: effective},
                    "../../config/schema.yaml",
                    set_default=False,
                )
            except WorkflowError as error:
                raise WorkflowError(
                    f"config key datasets.{dataset}.overrides.{section}: {error}"
                ) from None


check_overrides()


def has_scintillation(dataset):
    return "gnss_station" in DATASETS[dataset]


def has_labels(dataset):
    return "labels" in DATASETS[dataset]


def download_outputs():
    """Manifests of every download of every dataset (the `download` target)."""
    outputs = []
    for dataset in DATASETS:
        # Photometer data are local files: nothing to download.
        if kind_of(dataset) != "asi":
            continue
        outputs.append(f"resources/{dataset}/manifests/skymaps.tsv")
        outputs += expand(
            "resources/{dataset}/manifests/images_{date}.tsv",
            dataset=dataset,
            date=dataset_dates(dataset),
        )
        if has_scintillation(dataset):
            outputs += expand(
                "resources/{dataset}/manifests/ismr_{date}.tsv",
                dataset=dataset,
                date=dataset_dates(dataset),
            )
    return outputs


def final_outputs():
    """Everything `snakemake` builds by default, for every dataset."""
    outputs = []
    for dataset in DATASETS:
        outputs.append(f"results/{dataset}/summary.json")
        outputs += [
            f"results/{dataset}/figures/{name}.png" for name in dataset_figures(dataset)
        ]
    return outputs


def dataset_figures(dataset):
    figures = ["reconstructions", "clusters", "training_curves"]
    if has_labels(dataset):
        figures += ["embeddings_by_label", "cluster_label_table"]
    if has_scintillation(dataset):
        figures.append("sigma_phi_distributions")
    if kind_of(dataset) == "photometer":
        figures.append("mean_waveforms")
    return figures


# --- inputs that depend on the dataset -------------------------------------------------------------


def demo_mirror(wildcards):
    """The generated mirror a demo dataset downloads from (nothing for real datasets)."""
    if "demo_mirror" not in DATASETS[wildcards.dataset]:
        return []
    return f"resources/demo_mirror/{wildcards.dataset}/mirror.json"


def projected_dates(wildcards):
    return expand(
        "results/{dataset}/projected/{date}.zarr",
        dataset=wildcards.dataset,
        date=dataset_dates(wildcards.dataset),
    )


def ismr_manifests(wildcards):
    return expand(
        "resources/{dataset}/manifests/ismr_{date}.tsv",
        dataset=wildcards.dataset,
        date=dataset_dates(wildcards.dataset),
    )


def image_manifests(wildcards):
    if kind_of(wildcards.dataset) != "asi":
        return []
    return expand(
        "resources/{dataset}/manifests/images_{date}.tsv",
        dataset=wildcards.dataset,
        date=dataset_dates(wildcards.dataset),
    )


def generated_demo_folder(dataset):
    """Where a demo dataset's generator writes its data and labels (None for real datasets)."""
    if "demo_mirror" in DATASETS[dataset]:
        return f"resources/demo_mirror/{dataset}"
    if "demo_tle" in DATASETS[dataset]:
        return f"resources/demo_tle/{dataset}"
    return None


def labels_file(wildcards):
    """The labels CSV of a dataset; for a demo it is generated with the data."""
    dataset = DATASETS[wildcards.dataset]
    if "labels" not in dataset:
        return []
    folder = generated_demo_folder(wildcards.dataset)
    if folder is not None:
        generated = f"{folder}/labels.csv"
        if dataset["labels"] != generated:
            raise ValueError(
                f"config key datasets.{wildcards.dataset}.labels: a demo dataset's labels are "
                f"generated at {generated}, got {dataset['labels']}"
            )
        return [generated]
    return [dataset["labels"]]


def fits_dir(wildcards):
    """The photometer dataset's FITS folder; for the demo, the generated one."""
    folder = DATASETS[wildcards.dataset]["fits_dir"]
    generated = generated_demo_folder(wildcards.dataset)
    if generated is not None and folder != f"{generated}/mmia":
        raise ValueError(
            f"config key datasets.{wildcards.dataset}.fits_dir: the demo's FITS files are "
            f"generated in {generated}/mmia, got {folder}"
        )
    return folder


def sample_store(wildcards):
    """The Zarr store of samples the model trains on: images or photometer windows."""
    return f"results/{wildcards.dataset}/{sample_params(wildcards)['store']}"


def tle_summary(wildcards):
    if kind_of(wildcards.dataset) != "photometer":
        return []
    return f"results/{wildcards.dataset}/tle/summary.json"


def sigma_phi_store(wildcards):
    if not has_scintillation(wildcards.dataset):
        return []
    return f"results/{wildcards.dataset}/sigma_phi.zarr"


# --- params: the config values each rule depends on ---------------------------------------------------


def demo_mirror_params(wildcards):
    dataset = DATASETS[wildcards.dataset]
    return {
        "site": dataset["site"],
        "station": dataset.get("gnss_station", "xxx"),
        "dates": dataset_dates(wildcards.dataset),
        "hours_ut": dataset["hours_ut"],
        **dataset["demo_mirror"],
    }


def image_download_params(wildcards):
    dataset = DATASETS[wildcards.dataset]
    source = dataset["image_source"]
    return {
        "site": dataset["site"],
        "source": source,
        "base_url": dataset["base_urls"][source],
        "hours_ut": dataset["hours_ut"],
    }


def skymap_download_params(wildcards):
    dataset = DATASETS[wildcards.dataset]
    source = dataset["skymap_source"]
    base_key = "berkeley_cal" if source == "berkeley_cal" else "ucalgary_skymaps"
    return {
        "site": dataset["site"],
        "source": source,
        "base_url": dataset["base_urls"][base_key],
        "dates": dataset_dates(wildcards.dataset),
    }


def ismr_download_params(wildcards):
    dataset = DATASETS[wildcards.dataset]
    return {
        "station": dataset["gnss_station"],
        "base_url": dataset["base_urls"]["chain_ismr"],
        "hours_ut": dataset["hours_ut"],
        "expected_columns": config["scintillation"]["columns"]["expected_count"],
    }


def dataset_site(wildcards):
    return DATASETS[wildcards.dataset]["site"]


def dataset_image_source(wildcards):
    return DATASETS[wildcards.dataset]["image_source"]


def dataset_skymap_source(wildcards):
    return DATASETS[wildcards.dataset]["skymap_source"]


def dataset_kind(wildcards):
    return kind_of(wildcards.dataset)


def sample_params(wildcards):
    return SAMPLE_STORES[dataset_kind(wildcards)]


def sample_variable(wildcards):
    return sample_params(wildcards)["variable"]


def model_params(wildcards):
    return settings(wildcards.dataset, "model")


def training_params(wildcards):
    return settings(wildcards.dataset, "training")


def embedding_params(wildcards):
    return settings(wildcards.dataset, "embedding")


def clustering_params(wildcards):
    return settings(wildcards.dataset, "clustering")


def analysis_params(wildcards):
    return settings(wildcards.dataset, "analysis")


def tle_demo_params(wildcards):
    return DATASETS[wildcards.dataset]["demo_tle"]


def photometer_params(wildcards):
    return DATASETS[wildcards.dataset]["photometer"]


def sigma_phi_fits(wildcards):
    if not has_scintillation(wildcards.dataset):
        return []
    return f"results/{wildcards.dataset}/sigma_phi_fits.csv"


def ismr_manifests_if_any(wildcards):
    return ismr_manifests(wildcards) if has_scintillation(wildcards.dataset) else []
