# Targets, input functions and params of the rules. What varies by data kind comes from
# latentsky.kinds, what varies by archive from latentsky.acquisition.sources, and every config value
# a rule uses is one of its params (so Snakemake's rerun triggers see it).

from latentsky.config import (
    dataset_dates,
    dataset_figures,
    demo_mirror_settings,
    download_settings,
    model_name,
    settings,
)
from latentsky.kinds import data_kind

DATASETS = config["datasets"]


wildcard_constraints:
    dataset="[A-Za-z0-9_-]+",
    date=r"\d{4}-\d{2}-\d{2}",


def kind_of(dataset):
    return data_kind(DATASETS[dataset]["kind"])


def has(key):
    """Whether a dataset has an optional key (labels, gnss_station, a demo generator)."""
    return lambda dataset: key in DATASETS[dataset]


has_labels, has_scintillation = has("labels"), has("gnss_station")


def downloads_images(dataset):
    return kind_of(dataset).downloads


# --- targets -----------------------------------------------------------------------------------------


def final_outputs():
    """Everything `snakemake` builds by default: each dataset's summary and figures."""
    return [
        path
        for dataset in DATASETS
        for path in [
            f"results/{dataset}/summary.json",
            *expand(
                "results/{d}/figures/{f}.png",
                d=dataset,
                f=dataset_figures(config, dataset),
            ),
        ]
    ]


def download_outputs():
    """The manifests of every download (the `download` target)."""
    outputs = []
    for dataset in DATASETS:
        if downloads_images(dataset):
            outputs += [f"resources/{dataset}/manifests/skymaps.tsv"]
            outputs += dated("resources/{dataset}/manifests/images_{date}.tsv", dataset)
        if has_scintillation(dataset):
            outputs += dated("resources/{dataset}/manifests/ismr_{date}.tsv", dataset)
    return outputs


def dated(pattern, dataset):
    return expand(pattern, dataset=dataset, date=dataset_dates(config, dataset))


# --- inputs ------------------------------------------------------------------------------------------


def per_date(pattern, when=lambda dataset: True):
    """Input function: ``pattern`` for every date of the dataset (nothing unless ``when``)."""
    return lambda wildcards: (
        dated(pattern, wildcards.dataset) if when(wildcards.dataset) else []
    )


def only_if(when, path):
    """Input function: ``path`` for datasets where ``when`` holds, else nothing."""
    return lambda wildcards: path.format(**wildcards) if when(wildcards.dataset) else []


def sample_store(wildcards):
    """The store of samples the dataset's model trains on (its kind's)."""
    return f"results/{wildcards.dataset}/{kind_of(wildcards.dataset).samples}"


def kind_outputs(wildcards):
    """Outputs of the kind's own rules that the summary reads."""
    return [
        f"results/{wildcards.dataset}/{path}"
        for path in kind_of(wildcards.dataset).outputs
    ]


def labels_file(wildcards):
    labels = DATASETS[wildcards.dataset].get("labels")
    return [labels] if labels else []


# The generated mirror a demo dataset downloads from (nothing for real datasets).
demo_mirror = only_if(has("demo_mirror"), "resources/demo_mirror/{dataset}/mirror.json")


# --- params: the config values each rule depends on ---------------------------------------------------


def section(name):
    """Params function: the config section ``name`` as it applies to the dataset."""
    return lambda wildcards: settings(config, wildcards.dataset, name)


def setting(name, key):
    """Params function: one key of a config section as it applies to the dataset."""
    return lambda wildcards: settings(config, wildcards.dataset, name)[key]


def kind_param(attribute):
    return lambda wildcards: getattr(kind_of(wildcards.dataset), attribute)


def model_params(wildcards):
    """The dataset's model: its registered name and hyperparameters."""
    hyperparameters = settings(config, wildcards.dataset, "model")
    return {
        "name": model_name(config, wildcards.dataset),
        "hyperparameters": hyperparameters,
    }


def download_params(role):
    """Params function: what a download job of ``role`` needs, for the dataset."""
    return lambda wildcards: download_settings(config, wildcards.dataset, role)


def demo_mirror_params(wildcards):
    return demo_mirror_settings(config, wildcards.dataset)
