"""Tables for the Snakemake report: the configuration, the headline numbers and the sigma_phi fits
of a dataset, as small self-contained HTML pages (the report embeds each one).

Each page has a heading naming the dataset and tables with a ``data-table`` attribute (``config``,
``summary``, ``fits``) so that tests, and readers' scripts, can find them; numbers are rounded for
reading (4 significant digits), while the CSV and JSON files keep full precision.
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Mapping

import pandas as pd

from latentsky.conventions import ACKNOWLEDGEMENTS

_STYLE = """
body { font-family: sans-serif; font-size: 14px; margin: 1em; color: #222; }
h1 { font-size: 1.3em; } h2 { font-size: 1.1em; margin-top: 1.4em; }
table { border-collapse: collapse; margin: 0.5em 0; }
th, td { border: 1px solid #ccc; padding: 3px 8px; text-align: left; vertical-align: top; }
th { background: #f2f2f2; }
td.number { text-align: right; font-variant-numeric: tabular-nums; }
p.note { color: #555; max-width: 60em; }
"""


def _number(value) -> str:
    if isinstance(value, bool) or value is None:
        return "" if value is None else str(value).lower()
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return ""
        return f"{value:.4g}"
    return str(value)


def _cell(value) -> str:
    is_number = isinstance(value, int | float) and not isinstance(value, bool)
    text = html.escape(_number(value))
    return f'<td class="number">{text}</td>' if is_number else f"<td>{text}</td>"


def page(title: str, body: str) -> str:
    """A complete HTML page."""
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head>\n"
        f"<body>\n<h1>{html.escape(title)}</h1>\n{body}\n</body></html>\n"
    )


def frame_table(frame: pd.DataFrame, name: str) -> str:
    """``frame`` as an HTML table (columns as headers, index dropped) tagged ``data-table=name``."""
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in frame.columns)
    rows = []
    for record in frame.itertuples(index=False):
        values = [v.item() if hasattr(v, "item") else v for v in record]
        rows.append("<tr>" + "".join(_cell(v) for v in values) + "</tr>")
    return (
        f'<table data-table="{html.escape(name)}"><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table>"
    )


def flatten(mapping: Mapping, prefix: str = "") -> list[tuple[str, object]]:
    """``(dotted.key, value)`` for every leaf of nested mappings (lists of scalars kept whole,
    as JSON text)."""
    items = []
    for key, value in mapping.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            items += flatten(value, name + ".")
        elif isinstance(value, list | tuple | Mapping):
            items.append((name, json.dumps(value)))
        else:
            items.append((name, value))
    return items


def key_value_table(mapping: Mapping, name: str, key_header: str = "setting") -> str:
    frame = pd.DataFrame(flatten(mapping), columns=[key_header, "value"])
    return frame_table(frame, name)


def configuration_page(
    dataset: str, kind: str, entry: Mapping, sections: Mapping, acknowledgement=()
) -> str:
    """The settings that produced a dataset's results, and the data acknowledgements.

    ``entry`` is the dataset's own config entry (sites, dates, sources, labels, overrides);
    ``sections`` the config sections as they apply to the dataset (overrides merged), e.g.
    ``{"projection": {...}, "model": {...}, ...}``; ``acknowledgement`` names the data providers
    (keys of :data:`latentsky.conventions.ACKNOWLEDGEMENTS`).
    """
    body = [
        f'<p class="note">Dataset <b>{html.escape(dataset)}</b>, kind '
        f"<b>{html.escape(kind)}</b>. These are the values the workflow ran with: the "
        "configuration file, its defaults from config/schema.yaml and any --config values, with "
        "the dataset's overrides applied.</p>",
        "<h2>Dataset</h2>",
        key_value_table(dict(entry), "config-dataset"),
    ]
    for name, values in sections.items():
        body += [f"<h2>{html.escape(name)}</h2>", key_value_table(dict(values), f"config-{name}")]
    if acknowledgement:
        body += ["<h2>Data acknowledgement</h2>", acknowledgement_html(acknowledgement)]
    return page(f"Configuration of {dataset}", "\n".join(body))


#: Headline entries of summary.json, in the order shown, with what they mean.
SUMMARY_ROWS = {
    "n_images": "images in the dataset",
    "n_windows": "photometer windows in the dataset",
    "n_embedded": "samples embedded (UMAP, t-SNE)",
    "n_labelled_embedded": "labelled samples embedded",
    "n_clusters": "spectral clusters",
    "knn_accuracy": "k-nearest-neighbour accuracy of the latents against the labels",
    "adjusted_rand_index": "adjusted Rand index of the clusters against the labels",
    "site_knn_accuracy": "accuracy of the site predicted from the latents (several sites)",
    "site_knn_chance": "chance level of that site accuracy",
    "cross_site_knn_accuracy": "labels predicted at one site from another site's labels",
}


def summary_page(dataset: str, summary: Mapping) -> str:
    """The headline numbers of ``summary.json`` as tables."""
    rows = [
        (key, summary[key], meaning)
        for key, meaning in SUMMARY_ROWS.items()
        if key in summary and not isinstance(summary[key], Mapping | list)
    ]
    training = summary.get("training", {})
    rows += [(f"training.{k}", v, "") for k, v in training.items()]
    top = summary.get("highest_sigma_phi_cluster")
    if top:
        rows += [
            ("highest_sigma_phi_cluster", top.get("cluster"), "cluster with the highest median"),
            ("  median_sigma_phi_rad", top.get("median_sigma_phi_rad"), "its median sigma_phi"),
            ("  n", top.get("n"), "its independent sigma_phi records"),
            (
                "  bright_aurora_fraction",
                top.get("bright_aurora_fraction"),
                f"share of its labelled images labelled {', '.join(top.get('bright_aurora_labels', []))}",
            ),
        ]
    body = [
        frame_table(pd.DataFrame(rows, columns=["quantity", "value", "meaning"]), "summary"),
    ]
    for name in ("gaps", "bad_input", "scintillation_cuts_removed"):
        if summary.get(name):
            body += [f"<h2>{name}</h2>", key_value_table(summary[name], name, "count")]
    counts = summary.get("cluster_label_counts")
    if counts:
        table = pd.DataFrame(counts).T.fillna(0).astype(int)
        table.insert(0, "cluster", table.index)
        body += ["<h2>labels in each cluster</h2>", frame_table(table, "cluster_label_counts")]
    for name in ("tle",):
        if isinstance(summary.get(name), Mapping):
            body += [f"<h2>{name}</h2>", key_value_table(summary[name], name, "quantity")]
    return page(f"Summary of {dataset}", "\n".join(body))


#: Columns of the fit table, in the order shown.
FIT_COLUMNS = [
    "group_type",
    "group",
    "n",
    "n_frames",
    "mu",
    "mu_low",
    "mu_high",
    "sigma",
    "sigma_low",
    "sigma_high",
    "median",
    "median_low",
    "median_high",
    "ks_statistic",
    "lilliefors_pvalue",
    "ad_statistic",
    "ad_pvalue",
]


def fits_page(dataset: str, fits: pd.DataFrame) -> str:
    """The log-normal fits of sigma_phi, one row per cluster, label (and cluster at a site)."""
    shown = fits[[c for c in FIT_COLUMNS if c in fits]]
    note = (
        '<p class="note">Log-normal fits of sigma_phi (rad): ln sigma_phi ~ Normal(mu, sigma), '
        "median = exp(mu). <b>n</b> counts the independent 60-s sigma_phi records of the group "
        "(a record counts once however many of its frames the group holds), <b>n_frames</b> the "
        "frames behind them. Intervals: 95% BCa bootstrap over records. Goodness of fit: the "
        "Kolmogorov-Smirnov distance with the Lilliefors p-value, and Anderson-Darling with its "
        "p-value, both corrected for the fitted parameters (small p: not log-normal).</p>"
    )
    return page(f"sigma_phi fits of {dataset}", note + frame_table(shown, "fits"))


def acknowledgement_html(keys) -> str:
    """The acknowledgements of the named providers, as paragraphs."""
    return "\n".join(f'<p class="note">{html.escape(ACKNOWLEDGEMENTS[k])}</p>' for k in keys)
