"""Projection speed: the precomputed sparse operator against per-image interpolation.

The baseline is what a first attempt usually does: scipy.interpolate.griddata (linear) from the
pixel centres to the grid, once per frame. The sparse operator is built once per skymap and applied
to a stack of frames. Uses the real GAKO skymap from ../shared/data when present, otherwise the demo
generator's calibration file. Prints medians over repeats and the speed ratio.

    .venv/bin/python benchmarks/projection.py [--frames 200] [--repeats 5] [--grid 64]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from scipy.interpolate import LinearNDInterpolator, griddata
from scipy.spatial import Delaunay

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "workflow" / "scripts"))
from latentsky.geometry import (  # noqa: E402
    build_projection_operator,
    grid_covering,
    pixel_lat_lon,
    project_frames,
)
from latentsky.readers import read_berkeley_calibration, read_ucalgary_skymap  # noqa: E402

ALTITUDE_KM, MIN_ELEVATION = 110.0, 10.0


def load_skymap():
    real = ROOT.parent / "shared/data/themis/gako/themis_skymap_gako_20110305-+_vXX.sav"
    if real.exists():
        return read_ucalgary_skymap(real), "real GAKO skymap"
    from latentsky.synthetic_aurora import DemoParams, SkyGeometry, write_calibration_cdf

    params = DemoParams()
    path = Path(tempfile.mkdtemp()) / "cal.cdf"
    write_calibration_cdf(path, params, SkyGeometry(params))
    return read_berkeley_calibration(path, params.site), "demo calibration CDF"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--grid", type=int, default=64)
    args = parser.parse_args()
    skymap, source = load_skymap()
    grid = grid_covering([skymap], ALTITUDE_KM, MIN_ELEVATION, args.grid, args.grid)
    frames = np.random.default_rng(0).integers(3000, 12000, (args.frames, 256, 256), np.uint16)

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


if __name__ == "__main__":
    main()
