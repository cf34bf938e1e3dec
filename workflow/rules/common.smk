# Targets, input functions and params of the rules. What varies by data kind comes from
# latentsky.kinds, what varies by archive from latentsky.acquisition.sources, and every config value
# a rule uses is one of its params (so Snakemake's rerun triggers see it).

from latentsky.config import (
    dataset_dates,
    dataset_figures,
    dataset_sites,
    demo_mirror_settings,
    download_settings,
    has_scintillation,
    model_settings,
    settings,
    site_names,
    station_sites,
)
from latentsky.kinds import data_kind

DATASETS = config["datasets"]


wildcard_constraints:
    dataset="[A-Za-z0-9_-]+",
    site="[a-z]{4}",
    date=r"\d{4}-\d{2}-\d{2}",


def kind_of(dataset):
    return data_kind(DATASETS[dataset]["kind"])


def expand_sites(pattern, dataset, sites, **wildcards):
    """``pattern`` for every site in ``sites`` (and every date, if it names one)."""
    dates = dataset_dates(config, dataset) if "{date}" in pattern else []
    keys = {"date": dates} if dates else {}
    return expand(pattern, dataset=dataset, site=sites, **keys, **wildcards)


# --- targets -----------------------------------------------------------------------------------------


def final_outputs():
    """Everything `snakemake` builds by default: each dataset's summary and figures."""
    outputs = []
    for d in DATASETS:
        figures = [f"results/{d}/figures/{f}.png" for f in dataset_figures(config, d)]
        outputs += [f"results/{d}/summary.json", *figures]
    return outputs


def download_outputs():
    """The manifests of every download (the `download` target)."""
    outputs = []
    for dataset in DATASETS:
        if kind_of(dataset).downloads:
            sites, stations = site_names(config, dataset), station_sites(
                config, dataset
            )
            for pattern, chosen in [
                ("resources/{dataset}/manifests/{site}/skymaps.tsv", sites),
                ("resources/{dataset}/manifests/{site}/images_{date}.tsv", sites),
                ("resources/{dataset}/manifests/{site}/ismr_{date}.tsv", stations),
            ]:
                outputs += expand_sites(pattern, dataset, chosen)
    return outputs


# --- inputs ------------------------------------------------------------------------------------------


def per_site(pattern, stations_only=False):
    """Input function: ``pattern`` for every site (and date, if it names one) of an image
    dataset (with a GNSS station only, if asked); nothing for other kinds."""

    def files(wildcards):
        if not kind_of(wildcards.dataset).downloads:
            return []
        chosen = station_sites if stations_only else site_names
        return expand_sites(
            pattern, wildcards.dataset, chosen(config, wildcards.dataset)
        )

    return files


def only_if(when, path):
    """Input function: ``path`` for datasets where ``when(config, dataset)`` holds, else nothing."""
    return lambda w: path.format(**w) if when(config, w.dataset) else []


def sample_store(wildcards):
    """The store of samples the dataset's model trains on (its kind's)."""
    return f"results/{wildcards.dataset}/{kind_of(wildcards.dataset).samples}"


def kind_outputs(wildcards):
    """Outputs of the kind's own rules that the summary reads."""
    return [
        f"results/{wildcards.dataset}/{p}" for p in kind_of(wildcards.dataset).outputs
    ]


def labels_file(wildcards):
    labels = DATASETS[wildcards.dataset].get("labels")
    return [labels] if labels else []


# The generated mirror a demo dataset downloads from (nothing for real datasets).
demo_mirror = only_if(
    lambda config, dataset: "demo_mirror" in config["datasets"][dataset],
    "resources/demo_mirror/{dataset}/mirror.json",
)


# --- params: the config values each rule depends on ---------------------------------------------------


def section(name):
    """Params function: the config section ``name`` as it applies to the dataset."""
    return lambda wildcards: settings(config, wildcards.dataset, name)


def setting(name, key):
    """Params function: one key of a config section as it applies to the dataset."""
    return lambda wildcards: settings(config, wildcards.dataset, name)[key]


def kind_param(attribute):
    return lambda wildcards: getattr(kind_of(wildcards.dataset), attribute)


def of_dataset(function):
    """Params function: ``function(config, dataset)``, e.g. the dataset's sites."""
    return lambda wildcards: function(config, wildcards.dataset)


def ismr_manifests_by_site(wildcards):
    pattern = "resources/{dataset}/manifests/{site}/ismr_{date}.tsv"
    return {
        s: expand_sites(pattern, wildcards.dataset, [s])
        for s in station_sites(config, wildcards.dataset)
    }


def download_params(role):
    """Params function: what a download job of ``role`` needs, for the dataset and site."""
    return lambda w: download_settings(config, w.dataset, role, w.site)
