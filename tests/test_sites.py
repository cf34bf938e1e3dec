"""Site-invariance measures on planted latents, checked against scikit-learn and fit_groups."""

from __future__ import annotations

import json

import matplotlib.image as mpimg
import numpy as np
import pandas as pd
import pytest
from sklearn.model_selection import StratifiedKFold, cross_val_score
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from latentsky import figures as F
from latentsky.analysis import sites as S
from latentsky.analysis.labels import CLASSES
from latentsky.analysis.lognormal import FIT_KEYS, fit_groups

SITES = ("gill", "fsim", "rank")  # deliberately unsorted: every table sorts them
PLANTED_CLASSES = ("arc", "diffuse", "discrete", "moon")
CORNERS = np.array([[0.0, 0.0], [4.0, 0.0], [0.0, 4.0], [4.0, 4.0]])


def planted(site_encoded: bool, per_class: int = 30, seed: int = 0, site_spread: float = 0.3):
    """Latents ``(N, 3)``, sites and labels: 30 images of each of 4 classes at each of 3 sites.

    Dimensions 1-2 place each class at a corner of a square (spread 0.3). Dimension 0 is the
    site: 5 x its number (spread ``site_spread``) if ``site_encoded``, else noise with no site in
    it.
    """
    rng = np.random.default_rng(seed)
    site_index = np.repeat(np.arange(len(SITES)), per_class * len(PLANTED_CLASSES))
    class_index = np.tile(np.repeat(np.arange(len(PLANTED_CLASSES)), per_class), len(SITES))
    n = len(site_index)
    site_dim = 5.0 * site_index + site_spread * rng.standard_normal(n)
    if not site_encoded:
        site_dim = rng.normal(size=n)
    class_dims = CORNERS[class_index] + 0.3 * rng.standard_normal((n, 2))
    latents = np.column_stack([site_dim, class_dims])
    sites = np.array(SITES, dtype=object)[site_index]
    labels = np.array(PLANTED_CLASSES, dtype=object)[class_index]
    return latents, sites, labels


def sklearn_cross_site(latents, labels, sites, train_site, test_site, k=5):
    """The cross-site score by hand: pooled scaler, fit on the training site, score the test."""
    z = StandardScaler().fit(latents).transform(latents)
    labelled = pd.notna(labels)
    train = labelled & (sites == train_site)
    test = labelled & (sites == test_site)
    model = KNeighborsClassifier(n_neighbors=k).fit(z[train], labels[train].astype(str))
    return model.score(z[test], labels[test].astype(str))


# --- site kNN ---------------------------------------------------------------------------------------


def test_site_knn_near_one_when_the_latents_encode_the_site():
    latents, sites, _ = planted(site_encoded=True)
    result = S.site_knn(latents, sites, k=5, folds=5, seed=0)
    assert result.accuracy > 0.98
    assert result.chance == pytest.approx(1 / 3)
    assert result.majority_rate == pytest.approx(1 / 3)


def test_site_knn_near_chance_when_the_site_is_noise_and_equals_sklearn():
    latents, sites, _ = planted(site_encoded=False)
    result = S.site_knn(latents, sites, k=5, folds=5, seed=3)
    # 360 samples: the standard error of an accuracy near 1/3 is about 0.025.
    assert abs(result.accuracy - 1 / 3) < 0.1
    pipeline = make_pipeline(StandardScaler(), KNeighborsClassifier(n_neighbors=5))
    cv = StratifiedKFold(n_splits=5, shuffle=True, random_state=3)
    expected = cross_val_score(pipeline, latents, sites.astype(str), cv=cv).mean()
    assert result.accuracy == pytest.approx(expected, abs=1e-12)
    assert S.site_knn(latents, sites, k=5, folds=5, seed=3) == result


def test_site_knn_reports_chance_and_majority_rate_for_unequal_sites():
    rng = np.random.default_rng(1)
    sites = np.repeat(["a", "b", "c"], [200, 100, 50])
    result = S.site_knn(rng.normal(size=(350, 4)), sites)
    assert result.chance == pytest.approx(1 / 3)
    assert result.majority_rate == pytest.approx(200 / 350)


def test_site_knn_needs_two_sites_and_a_site_for_every_sample():
    latents, sites, _ = planted(site_encoded=True)
    with pytest.raises(ValueError, match="two sites"):
        S.site_knn(latents, np.full(len(latents), "gill"))
    sites = sites.copy()
    sites[3] = None
    with pytest.raises(ValueError, match="no site"):
        S.site_knn(latents, sites)
    with pytest.raises(ValueError, match="sites"):
        S.site_knn(latents, sites[:-1])


# --- cross-site class kNN ---------------------------------------------------------------------------


@pytest.mark.parametrize("site_encoded", [True, False])
def test_cross_site_knn_near_one_when_classes_are_shared(site_encoded):
    latents, sites, labels = planted(site_encoded)
    result = S.cross_site_knn(latents, labels, sites, k=5)
    names = sorted(SITES)
    assert list(result.matrix.index) == names and list(result.matrix.columns) == names
    assert result.matrix.index.name == "train_site" and result.matrix.columns.name == "test_site"
    assert np.isnan(np.diag(result.matrix.to_numpy())).all()
    off = ~np.eye(3, dtype=bool)
    assert (result.matrix.to_numpy()[off] > 0.97).all()
    assert (result.n_scored.to_numpy()[off] == 120).all()
    assert (np.diag(result.n_scored.to_numpy()) == 0).all()
    assert result.mean > 0.97


def test_pooled_scaling_keeps_a_site_signature_from_swamping_the_classes():
    # The site's dimension is nearly constant within a site: scaled by the training site's
    # spread, the other sites' offset there drowns the classes (the docstring's reason).
    latents, sites, labels = planted(site_encoded=True, site_spread=0.01)
    assert S.cross_site_knn(latents, labels, sites, k=5).mean > 0.97
    own_scaling = []
    for a in SITES:
        scaler = StandardScaler().fit(latents[sites == a])
        model = KNeighborsClassifier(n_neighbors=5)
        model.fit(scaler.transform(latents[sites == a]), labels[sites == a])
        own_scaling += [
            model.score(scaler.transform(latents[sites == b]), labels[sites == b])
            for b in SITES
            if b != a
        ]
    assert np.mean(own_scaling) < 0.4  # chance: 0.25


def test_cross_site_matrix_equals_a_hand_computed_classifier():
    # Classes that overlap, so the accuracies are far from 0 and 1 and any difference shows.
    rng = np.random.default_rng(5)
    n = 300
    sites = np.array(SITES, dtype=object)[rng.integers(0, 3, n)]
    labels = np.array(PLANTED_CLASSES, dtype=object)[rng.integers(0, 4, n)]
    latents = rng.normal(size=(n, 5)) * [1, 1, 3, 10, 0.1]
    latents[:, 0] += (labels == "arc") * 1.5 + (sites == "rank") * 2.0
    # Unlabelled images count in the pooled scaling only.
    labels[rng.random(n) < 0.2] = None
    result = S.cross_site_knn(latents, labels, sites, k=7)
    expected = []
    for a in SITES:
        for b in SITES:
            if a != b:
                score = sklearn_cross_site(latents, labels, sites, a, b, k=7)
                assert result.matrix.loc[a, b] == pytest.approx(score, abs=1e-12)
                assert result.n_scored.loc[a, b] == np.sum(pd.notna(labels) & (sites == b))
                expected.append(score)
    assert 0.2 < min(expected) and max(expected) < 0.9
    assert result.mean == pytest.approx(np.mean(expected), abs=1e-12)


def test_cross_site_skips_labels_the_training_site_lacks():
    latents, sites, labels = planted(site_encoded=True)
    labels = labels.copy()
    # gill has no moon images labelled; rank has no labels at all.
    labels[(sites == "gill") & (labels == "moon")] = None
    labels[sites == "rank"] = None
    result = S.cross_site_knn(latents, labels, sites, k=5)
    # Trained at gill, fsim's 30 moon images are not scored (gill cannot predict moon).
    assert result.n_scored.loc["gill", "fsim"] == 90
    assert result.matrix.loc["gill", "fsim"] > 0.97
    assert result.n_scored.loc["fsim", "gill"] == 90
    # No labels at rank: nothing to train on there nor to score.
    assert result.matrix.loc["rank"].isna().all() and result.matrix["rank"].isna().all()
    assert result.mean == pytest.approx(
        np.mean([result.matrix.loc["gill", "fsim"], result.matrix.loc["fsim", "gill"]])
    )


def test_cross_site_caps_k_at_the_training_sites_labels():
    latents, sites, labels = planted(site_encoded=True)
    labels = labels.copy()
    few = np.flatnonzero(sites == "gill")
    labels[few[2:]] = None  # two labelled images at gill, both arc
    result = S.cross_site_knn(latents, labels, sites, k=5)
    assert result.n_scored.loc["gill", "fsim"] == 30  # fsim's arcs, all predicted arc
    assert result.matrix.loc["gill", "fsim"] == 1.0


def test_no_pair_to_score_gives_nan_mean():
    latents, sites, _ = planted(site_encoded=True)
    result = S.cross_site_knn(latents, np.full(len(sites), None), sites)
    assert np.isnan(result.mean) and result.matrix.isna().all().all()


# --- clusters and sites -----------------------------------------------------------------------------


def test_cluster_site_shares_sum_to_one_per_cluster():
    sites = np.array(["rank", "gill", "gill", "fsim", "rank", "rank", "gill"], dtype=object)
    clusters = np.array([1, 0, 0, 1, 1, 2, 2])
    shares, counts = S.cluster_site_shares(clusters, sites)
    assert list(counts.columns) == ["fsim", "gill", "rank"] and list(counts.index) == [0, 1, 2]
    assert counts.to_numpy().tolist() == [[0, 2, 0], [1, 0, 2], [0, 1, 1]]
    assert np.allclose(shares.sum(axis=1), 1.0)
    assert shares.loc[1, "rank"] == pytest.approx(2 / 3)


def test_sigma_phi_fits_pooled_and_per_site_equal_fit_groups():
    rng = np.random.default_rng(2)
    n = 600
    sites = np.array(SITES, dtype=object)[rng.integers(0, 3, n)]
    clusters = rng.integers(0, 3, n).astype(float)
    clusters[:10] = np.nan  # in no cluster
    clusters[(sites == "rank") & (clusters == 2)] = 1  # cluster 2 absent at rank
    sigma_phi = rng.lognormal(np.log(0.05) + 0.3 * np.nan_to_num(clusters), 0.5)
    kwargs = {"n_bootstrap": 50, "seed": 4}
    table = S.sigma_phi_site_fits(sigma_phi, clusters, sites, **kwargs)
    assert list(table.columns) == ["group_type", "cluster", "site", *FIT_KEYS]

    pooled = table[table["group_type"] == "cluster"]
    # What the single-site workflow writes for its clusters (fit_sigma_phi.py).
    workflow = fit_groups(sigma_phi, clusters, n_bootstrap=50, seed=4)
    assert pooled["site"].isna().all()
    assert pooled["cluster"].tolist() == workflow["group"].tolist()
    pd.testing.assert_frame_equal(
        pooled[list(FIT_KEYS)].reset_index(drop=True), workflow[list(FIT_KEYS)]
    )

    per_site = table[table["group_type"] == "cluster_site"]
    assert per_site["site"].unique().tolist() == sorted(SITES)
    for site in SITES:
        rows = per_site[per_site["site"] == site].reset_index(drop=True)
        at_site = sites == site
        expected = fit_groups(sigma_phi[at_site], clusters[at_site], "cluster", **kwargs)
        pd.testing.assert_frame_equal(rows[["cluster", *FIT_KEYS]], expected)
    assert 2 not in per_site.loc[per_site["site"] == "rank", "cluster"].tolist()


# --- summary ----------------------------------------------------------------------------------------


def embedding_table(latents, sites, labels, clusters):
    """An embedding table whose ``index`` points into latents with non-embedded rows between."""
    n = len(latents)
    index = 2 * np.arange(n)  # the odd rows of the full latents are not embedded
    full = np.full((2 * n, latents.shape[1]), 1e6)
    full[index] = latents
    nights = pd.Timestamp("2024-01-08") + pd.to_timedelta(np.arange(len(index)) % 5, unit="D")
    table = pd.DataFrame(
        {"time": nights, "index": index, "label": labels, "cluster": clusters, "site": sites}
    )
    return table, full


def test_site_measures_multi_site_summary():
    latents, sites, labels = planted(site_encoded=True)
    clusters = np.array([SITES.index(s) for s in sites])  # one cluster per site: separated
    table, full = embedding_table(latents, sites, labels, clusters)
    summary = S.site_measures(table, full, k=5, folds=5, seed=0)
    json.dumps(summary, allow_nan=False)
    assert summary["n_sites"] == 3 and summary["sites"] == ["fsim", "gill", "rank"]
    assert summary["site_counts"] == {"fsim": 120, "gill": 120, "rank": 120}
    site = S.site_knn(latents, sites, k=5, folds=5, seed=0)
    assert summary["site_knn_accuracy"] == site.accuracy > 0.98
    assert summary["site_knn_chance"] == pytest.approx(1 / 3)
    assert summary["site_knn_majority_rate"] == pytest.approx(1 / 3)
    cross = S.cross_site_knn(latents, labels, sites, k=5)
    assert summary["cross_site_knn_accuracy"] == cross.mean
    assert summary["cross_site_knn_matrix"] == {
        a: {b: cross.matrix.loc[a, b] for b in sorted(SITES) if b != a} for a in sorted(SITES)
    }
    assert summary["cross_site_knn_n_scored"]["gill"] == {"fsim": 120, "rank": 120}
    assert summary["cluster_site_shares"]["0"] == {"fsim": 0.0, "gill": 1.0, "rank": 0.0}
    assert summary["cluster_site_counts"]["2"] == {"fsim": 0, "gill": 0, "rank": 120}
    assert S.site_measures(table, full, k=5, folds=5, seed=0) == summary


def test_site_measures_of_one_site_has_only_n_sites():
    latents, sites, labels = planted(site_encoded=True)
    table, full = embedding_table(latents, sites, labels, np.zeros(len(sites), dtype=int))
    assert S.site_measures(table.drop(columns="site"), full) == {"n_sites": 1}
    assert S.site_measures(table.assign(site="gill"), full) == {"n_sites": 1}


# --- figure -----------------------------------------------------------------------------------------


def cielab(rgb):
    """CIELAB (D65) of sRGB colours in [0, 1], shape (..., 3)."""
    c = np.asarray(rgb, dtype=np.float64)
    linear = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    rgb_to_xyz = np.array(
        [[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722], [0.0193, 0.1192, 0.9505]]
    )
    xyz = linear @ rgb_to_xyz.T / np.array([0.95047, 1.0, 1.08883])
    f = np.where(xyz > 216 / 24389, np.cbrt(xyz), (24389 / 27 * xyz + 16) / 116)
    return np.stack(
        [116 * f[..., 1] - 16, 500 * (f[..., 0] - f[..., 1]), 200 * (f[..., 1] - f[..., 2])], -1
    )


def test_site_colours_cannot_be_taken_for_label_colours():
    site_colours = list(F.site_palette([f"s{i}" for i in range(8)]).values())
    class_colours = list(F.label_palette(CLASSES).values())
    sites_lab = cielab(site_colours)
    to_classes = np.linalg.norm(sites_lab[:, None] - cielab(class_colours)[None], axis=-1)
    between = np.linalg.norm(sites_lab[:, None] - sites_lab[None], axis=-1)
    assert to_classes.min() > 35
    assert between[~np.eye(8, dtype=bool)].min() > 25
    assert between[:4, :4][~np.eye(4, dtype=bool)].min() > 50  # the usual few sites: far apart
    assert list(F.site_palette(["rank", "fsim", "rank"])) == ["fsim", "rank"]


def pixels_near(image, rgb, tol=2.5 / 255):
    return int(np.sum(np.all(np.abs(image - np.asarray(rgb)) <= tol, axis=-1)))


def test_umap_by_site_beside_umap_by_label(tmp_path, monkeypatch):
    latents, sites, labels = planted(site_encoded=True)
    labels = labels.copy()
    labels[::7] = None
    umap_xy = latents[:, 1:] + np.outer(latents[:, 0], [2.0, 0.0])  # one island per site
    legends = []
    save = F._save

    def keep_legends(fig, path):
        legends.extend(
            (legend.get_title().get_text(), [t.get_text() for t in legend.get_texts()])
            for legend in fig.legends
        )
        assert [ax.get_title() for ax in fig.axes] == ["UMAP by site (3 sites)", "UMAP by label"]
        return save(fig, path)

    monkeypatch.setattr(F, "_save", keep_legends)
    path = F.plot_embeddings_by_site(umap_xy, sites, labels, tmp_path / "figures" / "sites.png")
    image = mpimg.imread(path)[..., :3]
    assert image.shape[:2] == (5 * F.DPI, 12.5 * F.DPI)
    assert legends == [
        ("site", ["fsim (120)", "gill (120)", "rank (120)"]),
        ("label", [f"{c} ({np.sum(labels == c)})" for c in PLANTED_CLASSES] + ["unlabelled (52)"]),
    ]
    half = image.shape[1] // 2
    for site, colour in F.site_palette(sites).items():
        assert pixels_near(image[:, :half], colour) > 50, site
        assert pixels_near(image[:, half:], colour) < 5, site
    for label, colour in F.label_palette(PLANTED_CLASSES).items():
        assert pixels_near(image[:, half:], colour) > 50, label
        assert pixels_near(image[:, :half], colour) < 5, label
    with pytest.raises(ValueError, match="same length"):
        F.plot_embeddings_by_site(umap_xy[:-1], sites, labels, tmp_path / "x.png")


def test_grouped_folds_do_not_let_a_night_give_its_site_away():
    """Each site sees its own scenes: every night a site-and-night offset, the same for all its
    frames that night (as consecutive frames of one aurora are alike), nothing about the camera.
    Random folds find each frame's night-mates and so its site; folds by night do not."""
    rng = np.random.default_rng(0)
    sites = np.repeat(["fsim", "gill", "rank"], 200)
    nights = np.tile(np.repeat(np.arange(5), 40), 3)
    offsets = rng.normal(size=(3, 5, 4)) * 3
    site_index = np.searchsorted(["fsim", "gill", "rank"], sites)
    latents = offsets[site_index, nights] + rng.normal(size=(600, 4)) * 0.1
    random_folds = S.site_knn(latents, sites, folds=5, seed=0).accuracy
    by_night = S.site_knn(latents, sites, folds=5, groups=nights).accuracy
    assert random_folds > 0.95
    assert by_night < 0.6  # chance is 1/3; the offsets are random, so some nights look alike
    with pytest.raises(ValueError, match="two groups"):
        S.site_knn(latents, sites, groups=np.zeros(600))
