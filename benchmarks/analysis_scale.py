"""Analysis at the study's size: embeddings, clusters and log-normal fits of 35,277 latents.

Builds seeded synthetic latent vectors of the study's size (35,277 x 32 by default: ten Gaussian
clusters of unequal size and spread, each with a hand-label class and its own log-normal sigma_phi)
and makes the library calls of the workflow's analysis rules with the study's settings:
embed_latents (one exact neighbour search, seeded UMAP with 15 neighbours, t-SNE with perplexity 30
on ``--threads`` threads), cluster_embedding (6 spectral clusters of the UMAP coordinates, 15
neighbours) and fit_sigma_phi (log-normal fits per cluster and per label, 1000 bootstrap samples).
Each run is a fresh Python process, as each rule is, so numba's compilation inside UMAP is counted
(the imports too). Prints the seconds of every step for every run and their medians, and whether
the runs' results were bitwise identical.

    .venv/bin/python benchmarks/analysis_scale.py [--repeats 3] [--threads 2] [--umap-parallel]

``measure_analysis`` does one run in the calling process and returns the figures as a dict.
"""

from __future__ import annotations

import os

# As in workflow/scripts/embed_latents.py: idle OpenMP threads sleep rather than spin (read when
# the OpenMP library loads, so before anything imports scikit-learn or openTSNE).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import hashlib  # noqa: E402
import json  # noqa: E402
import resource  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "workflow" / "scripts"))

#: The study's number of images and the settings of config/fsim_2015_winter.yaml.
STUDY_N = 35_277
UMAP_NEIGHBORS, UMAP_MIN_DIST, PERPLEXITY = 15, 0.1, 30.0
N_CLUSTERS, CLUSTER_NEIGHBORS, BOOTSTRAP = 6, 15, 1000
CLASSES = ("arc", "diffuse", "discrete", "moon", "clear")
STEPS = ("imports_s", "neighbours_s", "umap_s", "tsne_s", "spectral_s", "fits_s")


def synthetic_latents(n: int = STUDY_N, dim: int = 32, seed: int = 0, components: int = 10):
    """Seeded clustered latents float32 ``(n, dim)``, labels ``(n,)`` and sigma_phi ``(n,)`` in rad.

    Gaussian clusters with Dirichlet-distributed sizes, centres 3 sd apart per dimension on
    average and per-dimension spreads of 0.5 to 1.5; each cluster carries one of five hand-label
    classes and a log-normal sigma_phi with its own median (0.05 to 0.15 rad) and sigma 0.6.
    """
    rng = np.random.default_rng(seed)
    centres = 3.0 * rng.standard_normal((components, dim))
    spreads = rng.uniform(0.5, 1.5, size=(components, dim))
    member = rng.choice(components, size=n, p=rng.dirichlet(np.full(components, 2.0)))
    latents = centres[member] + spreads[member] * rng.standard_normal((n, dim))
    labels = np.array(CLASSES, dtype=object)[member % len(CLASSES)]
    log_medians = np.log(rng.uniform(0.05, 0.15, size=components))
    sigma_phi = np.exp(log_medians[member] + 0.6 * rng.standard_normal(n))
    return latents.astype(np.float32), labels, sigma_phi


def measure_analysis(n: int = STUDY_N, dim: int = 32, threads: int = 2, seed: int = 0) -> dict:
    """One run of the analysis on synthetic latents, in this process; seconds per step.

    Returns a dict with ``imports_s`` (the analysis libraries, as a rule's process imports them),
    ``neighbours_s``, ``umap_s`` (with numba's compilation when UMAP has not run in this process
    yet), ``tsne_s``, ``spectral_s``, ``fits_s`` (per cluster and per label), ``analysis_s_35k``
    (their sum: the analysis of ``n`` latents, 35,277 by default), ``peak_rss_mb`` (the process's
    peak resident memory so far), ``results_sha256`` (a digest of the neighbours, both embeddings,
    the clusters and the fit tables, equal between runs that give bitwise equal results) and the
    inputs ``n``, ``dim``, ``threads``, ``seed``.
    """
    latents, labels, sigma_phi = synthetic_latents(n, dim, seed)
    seconds = {}

    start = time.perf_counter()
    import openTSNE  # noqa: F401

    from latentsky.analysis.embedding import (
        import_umap,
        nearest_neighbours,
        neighbours_needed,
        spectral_clusters,
        tsne_embed,
        umap_embed,
    )
    from latentsky.analysis.lognormal import fit_groups

    import_umap()  # as embed_latents does: numba's compiled umap code from its cache, once filled
    seconds["imports_s"] = time.perf_counter() - start

    start = time.perf_counter()
    k = neighbours_needed(UMAP_NEIGHBORS, PERPLEXITY)
    neighbours = nearest_neighbours(latents, k, n_jobs=threads)
    seconds["neighbours_s"] = time.perf_counter() - start

    start = time.perf_counter()
    umap_xy = umap_embed(
        latents, UMAP_NEIGHBORS, UMAP_MIN_DIST, seed=seed, n_jobs=threads, neighbours=neighbours
    )
    seconds["umap_s"] = time.perf_counter() - start

    start = time.perf_counter()
    tsne_xy = tsne_embed(latents, PERPLEXITY, seed=seed, n_jobs=threads, neighbours=neighbours)
    seconds["tsne_s"] = time.perf_counter() - start

    start = time.perf_counter()
    clusters = spectral_clusters(umap_xy, N_CLUSTERS, n_neighbors=CLUSTER_NEIGHBORS, seed=seed)
    seconds["spectral_s"] = time.perf_counter() - start

    start = time.perf_counter()
    fits = [
        fit_groups(sigma_phi, groups, n_bootstrap=BOOTSTRAP, seed=seed)
        for groups in (clusters, labels)
    ]
    seconds["fits_s"] = time.perf_counter() - start

    seconds["analysis_s_35k"] = sum(seconds[step] for step in STEPS)
    digest = hashlib.sha256()
    for array in (neighbours[0], umap_xy, tsne_xy, clusters):
        digest.update(np.ascontiguousarray(array).tobytes())
    for table in fits:
        digest.update(table.to_csv(index=False).encode())
    return {
        **seconds,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,  # kB on Linux
        "results_sha256": digest.hexdigest(),
        "n": n,
        "dim": dim,
        "threads": threads,
        "seed": seed,
    }


def measure_umap(n: int = STUDY_N, dim: int = 32, threads: int = 2, seed: int | None = 0) -> dict:
    """Seconds of UMAP alone (numba's compilation included), on the shared neighbours.

    ``seed=None`` is UMAP's parallel mode on ``threads`` threads (not reproducible); with a seed it
    runs on one thread, as the workflow does.
    """
    from latentsky.analysis.embedding import nearest_neighbours, neighbours_needed, umap_embed

    latents, _, _ = synthetic_latents(n, dim, 0)
    neighbours = nearest_neighbours(latents, neighbours_needed(UMAP_NEIGHBORS, PERPLEXITY), threads)
    start = time.perf_counter()
    umap_embed(latents, UMAP_NEIGHBORS, UMAP_MIN_DIST, seed, threads, neighbours)
    return {"umap_parallel_s" if seed is None else "umap_seeded_s": time.perf_counter() - start}


def _in_fresh_process(args, what: str) -> dict:
    command = [sys.executable, __file__, "--one", what, "--n", str(args.n), "--dim", str(args.dim)]
    command += ["--threads", str(args.threads), "--seed", str(args.seed)]
    output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    return json.loads(output.strip().splitlines()[-1])


def _table(runs: list[dict], keys) -> None:
    print(f"{'step':<16}" + "".join(f"{f'run {i + 1}':>9}" for i in range(len(runs))) + "   median")
    for key in keys:
        values = [run[key] for run in runs]
        cells = "".join(f"{v:9.1f}" for v in values)
        print(f"{key:<16}{cells}{statistics.median(values):9.1f}")


CHILDREN = {
    "analysis": measure_analysis,
    "umap_seeded": measure_umap,
    "umap_parallel": lambda n, dim, threads, seed: measure_umap(n, dim, threads, None),
}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=STUDY_N)
    parser.add_argument("--dim", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--umap-parallel",
        action="store_true",
        help="also time UMAP unseeded on --threads threads against seeded (one thread)",
    )
    parser.add_argument("--one", choices=CHILDREN, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:  # a child process: one run, one JSON line
        print(json.dumps(CHILDREN[args.one](args.n, args.dim, args.threads, args.seed)))
        return

    print(f"analysis of {args.n} x {args.dim} synthetic latents, {args.threads} threads, seconds")
    runs = [_in_fresh_process(args, "analysis") for _ in range(args.repeats)]
    _table(runs, (*STEPS, "analysis_s_35k"))
    print(f"peak resident memory: {max(run['peak_rss_mb'] for run in runs):.0f} MB")
    digests = {run["results_sha256"] for run in runs}
    print(f"results bitwise identical in all runs: {len(digests) == 1} ({min(digests)[:16]}...)")
    if args.umap_parallel:
        print(f"UMAP alone, each run a fresh process: seeded (1 thread), unseeded ({args.threads})")
        runs = []
        for _ in range(args.repeats):  # alternated, so that both see the same machine load
            runs.append(
                {
                    **_in_fresh_process(args, "umap_seeded"),
                    **_in_fresh_process(args, "umap_parallel"),
                }
            )
        _table(runs, ("umap_seeded_s", "umap_parallel_s"))


if __name__ == "__main__":
    main()
