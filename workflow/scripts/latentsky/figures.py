"""Figures of the pipeline: reconstructions, embeddings, clusters, sigma_phi distributions.

Every function takes data and an output path, writes one PNG at :data:`DPI` and returns the path.
Figures are built as bare :class:`matplotlib.figure.Figure` objects and rendered by the Agg
canvas, so no pyplot state (backend, open-figure list) is touched and nothing is left open.
Each figure has a fixed size in inches, given in its docstring, so its pixel size is known.

Colours are fixed by meaning, not by what happens to be in the data: a label always has the
same colour (:func:`label_palette`), and so does a cluster number (:func:`cluster_palette`), which
is what ties the UMAP cluster map to the sigma_phi distributions. Sites take colours of their own
(:func:`site_palette`), chosen so that no site can be mistaken for a label.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Mapping
from pathlib import Path

import matplotlib as mpl
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patheffects import withStroke

from latentsky.analysis.embedding import ordered_classes
from latentsky.analysis.labels import CLASSES
from latentsky.analysis.lognormal import lognormal_pdf

DPI = 150

#: Colours of the known classes from seaborn's "colorblind" palette, with the no-aurora classes
#: in neutral tones: arc blue, diffuse green, discrete vermilion, moon yellow, clear grey,
#: cloudy brown.
_COLORBLIND = sns.color_palette("colorblind", 10)
_CLASS_COLOURS = dict(zip(CLASSES, [_COLORBLIND[i] for i in (0, 2, 3, 8, 7, 5)], strict=True))
#: Colours for labels outside CLASSES, in their sorted order, then cycling.
_OTHER_LABEL_COLOURS = [_COLORBLIND[i] for i in (1, 4, 6, 9)] + sns.color_palette("dark", 10)

#: Cluster colours: the dark half of tab20 first, then the light half (20 distinct), then cycling.
_TAB20 = sns.color_palette("tab20", 20)
_CLUSTER_COLOURS = _TAB20[0::2] + _TAB20[1::2]

#: Site colours, in the order the sites take them, in hues the classes leave free: magenta,
#: near-black, cyan, purple, olive, maroon, lime, dark teal. Each is at least 37 CIE76 Delta E
#: (distance in CIELAB, where about 2.3 is just noticeable) from every class colour and 29 from
#: every other site colour; the first four, enough for most datasets, are at least 55 apart and
#: differ in lightness, so they stay apart even as one-pixel dots.
_SITE_COLOURS = [
    mpl.colors.to_rgb(hex_colour)
    for hex_colour in (
        "#e7298a",
        "#1a1a1a",
        "#17becf",
        "#6a3d9a",
        "#808000",
        "#67001f",
        "#b8e186",
        "#014636",
    )
]
#: Samples without a label, drawn beneath the labelled ones: a light grey, apart from clear's grey.
_UNLABELLED_COLOUR = (0.83, 0.83, 0.83)


def label_palette(labels: Iterable) -> dict:
    """``{label: (r, g, b)}`` for the distinct labels, in :func:`ordered_classes` order.

    The six known classes always get the same colours whatever else is present; other labels
    take further colours in their sorted order.
    """
    palette = {}
    n_other = 0
    for label in ordered_classes(labels):
        if label in _CLASS_COLOURS:
            palette[label] = _CLASS_COLOURS[label]
        else:
            palette[label] = _OTHER_LABEL_COLOURS[n_other % len(_OTHER_LABEL_COLOURS)]
            n_other += 1
    return palette


def site_palette(sites: Iterable) -> dict:
    """``{site: (r, g, b)}`` for the distinct sites, sorted by name.

    Sites take the colours of :data:`_SITE_COLOURS` in sorted order, so a site's colour depends
    on which sites a dataset has; beyond eight sites the colours repeat.
    """
    names = sorted({str(site) for site in sites})
    return {site: _SITE_COLOURS[i % len(_SITE_COLOURS)] for i, site in enumerate(names)}


def cluster_colour(cluster: int) -> tuple:
    """The (r, g, b) colour of cluster number ``cluster`` (0-based), fixed for every figure."""
    return _CLUSTER_COLOURS[int(cluster) % len(_CLUSTER_COLOURS)]


def cluster_palette(clusters: Iterable) -> dict:
    """``{cluster: (r, g, b)}`` for the distinct cluster numbers, ascending."""
    return {int(c): cluster_colour(c) for c in np.unique(np.asarray(list(clusters)))}


@contextlib.contextmanager
def _style():
    """Seaborn's look for the duration of one figure, without changing global rcParams."""
    with sns.axes_style("ticks"), sns.plotting_context("paper"):
        yield


def _new_figure(width_in: float, height_in: float) -> Figure:
    fig = Figure(figsize=(width_in, height_in), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Figure, path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # No bbox_inches="tight": the pixel size stays figsize * DPI, as documented.
    fig.savefig(path, dpi=DPI, format="png")
    fig.clear()
    return path


def _scatter_in_shuffled_order(ax, xy, colours, size):
    """Scatter with a fixed pseudo-random drawing order so no class hides systematically."""
    order = np.random.default_rng(0).permutation(len(xy))
    ax.scatter(
        xy[order, 0],
        xy[order, 1],
        c=np.asarray(colours)[order],
        s=size,
        linewidths=0,
        rasterized=True,
    )


def _marker_size(n: int) -> float:
    """Scatter marker area in pt^2: larger for small sets, ~1 for tens of thousands of points."""
    return float(np.clip(3000.0 / max(n, 1), 1.0, 20.0))


def _point_handle(colour, text: str) -> Line2D:
    """A legend entry: one round marker of ``colour``."""
    return Line2D([], [], ls="", marker="o", color=colour, label=text)


def plot_reconstructions(originals, reconstructions, path, titles=None) -> Path:
    """Originals (top row) over their autoencoder reconstructions (bottom row).

    Parameters
    ----------
    originals, reconstructions : arrays ``(n, H, W)``; NaN pixels (outside the projected field
        of view) are drawn blank.
    titles : optional sequence of n column titles (e.g. times or labels).

    Each column shares one colour scale (1st to 99.5th percentile of both images), so a
    reconstruction is judged against its own original. Size: ``1.8 n`` x 4.0 in.
    """
    originals = np.asarray(originals, dtype=np.float64)
    reconstructions = np.asarray(reconstructions, dtype=np.float64)
    if originals.ndim != 3 or originals.shape != reconstructions.shape:
        raise ValueError(
            f"originals and reconstructions must both be (n, H, W); got {originals.shape} "
            f"and {reconstructions.shape}"
        )
    n = originals.shape[0]
    if titles is not None and len(titles) != n:
        raise ValueError(f"{len(titles)} titles for {n} images")
    cmap = mpl.colormaps["gray"].with_extremes(bad="white")
    with _style():
        fig = _new_figure(1.8 * n, 4.0)
        axes = fig.subplots(2, n, squeeze=False)
        for j in range(n):
            pair = np.stack([originals[j], reconstructions[j]])
            finite = pair[np.isfinite(pair)]
            vmin, vmax = np.percentile(finite, [1, 99.5]) if finite.size else (0.0, 1.0)
            if vmax <= vmin:
                vmax = vmin + 1.0
            for i, image in enumerate(pair):
                ax = axes[i, j]
                ax.imshow(np.ma.masked_invalid(image), cmap=cmap, vmin=vmin, vmax=vmax)
                ax.set_xticks([])
                ax.set_yticks([])
            if titles is not None:
                axes[0, j].set_title(str(titles[j]), fontsize="small")
        axes[0, 0].set_ylabel("original")
        axes[1, 0].set_ylabel("reconstruction")
        return _save(fig, path)


def plot_embeddings_by_label(umap_xy, tsne_xy, labels, path) -> Path:
    """t-SNE (left) and UMAP (right) of the same images, coloured by hand label.

    Parameters
    ----------
    umap_xy, tsne_xy : arrays ``(N, 2)``; labels : array ``(N,)`` of class names.

    Size: 11 x 5 in.
    """
    umap_xy = np.asarray(umap_xy, dtype=np.float64)
    tsne_xy = np.asarray(tsne_xy, dtype=np.float64)
    labels = np.asarray(labels, dtype=object)
    if not len(umap_xy) == len(tsne_xy) == len(labels):
        raise ValueError("umap_xy, tsne_xy and labels must have the same length")
    palette = label_palette(labels)
    colours = [palette[label] for label in labels]
    size = _marker_size(len(labels))
    with _style():
        fig = _new_figure(11.0, 5.0)
        axes = fig.subplots(1, 2)
        for ax, xy, name in zip(axes, (tsne_xy, umap_xy), ("t-SNE", "UMAP"), strict=True):
            _scatter_in_shuffled_order(ax, xy, colours, size)
            ax.set_title(name)
            ax.set_xlabel(f"{name} 1")
            ax.set_ylabel(f"{name} 2")
        handles = [
            _point_handle(colour, f"{label} ({np.sum(labels == label)})")
            for label, colour in palette.items()
        ]
        fig.legend(handles=handles, loc="outside right center", title="label", frameon=False)
        return _save(fig, path)


def plot_embeddings_by_site(umap_xy, sites, labels, path) -> Path:
    """The UMAP coloured by site (left) beside the same UMAP coloured by hand label (right).

    In a site-invariant latent space the sites are mixed within every label's region; when the
    latents encode the imager, the left panel shows one island per site.

    Parameters
    ----------
    umap_xy : array ``(N, 2)``; sites : array ``(N,)`` of site names; labels : array ``(N,)`` of
        class names, None (or NaN) where a sample has no label.

    Sites in :func:`site_palette` colours (legend on the left), labels in :func:`label_palette`
    colours (legend on the right), unlabelled samples in light grey beneath the labelled ones.
    Legend entries give the sample counts. Size: 12.5 x 5 in.
    """
    umap_xy = np.asarray(umap_xy, dtype=np.float64)
    sites = np.asarray([str(site) for site in sites], dtype=object)
    labels = pd.Series(np.asarray(labels, dtype=object).ravel())
    if not len(umap_xy) == len(sites) == len(labels):
        raise ValueError("umap_xy, sites and labels must have the same length")
    labelled = labels.notna().to_numpy()
    labels = labels.to_numpy(dtype=object)
    sites_colours = site_palette(sites)
    label_colours = label_palette(labels[labelled])
    size = _marker_size(len(sites))
    with _style():
        fig = _new_figure(12.5, 5.0)
        by_site, by_label = fig.subplots(1, 2, sharex=True, sharey=True)
        _scatter_in_shuffled_order(by_site, umap_xy, [sites_colours[s] for s in sites], size)
        by_label.scatter(
            *umap_xy[~labelled].T, c=[_UNLABELLED_COLOUR], s=size, linewidths=0, rasterized=True
        )
        _scatter_in_shuffled_order(
            by_label, umap_xy[labelled], [label_colours[lab] for lab in labels[labelled]], size
        )
        by_site.set_title(f"UMAP by site ({len(sites_colours)} sites)")
        by_label.set_title("UMAP by label")
        for ax in (by_site, by_label):
            ax.set_xlabel("UMAP 1")
            ax.set_ylabel("UMAP 2")
        site_handles = [
            _point_handle(colour, f"{site} ({np.sum(sites == site)})")
            for site, colour in sites_colours.items()
        ]
        label_handles = [
            _point_handle(colour, f"{label} ({np.sum(labels == label)})")
            for label, colour in label_colours.items()
        ]
        if not labelled.all():
            label_handles.append(
                _point_handle(_UNLABELLED_COLOUR, f"unlabelled ({np.sum(~labelled)})")
            )
        fig.legend(handles=site_handles, loc="outside left center", title="site", frameon=False)
        fig.legend(handles=label_handles, loc="outside right center", title="label", frameon=False)
        return _save(fig, path)


def plot_clusters(umap_xy, clusters, path, tsne_xy=None) -> Path:
    """UMAP (and t-SNE, if given) coloured by spectral cluster, each cluster's number at its
    median position.

    Parameters
    ----------
    umap_xy : array ``(N, 2)``; clusters : int array ``(N,)``; tsne_xy : optional ``(N, 2)``.

    Colours come from :func:`cluster_colour`. Size: 6.5 x 6 in for UMAP alone, 12.5 x 6 in with
    t-SNE on the left (as in :func:`plot_embeddings_by_label`).
    """
    clusters = np.asarray(clusters).astype(int)
    panels = [("t-SNE", tsne_xy)] if tsne_xy is not None else []
    panels.append(("UMAP", umap_xy))
    panels = [(name, np.asarray(xy, dtype=np.float64)) for name, xy in panels]
    if any(len(xy) != len(clusters) for _, xy in panels):
        raise ValueError("umap_xy, tsne_xy and clusters must have the same length")
    palette = cluster_palette(clusters)
    with _style():
        fig = _new_figure(6.5 if len(panels) == 1 else 12.5, 6.0)
        axes = np.atleast_1d(fig.subplots(1, len(panels)))
        for ax, (name, xy) in zip(axes, panels, strict=True):
            _scatter_in_shuffled_order(
                ax, xy, [palette[c] for c in clusters], _marker_size(len(clusters))
            )
            for c in palette:
                x, y = np.median(xy[clusters == c], axis=0)
                ax.text(
                    x,
                    y,
                    str(c),
                    ha="center",
                    va="center",
                    fontsize="large",
                    fontweight="bold",
                    color="black",
                    path_effects=[withStroke(linewidth=3, foreground="white")],
                )
            ax.set_xlabel(f"{name} 1")
            ax.set_ylabel(f"{name} 2")
            ax.set_title(f"{name}: spectral clusters ({len(palette)})")
        return _save(fig, path)


def plot_sigma_phi_distributions(values: Mapping, fits: pd.DataFrame, path) -> Path:
    """Per-cluster histograms of sigma_phi with their fitted log-normal curves.

    Parameters
    ----------
    values : ``{cluster: array}`` of sigma_phi values (rad); values <= 0 or NaN are left out
        (they have no place on a log axis).
    fits : DataFrame with columns ``cluster``, ``mu``, ``sigma`` (mean and standard deviation of
        ln(sigma_phi / rad), the log-normal parameters), ``n`` and ``median`` (rad).

    One panel per cluster (histogram and fit in the cluster's :func:`cluster_colour`) plus a
    last panel that overlays all fitted curves. The x axis is logarithmic, so densities are per
    unit ln(sigma_phi): the histogram of ln values and the normal pdf of ln values, which is the
    log-normal pdf times sigma_phi. Size: 4 columns of 3.2 in, rows of 2.4 in.
    """
    fits = fits.set_index("cluster", drop=False)
    clusters = sorted(int(c) for c in set(values) | set(fits.index))
    cleaned = {}
    for c in clusters:
        v = np.asarray(values.get(c, []), dtype=np.float64)
        cleaned[c] = v[np.isfinite(v) & (v > 0)]
    all_values = np.concatenate([v for v in cleaned.values()] + [np.empty(0)])
    if all_values.size:
        lo, hi = np.log(all_values.min()), np.log(all_values.max())
    else:
        lo, hi = np.log(1e-2), np.log(1.0)
    if hi - lo < 1e-6:
        lo, hi = lo - 0.5, hi + 0.5
    edges = np.linspace(lo, hi, 31)
    grid = np.exp(np.linspace(lo - 0.2 * (hi - lo), hi + 0.2 * (hi - lo), 400))

    n_panels = len(clusters) + 1
    n_cols = 4
    n_rows = int(np.ceil(n_panels / n_cols))
    with _style():
        fig = _new_figure(3.2 * n_cols, 2.4 * n_rows)
        axes = fig.subplots(n_rows, n_cols, sharex=True, squeeze=False).ravel()
        overlay = axes[len(clusters)]
        for ax, c in zip(axes, clusters, strict=False):
            colour = cluster_colour(c)
            v = cleaned[c]
            if v.size:
                density, _ = np.histogram(np.log(v), bins=edges, density=True)
                ax.stairs(density, np.exp(edges), fill=True, color=colour, alpha=0.35)
                ax.stairs(density, np.exp(edges), color=colour, linewidth=0.8)
            text = f"cluster {c}"
            if c in fits.index:
                row = fits.loc[c]
                n_fit = f"{row['n']:.0f}"
                # A fit of < 2 distinct values has sigma 0 or NaN: report it, draw no curve.
                if np.isfinite(row["mu"]) and np.isfinite(row["sigma"]) and row["sigma"] > 0:
                    # Density per unit ln(x), to match histograms on a log axis: x * pdf(x).
                    curve = grid * lognormal_pdf(grid, row["mu"], row["sigma"])
                    ax.plot(grid, curve, color=colour, linewidth=2)
                    overlay.plot(grid, curve, color=colour, linewidth=2, label=f"{c}: n={n_fit}")
                text += f"\nn = {n_fit}\nmedian = {row['median']:.3g} rad"
            ax.text(
                0.97, 0.95, text, transform=ax.transAxes, ha="right", va="top", fontsize="small"
            )
        overlay.set_title("fitted log-normals", fontsize="medium")
        if overlay.lines:
            overlay.legend(fontsize="x-small", frameon=False, title="cluster")
        for ax in axes[n_panels:]:
            ax.set_visible(False)
        for ax in axes[:n_panels]:
            ax.set_xscale("log")
        for ax in axes[n_panels - n_cols if n_panels > n_cols else 0 : n_panels]:
            ax.set_xlabel(r"$\sigma_\phi$ (rad)")
            ax.tick_params(labelbottom=True)
        for ax in axes[:n_panels:n_cols]:
            ax.set_ylabel(r"density per unit ln $\sigma_\phi$")
        return _save(fig, path)


def plot_cluster_label_table(table: pd.DataFrame, path) -> Path:
    """Annotated heatmap of a clusters x labels count table (as from ``cluster_label_table``).

    Cells show counts; the colour is the row fraction (share of the cluster with that label),
    so small and large clusters are comparable. Size: ``1.0 * n_labels + 2.5`` x
    ``0.45 * n_clusters + 1.5`` in.
    """
    counts = table.fillna(0).astype(int)
    counts = counts.reindex(columns=ordered_classes(counts.columns))
    row_sums = counts.sum(axis=1).replace(0, np.nan)
    fractions = counts.div(row_sums, axis=0).fillna(0.0)
    with _style():
        fig = _new_figure(1.0 * counts.shape[1] + 2.5, 0.45 * counts.shape[0] + 1.5)
        ax = fig.subplots()
        sns.heatmap(
            fractions,
            annot=counts.to_numpy(),
            fmt="d",
            cmap="viridis",
            vmin=0,
            vmax=1,
            cbar_kws={"label": "fraction of cluster"},
            ax=ax,
        )
        ax.set_xlabel("label")
        ax.set_ylabel("cluster")
        return _save(fig, path)


def plot_training_curves(metrics: pd.DataFrame, path) -> Path:
    """Training and validation loss per epoch, log y axis.

    ``metrics`` has columns ``epoch``, ``train_loss`` and (optionally) ``val_loss``. Size: 6 x 4 in.
    """
    with _style():
        fig = _new_figure(6.0, 4.0)
        ax = fig.subplots()
        for column, name in (("train_loss", "training"), ("val_loss", "validation")):
            if column in metrics and metrics[column].notna().any():
                ax.plot(metrics["epoch"], metrics[column], marker="o", markersize=3, label=name)
        ax.set_yscale("log")
        ax.set_xlabel("epoch")
        ax.set_ylabel("loss")
        ax.legend(frameon=False)
        return _save(fig, path)


def _waveform_axis(band_names, n_bands: int, n_samples: int, sample_rate_hz: float | None):
    """Check one name per band; the x values and label of a waveform panel: time in ms if the
    sample rate is known, else the sample index."""
    if len(band_names) != n_bands:
        raise ValueError(f"{len(band_names)} band names for {n_bands} bands")
    if sample_rate_hz:
        return np.arange(n_samples) / sample_rate_hz * 1e3, "time (ms)"
    return np.arange(n_samples), "sample"


def plot_mean_waveforms(mean, std, band_names, path, sample_rate_hz: float | None = None) -> Path:
    """Per-cluster mean photometer waveforms with a +-1 standard deviation band.

    Parameters
    ----------
    mean, std : arrays ``(n_clusters, n_bands, n_samples)`` (same units as the input windows).
    band_names : n_bands names (e.g. "337 nm", "180-230 nm", "777.4 nm").
    sample_rate_hz : if given, the x axis is time in ms; otherwise sample index.

    One row per cluster, one column per band, in :func:`cluster_colour`. Size: ``3.2 n_bands``
    x ``1.6 n_clusters + 0.6`` in.
    """
    mean = np.asarray(mean, dtype=np.float64)
    std = np.asarray(std, dtype=np.float64)
    if mean.ndim != 3 or mean.shape != std.shape:
        raise ValueError(f"mean and std must both be (clusters, bands, samples); got {mean.shape}")
    n_clusters, n_bands, n_samples = mean.shape
    t, xlabel = _waveform_axis(band_names, n_bands, n_samples, sample_rate_hz)
    with _style():
        fig = _new_figure(3.2 * n_bands, 1.6 * n_clusters + 0.6)
        axes = fig.subplots(n_clusters, n_bands, sharex=True, sharey="col", squeeze=False)
        for c in range(n_clusters):
            colour = cluster_colour(c)
            for b in range(n_bands):
                ax = axes[c, b]
                ax.fill_between(
                    t,
                    mean[c, b] - std[c, b],
                    mean[c, b] + std[c, b],
                    color=colour,
                    alpha=0.3,
                    linewidth=0,
                )
                ax.plot(t, mean[c, b], color=colour, linewidth=1.2)
                if c == 0:
                    ax.set_title(str(band_names[b]))
            axes[c, 0].set_ylabel(f"cluster {c}")
        for ax in axes[-1]:
            ax.set_xlabel(xlabel)
        return _save(fig, path)


def plot_waveform_reconstructions(
    originals, reconstructions, band_names, path, sample_rate_hz: float | None = None, titles=None
) -> Path:
    """Photometer windows (grey) with their reconstructions (colour), one row per band.

    Parameters
    ----------
    originals, reconstructions : arrays ``(n, band, sample)``, in the units the model sees.
    band_names : one name per band (e.g. "337 nm").
    sample_rate_hz : if given, the x axis is time in ms; otherwise sample index.
    titles : optional n column titles (e.g. window times).

    Each panel shares its y range between the original and the reconstruction. Size: ``2.6 n``
    x ``1.5 n_bands + 0.8`` in.
    """
    originals = np.asarray(originals, dtype=np.float64)
    reconstructions = np.asarray(reconstructions, dtype=np.float64)
    if originals.ndim != 3 or originals.shape != reconstructions.shape:
        raise ValueError(
            f"originals and reconstructions must both be (n, band, sample); got "
            f"{originals.shape} and {reconstructions.shape}"
        )
    n, n_bands, n_samples = originals.shape
    if titles is not None and len(titles) != n:
        raise ValueError(f"{len(titles)} titles for {n} windows")
    t, xlabel = _waveform_axis(band_names, n_bands, n_samples, sample_rate_hz)
    with _style():
        fig = _new_figure(2.6 * n, 1.5 * n_bands + 0.8)
        axes = fig.subplots(n_bands, n, sharex=True, squeeze=False)
        for j in range(n):
            for b in range(n_bands):
                ax = axes[b, j]
                ax.plot(t, originals[j, b], color="0.55", linewidth=0.6, label="original")
                ax.plot(
                    t,
                    reconstructions[j, b],
                    color=cluster_colour(b),
                    linewidth=1.0,
                    label="reconstruction",
                )
                if j == 0:
                    ax.set_ylabel(str(band_names[b]))
            if titles is not None:
                axes[0, j].set_title(str(titles[j]), fontsize="small")
            axes[-1, j].set_xlabel(xlabel)
        axes[0, 0].legend(fontsize="x-small", frameon=False)
        return _save(fig, path)
