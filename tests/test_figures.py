"""Figures: each writes a readable PNG of the documented size (and a PDF beside it), with the
agreed colours; sky maps north up, loss curves drawn whatever their sign."""

from __future__ import annotations

import matplotlib.image as mpimg
import numpy as np
import pandas as pd
import pytest
import seaborn as sns

from latentsky import figures as F
from latentsky.analysis.labels import CLASSES as CLASS_ORDER


def read_png(path):
    """RGB pixels (H, W, 3) in [0, 1] of a PNG written by a figure function."""
    assert path.is_file() and path.stat().st_size > 0
    image = mpimg.imread(path)
    return image[..., :3]


def assert_size(image, width_in, height_in):
    height, width = image.shape[:2]
    assert abs(width - width_in * F.DPI) <= 1
    assert abs(height - height_in * F.DPI) <= 1


def non_white_fraction(image):
    return float(np.mean(np.any(image < 0.95, axis=-1)))


def pixels_near(image, rgb, tol=2.5 / 255):
    """How many pixels have exactly (within PNG rounding) the colour ``rgb``."""
    return int(np.sum(np.all(np.abs(image - np.asarray(rgb)) <= tol, axis=-1)))


@pytest.fixture(scope="module")
def four_clusters():
    """UMAP-like coordinates of four well-separated clusters (0..3) and their sigma_phi values."""
    rng = np.random.default_rng(0)
    clusters = np.repeat(np.arange(4), [150, 120, 90, 60])
    centres = np.array([[0, 0], [8, 0], [0, 8], [8, 8]])
    xy = centres[clusters] + rng.standard_normal((len(clusters), 2))
    values = {c: rng.lognormal(np.log(0.05) + 0.4 * c, 0.5, 200) for c in range(4)}
    fits = pd.DataFrame(
        [
            {
                "cluster": c,
                "mu": np.log(v).mean(),
                "sigma": np.log(v).std(),
                "n": len(v),
                "median": np.median(v),
            }
            for c, v in values.items()
        ]
    )
    return xy, clusters, values, fits


# --- palettes ---------------------------------------------------------------------------------------


def test_label_palette_is_fixed_per_class_and_distinct():
    full = F.label_palette(list(CLASS_ORDER) + ["unknown", "aaa"])
    assert list(full) == [*CLASS_ORDER, "aaa", "unknown"]
    assert len(set(full.values())) == len(full)
    # A class keeps its colour whatever else is present.
    assert F.label_palette(["cloudy", "arc"]) == {"arc": full["arc"], "cloudy": full["cloudy"]}


def test_cluster_palette_is_fixed_per_number_and_distinct():
    assert len({F.cluster_colour(c) for c in range(20)}) == 20
    assert F.cluster_palette([3, 1, 3])[3] == F.cluster_colour(3)
    assert F.cluster_palette([3])[3] == F.cluster_palette(range(10))[3]
    assert list(F.cluster_palette([5, 0, 2])) == [0, 2, 5]


def test_ciede2000_matches_published_pairs():
    # Sharma, Wu and Dalal (2005), Table 1: pairs 1, 7, 17 and 25 (Lab, Lab, Delta E 2000).
    pairs = [
        ((50.0, 2.6772, -79.7751), (50.0, 0.0, -82.7485), 2.0425),
        ((50.0, 0.0, 0.0), (50.0, -1.0, 2.0), 2.3669),
        ((50.0, 2.5, 0.0), (73.0, 25.0, -18.0), 27.1492),
        ((60.2574, -34.0099, 36.2677), (60.4626, -34.1751, 39.4387), 1.2644),
    ]
    for lab_a, lab_b, expected in pairs:
        assert F._ciede2000(np.array(lab_a), np.array(lab_b)) == pytest.approx(expected, abs=1e-4)


def test_label_and_cluster_palettes_cannot_be_confused():
    # On the same UMAP coordinates, no cluster may wear a label's colour (the old palettes gave
    # cluster 1 the orange of a label). The first ten of each differ by CIEDE2000 >= 19.5; clusters
    # differ from each other by >= 19.
    # Seven labels beyond the auroral classes: the photometer's six (sprite, the sixth, once
    # took a dark orange 11 from cluster 9's rust) and one more.
    labels = F.label_palette([*CLASS_ORDER, "a", "b", "c", "d", "e", "f", "g"])
    clusters = [F.cluster_colour(c) for c in range(10)]
    across = F.colour_difference(np.array(list(labels.values()))[:, None], np.array(clusters)[None])
    assert across.min() >= 19.5, across.min()
    # and the last three (navy, cyan, violet) are far from every other label colour too.
    colours = np.array(list(labels.values()))
    among = F.colour_difference(colours[-3:, None], colours[None])
    assert np.sort(among, axis=1)[:, 1].min() >= 19.5, among  # [:, 0] is the colour itself
    within = F.colour_difference(np.array(clusters)[:, None], np.array(clusters)[None])
    assert within[~np.eye(10, dtype=bool)].min() >= 19
    # The check itself tells the old palettes (tab20 clusters) from the new ones.
    tab20 = sns.color_palette("tab20", 20)[0::2]
    old = F.colour_difference(np.array(list(labels.values()))[:, None], np.array(tab20)[None])
    assert old.min() < 10


def test_every_figure_is_also_written_as_pdf(tmp_path, four_clusters):
    xy, clusters, _, _ = four_clusters
    png = F.plot_clusters(xy, clusters, tmp_path / "c.png")
    pdf = F.vector_path(png)
    assert pdf == tmp_path / "c.pdf" and pdf.read_bytes().startswith(b"%PDF")


# --- figures ----------------------------------------------------------------------------------------


def test_cluster_colours_match_between_umap_and_sigma_phi_figures(tmp_path, four_clusters):
    xy, clusters, values, fits = four_clusters
    umap_png = read_png(F.plot_clusters(xy, clusters, tmp_path / "clusters.png"))
    sigma_png = read_png(F.plot_sigma_phi_distributions(values, fits, tmp_path / "sigma.png"))
    assert_size(umap_png, 6.5, 6.0)
    # 4 clusters + overlay panel: 2 rows of 4, then the parameter panels for 4 groups.
    assert_size(sigma_png, 4 * 3.2, 2 * 2.4 + 1.2 + 0.22 * 4)
    for c in range(4):
        colour = F.cluster_colour(c)
        assert pixels_near(umap_png, colour) > 50, f"cluster {c} colour missing from UMAP figure"
        assert pixels_near(sigma_png, colour) > 50, f"cluster {c} colour missing from sigma_phi"
    # The search is discriminating: a colour of an absent cluster number is not found.
    assert pixels_near(umap_png, F.cluster_colour(6)) < 5
    assert pixels_near(sigma_png, F.cluster_colour(6)) < 5


def test_sigma_phi_figure_shows_labels_what_clusters_hold_and_intervals(tmp_path, four_clusters):
    _, _, values, fits = four_clusters
    fits = fits.assign(
        median_low=fits["median"] * 0.9,
        median_high=fits["median"] * 1.1,
        sigma_low=0.4,
        sigma_high=0.6,
        n_frames=fits["n"] * 20,
    )
    label_values = {"arc": values[0], "discrete": values[3]}
    label_fits = fits.iloc[[0, 3]].assign(label=["arc", "discrete"]).drop(columns="cluster")
    path = F.plot_sigma_phi_distributions(
        values,
        fits,
        tmp_path / "s.png",
        label_values=label_values,
        label_fits=label_fits,
        dominant_labels={3: "discrete 80%"},
    )
    image = read_png(path)
    # Clusters (2 rows), labels (1 row), parameters of 6 groups.
    assert_size(image, 4 * 3.2, 3 * 2.4 + 1.2 + 0.22 * 6)
    for label, colour in F.label_palette(["arc", "discrete"]).items():
        assert pixels_near(image, colour) > 50, label
    assert F.vector_path(path).is_file()


def test_clusters_on_tsne_and_umap_side_by_side(tmp_path, four_clusters):
    xy, clusters, _, _ = four_clusters
    both = read_png(F.plot_clusters(xy, clusters, tmp_path / "both.png", tsne_xy=-xy))
    assert_size(both, 12.5, 6.0)
    half = both.shape[1] // 2
    for c in range(4):
        colour = F.cluster_colour(c)
        assert pixels_near(both[:, :half], colour) > 50, f"cluster {c} missing from t-SNE panel"
        assert pixels_near(both[:, half:], colour) > 50, f"cluster {c} missing from UMAP panel"
    with pytest.raises(ValueError, match="same length"):
        F.plot_clusters(xy, clusters, tmp_path / "x.png", tsne_xy=xy[:-1])


def test_sigma_phi_tolerates_nonpositive_values_and_missing_fit(tmp_path, four_clusters):
    _, _, values, fits = four_clusters
    values = dict(values)
    values[1] = np.concatenate([values[1], [0.0, -1.0, np.nan]])
    fits = fits[fits.cluster != 2].copy()
    fits.loc[fits.cluster == 3, ["sigma", "median"]] = [0.0, np.nan]  # degenerate fit
    image = read_png(F.plot_sigma_phi_distributions(values, fits, tmp_path / "s.png"))
    assert non_white_fraction(image) > 0.02
    assert pixels_near(image, F.cluster_colour(0)) > 50


def rendered_axes(fig, ax):
    """RGB pixels (H, W, 3) in [0, 1] of the inside of ``ax`` in the rendered ``fig``."""
    fig.canvas.draw()
    pixels = np.asarray(fig.canvas.buffer_rgba())[..., :3] / 255.0
    box = ax.get_window_extent()
    height = pixels.shape[0]
    rows = slice(int(height - box.y1) + 2, int(height - box.y0) - 2)  # inside the frame
    return pixels[rows, int(box.x0) + 2 : int(box.x1) - 2]


def test_sky_maps_are_north_up_and_east_right_with_the_site_marked():
    # A pattern that is bright in the north (rows of high latitude, the stores' last rows) and
    # one bright in the east. The old figures drew row 0 at the top: north down.
    lat = np.linspace(58.0, 64.0, 24)
    lon = np.linspace(-128.0, -114.0, 24)
    north = np.tile(np.linspace(0.0, 1.0, 24)[:, None], (1, 24))  # (lat, lon), brightest north
    east = north.T.copy()
    # One site position per image, as the reconstructions file gives them.
    grid = F.SkyGrid(y=lat, x=lon, geographic=True, site_lat=[61.0] * 2, site_lon=[-121.0] * 2)
    fig = F.reconstruction_figure(np.stack([north, east]), np.stack([north, east]), grid=grid)
    original_north, original_east = fig.axes[0], fig.axes[1]
    shown = rendered_axes(fig, original_north).mean(axis=-1)
    top, bottom = shown[: len(shown) // 3], shown[-len(shown) // 3 :]
    assert top.mean() > bottom.mean() + 0.4, "north is not up"
    shown = rendered_axes(fig, original_east).mean(axis=-1)
    third = shown.shape[1] // 3
    assert shown[:, -third:].mean() > shown[:, :third].mean() + 0.4, "east is not right"
    # Axes in geographic coordinates: the site (61 N, 121 W) is a red star where it stands.
    assert original_north.get_ylim() == pytest.approx((57.87, 64.13), abs=0.01)
    assert "latitude" in fig.axes[2].get_ylabel() or "latitude" in original_north.get_ylabel()
    red = np.argwhere(
        np.all(np.abs(rendered_axes(fig, original_north) - (1, 42 / 255, 0)) < 0.05, -1)
    )
    assert len(red) > 10
    centre_row, centre_col = red.mean(axis=0) / shown.shape[:2]
    assert centre_row == pytest.approx((64.13 - 61.0) / 6.26, abs=0.05)
    assert centre_col == pytest.approx((-121.0 + 128.3) / 14.6, abs=0.05)
    # A colour bar with units under each column.
    assert any(ax.get_xlabel() == "normalised counts" for ax in fig.axes)


def test_reconstructions_blank_nan_and_share_a_scale_per_column(tmp_path):
    ramp = np.tile(np.linspace(0.0, 1.0, 64), (64, 1))
    originals = np.stack([ramp, ramp, np.full((64, 64), np.nan)])
    # Column 0: reconstruction half as bright, so with a shared scale it renders darker.
    reconstructions = np.stack([0.5 * ramp, ramp, ramp])
    fig = F.reconstruction_figure(originals, reconstructions, titles=["a", "b", "c"])
    panels = [
        [rendered_axes(fig, fig.axes[i * 3 + j]).mean(axis=-1) for j in range(3)] for i in (0, 1)
    ]
    assert panels[1][0].mean() < panels[0][0].mean() - 0.1
    assert panels[1][1].mean() == pytest.approx(panels[0][1].mean(), abs=0.02)
    # The all-NaN original is blank (white); its reconstruction is not.
    assert (panels[0][2] > 0.95).mean() > 0.95
    assert (panels[1][2] < 0.95).mean() > 0.3
    image = read_png(
        F.plot_reconstructions(originals, reconstructions, tmp_path / "rec.png", titles="abc")
    )
    assert_size(image, 2.3 * 3 + 0.6, 5.4)
    assert F.vector_path(tmp_path / "rec.png").is_file()


def test_embeddings_by_label_uses_label_colours(tmp_path):
    rng = np.random.default_rng(1)
    labels = np.array(["arc", "moon", "clear", "other"])[np.repeat(np.arange(4), 100)]
    xy = rng.standard_normal((400, 2)) + 6 * np.repeat(np.eye(4, 2), 100, axis=0)
    image = read_png(F.plot_embeddings_by_label(xy, xy[:, ::-1], labels, tmp_path / "e.png"))
    assert_size(image, 11.0, 5.0)
    for label, colour in F.label_palette(labels).items():
        assert pixels_near(image, colour) > 50, label
    assert pixels_near(image, F.label_palette(["cloudy"])["cloudy"]) < 5


def test_unlabelled_samples_are_grey_not_a_label_colour(tmp_path):
    # The photometer demo labels half its windows: the rest were once drawn as a label called
    # "unlabelled", in a label colour (dark green beside diffuse's green).
    rng = np.random.default_rng(2)
    xy = rng.standard_normal((300, 2))
    labels = np.array(["elve"] * 100 + [None] * 100 + [np.nan] * 100, dtype=object)
    image = read_png(F.plot_embeddings_by_label(xy, xy, labels, tmp_path / "e.png"))
    assert pixels_near(image, F._UNLABELLED_COLOUR) > 200
    assert pixels_near(image, F.label_palette(["elve"])["elve"]) > 50
    others = F.label_palette(["elve", "unlabelled"])
    assert pixels_near(image, others["unlabelled"]) < 5


def test_cluster_label_table_heatmap(tmp_path):
    table = pd.DataFrame(
        [[30, 2, 0], [1, 40, 5], [0, 3, 20]],
        index=pd.Index([0, 1, 2], name="cluster"),
        columns=pd.Index(["moon", "arc", "clear"], name="label"),
    )
    image = read_png(F.plot_cluster_label_table(table, tmp_path / "t.png"))
    assert_size(image, 1.0 * 3 + 2.5, 0.45 * 3 + 1.5)
    assert non_white_fraction(image) > 0.3
    # Each cluster number in its own cluster colour (as in the cluster and sigma_phi figures).
    for cluster in table.index:
        assert pixels_near(image, F.cluster_colour(cluster)) > 5, cluster


def test_training_curves(tmp_path):
    metrics = pd.DataFrame(
        {
            "epoch": np.arange(1, 11),
            "train_loss": np.exp(-np.arange(10) / 3),
            "val_loss": np.exp(-np.arange(10) / 4) * 1.1,
        }
    )
    image = read_png(F.plot_training_curves(metrics, tmp_path / "curves" / "loss.png"))
    assert_size(image, 6.0, 4.0)
    assert non_white_fraction(image) > 0.01


def test_training_curves_of_a_negative_loss_are_drawn(tmp_path):
    # The Beta VAE's loss (a negative ELBO) is negative: on the old log axis nothing was drawn.
    metrics = pd.DataFrame(
        {
            "epoch": np.arange(1, 11),
            "train_loss": -9000.0 - 300 * np.arange(10),
            "val_loss": -8900.0 - 310 * np.arange(10),
        }
    )
    image = read_png(F.plot_training_curves(metrics, tmp_path / "loss.png", "negative ELBO"))
    training, validation = sns.color_palette()[:2]  # the first two line colours
    assert pixels_near(image, training) > 200
    assert pixels_near(image, validation) > 200


def test_training_curves_count_whole_epochs(tmp_path, monkeypatch):
    figures = []
    monkeypatch.setattr(F, "_save", lambda fig, path: figures.append(fig) or path)
    metrics = pd.DataFrame({"epoch": [1, 2], "train_loss": [0.1, 0.05], "val_loss": [0.04, 0.03]})
    F.plot_training_curves(metrics, tmp_path / "two.png")
    (ax,) = figures[0].axes
    ticks = [t for t in ax.get_xticks() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]
    assert ticks and all(float(t).is_integer() for t in ticks), ticks


def test_mean_waveforms_in_cluster_colours(tmp_path):
    t = np.linspace(0, 1, 500)
    mean = np.stack([[np.exp(-(((t - 0.2 * (b + 1)) / 0.05) ** 2)) for b in range(3)]] * 2)
    std = 0.1 * np.ones_like(mean)
    path = F.plot_mean_waveforms(
        mean, std, ["337 nm", "180-230 nm", "777.4 nm"], tmp_path / "w.png", 100e3
    )
    image = read_png(path)
    assert_size(image, 3.2 * 3, 1.6 * 2 + 0.6)
    for c in range(2):
        assert pixels_near(image, F.cluster_colour(c)) > 50
    # Rows of clusters 1 and 4 (cluster 0 and 2-3 absent) take those clusters' colours, as in
    # the cluster and sigma_phi figures, not the colours of rows 0 and 1.
    image = read_png(
        F.plot_mean_waveforms(mean, std, list("abc"), tmp_path / "v.png", clusters=[1, 4])
    )
    assert pixels_near(image, F.cluster_colour(4)) > 50
    assert pixels_near(image, F.cluster_colour(0)) < 5
    with pytest.raises(ValueError, match="cluster numbers"):
        F.plot_mean_waveforms(mean, std, list("abc"), tmp_path / "x.png", clusters=[1])


def test_waveform_reconstructions_draw_each_band_in_its_colour(tmp_path):
    t = np.linspace(0, 1, 400)
    originals = np.stack([[np.exp(-(((t - 0.3) / 0.05) ** 2))] * 3] * 2)
    reconstructions = 0.8 * originals
    path = F.plot_waveform_reconstructions(
        originals, reconstructions, ["337 nm", "180-230 nm", "777.4 nm"], tmp_path / "r.png", 100e3
    )
    image = read_png(path)
    assert_size(image, 2.6 * 2, 1.5 * 3 + 0.8)
    for band in range(3):
        assert pixels_near(image, F.band_colour(band)) > 50
    with pytest.raises(ValueError, match="band names"):
        F.plot_waveform_reconstructions(originals, originals, ["337 nm"], tmp_path / "x.png")
    with pytest.raises(ValueError, match="both be"):
        F.plot_waveform_reconstructions(
            originals, originals[:1], ["a", "b", "c"], tmp_path / "x.png"
        )


def test_bad_shapes_are_rejected(tmp_path):
    with pytest.raises(ValueError, match="reconstructions"):
        F.plot_reconstructions(np.zeros((2, 8, 8)), np.zeros((3, 8, 8)), tmp_path / "x.png")
