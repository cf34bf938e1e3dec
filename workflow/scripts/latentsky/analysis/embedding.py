"""2-D embeddings (UMAP, t-SNE), spectral clustering and the label bookkeeping around them.

Everything here has to run on the full image set (~35,000 latent codes and more), so the
neighbour graphs are sparse k-nearest-neighbour graphs throughout: nothing builds an (N, N) dense
matrix. Seeds are explicit arguments so that a rerun of the workflow gives the same figures.

Shapes: ``latents`` are ``(N, D)`` (one autoencoder latent code per image), ``coords`` are
``(N, d)`` embedding coordinates (``d = 2`` for UMAP/t-SNE), labels and clusters are ``(N,)``.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import sys
import threading
import warnings
from collections.abc import Iterable

import numpy as np
import pandas as pd
from scipy import sparse
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree
from sklearn.cluster import SpectralClustering
from sklearn.decomposition import PCA
from sklearn.metrics import adjusted_rand_score
from sklearn.model_selection import StratifiedKFold, cross_val_score
from sklearn.neighbors import KNeighborsClassifier, NearestNeighbors, kneighbors_graph
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from latentsky.analysis.labels import CLASSES

#: The hand-labelled classes in the order used by every table and figure (then any others, sorted).

#: Neighbour whose distance sets a point's local scale in the self-tuning affinity
#: (Zelnik-Manor and Perona 2004 use the 7th).
SELF_TUNING_NEIGHBOUR = 7

#: Weight floor for the links that join disconnected graph components (see :func:`knn_affinity`).
BRIDGE_WEIGHT_FLOOR = 1e-4


def ordered_classes(labels: Iterable) -> list:
    """The distinct labels, known classes first in :data:`CLASSES`, then the rest sorted."""
    present = set(pd.unique(np.asarray(list(labels), dtype=object)))
    known = [name for name in CLASSES if name in present]
    others = sorted(present.difference(CLASSES), key=str)
    return known + others


def _standardise(latents) -> np.ndarray:
    """Zero mean, unit variance per latent dimension, as float64 ``(N, D)``.

    Latent dimensions of an autoencoder have arbitrary and very different scales; without this a
    few high-variance dimensions would dominate every Euclidean distance.
    """
    x = np.asarray(latents, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"latents must be 2-D (N, D), got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError("latents contain NaN or infinite values")
    return StandardScaler().fit_transform(x)


def _embedding_input(latents) -> np.ndarray:
    """Standardised codes reduced to at most 50 principal components, float64 ``(N, min(D, 50))``.

    The input of both embeddings and of :func:`nearest_neighbours`: the reduction removes noise
    dimensions and speeds up the neighbour search, the usual t-SNE practice. With D <= 50 (the
    study's 32- and 50-dimensional latents) it is the standardised codes themselves. The PCA is a
    deterministic eigendecomposition at these sizes; the fixed random_state covers the case where
    scikit-learn picks its randomized solver.
    """
    x = _standardise(latents)
    n_pcs = min(50, x.shape[1], x.shape[0])
    if n_pcs < x.shape[1]:
        x = PCA(n_components=n_pcs, random_state=0).fit_transform(x)
    return x


def nearest_neighbours(latents, k: int, n_jobs: int = 1):
    """Exact k nearest neighbours of each latent code: one search for both embeddings.

    Brute force (exact Euclidean distances, no approximate index) on the embeddings' input
    (standardised codes, at most 50 principal components); the result does not depend on
    ``n_jobs``, the number of threads. Passed to :func:`umap_embed` and :func:`tsne_embed`, ``k``
    must be at least UMAP's ``n_neighbors - 1`` and t-SNE's ``3 * perplexity``
    (:func:`neighbours_needed`).

    Parameters
    ----------
    latents : array ``(N, D)``
    k : neighbours per point, capped at ``N - 1``; the point itself is not among them.

    Returns
    -------
    ``(indices, distances)``: int64 and float64 arrays ``(N, k)``, each row in increasing distance
    (in standardised latent units).
    """
    return _exact_neighbours(_embedding_input(latents), k, n_jobs)


def _exact_neighbours(x: np.ndarray, k: int, n_jobs: int):
    """:func:`nearest_neighbours` of the prepared input ``x`` ``(N, d)``."""
    k = min(int(k), x.shape[0] - 1)
    # The brute-force search's threads are OpenMP threads, which only threadpoolctl limits.
    with threadpool_limits(limits=n_jobs):
        search = NearestNeighbors(n_neighbors=k, algorithm="brute", n_jobs=n_jobs).fit(x)
        distances, indices = search.kneighbors()
    return indices.astype(np.int64), distances


def neighbours_needed(n_neighbors: int = 15, perplexity: float = 30.0) -> int:
    """Smallest ``k`` of :func:`nearest_neighbours` that serves both embeddings' settings."""
    return max(n_neighbors - 1, _tsne_neighbours(perplexity))


def _tsne_neighbours(perplexity: float) -> int:
    # openTSNE's rule: three times the perplexity.
    return int(3 * perplexity)


def _take_neighbours(neighbours, k: int, n: int):
    """The first ``k`` columns of a :func:`nearest_neighbours` result, checked against N = ``n``."""
    indices, distances = neighbours
    if indices.shape[0] != n or indices.shape[1] < k:
        raise ValueError(f"need neighbours of shape ({n}, >= {k}), got {indices.shape}")
    return indices[:, :k], distances[:, :k]


#: Held while umap is imported with numba's cache turned on (the decorators are module globals).
_UMAP_IMPORT = threading.Lock()


def import_umap():
    """The ``umap`` module, with its numba code compiled once per installation, not per process.

    umap-learn leaves its numba functions uncached (pynndescent caches about half of its own), so
    every process that fits a UMAP compiles them again: about 5 s of a 7.5 s process on this
    project's 2-core machine (``benchmarks/umap_compile_cache.py``). While umap is imported here,
    ``numba.njit`` and ``numba.jit`` cache what they compile: the machine code goes into numba's
    on-disk cache (beside the package, or under ``NUMBA_CACHE_DIR``), and later processes load it.
    The coordinates are the same bit for bit (tested).

    numba keys its cache by source file, line, signature, numba version and closure values, but
    not by options such as ``parallel`` or ``fastmath``: umap compiles one function twice, with
    ``parallel=False`` and ``True``, and both would share one entry, so a seeded run could load
    the threaded code. So only the first compilation of any function is cached (there, the serial
    one); a ``cache`` option the library set itself is left alone. If umap is
    already imported it is returned as it is. Where numba finds no cache location, plain
    ``import umap`` fails as well: pynndescent, which umap imports, caches some of its own.
    """
    with _UMAP_IMPORT:
        if "umap" in sys.modules:
            return importlib.import_module("umap")
        import numba

        plain = numba.njit, numba.jit
        cached_once: set = set()

        def first(function) -> bool:
            new = function not in cached_once
            cached_once.add(function)
            return new

        def caching(decorator):
            from numba.core import types, typing

            signatures = (str, list, tuple, typing.Signature, types.Type)

            @functools.wraps(decorator)
            def wrapper(*args, **kwargs):
                if "cache" in kwargs:
                    return decorator(*args, **kwargs)
                if args and inspect.isfunction(args[0]):  # njit(function, **options)
                    return decorator(*args, cache=first(args[0]), **kwargs)
                if not args or isinstance(args[0], signatures):
                    # njit(**options) or njit(signatures, **options): a decorator to come.
                    def decorate(function):
                        cache = inspect.isfunction(function) and first(function)
                        return decorator(*args, cache=cache, **kwargs)(function)

                    return decorate
                return decorator(*args, **kwargs)

            return wrapper

        numba.njit, numba.jit = caching(plain[0]), caching(plain[1])
        try:
            return importlib.import_module("umap")
        finally:
            numba.njit, numba.jit = plain


def umap_embed(
    latents,
    n_neighbors: int = 15,
    min_dist: float = 0.1,
    seed: int | None = 0,
    n_jobs: int = 1,
    neighbours=None,
    log=None,
) -> np.ndarray:
    """UMAP of standardised latent codes, on an exact nearest-neighbour graph.

    Parameters
    ----------
    latents : array ``(N, D)``
        Latent codes; each dimension is standardised (zero mean, unit variance) first (and reduced
        to 50 principal components if D > 50, see :func:`nearest_neighbours`).
    n_neighbors, min_dist : UMAP's neighbourhood size (the point itself included) and minimum
        spacing in the embedding.
    seed : int or None
        Fixes UMAP's ``random_state`` so reruns give identical coordinates. UMAP's optimisation
        then runs on one thread whatever ``n_jobs`` says; pass ``seed=None`` to use ``n_jobs``
        threads (faster, not reproducible).
    n_jobs : threads for the neighbour search (exact and deterministic whatever the count) and,
        with ``seed=None``, for UMAP itself.
    neighbours : optional result of :func:`nearest_neighbours` for these latents (at least
        ``n_neighbors - 1`` columns); computed here if omitted. Either way the graph is the same.
    log : optional logger: the layout's epochs are reported there every tenth of the way, with
        the time left (UMAP's own tqdm bar, written as log lines).

    UMAP's own search (NN-descent) is approximate and, at this size, spends most of its time
    compiling numba code; the exact brute-force search is faster here, deterministic, and can be
    shared with :func:`tsne_embed`. (Below 4,096 points UMAP searches exactly itself.)

    Returns
    -------
    float32 array ``(N, 2)`` of embedding coordinates (arbitrary units).
    """
    umap = import_umap()

    x = _embedding_input(latents)
    n = x.shape[0]
    k = min(n_neighbors, n - 1)
    if neighbours is None:
        neighbours = _exact_neighbours(x, k - 1, n_jobs)
    indices, distances = _take_neighbours(neighbours, k - 1, n)
    # UMAP's graph lists each point as its own nearest neighbour, at distance 0.
    knn = (
        np.hstack([np.arange(n)[:, None], indices]),
        np.hstack([np.zeros((n, 1)), distances]),
    )
    reducer = umap.UMAP(
        n_neighbors=k,
        min_dist=min_dist,
        n_components=2,
        random_state=seed,
        # A fixed random_state forces one thread; saying so avoids UMAP's override warning.
        n_jobs=1 if seed is not None else n_jobs,
        precomputed_knn=knn,
        tqdm_kwds=None if log is None else _umap_progress(n, log),
    )
    with warnings.catch_warnings():
        # Without UMAP's own search index, only transform() of new data is unavailable.
        warnings.filterwarnings("ignore", message=".*knn_search_index", category=UserWarning)
        return reducer.fit_transform(x).astype(np.float32)


def _umap_progress(n: int, log) -> dict:
    """tqdm settings for UMAP's layout loop: a log line every tenth of its epochs (UMAP's default
    count: 500 epochs up to 10,000 points, 200 above), with the time left."""
    from latentsky.progress import LogLines, log_format

    epochs = 500 if n <= 10_000 else 200
    return {
        "disable": False,
        "file": LogLines(log),
        "desc": f"UMAP layout of {n} points",
        "unit": " epochs",
        "mininterval": 0,
        "miniters": max(1, epochs // 10),
        "ascii": True,
        "bar_format": log_format(known_total=True),
    }


class _TsneProgress:
    """openTSNE callback: counts iterations into a progress log (never stops the optimisation)."""

    def __init__(self, progress, every: int):
        self.progress = progress
        self.every = every

    def __call__(self, iteration, error, embedding) -> bool:
        self.progress.update(self.every)
        return False


#: t-SNE iterations between two progress reports (each computes the KL divergence once).
TSNE_REPORT_EVERY = 25


def tsne_embed(
    latents,
    perplexity: float = 30.0,
    seed: int = 0,
    n_jobs: int = 1,
    neighbours=None,
    log=None,
) -> np.ndarray:
    """t-SNE of standardised latent codes (openTSNE), PCA-initialised.

    The standardised codes are first reduced to at most 50 principal components (see
    :func:`nearest_neighbours`). The perplexity is capped at ``(N - 1) / 3`` so that small inputs
    still work; the affinities use each point's ``3 * perplexity`` exact nearest neighbours
    (``neighbours``, a :func:`nearest_neighbours` result, or computed here). The optimisation is
    openTSNE's standard schedule (also FIt-SNE's): 250 iterations with early exaggeration 12, then
    500 without, learning rate N / exaggeration. Repulsive forces come from FFT-accelerated
    interpolation (Linderman et al. 2019) from 10,000 points on, from Barnes-Hut below (faster
    there). scikit-learn's schedule, used here before, ran 750 iterations after the exaggeration:
    on 35,277 synthetic latents those 250 more took 40 s (on 2 cores), lowered the KL divergence by
    1.2% (3.55 to 3.51) and raised the share of each point's 15 nearest neighbours kept in the map
    from 0.189 to 0.194, with the clusters equally separated.

    Deterministic: a fixed ``seed`` gives bitwise identical coordinates on rerun, and they do not
    depend on ``n_jobs`` (the threads of the search, affinities and gradients, which work point by
    point and sum serially; checked on 35,277 x 32 latents with 1 and 2 threads by
    benchmarks/analysis_scale.py, and on 300 points by tests/test_embedding.py).

    ``log`` (optional): the iterations are reported there (every :data:`TSNE_REPORT_EVERY`, a
    line at least every tenth of the way or 30 s, with the time left); the coordinates are the
    same with or without it.

    Returns a float32 array ``(N, 2)`` of embedding coordinates (arbitrary units).
    """
    from openTSNE import TSNE
    from openTSNE.nearest_neighbors import PrecomputedNeighbors

    from latentsky.progress import progress_log

    x = _embedding_input(latents)
    n = x.shape[0]
    perplexity = min(perplexity, (n - 1) / 3)
    k = min(_tsne_neighbours(perplexity), n - 1)
    if neighbours is None:
        neighbours = _exact_neighbours(x, k, n_jobs)
    indices, distances = _take_neighbours(neighbours, k, n)
    iterations = 250 + 500  # openTSNE's defaults: early exaggeration, then the main phase
    progress = progress_log(iterations, f"t-SNE of {n} points", log, unit="iterations")
    tsne = TSNE(
        n_components=2,
        perplexity=perplexity,
        neighbors=PrecomputedNeighbors(indices, distances),
        initialization="pca",
        # openTSNE's default: Barnes-Hut below 10,000 points, FFT-accelerated interpolation above.
        negative_gradient_method="auto",
        random_state=seed,
        n_jobs=n_jobs,
        callbacks=_TsneProgress(progress, TSNE_REPORT_EVERY) if log is not None else None,
        callbacks_every_iters=TSNE_REPORT_EVERY,
    )
    with threadpool_limits(limits=n_jobs), progress:
        return np.asarray(tsne.fit(x), dtype=np.float32)


def knn_affinity(coords, n_neighbors: int = 15) -> sparse.csr_matrix:
    """Sparse symmetric self-tuning Gaussian affinity on the k-nearest-neighbour graph.

    ``W_ij = exp(-d_ij**2 / (s_i * s_j))`` for each pair where j is one of i's ``n_neighbors``
    nearest neighbours or i one of j's (the union, so W is symmetric), with ``s_i`` the distance
    from i to its 7th neighbour (or the last one when ``n_neighbors < 7``). Local scales let
    dense and sparse clusters both have strong internal weights.

    If the kNN graph is disconnected, its components are joined one at a time by the single
    shortest edge to another component, weighted by the same kernel but no less than
    :data:`BRIDGE_WEIGHT_FLOOR`. Without these weak links the Laplacian's null space is
    degenerate and the eigenvectors (hence the clusters) would be arbitrary; with them,
    well-separated components still fall into separate clusters.

    Parameters
    ----------
    coords : array ``(N, d)``
    n_neighbors : neighbours per point, capped at ``N - 1``.

    Returns
    -------
    CSR matrix ``(N, N)``, float64, zero diagonal, at most ``2 * N * n_neighbors`` non-zeros
    plus two per bridge.
    """
    x = np.asarray(coords, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] < 2:
        raise ValueError(f"coords must be (N, d) with N >= 2, got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError("coords contain NaN or infinite values")
    n = x.shape[0]
    k = min(n_neighbors, n - 1)
    # Rows hold each point's k neighbours in order of distance (explicit zeros kept for duplicates).
    dist = kneighbors_graph(x, n_neighbors=k, mode="distance", include_self=False).tocsr()
    dist.sort_indices()
    row_d = np.sort(dist.data.reshape(n, k), axis=1)
    scale = row_d[:, min(SELF_TUNING_NEIGHBOUR, k) - 1]
    # Exact duplicates can make a scale zero; floor it so the kernel stays defined.
    positive = scale[scale > 0]
    floor = 1e-12 if positive.size == 0 else 1e-6 * np.median(positive)
    scale = np.maximum(scale, floor)

    rows = np.repeat(np.arange(n), k)
    cols = dist.indices
    weights = np.exp(-(dist.data**2) / (scale[rows] * scale[cols]))
    affinity = sparse.csr_matrix((weights, (rows, cols)), shape=(n, n))
    affinity = affinity.maximum(affinity.T).tocsr()
    # Kernel values that underflowed to 0 are not edges (connected_components would count them).
    affinity.eliminate_zeros()
    affinity = _bridge_components(affinity, x, scale)
    # Duplicated points can put a point among its own neighbours; no self-loops in the graph.
    affinity = (affinity - sparse.diags(affinity.diagonal())).tocsr()
    affinity.eliminate_zeros()
    return affinity


def _bridge_components(affinity: sparse.csr_matrix, x: np.ndarray, scale: np.ndarray):
    """Join the graph's connected components with one weak shortest edge each (see knn_affinity)."""
    n_comp, comp = connected_components(affinity, directed=False)
    if n_comp == 1:
        return affinity
    extra_rows, extra_cols, extra_w = [], [], []
    # Union-find over components: link the smallest remaining group to its nearest outside point.
    group = np.arange(n_comp)

    def root(c):
        while group[c] != c:
            group[c] = group[group[c]]
            c = group[c]
        return c

    for _ in range(n_comp - 1):
        roots = np.array([root(c) for c in range(n_comp)])
        point_group = roots[comp]
        sizes = np.bincount(point_group, minlength=n_comp)
        sizes[sizes == 0] = np.iinfo(sizes.dtype).max
        # Smallest group first, ties by group id: deterministic and cheap (small query set).
        g = int(np.argmin(sizes))
        inside = np.flatnonzero(point_group == g)
        outside = np.flatnonzero(point_group != g)
        d, j = cKDTree(x[outside]).query(x[inside], k=1)
        best = int(np.argmin(d))
        a, b = int(inside[best]), int(outside[j[best]])
        w = max(np.exp(-(d[best] ** 2) / (scale[a] * scale[b])), BRIDGE_WEIGHT_FLOOR)
        extra_rows += [a, b]
        extra_cols += [b, a]
        extra_w += [w, w]
        group[g] = roots[comp[b]]
    bridges = sparse.csr_matrix((extra_w, (extra_rows, extra_cols)), shape=affinity.shape)
    return affinity.maximum(bridges).tocsr()


def relabel_by_size(clusters, coords) -> np.ndarray:
    """Renumber clusters 0, 1, ... by size, largest first; ties by mean coordinate (lexicographic).

    Spectral clustering numbers its clusters arbitrarily; this makes "cluster 0" mean the same
    thing on every run and for any ordering of the input rows.

    Parameters
    ----------
    clusters : int array ``(N,)``; coords : array ``(N, d)``.

    Returns
    -------
    int64 array ``(N,)``.
    """
    clusters = np.asarray(clusters)
    x = np.asarray(coords, dtype=np.float64).reshape(len(clusters), -1)
    ids, inverse, counts = np.unique(clusters, return_inverse=True, return_counts=True)
    means = np.stack([np.bincount(inverse, weights=x[:, j]) / counts for j in range(x.shape[1])])
    # np.lexsort sorts by the last key first: size (descending), then mean coords in order.
    order = np.lexsort(tuple(means[::-1]) + (-counts,))
    new_id = np.empty(len(ids), dtype=np.int64)
    new_id[order] = np.arange(len(ids))
    return new_id[inverse]


def spectral_clusters(
    coords,
    n_clusters: int,
    n_neighbors: int = 15,
    seed: int = 0,
    assign_labels: str = "cluster_qr",
) -> np.ndarray:
    """Spectral clustering of embedding coordinates on a sparse kNN affinity.

    The affinity is :func:`knn_affinity` (sparse, symmetric, components bridged), the spectral
    embedding uses ARPACK, and the default label assignment is ``cluster_qr`` (Damle et al.
    2019), which has no random restarts and so gives the same partition on every run; clusters
    are then renumbered by :func:`relabel_by_size`.

    Parameters
    ----------
    coords : array ``(N, d)``, usually the 2-D UMAP coordinates.
    n_clusters : number of clusters wanted (``2 <= n_clusters < N``).
    n_neighbors : neighbours per point in the affinity graph.
    seed : fixes ARPACK's start vector (and k-means if ``assign_labels="kmeans"``).

    Returns
    -------
    int64 array ``(N,)`` of cluster numbers 0 .. n_clusters-1, 0 the largest cluster.
    """
    x = np.asarray(coords, dtype=np.float64)
    if not 2 <= n_clusters < x.shape[0]:
        raise ValueError(f"n_clusters must be in [2, N), got {n_clusters} for N={x.shape[0]}")
    affinity = knn_affinity(x, n_neighbors=n_neighbors)
    model = SpectralClustering(
        n_clusters=n_clusters,
        affinity="precomputed",
        assign_labels=assign_labels,
        eigen_solver="arpack",
        random_state=seed,
    )
    raw = model.fit_predict(affinity)
    return relabel_by_size(raw, x)


def knn_accuracy(latents, labels, k: int = 5, folds: int = 5, seed: int = 0) -> float:
    """Stratified k-fold cross-validated accuracy of a k-nearest-neighbour classifier.

    Features are standardised inside each training fold (no leakage from the test fold). A
    measure of how well the labels are separated in a representation: chance is about the
    frequency of the most common class; 1 means every point's neighbours share its label.

    Parameters
    ----------
    latents : array ``(N, D)``; labels : array ``(N,)`` of class labels.
    k : neighbours; folds : number of stratified folds (shuffled with ``seed``).

    Returns
    -------
    Mean accuracy over the folds, a fraction in [0, 1].
    """
    x = np.asarray(latents, dtype=np.float64)
    y = np.asarray(labels)
    if len(x) != len(y):
        raise ValueError(f"{len(x)} latent codes but {len(y)} labels")
    pipeline = make_pipeline(StandardScaler(), KNeighborsClassifier(n_neighbors=k))
    cv = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    return float(np.mean(cross_val_score(pipeline, x, y, cv=cv, scoring="accuracy")))


def adjusted_rand(labels_a, labels_b) -> float:
    """Adjusted Rand index of two partitions of the same N items (1 identical, ~0 random)."""
    return float(adjusted_rand_score(np.asarray(labels_a), np.asarray(labels_b)))


def cluster_label_table(clusters, labels) -> pd.DataFrame:
    """Counts of each label in each cluster: rows clusters (ascending), columns in class order.

    Returns a DataFrame indexed by ``cluster`` with one integer column per label
    (:func:`ordered_classes` order); the row sums are the cluster sizes.
    """
    clusters = np.asarray(clusters)
    labels = np.asarray(labels, dtype=object)
    if len(clusters) != len(labels):
        raise ValueError(f"{len(clusters)} cluster numbers but {len(labels)} labels")
    table = pd.crosstab(pd.Series(clusters, name="cluster"), pd.Series(labels, name="label"))
    return table.reindex(columns=ordered_classes(labels)).sort_index()


def dominant_labels(clusters, labels, top: int = 2, min_share: float = 0.15) -> dict:
    """What each cluster holds, in words: ``{cluster: "discrete 62%, arc 25%"}``.

    The ``top`` most frequent labels among the cluster's labelled members with at least
    ``min_share`` of them (the first one always); clusters without labelled members are left
    out. Unlabelled members (None/NaN) do not count.
    """
    table = pd.DataFrame({"cluster": np.asarray(clusters), "label": np.asarray(labels, object)})
    table = table.dropna(subset=["label"])
    described = {}
    for cluster, members in table.groupby("cluster"):
        shares = members["label"].value_counts(normalize=True)
        chosen = [
            f"{label} {share:.0%}"
            for i, (label, share) in enumerate(shares.items())
            if i < top and (i == 0 or share >= min_share)
        ]
        described[cluster] = ", ".join(chosen)
    return described


def fraction_of(clusters, labels, cluster, wanted_labels) -> float:
    """Fraction of the members of ``cluster`` whose label is one of ``wanted_labels``.

    ``wanted_labels`` is one label or an iterable of labels. Returns NaN for an empty cluster.
    """
    clusters = np.asarray(clusters)
    labels = np.asarray(labels, dtype=object)
    if isinstance(wanted_labels, str) or not isinstance(wanted_labels, Iterable):
        wanted_labels = [wanted_labels]
    members = clusters == cluster
    if not members.any():
        return float("nan")
    return float(np.isin(labels[members], list(wanted_labels)).mean())


def embed(
    times: np.ndarray,
    latents: np.ndarray,
    labels: np.ndarray,
    settings: dict,
    exclude_labels: Iterable = (),
    threads: int = 1,
    sites: np.ndarray | None = None,
    log=None,
) -> pd.DataFrame:
    """UMAP and t-SNE of the samples to embed, as the workflow's embedding table.

    Args:
        times: ``(N,)`` sample times; latents: ``(N, D)``; labels: ``(N,)`` object, None where
            a sample has no label.
        settings: the config's ``embedding`` section (``subset``: ``labelled`` or ``all``,
            ``umap_neighbors``, ``umap_min_dist``, ``tsne_perplexity``, ``seed``).
        exclude_labels: samples with these labels are left out (e.g. cloudy images).
        threads: for the neighbour search and t-SNE.
        sites: ``(N,)`` site of every sample of a dataset of several sites (kept as a column).

    Returns:
        One row per embedded sample: ``time``, ``label``, (``site``,) ``index`` (its position
        in the latents), ``umap_x/y``, ``tsne_x/y``.
    """
    table = pd.DataFrame({"time": times, "label": labels})
    if sites is not None:
        table["site"] = np.asarray(sites).astype(str)
    keep = ~table["label"].isin(list(exclude_labels)).to_numpy()
    if settings["subset"] == "labelled":
        keep &= table["label"].notna().to_numpy()
    if log is not None:
        log.info(
            "embedding %d of %d samples (subset=%s, excluded labels %s)",
            keep.sum(),
            len(table),
            settings["subset"],
            list(exclude_labels),
        )
    vectors = np.asarray(latents)[keep]
    table = table[keep].reset_index(drop=True)
    table["index"] = np.flatnonzero(keep)
    # One exact neighbour search serves both embeddings.
    k = neighbours_needed(settings["umap_neighbors"], settings["tsne_perplexity"])
    neighbours = nearest_neighbours(vectors, k, n_jobs=threads)
    table[["umap_x", "umap_y"]] = umap_embed(
        vectors,
        n_neighbors=settings["umap_neighbors"],
        min_dist=settings["umap_min_dist"],
        seed=settings["seed"],
        neighbours=neighbours,
        log=log,
    )
    table[["tsne_x", "tsne_y"]] = tsne_embed(
        vectors,
        perplexity=settings["tsne_perplexity"],
        seed=settings["seed"],
        n_jobs=threads,
        neighbours=neighbours,
        log=log,
    )
    return table
