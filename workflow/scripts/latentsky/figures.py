"""Figures of the pipeline: reconstructions, embeddings, clusters, sigma_phi distributions.

Every function takes data and an output path, writes the figure as a PNG at :data:`DPI` there
(for the report) and as a PDF beside it (same name, ``.pdf``: vector text and lines for papers,
with dense scatter layers rasterised), and returns the PNG's path. Figures are built as bare
:class:`matplotlib.figure.Figure` objects and rendered by the Agg canvas, so no pyplot state
(backend, open-figure list) is touched and nothing is left open. Each figure has a fixed size in
inches, given in its docstring, so its pixel size is known.

Colours are fixed by meaning, not by what happens to be in the data: a label always has the
same colour (:func:`label_palette`), and so does a cluster number (:func:`cluster_palette`), which
is what ties the UMAP cluster map to the sigma_phi distributions and the mean waveforms. The two
palettes are disjoint: every one of the first ten cluster colours differs from each of the first
ten label colours by a CIEDE2000 colour difference of 19.7 or more (:func:`colour_difference`;
about 2 is just noticeable side by side), so a label and a cluster never share a colour on the
same UMAP coordinates. Sites take colours of their own (:func:`site_palette`), chosen so that no
site can be mistaken for a label.

Sky images are maps: north up and east to the right (``origin="lower"``: the grid's latitude, or
km north, ascends with the row), with latitude and longitude axes (or km from the site), the
site marked and a colour bar with units.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
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
#: Colours for labels outside CLASSES (the photometer's six classes, a user's own), in their
#: sorted order, then cycling: colorblind orange, pink, light pink, sky blue, then navy, cyan and
#: violet (chosen, like the cluster colours, to be at least 19.5 CIEDE2000 from every cluster
#: colour and every other label colour), then seaborn's "dark" palette.
_OTHER_LABEL_COLOURS = (
    [_COLORBLIND[i] for i in (1, 4, 6, 9)]
    + [mpl.colors.to_rgb(c) for c in ("#001c7f", "#00cccc", "#8c00bf")]
    + sns.color_palette("dark", 10)[1:]
)

#: Cluster colours, in the order cluster numbers take them (then cycling). Chosen greedily from
#: an sRGB grid (lightness 30-75, chroma > 30) to be as far as possible, in CIEDE2000, from the ten
#: label colours, the first four site colours and each other: the first ten are at least 19.7 from
#: every label colour and 19 from each other (tests/test_figures.py checks it). They are deep
#: olive, wine, bottle green, olive, coral, bright green, periwinkle, plum, lavender, rust; the
#: label palette's blue, green, vermilion, yellow, grey and browns are not among them.
_CLUSTER_COLOURS = [
    mpl.colors.to_rgb(hex_colour)
    for hex_colour in (
        "#594d00",
        "#990026",
        "#005940",
        "#808c00",
        "#ff334d",
        "#33cc00",
        "#8066ff",
        "#8c4d73",
        "#a6a6e6",
        "#80400d",
        "#0000ff",
        "#008c99",
        "#ff9999",
        "#bf00cc",
        "#267300",
        "#99bf8c",
        "#a66659",
        "#666699",
        "#997300",
        "#cc0d00",
    )
]
#: Photometer band colours in waveform figures (no label or cluster is shown there): 337 nm blue,
#: 180-230 nm (UV) violet, 777.4 nm dark red, then grey and orange for colour channels.
_BAND_COLOURS = [
    mpl.colors.to_rgb(c) for c in ("#2c7fb8", "#7b3294", "#b2182b", "#636363", "#d95f0e")
]
#: The site marker on sky maps.
_SITE_MARKER = {"marker": "*", "s": 160, "c": "#ff2a00", "edgecolors": "white", "linewidths": 1.0}

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


def _srgb_to_lab(rgb) -> np.ndarray:
    """CIELAB (D65) of sRGB colours ``(..., 3)`` in [0, 1]."""
    rgb = np.asarray(rgb, dtype=np.float64)
    linear = np.where(rgb <= 0.04045, rgb / 12.92, ((rgb + 0.055) / 1.055) ** 2.4)
    to_xyz = np.array(
        [
            [0.4124564, 0.3575761, 0.1804375],
            [0.2126729, 0.7151522, 0.0721750],
            [0.0193339, 0.1191920, 0.9503041],
        ]
    )
    xyz = linear @ to_xyz.T / np.array([0.95047, 1.0, 1.08883])
    f = np.where(xyz > 216 / 24389, np.cbrt(xyz), (24389 / 27 * xyz + 16) / 116)
    return np.stack(
        [116 * f[..., 1] - 16, 500 * (f[..., 0] - f[..., 1]), 200 * (f[..., 1] - f[..., 2])],
        axis=-1,
    )


def colour_difference(rgb_a, rgb_b) -> np.ndarray:
    """CIEDE2000 colour difference (Sharma, Wu and Dalal 2005) between sRGB colours ``(..., 3)``.

    About 1-2 is just noticeable side by side; 20 or more are plainly different colours.
    """
    return _ciede2000(_srgb_to_lab(rgb_a), _srgb_to_lab(rgb_b))


def _ciede2000(lab_a, lab_b) -> np.ndarray:
    """CIEDE2000 difference of CIELAB colours ``(..., 3)``."""
    l1, a1, b1 = np.moveaxis(lab_a, -1, 0)
    l2, a2, b2 = np.moveaxis(lab_b, -1, 0)
    c_mean = (np.hypot(a1, b1) + np.hypot(a2, b2)) / 2
    g = 0.5 * (1 - np.sqrt(c_mean**7 / (c_mean**7 + 25.0**7)))
    a1, a2 = (1 + g) * a1, (1 + g) * a2
    c1, c2 = np.hypot(a1, b1), np.hypot(a2, b2)
    h1, h2 = np.degrees(np.arctan2(b1, a1)) % 360, np.degrees(np.arctan2(b2, a2)) % 360
    dh = h2 - h1
    dh = np.where(dh > 180, dh - 360, np.where(dh < -180, dh + 360, dh))
    dh = np.where(c1 * c2 == 0, 0.0, dh)
    d_hue = 2 * np.sqrt(c1 * c2) * np.sin(np.radians(dh / 2))
    l_mean, c_mean = (l1 + l2) / 2, (c1 + c2) / 2
    h_sum = h1 + h2
    h_mean = np.where(
        c1 * c2 == 0,
        h_sum,
        np.where(
            np.abs(h1 - h2) <= 180,
            h_sum / 2,
            np.where(h_sum < 360, (h_sum + 360) / 2, (h_sum - 360) / 2),
        ),
    )
    t = (
        1
        - 0.17 * np.cos(np.radians(h_mean - 30))
        + 0.24 * np.cos(np.radians(2 * h_mean))
        + 0.32 * np.cos(np.radians(3 * h_mean + 6))
        - 0.20 * np.cos(np.radians(4 * h_mean - 63))
    )
    rotation = -np.sin(np.radians(60 * np.exp(-(((h_mean - 275) / 25) ** 2)))) * (
        2 * np.sqrt(c_mean**7 / (c_mean**7 + 25.0**7))
    )
    s_l = 1 + 0.015 * (l_mean - 50) ** 2 / np.sqrt(20 + (l_mean - 50) ** 2)
    s_c, s_h = 1 + 0.045 * c_mean, 1 + 0.015 * c_mean * t
    terms = (l2 - l1) / s_l, (c2 - c1) / s_c, d_hue / s_h
    return np.sqrt(terms[0] ** 2 + terms[1] ** 2 + terms[2] ** 2 + rotation * terms[1] * terms[2])


def cluster_colour(cluster: int) -> tuple:
    """The (r, g, b) colour of cluster number ``cluster`` (0-based), fixed for every figure."""
    return _CLUSTER_COLOURS[int(cluster) % len(_CLUSTER_COLOURS)]


def band_colour(band: int) -> tuple:
    """The (r, g, b) colour of photometer band number ``band`` in waveform figures."""
    return _BAND_COLOURS[int(band) % len(_BAND_COLOURS)]


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


#: The vector format written beside every PNG.
VECTOR_FORMAT = "pdf"


def vector_path(path) -> Path:
    """Where the vector copy of the figure at ``path`` (a PNG) is written."""
    return Path(path).with_suffix(f".{VECTOR_FORMAT}")


def _save(fig: Figure, path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # No bbox_inches="tight": the pixel size stays figsize * DPI, as documented.
    fig.savefig(path, dpi=DPI, format="png")
    # Fixed metadata: two runs write identical PDFs (no creation date).
    fig.savefig(
        vector_path(path),
        dpi=DPI,
        format=VECTOR_FORMAT,
        metadata={"Creator": "latentsky", "Producer": None, "CreationDate": None},
    )
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


@dataclass(frozen=True)
class SkyGrid:
    """Where the cells of projected sky images lie, for drawing them as maps.

    Attributes:
        y, x: cell centres along the rows and columns (ascending: north and east): degrees of
            geographic latitude and longitude, or km north and east of the site.
        geographic: True for a latitude-longitude grid, False for km from the site.
        site_lat, site_lon: the site (degrees) on a geographic grid, one per image or one for
            all (NaN: not marked); on a grid of km the site is at (0, 0).
    """

    y: np.ndarray
    x: np.ndarray
    geographic: bool = True
    site_lat: np.ndarray | float = np.nan
    site_lon: np.ndarray | float = np.nan

    @classmethod
    def from_examples(cls, examples) -> SkyGrid | None:
        """The grid of a reconstructions ``.npz`` (None when it does not say, e.g. older ones)."""
        if "grid_y" not in examples:
            return None
        return cls(
            y=np.asarray(examples["grid_y"], dtype=np.float64),
            x=np.asarray(examples["grid_x"], dtype=np.float64),
            geographic=str(examples["grid_dims"][0]) == "lat",
            site_lat=np.asarray(examples["site_latitude"], dtype=np.float64),
            site_lon=np.asarray(examples["site_longitude"], dtype=np.float64),
        )

    def extent(self) -> list[float]:
        """imshow's extent: the outer cell edges (west, east, south, north)."""

        def edges(centres):
            step = (centres[-1] - centres[0]) / max(len(centres) - 1, 1) if len(centres) > 1 else 1
            return centres[0] - step / 2, centres[-1] + step / 2

        (west, east), (south, north) = edges(self.x), edges(self.y)
        return [west, east, south, north]

    def site(self, j: int) -> tuple[float, float]:
        """(x, y) of the site of image ``j`` on the map (NaN when unknown)."""
        if not self.geographic:
            return 0.0, 0.0
        lat, lon = np.atleast_1d(self.site_lat), np.atleast_1d(self.site_lon)
        lat, lon = lat[j if lat.size > 1 else 0], lon[j if lon.size > 1 else 0]
        if np.isfinite(lon) and len(self.x):
            lon = (lon - self.x[0] + 180.0) % 360.0 - 180.0 + self.x[0]  # the grid's convention
        return float(lon), float(lat)

    def aspect(self) -> float:
        """Axes aspect that draws equal distances equally: 1 / cos(latitude) for degrees."""
        if not self.geographic:
            return 1.0
        return float(1.0 / np.cos(np.radians(np.clip(np.mean(self.y), -85.0, 85.0))))

    def labels(self) -> tuple[str, str]:
        if self.geographic:
            return "geographic longitude (°E)", "geographic latitude (°N)"
        return "km east of the site", "km north of the site"


def _pixel_grid(shape) -> SkyGrid:
    """Row and column numbers when the grid is unknown (rows ascend northwards all the same)."""
    return SkyGrid(y=np.arange(shape[0], dtype=float), x=np.arange(shape[1], dtype=float))


def plot_reconstructions(
    originals,
    reconstructions,
    path,
    titles=None,
    grid: SkyGrid | None = None,
    units: str = "normalised counts",
) -> Path:
    """Originals (top row) over their autoencoder reconstructions (bottom row), as sky maps: the
    figure of :func:`reconstruction_figure`, saved."""
    return _save(reconstruction_figure(originals, reconstructions, titles, grid, units), path)


def reconstruction_figure(
    originals,
    reconstructions,
    titles=None,
    grid: SkyGrid | None = None,
    units: str = "normalised counts",
) -> Figure:
    """Originals (top row) over their autoencoder reconstructions (bottom row), as sky maps.

    Parameters
    ----------
    originals, reconstructions : arrays ``(n, H, W)``, row 0 the southernmost (the stores' order:
        latitude, or km north, ascending); NaN pixels (outside the projected field of view) are
        drawn blank.
    titles : optional sequence of n column titles (e.g. times or labels).
    grid : where the cells lie (:class:`SkyGrid`): axes in geographic latitude and longitude (or
        km from the site) and the site marked with a star. None: row and column numbers.
    units : what the values are, for the colour bars.

    Maps are drawn north up and east to the right. Each column shares one colour scale (1st to
    99.5th percentile of both images), shown by a colour bar under it, so a reconstruction is
    judged against its own original. Size: ``2.3 n + 0.6`` x 5.4 in.
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
    grid = grid or _pixel_grid(originals.shape[1:])
    if (len(grid.y), len(grid.x)) != originals.shape[1:]:
        raise ValueError(f"grid {len(grid.y)} x {len(grid.x)} for images {originals.shape[1:]}")
    cmap = mpl.colormaps["gray"].with_extremes(bad="white")
    xlabel, ylabel = grid.labels()
    with _style():
        fig = _new_figure(2.3 * n + 0.6, 5.4)
        axes = fig.subplots(2, n, squeeze=False, sharex=True, sharey=True)
        for j in range(n):
            pair = np.stack([originals[j], reconstructions[j]])
            finite = pair[np.isfinite(pair)]
            vmin, vmax = np.percentile(finite, [1, 99.5]) if finite.size else (0.0, 1.0)
            if vmax <= vmin:
                vmax = vmin + 1.0
            for i, image in enumerate(pair):
                ax = axes[i, j]
                shown = ax.imshow(
                    np.ma.masked_invalid(image),
                    cmap=cmap,
                    vmin=vmin,
                    vmax=vmax,
                    origin="lower",  # row 0 is the south edge: north up
                    extent=grid.extent(),
                    interpolation="nearest",
                )
                ax.set_aspect(grid.aspect())
                x, y = grid.site(j)
                if np.isfinite(x) and np.isfinite(y):
                    ax.scatter([x], [y], zorder=3, **_SITE_MARKER)
                ax.tick_params(labelsize="x-small")
                ax.xaxis.set_major_locator(mpl.ticker.MaxNLocator(4))
            bar = fig.colorbar(
                shown, ax=axes[:, j], orientation="horizontal", shrink=0.85, aspect=15
            )
            bar.set_label(units, fontsize="x-small")
            bar.ax.tick_params(labelsize="x-small")
            bar.ax.xaxis.set_major_locator(mpl.ticker.MaxNLocator(4))
            if titles is not None:
                axes[0, j].set_title(str(titles[j]), fontsize="small")
            axes[1, j].set_xlabel(xlabel, fontsize="x-small")
        axes[0, 0].set_ylabel(f"original\n{ylabel}", fontsize="x-small")
        axes[1, 0].set_ylabel(f"reconstruction\n{ylabel}", fontsize="x-small")
        axes[0, -1].annotate(
            "N ↑",
            xy=(1.02, 1.0),
            xycoords="axes fraction",
            ha="left",
            va="top",
            fontsize="small",
            fontweight="bold",
        )
        fig.canvas.draw()  # lay out now: the axes' places are final when the figure is returned
        return fig


def plot_embeddings_by_label(umap_xy, tsne_xy, labels, path) -> Path:
    """t-SNE (left) and UMAP (right) of the same samples, coloured by hand label.

    Parameters
    ----------
    umap_xy, tsne_xy : arrays ``(N, 2)``; labels : array ``(N,)`` of class names, None (or
        NaN) where a sample has no label.

    Labels in :func:`label_palette` colours, unlabelled samples in light grey beneath the
    labelled ones (never a label's colour). Legend entries give the sample counts. Size: 11 x 5 in.
    """
    umap_xy = np.asarray(umap_xy, dtype=np.float64)
    tsne_xy = np.asarray(tsne_xy, dtype=np.float64)
    labels = pd.Series(np.asarray(labels, dtype=object).ravel())
    if not len(umap_xy) == len(tsne_xy) == len(labels):
        raise ValueError("umap_xy, tsne_xy and labels must have the same length")
    labelled = labels.notna().to_numpy()
    labels = labels.to_numpy(dtype=object)
    palette = label_palette(labels[labelled])
    colours = [palette[label] for label in labels[labelled]]
    size = _marker_size(len(labels))
    with _style():
        fig = _new_figure(11.0, 5.0)
        axes = fig.subplots(1, 2)
        for ax, xy, name in zip(axes, (tsne_xy, umap_xy), ("t-SNE", "UMAP"), strict=True):
            ax.scatter(
                *xy[~labelled].T, c=[_UNLABELLED_COLOUR], s=size, linewidths=0, rasterized=True
            )
            _scatter_in_shuffled_order(ax, xy[labelled], colours, size)
            ax.set_title(name)
            ax.set_xlabel(f"{name} 1")
            ax.set_ylabel(f"{name} 2")
        handles = [
            _point_handle(colour, f"{label} ({np.sum(labels == label)})")
            for label, colour in palette.items()
        ]
        if not labelled.all():
            handles.append(_point_handle(_UNLABELLED_COLOUR, f"unlabelled ({np.sum(~labelled)})"))
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

    Colours come from :func:`cluster_colour`; the legend gives each cluster's size. Size: 6.5 x 6
    in for UMAP alone, 12.5 x 6 in with t-SNE on the left (as in
    :func:`plot_embeddings_by_label`).
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
        handles = [
            _point_handle(colour, f"{c} ({np.sum(clusters == c)})") for c, colour in palette.items()
        ]
        fig.legend(handles=handles, loc="outside right center", title="cluster", frameon=False)
        return _save(fig, path)


def _clean_positive(values) -> np.ndarray:
    v = np.asarray(values, dtype=np.float64).ravel()
    return v[np.isfinite(v) & (v > 0)]


def _fit_row(fits: pd.DataFrame | None, key):
    """The fit row of group ``key`` (a Series), or None."""
    if fits is None or key not in fits.index:
        return None
    return fits.loc[key]


def _has_curve(row) -> bool:
    # A fit of < 2 distinct values has sigma 0 or NaN: report it, draw no curve.
    return (
        row is not None
        and np.isfinite(row["mu"])
        and np.isfinite(row["sigma"])
        and row["sigma"] > 0
    )


def _fit_text(row, unit_name: str) -> str:
    """``n = ... records (... frames)`` and the median with its interval, for a panel."""
    count = f"n = {row['n']:.0f}"
    if "n_frames" in row.index and np.isfinite(row["n_frames"]) and row["n_frames"] != row["n"]:
        count += f" {unit_name} ({row['n_frames']:.0f} frames)"
    text = count + f"\nmedian {row['median']:.3g} rad"
    if "median_low" in row.index and np.isfinite(row["median_low"]):
        text += f"\n[{row['median_low']:.3g}, {row['median_high']:.3g}]"
    return text


def _distribution_panel(ax, values, row, colour, edges, grid, title, unit_name):
    """Histogram of ln values (density per unit ln sigma_phi) with the fitted curve."""
    if values.size:
        density, _ = np.histogram(np.log(values), bins=edges, density=True)
        ax.stairs(density, np.exp(edges), fill=True, color=colour, alpha=0.35)
        ax.stairs(density, np.exp(edges), color=colour, linewidth=0.8)
    if _has_curve(row):
        # Density per unit ln(x), to match histograms on a log axis: x * pdf(x).
        ax.plot(grid, grid * lognormal_pdf(grid, row["mu"], row["sigma"]), color=colour, lw=2)
    ax.set_title(title, fontsize="small", color="black")
    if row is not None:
        ax.text(
            0.97,
            0.95,
            _fit_text(row, unit_name),
            transform=ax.transAxes,
            ha="right",
            va="top",
            fontsize="x-small",
        )


def _forest(ax, rows, column: str, xlabel: str, log: bool) -> None:
    """Points at each group's estimate with its interval, one line per group (top down)."""
    for y, (_, row, colour) in enumerate(rows):
        value = row[column] if row is not None else np.nan
        low, high = (
            (row.get(f"{column}_low", np.nan), row.get(f"{column}_high", np.nan))
            if row is not None
            else (np.nan, np.nan)
        )
        if np.isfinite(low) and np.isfinite(high):
            ax.plot([low, high], [y, y], color=colour, linewidth=2.5, solid_capstyle="butt")
        if np.isfinite(value):
            ax.plot([value], [y], marker="o", color=colour, markeredgecolor="black", ms=6)
    ax.set_yticks(range(len(rows)), [name for name, _, _ in rows], fontsize="x-small")
    ax.set_ylim(len(rows) - 0.5, -0.5)
    if log:
        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(mpl.ticker.FormatStrFormatter("%g"))
        ax.xaxis.set_minor_formatter(mpl.ticker.FormatStrFormatter("%g"))
        ax.tick_params(axis="x", which="minor", labelsize="x-small")
    ax.set_xlabel(xlabel)
    ax.grid(axis="x", linewidth=0.4, alpha=0.5)


def plot_sigma_phi_distributions(
    values: Mapping,
    fits: pd.DataFrame,
    path,
    label_values: Mapping | None = None,
    label_fits: pd.DataFrame | None = None,
    dominant_labels: Mapping | None = None,
    unit_name: str = "records",
) -> Path:
    """sigma_phi per cluster and per label with their fitted log-normals, and the fitted
    parameters with their intervals.

    Parameters
    ----------
    values : ``{cluster: array}`` of sigma_phi values (rad), one per independent record (see
        :func:`latentsky.analysis.lognormal.unit_values`); values <= 0 or NaN are left out.
    fits : the cluster fits: columns ``cluster``, ``mu``, ``sigma`` (of ln(sigma_phi / rad)),
        ``n``, ``median`` (rad) and, if known, ``n_frames`` and the intervals ``median_low``,
        ``median_high``, ``sigma_low``, ``sigma_high``.
    label_values, label_fits : the same per label (column ``label``), or None.
    dominant_labels : ``{cluster: text}``, e.g. ``"discrete 62%, arc 25%"``: which labels make up
        each cluster; shown in its title and in the parameter panels.
    unit_name : what ``n`` counts.

    Three blocks: one panel per cluster (histogram and fit in :func:`cluster_colour`) and a
    panel overlaying the cluster fits; one panel per label (in :func:`label_palette` colours);
    then the fitted median exp(mu) (rad) and sigma of every cluster and label with their 95%
    intervals. The x axes are logarithmic, so densities are per unit ln(sigma_phi): the
    histogram of ln values and the normal pdf of ln values, which is the log-normal pdf times
    sigma_phi. Size: 12.8 in wide; 2.4 in per row of four panels, plus 0.22 in per group and
    1.2 in for the parameter panels.
    """
    fits = fits.set_index("cluster", drop=False)
    clusters = sorted(int(c) for c in set(values) | set(fits.index))
    label_values = dict(label_values or {})
    label_fits = label_fits.set_index("label", drop=False) if label_fits is not None else None
    labels = ordered_classes(
        set(label_values) | set(label_fits.index if label_fits is not None else [])
    )
    dominant_labels = dict(dominant_labels or {})
    cleaned = {c: _clean_positive(values.get(c, [])) for c in clusters}
    cleaned_labels = {k: _clean_positive(label_values.get(k, [])) for k in labels}
    every = np.concatenate([*cleaned.values(), *cleaned_labels.values(), np.empty(0)])
    lo, hi = (np.log(every.min()), np.log(every.max())) if every.size else (np.log(1e-2), 0.0)
    if hi - lo < 1e-6:
        lo, hi = lo - 0.5, hi + 0.5
    edges = np.linspace(lo, hi, 31)
    grid = np.exp(np.linspace(lo - 0.2 * (hi - lo), hi + 0.2 * (hi - lo), 400))
    colours = label_palette(labels)

    n_cols = 4
    rows_c = int(np.ceil((len(clusters) + 1) / n_cols))
    rows_l = int(np.ceil(len(labels) / n_cols))
    forest_height = 1.2 + 0.22 * (len(clusters) + len(labels))
    heights = [2.4 * rows_c] + ([2.4 * rows_l] if labels else []) + [forest_height]
    with _style():
        fig = _new_figure(3.2 * n_cols, sum(heights))
        blocks = fig.subfigures(len(heights), 1, height_ratios=heights)
        top = blocks[0].subplots(rows_c, n_cols, sharex=True, squeeze=False).ravel()
        overlay = top[len(clusters)]
        for ax, c in zip(top, clusters, strict=False):
            row = _fit_row(fits, c)
            title = f"cluster {c}" + (f": {dominant_labels[c]}" if dominant_labels.get(c) else "")
            _distribution_panel(
                ax, cleaned[c], row, cluster_colour(c), edges, grid, title, unit_name
            )
            if _has_curve(row):
                curve = grid * lognormal_pdf(grid, row["mu"], row["sigma"])
                overlay.plot(grid, curve, color=cluster_colour(c), lw=2, label=f"{c}")
        overlay.set_title("fitted log-normals, clusters", fontsize="small")
        if overlay.lines:
            overlay.legend(fontsize="x-small", frameon=False, title="cluster")
        panels = [*top[: len(clusters) + 1]]
        first_column = [*top[: len(clusters) + 1 : n_cols]]
        for ax in top[len(clusters) + 1 :]:
            ax.set_visible(False)
        blocks[0].suptitle("by spectral cluster", fontsize="medium", x=0.01, ha="left")
        if labels:
            middle = blocks[1].subplots(rows_l, n_cols, sharex=True, squeeze=False).ravel()
            for ax, label in zip(middle, labels, strict=False):
                _distribution_panel(
                    ax,
                    cleaned_labels[label],
                    _fit_row(label_fits, label),
                    colours[label],
                    edges,
                    grid,
                    f"label: {label}",
                    unit_name,
                )
            for ax in middle[len(labels) :]:
                ax.set_visible(False)
            panels += [*middle[: len(labels)]]
            first_column += [*middle[: len(labels) : n_cols]]
            blocks[1].suptitle("by hand label", fontsize="medium", x=0.01, ha="left")
        for ax in panels:
            ax.set_xscale("log")
            ax.set_xlabel(r"$\sigma_\phi$ (rad)", fontsize="small")
            ax.tick_params(labelbottom=True, labelsize="x-small")
        for ax in first_column:
            ax.set_ylabel(r"density per unit ln $\sigma_\phi$", fontsize="small")
        groups = [
            (
                f"cluster {c}" + (f" ({dominant_labels[c]})" if dominant_labels.get(c) else ""),
                _fit_row(fits, c),
                cluster_colour(c),
            )
            for c in clusters
        ] + [(f"label {k}", _fit_row(label_fits, k), colours[k]) for k in labels]
        median_ax, sigma_ax = blocks[-1].subplots(1, 2, sharey=True)
        _forest(
            median_ax,
            groups,
            "median",
            r"median $\sigma_\phi$ = exp($\mu$) (rad), 95% interval",
            True,
        )
        _forest(sigma_ax, groups, "sigma", r"$\sigma$ of ln $\sigma_\phi$, 95% interval", False)
        blocks[-1].suptitle("fitted parameters", fontsize="medium", x=0.01, ha="left")
        return _save(fig, path)


def plot_cluster_label_table(table: pd.DataFrame, path) -> Path:
    """Annotated heatmap of a clusters x labels count table (as from ``cluster_label_table``).

    Cells show counts; the colour is the row fraction (share of the cluster with that label),
    so small and large clusters are comparable; each cluster number is written in its
    :func:`cluster_colour`. Size: ``1.0 * n_labels + 2.5`` x
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
        for tick in ax.get_yticklabels():  # seaborn may leave some rows unlabelled
            if tick.get_text().lstrip("-").isdigit():
                tick.set_color(cluster_colour(int(tick.get_text())))  # as in every figure
                tick.set_fontweight("bold")
        return _save(fig, path)


def plot_training_curves(metrics: pd.DataFrame, path, loss_name: str = "loss") -> Path:
    """Training and validation loss per epoch.

    ``metrics`` has columns ``epoch``, ``train_loss`` and (optionally) ``val_loss``. The y axis is
    logarithmic when every loss is positive (a mean squared error falls over decades), linear
    otherwise: the Beta VAE's loss, a negative ELBO in nats, is negative (a log axis drew
    nothing). ``loss_name`` labels the y axis. Size: 6 x 4 in.
    """
    columns = [
        (column, name)
        for column, name in (("train_loss", "training"), ("val_loss", "validation"))
        if column in metrics and metrics[column].notna().any()
    ]
    values = np.concatenate([metrics[c].dropna().to_numpy(float) for c, _ in columns] or [[]])
    log_axis = values.size > 0 and bool(np.all(values > 0))
    with _style():
        fig = _new_figure(6.0, 4.0)
        ax = fig.subplots()
        for column, name in columns:
            ax.plot(metrics["epoch"], metrics[column], marker="o", markersize=3, label=name)
        if log_axis:
            ax.set_yscale("log")
        ax.xaxis.set_major_locator(mpl.ticker.MaxNLocator(integer=True))  # whole epochs
        ax.set_xlabel("epoch")
        ax.set_ylabel(loss_name + ("" if log_axis else " (linear axis)"))
        if columns:
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


def plot_mean_waveforms(
    mean, std, band_names, path, sample_rate_hz: float | None = None, clusters=None
) -> Path:
    """Per-cluster mean photometer waveforms with a +-1 standard deviation band.

    Parameters
    ----------
    mean, std : arrays ``(n_clusters, n_bands, n_samples)`` (same units as the input windows).
    band_names : n_bands names (e.g. "337 nm", "180-230 nm", "777.4 nm").
    sample_rate_hz : if given, the x axis is time in ms; otherwise sample index.
    clusters : the cluster number of each row (default ``0 .. n_clusters - 1``), so that a
        cluster takes its own :func:`cluster_colour` even when some numbers have no rows.

    One row per cluster, one column per band, in :func:`cluster_colour`. Size: ``3.2 n_bands``
    x ``1.6 n_clusters + 0.6`` in.
    """
    mean = np.asarray(mean, dtype=np.float64)
    std = np.asarray(std, dtype=np.float64)
    if mean.ndim != 3 or mean.shape != std.shape:
        raise ValueError(f"mean and std must both be (clusters, bands, samples); got {mean.shape}")
    n_clusters, n_bands, n_samples = mean.shape
    clusters = np.arange(n_clusters) if clusters is None else np.asarray(clusters).astype(int)
    if clusters.shape != (n_clusters,):
        raise ValueError(f"{clusters.size} cluster numbers for {n_clusters} rows of means")
    t, xlabel = _waveform_axis(band_names, n_bands, n_samples, sample_rate_hz)
    with _style():
        fig = _new_figure(3.2 * n_bands, 1.6 * n_clusters + 0.6)
        axes = fig.subplots(n_clusters, n_bands, sharex=True, sharey="col", squeeze=False)
        for c, cluster in enumerate(clusters):
            colour = cluster_colour(cluster)
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
            axes[c, 0].set_ylabel(f"cluster {cluster}")
        for ax in axes[-1]:
            ax.set_xlabel(xlabel)
        return _save(fig, path)


def plot_waveform_reconstructions(
    originals, reconstructions, band_names, path, sample_rate_hz: float | None = None, titles=None
) -> Path:
    """Photometer windows (grey) with their reconstructions (in the band's colour,
    :func:`band_colour`), one row per band.

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
                    color=band_colour(b),
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
