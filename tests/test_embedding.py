"""Embeddings, spectral clustering and label bookkeeping on small planted structures."""

from __future__ import annotations

import hashlib
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from scipy import sparse
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree
from sklearn.decomposition import PCA

from latentsky.analysis import embedding as E


def planted_blobs(sizes, centres, spread, seed):
    """Gaussian blobs of the given sizes around ``centres`` ``(k, d)``; returns (x, labels)."""
    rng = np.random.default_rng(seed)
    centres = np.asarray(centres, dtype=float)
    x = np.concatenate(
        [c + spread * rng.standard_normal((n, len(c))) for n, c in zip(sizes, centres, strict=True)]
    )
    y = np.repeat(np.arange(len(sizes)), sizes)
    return x, y


@pytest.fixture(scope="module")
def blobs_2d():
    # Four 2-D blobs 10 sd apart, unequal sizes so that the size ordering is unambiguous.
    return planted_blobs([140, 100, 70, 40], [[0, 0], [10, 0], [0, 10], [10, 10]], 1.0, seed=1)


@pytest.fixture(scope="module")
def latent_blobs():
    """N=300 latent codes, 32-D: 3 classes in 31 dims plus one huge pure-noise dimension.

    The noise dimension (sd 1000) would dominate raw Euclidean distances; the embeddings only
    keep the classes apart because they standardise each dimension first.
    """
    rng = np.random.default_rng(2)
    centres = 4.0 * rng.standard_normal((3, 31))
    x, y = planted_blobs([100, 100, 100], centres, 1.0, seed=3)
    noise = 1000.0 * rng.standard_normal((len(x), 1))
    return np.hstack([x, noise]), y


# --- knn_affinity -------------------------------------------------------------------------


def test_affinity_is_sparse_symmetric_with_order_n_k_entries():
    x, _ = planted_blobs([1000, 1000], [[0, 0], [3, 0]], 1.0, seed=4)
    k = 10
    w = E.knn_affinity(x, n_neighbors=k)
    assert sparse.issparse(w)
    assert w.shape == (2000, 2000)
    # Union of directed kNN edges: at least N*k (each row's own k) and at most 2*N*k.
    assert 2000 * k <= w.nnz <= 2 * 2000 * k
    assert abs(w - w.T).max() == 0
    assert np.all(w.diagonal() == 0)
    assert np.all((w.data > 0) & (w.data <= 1))
    # Each point keeps at least its own k neighbours.
    assert np.diff(w.indptr).min() >= k


def test_affinity_entries_follow_the_self_tuning_kernel():
    # Points on a line at 0, 1, 2, ..., 9: with k=7 the scale of point 0 is its 7th-neighbour
    # distance, 7; of point 1 it is 6 (neighbour distances 1, 1, 2, 3, 4, 5, 6).
    x = np.arange(10.0)[:, None]
    w = E.knn_affinity(x, n_neighbors=7).toarray()
    assert w[0, 1] == pytest.approx(np.exp(-1.0 / (7.0 * 6.0)))
    assert w[0, 7] == pytest.approx(np.exp(-49.0 / (7.0 * 5.0)))  # scale of 7: 5
    assert w[0, 9] == 0  # 9 is neither among 0's 7 neighbours nor 0 among 9's


def test_affinity_bridges_disconnected_components_weakly():
    x, y = planted_blobs([60, 60, 60], [[0, 0], [100, 0], [0, 300]], 1.0, seed=5)
    w = E.knn_affinity(x, n_neighbors=5)
    n_components, _ = connected_components(w, directed=False)
    assert n_components == 1
    between = w.toarray()[y[:, None] != y[None, :]]
    # Exactly two undirected bridges for three components, each weak.
    assert np.count_nonzero(between) == 4
    assert between.max() <= 1e-3


def test_affinity_survives_duplicate_points():
    x = np.vstack([np.zeros((20, 2)), np.ones((20, 2))])
    w = E.knn_affinity(x, n_neighbors=5)
    assert np.all(np.isfinite(w.data))
    assert connected_components(w, directed=False)[0] == 1


# --- spectral_clusters ----------------------------------------------------------------------


def test_spectral_recovers_planted_blobs_numbered_by_size(blobs_2d):
    x, y = blobs_2d
    clusters = E.spectral_clusters(x, n_clusters=4)
    assert E.adjusted_rand(clusters, y) > 0.98
    # The planted blobs were built largest first, so the canonical numbering is the planted one.
    assert np.mean(clusters == y) > 0.99


def test_spectral_is_invariant_to_row_order(blobs_2d):
    x, _ = blobs_2d
    reference = E.spectral_clusters(x, n_clusters=4)
    perm = np.random.default_rng(6).permutation(len(x))
    permuted = E.spectral_clusters(x[perm], n_clusters=4)
    np.testing.assert_array_equal(permuted, reference[perm])


def test_spectral_reruns_and_seeds_give_the_same_numbers(blobs_2d):
    x, _ = blobs_2d
    first = E.spectral_clusters(x, n_clusters=4, seed=0)
    np.testing.assert_array_equal(E.spectral_clusters(x, n_clusters=4, seed=0), first)
    np.testing.assert_array_equal(E.spectral_clusters(x, n_clusters=4, seed=11), first)


def test_spectral_with_more_components_than_clusters_keeps_components_whole():
    # Four far-apart blobs asked into 2 clusters: a disconnected kNN graph in the raw form.
    x, y = planted_blobs([50, 50, 50, 50], [[0, 0], [50, 0], [0, 500], [50, 500]], 1.0, seed=7)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "graph is not fully connected" warning
        clusters = E.spectral_clusters(x, n_clusters=2, n_neighbors=5)
    # The two nearby pairs of blobs end up together: {0, 1} and {2, 3}.
    for blob in range(4):
        assert len(np.unique(clusters[y == blob])) == 1
    assert clusters[y == 0][0] == clusters[y == 1][0] != clusters[y == 2][0]
    assert clusters[y == 2][0] == clusters[y == 3][0]


def test_spectral_rejects_bad_cluster_counts(blobs_2d):
    x, _ = blobs_2d
    with pytest.raises(ValueError, match="n_clusters"):
        E.spectral_clusters(x, n_clusters=1)


def test_relabel_by_size_orders_by_size_then_mean_coordinate():
    clusters = np.array([5, 5, 2, 2, 2, 9, 7])
    coords = np.array([[0.0], [1.0], [5.0], [6.0], [7.0], [3.0], [-3.0]])
    # Sizes: 2 -> 3 members (first), 5 -> 2 (second); 9 and 7 tie at 1, 7 has the lower mean.
    np.testing.assert_array_equal(E.relabel_by_size(clusters, coords), [1, 1, 0, 0, 0, 3, 2])


# --- embeddings -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def umap_xy(latent_blobs):
    x, _ = latent_blobs
    return E.umap_embed(x, n_neighbors=15, seed=0)


@pytest.fixture(scope="module")
def tsne_xy(latent_blobs):
    x, _ = latent_blobs
    return E.tsne_embed(x, perplexity=30, seed=0)


def test_umap_shape_and_keeps_classes_apart(latent_blobs, umap_xy):
    _, y = latent_blobs
    assert umap_xy.shape == (300, 2)
    assert umap_xy.dtype == np.float32
    assert E.knn_accuracy(umap_xy, y) > 0.95


def test_umap_seeded_rerun_is_identical(latent_blobs, umap_xy):
    x, _ = latent_blobs
    np.testing.assert_array_equal(E.umap_embed(x, n_neighbors=15, seed=0), umap_xy)


# A fresh process lays out 200 random latents after import_umap and prints the digest of the
# coordinates and how often its compiled umap and pynndescent functions were found in numba's
# cache and compiled.
UMAP_CHILD = """
import hashlib, sys
import numpy as np
sys.path.insert(0, {scripts!r})
from latentsky.analysis import embedding
embedding.import_umap()
coords = embedding.umap_embed(np.random.default_rng(3).normal(size=(200, 8)), seed=0)
dispatchers = dict()  # numba's compiled functions, each once (modules import each other's)
for name in [m for m in sys.modules if m.startswith(("umap.", "pynndescent."))]:
    for value in vars(sys.modules[name]).values():
        if hasattr(getattr(value, "stats", None), "cache_hits"):
            dispatchers[id(value)] = (name, value)
hits = sum(sum(d.stats.cache_hits.values()) for _, d in dispatchers.values())
misses = sum(sum(d.stats.cache_misses.values()) for _, d in dispatchers.values())
# numba's cache key leaves out options: a second compilation of one function (umap's parallel
# layout epoch) could stand in for the serial one that seeded runs use.
cached = [d for _, d in dispatchers.values() if type(d._cache).__name__ == "FunctionCache"]
serial = sys.modules["umap.layouts"]._nb_optimize_layout_euclidean_single_epoch
assert serial in cached
functions = [d.py_func for d in cached]
assert len(functions) == len(set(functions)), "one function cached twice"
print(hashlib.sha256(coords.tobytes()).hexdigest(), hits, misses)
"""


def test_a_second_process_loads_umap_from_the_cache_and_gives_the_same_coordinates():
    # The installation's own cache, as the workflow's jobs use it (a fresh cache folder would
    # make this test compile everything once more: about 20 s).
    scripts = str(Path(E.__file__).resolve().parents[2])

    def child():
        code = UMAP_CHILD.format(scripts=scripts)
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        assert out.returncode == 0, out.stderr[-3000:]
        digest, hits, misses = out.stdout.split()[-3:]
        return digest, int(hits), int(misses)

    first = child()  # compiles what no process has cached yet, and writes it
    second = child()  # loads every function it runs from the cache, compiles nothing
    assert second[1] > 0 and second[2] == 0, second
    here = E.umap_embed(np.random.default_rng(3).normal(size=(200, 8)), seed=0)
    assert first[0] == second[0] == hashlib.sha256(here.tobytes()).hexdigest()


def test_tsne_shape_and_keeps_classes_apart(latent_blobs, tsne_xy):
    _, y = latent_blobs
    assert tsne_xy.shape == (300, 2)
    assert E.knn_accuracy(tsne_xy, y) > 0.95


def test_tsne_seeded_rerun_is_identical(latent_blobs, tsne_xy):
    x, _ = latent_blobs
    np.testing.assert_array_equal(E.tsne_embed(x, perplexity=30, seed=0), tsne_xy)


def test_nearest_neighbours_are_exact_and_exclude_the_point_itself(latent_blobs):
    x, _ = latent_blobs
    indices, distances = E.nearest_neighbours(x, k=20)
    assert indices.shape == distances.shape == (300, 20)
    standardised = (x - x.mean(axis=0)) / x.std(axis=0)
    expected_d, expected_i = cKDTree(standardised).query(standardised, k=21)
    np.testing.assert_array_equal(indices, expected_i[:, 1:])
    np.testing.assert_allclose(distances, expected_d[:, 1:], rtol=1e-10)
    assert E.neighbours_needed(n_neighbors=15, perplexity=30) == 90
    assert E.neighbours_needed(n_neighbors=100, perplexity=5) == 99


def test_nearest_neighbours_reduce_wide_latents_to_50_components():
    rng = np.random.default_rng(12)
    x = rng.standard_normal((200, 80))
    indices, _ = E.nearest_neighbours(x, k=5)
    reduced = PCA(n_components=50, random_state=0).fit_transform((x - x.mean(0)) / x.std(0))
    np.testing.assert_array_equal(indices, cKDTree(reduced).query(reduced, k=6)[1][:, 1:])


def test_shared_neighbours_give_the_same_embeddings(latent_blobs, umap_xy, tsne_xy):
    # The workflow computes the neighbours once for both embeddings; more columns than either
    # needs, and any thread count, change nothing.
    x, _ = latent_blobs
    neighbours = E.nearest_neighbours(x, k=E.neighbours_needed(15, 30) + 10, n_jobs=2)
    np.testing.assert_array_equal(E.umap_embed(x, n_neighbors=15, neighbours=neighbours), umap_xy)
    np.testing.assert_array_equal(E.tsne_embed(x, perplexity=30, neighbours=neighbours), tsne_xy)
    with pytest.raises(ValueError, match="neighbours"):
        E.tsne_embed(x, perplexity=30, neighbours=E.nearest_neighbours(x, k=20))


def test_tsne_does_not_depend_on_the_thread_count(latent_blobs, tsne_xy):
    x, _ = latent_blobs
    np.testing.assert_array_equal(E.tsne_embed(x, perplexity=30, n_jobs=2), tsne_xy)


def test_tsne_works_on_tiny_inputs():
    x = np.random.default_rng(8).standard_normal((20, 5))
    assert E.tsne_embed(x, perplexity=30).shape == (20, 2)


def test_embeddings_reject_nan():
    x = np.ones((30, 4))
    x[3, 2] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        E.tsne_embed(x)


# --- knn_accuracy and tables ---------------------------------------------------------------------


def test_knn_accuracy_near_one_on_separable_blobs(blobs_2d):
    x, y = blobs_2d
    assert E.knn_accuracy(x, y) > 0.98


def test_knn_accuracy_near_chance_on_shuffled_labels():
    rng = np.random.default_rng(9)
    x = rng.standard_normal((800, 8))
    y = rng.permutation(np.repeat(np.arange(4), 200))
    assert abs(E.knn_accuracy(x, y) - 0.25) < 0.06


def test_adjusted_rand_ignores_label_names():
    a = np.array([0, 0, 1, 1, 2, 2])
    assert E.adjusted_rand(a, np.array(["x", "x", "z", "z", "y", "y"])) == pytest.approx(1.0)
    assert E.adjusted_rand(a, np.array([0, 1, 0, 1, 0, 1])) < 0


def test_cluster_label_table_counts_in_class_order():
    clusters = np.array([1, 0, 0, 1, 1, 2])
    labels = np.array(["moon", "arc", "zebra", "arc", "arc", "cloudy"])
    table = E.cluster_label_table(clusters, labels)
    assert list(table.columns) == ["arc", "moon", "cloudy", "zebra"]
    assert list(table.index) == [0, 1, 2]
    assert table.loc[1, "arc"] == 2
    assert table.loc[1, "moon"] == 1
    assert table.loc[0, "zebra"] == 1
    assert table.loc[2, "arc"] == 0
    assert table.to_numpy().sum() == 6


def test_fraction_of():
    clusters = np.array([0, 0, 0, 0, 1])
    labels = np.array(["arc", "discrete", "clear", "arc", "arc"])
    assert E.fraction_of(clusters, labels, 0, ["arc", "discrete"]) == pytest.approx(0.75)
    assert E.fraction_of(clusters, labels, 0, "clear") == pytest.approx(0.25)
    assert E.fraction_of(clusters, labels, 1, "clear") == 0
    assert np.isnan(E.fraction_of(clusters, labels, 5, "arc"))
