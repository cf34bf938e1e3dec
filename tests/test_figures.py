"""Figures: each writes a readable PNG of the documented size, with the agreed colours."""

from __future__ import annotations

import matplotlib.image as mpimg
import numpy as np
import pandas as pd
import pytest

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


# --- figures ----------------------------------------------------------------------------------------


def test_cluster_colours_match_between_umap_and_sigma_phi_figures(tmp_path, four_clusters):
    xy, clusters, values, fits = four_clusters
    umap_png = read_png(F.plot_clusters(xy, clusters, tmp_path / "clusters.png"))
    sigma_png = read_png(F.plot_sigma_phi_distributions(values, fits, tmp_path / "sigma.png"))
    assert_size(umap_png, 6.5, 6.0)
    assert_size(sigma_png, 4 * 3.2, 2 * 2.4)  # 4 clusters + overlay panel: 2 rows of 4
    for c in range(4):
        colour = F.cluster_colour(c)
        assert pixels_near(umap_png, colour) > 50, f"cluster {c} colour missing from UMAP figure"
        assert pixels_near(sigma_png, colour) > 50, f"cluster {c} colour missing from sigma_phi"
    # The search is discriminating: a colour of an absent cluster number is not found.
    assert pixels_near(umap_png, F.cluster_colour(6)) < 5
    assert pixels_near(sigma_png, F.cluster_colour(6)) < 5


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


def test_reconstructions_blank_nan_and_share_a_scale_per_column(tmp_path):
    ramp = np.tile(np.linspace(0.0, 1.0, 64), (64, 1))
    originals = np.stack([ramp, ramp, np.full((64, 64), np.nan)])
    # Column 0: reconstruction half as bright, so with a shared scale it renders darker.
    reconstructions = np.stack([0.5 * ramp, ramp, ramp])
    path = F.plot_reconstructions(
        originals, reconstructions, tmp_path / "rec.png", titles=["a", "b", "c"]
    )
    image = read_png(path)
    assert_size(image, 1.8 * 3, 4.0)
    grey = image.mean(axis=-1)
    height, width = grey.shape
    top, bottom = slice(0, height // 2), slice(height // 2, height)
    col = [slice(j * width // 3, (j + 1) * width // 3) for j in range(3)]
    assert grey[bottom, col[0]].mean() < grey[top, col[0]].mean() - 0.1
    assert grey[bottom, col[1]].mean() == pytest.approx(grey[top, col[1]].mean(), abs=0.02)
    # The all-NaN original is blank (white apart from the frame); its reconstruction is not.
    assert non_white_fraction(image[top, col[2]]) < 0.05
    assert non_white_fraction(image[bottom, col[2]]) > 0.3


def test_embeddings_by_label_uses_label_colours(tmp_path):
    rng = np.random.default_rng(1)
    labels = np.array(["arc", "moon", "clear", "other"])[np.repeat(np.arange(4), 100)]
    xy = rng.standard_normal((400, 2)) + 6 * np.repeat(np.eye(4, 2), 100, axis=0)
    image = read_png(F.plot_embeddings_by_label(xy, xy[:, ::-1], labels, tmp_path / "e.png"))
    assert_size(image, 11.0, 5.0)
    for label, colour in F.label_palette(labels).items():
        assert pixels_near(image, colour) > 50, label
    assert pixels_near(image, F.label_palette(["cloudy"])["cloudy"]) < 5


def test_cluster_label_table_heatmap(tmp_path):
    table = pd.DataFrame(
        [[30, 2, 0], [1, 40, 5], [0, 3, 20]],
        index=pd.Index([0, 1, 2], name="cluster"),
        columns=pd.Index(["moon", "arc", "clear"], name="label"),
    )
    image = read_png(F.plot_cluster_label_table(table, tmp_path / "t.png"))
    assert_size(image, 1.0 * 3 + 2.5, 0.45 * 3 + 1.5)
    assert non_white_fraction(image) > 0.3


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
        assert pixels_near(image, F.cluster_colour(band)) > 50
    with pytest.raises(ValueError, match="band names"):
        F.plot_waveform_reconstructions(originals, originals, ["337 nm"], tmp_path / "x.png")
    with pytest.raises(ValueError, match="both be"):
        F.plot_waveform_reconstructions(
            originals, originals[:1], ["a", "b", "c"], tmp_path / "x.png"
        )


def test_bad_shapes_are_rejected(tmp_path):
    with pytest.raises(ValueError, match="reconstructions"):
        F.plot_reconstructions(np.zeros((2, 8, 8)), np.zeros((3, 8, 8)), tmp_path / "x.png")
