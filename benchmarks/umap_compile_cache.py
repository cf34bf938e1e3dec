"""UMAP in a fresh process: numba compiling umap's code every time, or loading it from the cache.

The figures behind ``latentsky.analysis.embedding.import_umap``. Each run is a new Python process
(as every ``embed_latents`` job is) that imports the library and lays out ``--points`` random
50-dimensional latents with :func:`~latentsky.analysis.embedding.umap_embed`; it reports the
process's own seconds from the first import to the coordinates:

- ``plain``: ``import umap`` as it comes (numba compiles the functions UMAP uses, every process);
- ``cold``: :func:`import_umap` with an empty cache (compiles and writes the cache; once);
- ``cached``: :func:`import_umap` with that cache filled (the second and later processes).

The cache of the ``cold`` and ``cached`` runs is a temporary folder (``NUMBA_CACHE_DIR``), so the
installation's own cache is neither used nor touched. Runs alternate plain and cached; medians
are printed, with their ratio, and whether every run gave the same coordinates.

    .venv/bin/python benchmarks/umap_compile_cache.py [--points 1000] [--repeats 5]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

SCRIPTS = Path(__file__).resolve().parents[1] / "workflow" / "scripts"

CHILD = """
import sys, time, hashlib
start = time.perf_counter()
sys.path.insert(0, {scripts!r})
import numpy as np
from latentsky.analysis import embedding
if {cached}:
    embedding.import_umap()
else:
    import umap  # noqa: F401  (plain: numba compiles umap's functions in this process)
latents = np.random.default_rng(0).normal(size=({points}, 50))
coords = embedding.umap_embed(latents, seed=0)
print(time.perf_counter() - start, hashlib.sha256(coords.tobytes()).hexdigest())
"""


def run(cached: bool, points: int, cache_dir: str) -> tuple[float, str]:
    code = CHILD.format(scripts=str(SCRIPTS), cached=cached, points=points)
    env = {**os.environ, "NUMBA_CACHE_DIR": cache_dir}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    seconds, digest = out.stdout.split()[-2:]
    return float(seconds), digest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--points", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as cache_dir:
        cold, first = run(True, args.points, cache_dir)
        times = {"plain": [], "cached": []}
        digests = {first}
        for _ in range(args.repeats):
            for name in ("plain", "cached"):
                seconds, digest = run(name == "cached", args.points, cache_dir)
                times[name].append(seconds)
                digests.add(digest)
    plain, cached = statistics.median(times["plain"]), statistics.median(times["cached"])
    print(
        json.dumps(
            {
                "points": args.points,
                "repeats": args.repeats,
                "cold_s": round(cold, 2),
                "plain_s": [round(t, 2) for t in times["plain"]],
                "cached_s": [round(t, 2) for t in times["cached"]],
                "median_plain_s": round(plain, 2),
                "median_cached_s": round(cached, 2),
                "plain_over_cached": round(plain / cached, 2),
                "same_coordinates": len(digests) == 1,
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
