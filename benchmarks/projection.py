"""Projection speed: the precomputed sparse operator against per-image interpolation, and
:func:`project_frames` against a plain scipy CSR product of the same weights.

The first baseline is what a first attempt usually does: scipy.interpolate.griddata (linear) from
the pixel centres to the grid, once per frame. The sparse operator is built once per skymap and
applied to a stack of frames. The second comparison (:func:`measure_projection_vs_csr`, also used
by benchmarks/paper_scale.py) times the whole ``project_frames`` call, uint16 (N, 256, 256) frames
in and float32 (N, n_lat, n_lon) out as the workflow calls it, against ``operator @ X`` with X the
same frames already as float32 (pixels x frames), prepared outside the timing. Uses the real GAKO
skymap from ../shared/data when present, otherwise the demo generator's (seeded, synthetic fisheye)
calibration file. Prints medians over repeats and the speed ratios.

    .venv/bin/python benchmarks/projection.py [--frames 200] [--repeats 5] [--grid 64]
        [--csr-frames 256] [--csr-repeats 15]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numba
import numpy as np
from scipy.interpolate import LinearNDInterpolator, griddata
from scipy.spatial import Delaunay

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "workflow" / "scripts"))
from latentsky.instruments.themis import read_berkeley_calibration, read_ucalgary_skymap  # noqa: E402
from latentsky.projection.geometry import (  # noqa: E402
    build_projection_operator,
    grid_covering,
    pixel_lat_lon,
    project_frames,
)

ALTITUDE_KM, MIN_ELEVATION = 110.0, 10.0


def load_skymap():
    """(Skymap, description): the real GAKO skymap when ../shared/data has it, else the demo's."""
    real = ROOT.parent / "shared/data/themis/gako/themis_skymap_gako_20110305-+_vXX.sav"
    if real.exists():
        return read_ucalgary_skymap(real), "real GAKO skymap"
    from latentsky.demo.aurora import DemoParams, SkyGeometry, write_calibration_cdf

    params = DemoParams()
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "cal.cdf"
        write_calibration_cdf(path, params, SkyGeometry(params))
        return read_berkeley_calibration(path, params.site), "demo calibration CDF (synthetic)"


_FIRST_CALL = """
import sys, time
import numpy as np, scipy.sparse
sys.path.insert(0, sys.argv[1])
from latentsky.projection.geometry import project_frames
operator = scipy.sparse.random(35, 120, density=0.1, format="csr", dtype=np.float32, rng=0)
frames = np.zeros((19, 12, 10), np.uint16)
start = time.perf_counter()
project_frames(operator, np.ones((5, 7), bool), frames)
print(time.perf_counter() - start)
"""


def first_call_seconds() -> tuple[float, float]:
    """Seconds of the first project_frames call (uint16 frames, float32 out, more than 8 frames
    so that both the one-thread and the threaded kernel are needed) in a fresh Python process:
    (with an empty numba cache, i.e. compiling; then again, loading what that run cached)."""
    with tempfile.TemporaryDirectory() as cache:
        env = {**os.environ, "NUMBA_CACHE_DIR": cache}
        command = [sys.executable, "-c", _FIRST_CALL, str(ROOT / "workflow" / "scripts")]
        return tuple(
            float(subprocess.run(command, env=env, check=True, capture_output=True).stdout)
            for _ in range(2)
        )


def measure_projection_vs_csr(
    n_lat: int, n_lon: int, n_frames: int = 256, repeats: int = 15, skymap=None
) -> dict:
    """Frames/s of :func:`project_frames` and of a plain CSR product with the same operator.

    Ours: ``project_frames(operator, fov_mask, frames)`` on uint16 (n_frames, 256, 256) frames,
    returning a new float32 (n_frames, n_lat, n_lon) array, once on one numba thread and once on
    all of them. Reference: ``operator @ X``, X the same frames as float32 (65536, n_frames),
    C-contiguous, prepared outside the timing; scipy's product runs on one thread. The three are
    run in turn ``repeats`` times (the machine is shared and noisy) and each rate is n_frames over
    the median time. A first call is made and timed before the measured runs.

    Args:
        n_lat, n_lon: grid size (cells) over the skymap's field of view at 110 km, 10 deg cut.
        n_frames: frames per call (256 is the ingest's block of frames).
        repeats: runs of each.
        skymap: a Skymap, or None for :func:`load_skymap`'s choice.

    Returns:
        dict: ``source`` (skymap used), ``nnz``, ``n_frames``, ``repeats``, ``threads`` (numba's),
        ``first_call_s`` (includes compiling the kernels, or loading them from numba's on-disk
        cache, unless this process already has them),
        ``csr_frames_per_s``, ``projection_frames_per_s`` (all threads),
        ``projection_frames_per_s_1_thread``, ``ratio`` and ``ratio_1_thread`` (ours / reference).
    """
    source = "given skymap"
    if skymap is None:
        skymap, source = load_skymap()
    grid = grid_covering([skymap], ALTITUDE_KM, MIN_ELEVATION, n_lat, n_lon)
    operator, fov_mask = build_projection_operator(skymap, grid, ALTITUDE_KM, MIN_ELEVATION)
    frames = np.random.default_rng(0).integers(3000, 12000, (n_frames, 256, 256), np.uint16)
    pixels_by_frames = np.ascontiguousarray(frames.reshape(n_frames, -1).T, dtype=np.float32)

    start = time.perf_counter()
    project_frames(operator, fov_mask, frames)
    first_call = time.perf_counter() - start

    threads = numba.get_num_threads()

    def ours(n_threads):
        def run():
            numba.set_num_threads(n_threads)
            try:
                project_frames(operator, fov_mask, frames)
            finally:
                numba.set_num_threads(threads)

        return run

    runs = {"csr": lambda: operator @ pixels_by_frames, "one": ours(1), "all": ours(threads)}
    times = {name: [] for name in runs}
    for _ in range(repeats):
        for name, run in runs.items():
            start = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - start)
    rate = {name: n_frames / statistics.median(t) for name, t in times.items()}
    return {
        "source": source,
        "n_lat": n_lat,
        "n_lon": n_lon,
        "nnz": int(operator.nnz),
        "n_frames": n_frames,
        "repeats": repeats,
        "threads": threads,
        "first_call_s": first_call,
        "csr_frames_per_s": rate["csr"],
        "projection_frames_per_s": rate["all"],
        "projection_frames_per_s_1_thread": rate["one"],
        "ratio": rate["all"] / rate["csr"],
        "ratio_1_thread": rate["one"] / rate["csr"],
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--grid", type=int, default=64)
    parser.add_argument("--csr-frames", type=int, default=256)
    parser.add_argument("--csr-repeats", type=int, default=15)
    args = parser.parse_args()
    skymap, source = load_skymap()
    grid = grid_covering([skymap], ALTITUDE_KM, MIN_ELEVATION, args.grid, args.grid)
    frames = np.random.default_rng(0).integers(3000, 12000, (args.frames, 256, 256), np.uint16)
    operator, fov_mask = build_projection_operator(skymap, grid, ALTITUDE_KM, MIN_ELEVATION)
    project_frames(operator, fov_mask, frames[:1])  # compile (or load) the kernel before timing

    build, sparse, naive = [], [], []
    for _ in range(args.repeats):
        start = time.perf_counter()
        operator, fov_mask = build_projection_operator(skymap, grid, ALTITUDE_KM, MIN_ELEVATION)
        build.append(time.perf_counter() - start)
        start = time.perf_counter()
        project_frames(operator, fov_mask, frames)
        sparse.append(time.perf_counter() - start)

    lat, lon = pixel_lat_lon(skymap, ALTITUDE_KM)
    usable = np.isfinite(lat) & (skymap.elevation >= MIN_ELEVATION)
    points = np.column_stack([lat[usable], lon[usable]])
    cells = np.stack(np.meshgrid(grid.lat, grid.lon, indexing="ij"), axis=-1)
    n_naive = max(1, args.frames // 20)  # the baseline is slow: time a subset, scale per frame
    for _ in range(args.repeats):
        start = time.perf_counter()
        for frame in frames[:n_naive]:
            griddata(points, frame[usable].astype(np.float32), cells, method="linear")
        naive.append((time.perf_counter() - start) / n_naive * args.frames)

    # A fairer baseline: triangulate once, interpolate each frame on the reused triangulation.
    reused = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        triangulation = Delaunay(points)
        for frame in frames:
            LinearNDInterpolator(triangulation, frame[usable].astype(np.float32))(cells)
        reused.append(time.perf_counter() - start)

    median = statistics.median
    print(
        f"projection of {args.frames} frames of 256x256 onto {args.grid}x{args.grid} cells "
        f"({source}); median of {args.repeats} repeats"
    )
    print(f"  build sparse operator (once per skymap) {median(build):8.3f} s, nnz={operator.nnz}")
    print(
        f"  sparse operator, whole stack             {median(sparse):8.3f} s "
        f"({median(sparse) / args.frames * 1e3:.2f} ms/frame)"
    )
    print(
        f"  griddata per frame (re-triangulates)    {median(naive):8.3f} s "
        f"({median(naive) / args.frames * 1e3:.2f} ms/frame)"
    )
    print(
        f"  Delaunay once, interpolate per frame     {median(reused):8.3f} s "
        f"({median(reused) / args.frames * 1e3:.2f} ms/frame)"
    )
    print(f"  speed-up vs griddata per frame           {median(naive) / median(sparse):8.1f} x")
    print(f"  speed-up vs reused triangulation         {median(reused) / median(sparse):8.1f} x")

    print(
        f"project_frames (uint16 frames in, float32 grid out) against a plain scipy CSR product "
        f"operator @ X (X float32 pixels x frames, prepared outside the timing; scipy uses one "
        f"thread), {args.csr_frames} frames per call, median of {args.csr_repeats} alternated runs"
    )
    for n in (64, 256):
        r = measure_projection_vs_csr(n, n, args.csr_frames, args.csr_repeats, skymap)
        print(
            f"  {n}x{n} grid (nnz={r['nnz']}): CSR {r['csr_frames_per_s']:8.0f} frames/s; ours "
            f"1 thread {r['projection_frames_per_s_1_thread']:8.0f} frames/s "
            f"(ratio {r['ratio_1_thread']:.2f}), {r['threads']} threads "
            f"{r['projection_frames_per_s']:8.0f} frames/s (ratio {r['ratio']:.2f})"
        )
    compiled, loaded = first_call_seconds()
    print(
        f"  first call in a fresh process: {compiled:.1f} s with an empty numba cache (compiling "
        f"the kernels for uint16 frames -> float32), {loaded:.2f} s loading them from the cache"
    )


if __name__ == "__main__":
    main()
