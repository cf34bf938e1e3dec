"""Data kinds: everything that depends on the kind of a dataset, declared once.

A dataset's ``kind`` says what its samples are: ``asi`` (all-sky images projected onto a grid) or
``photometer`` (windows of ASIM MMIA photometer bands). The workflow's rules and scripts ask this
registry for the sample store and variable, the default model, and the kind's own rules, figures
and outputs; nothing else compares kind names. Adding a kind is one entry here plus the rules that
make its sample store (see docs/adding-an-instrument.md).

Only the standard library is used: the Snakefile imports this module.
"""

from __future__ import annotations

from dataclasses import dataclass

from latentsky.labelcheck import OATH_CLASSES


@dataclass(frozen=True)
class DataKind:
    """What a kind of dataset needs.

    Attributes:
        name: the config value of ``datasets.<name>.kind``.
        description: one line for logs and the report.
        samples: the sample store under ``results/<dataset>/`` that models train on; the rule
            that writes it is the kind's ingest.
        variable: the store's data variable, shaped ``(sample_dim, *sample_shape)``.
        sample_dim: the store's sample dimension (``time``, ``window``).
        count_key: the key of ``summary.json`` that gives the number of samples.
        sample_layout: how figures draw one sample: ``"image"`` ``(band, y, x)`` or
            ``"waveform"`` ``(channel, sample)`` (bands, then any derived channels).
        default_model: the registered model (:mod:`latentsky.models`) a dataset of this kind
            uses unless its ``model`` key names another.
        downloads: whether its data come from the archives (download rules) or a local folder.
        loss_name: what the default model's loss is, for the training-curve axis.
        sample_noun: what one sample is called in captions, in the plural ("images").
        findings: what the kind's own analysis adds to ``summary.json``, in the captions'
            words (empty: nothing beyond the common analysis).
        acknowledgement: the data providers to acknowledge (keys of
            :data:`latentsky.conventions.ACKNOWLEDGEMENTS`).
        figures: figures of this kind beyond the common ones (names under ``figures/``).
        outputs: further outputs of this kind's own rules (paths under ``results/<dataset>/``);
            the summary reads them.
        sited: whether its samples are frames of imager sites over the dataset's dates and UT
            hours (the config then names the sites, bounds the number of samples and the span
            its labels may fall in).
        label_classes: the classes its labels CSV may use besides those the analysis names;
            empty where the analysis config lists them all.
    """

    name: str
    description: str
    samples: str
    variable: str
    sample_dim: str
    count_key: str
    sample_layout: str
    default_model: str
    downloads: bool
    loss_name: str = "loss"
    sample_noun: str = "samples"
    findings: str = ""
    acknowledgement: tuple[str, ...] = ()
    figures: tuple[str, ...] = ()
    outputs: tuple[str, ...] = ()
    sited: bool = False
    label_classes: tuple[str, ...] = ()


ASI = DataKind(
    name="asi",
    description="all-sky imager frames projected onto a grid",
    samples="images.zarr",
    variable="image",
    sample_dim="time",
    count_key="n_images",
    sample_layout="image",
    default_model="res_ae",
    downloads=True,
    loss_name="masked mean squared error of normalised counts",
    sample_noun="images",
    acknowledgement=("themis_asi",),
    sited=True,
    label_classes=OATH_CLASSES,
)

PHOTOMETER = DataKind(
    name="photometer",
    description="ASIM MMIA photometer windows, three bands stacked",
    samples="windows.zarr",
    variable="waveform",
    sample_dim="window",
    count_key="n_windows",
    sample_layout="waveform",
    default_model="beta_vae_1d",
    downloads=False,
    loss_name="negative ELBO (nats per window)",
    sample_noun="windows",
    findings="the transient-luminous-event analysis (clusters, anomaly scores, candidates)",
    acknowledgement=("asim",),
    figures=("mean_waveforms",),
    outputs=("tle/summary.json",),
)

#: The provider every dataset with a GNSS station acknowledges too, whatever its kind.
SCINTILLATION_ACKNOWLEDGEMENT = "chain"

#: Every data kind, by name.
KINDS: dict[str, DataKind] = {kind.name: kind for kind in (ASI, PHOTOMETER)}


def data_kind(name: str) -> DataKind:
    """The registered kind ``name``; ValueError naming the known kinds otherwise."""
    try:
        return KINDS[name]
    except KeyError:
        raise ValueError(f"unknown data kind {name!r}; known: {', '.join(sorted(KINDS))}") from None
