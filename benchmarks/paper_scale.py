"""The study's scale on this machine: every stage beside its reference, one table and a JSON file.

    python benchmarks/paper_scale.py --json paper_scale.json [--frames 35277] [--keep DIR]

1. Writes, seeded, ``--frames`` frames of 256x256 counts as raw UCalgary stream0 minute files
   (20 frames a minute, gzipped PGM with the real header; :mod:`latentsky.demo.stream0`).
2. Decode: frames/s of merely reading those files (the reader alone, one thread).
3. Ingest: frames/s of the workflow's ingest (:func:`latentsky.samples.images.ingest_files`: decode,
   time checks, projection, chunk-block writes) of the same files, date by date, onto 128x128 and
   256x256 grids, as a ratio to the decode rate; then the stacking into the training store.
4. Projection: :func:`latentsky.projection.geometry.project_frames` against a plain CSR product of the same
   weights at 64x64 and 256x256 grids (benchmarks/projection.py).
5. Feed: float32 training batches per second from the stacked stores on disk (128x128 and
   256x256), with the shuffle windows and reader threads that training uses.
6. Training steps of the study config's Res-AE at 128x128 on this CPU (a few batches).
7. Analysis of 35,277 latent vectors: UMAP, t-SNE, spectral clustering, log-normal fits with
   bootstrap intervals and goodness of fit (benchmarks/analysis_scale.py).

Every stage runs in a fresh process, so its peak resident memory is its own; the table gives it.
From the measured rates it prints the expected wall time per stage of
config/fsim_2015_winter.yaml on this machine.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import sys
import tempfile
import time
from collections import defaultdict
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "workflow" / "scripts"))
sys.path.insert(0, str(ROOT / "benchmarks"))

#: The study's number of images (two months at FSIM).
STUDY_FRAMES = 35_277
ALTITUDE_KM, MIN_ELEVATION = 110.0, 10.0


def _peak_mb() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(usage, children) / 1024.0


def in_fresh_process(function, *args) -> dict:
    """Run ``function(*args)`` (returning a dict) in a new process; add its peak memory."""
    with ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn")) as pool:
        return pool.submit(_measured, function, *args).result()


def _measured(function, *args) -> dict:
    result = function(*args)
    result["peak_rss_mb"] = _peak_mb()
    return result


# --- stages (each runs in its own process) --------------------------------------------------------


def generate(root: str, n_frames: int, seed: int) -> dict:
    from latentsky.demo.stream0 import archive

    started = time.perf_counter()
    paths = archive(root, n_frames, seed=seed)
    return {"files": [str(p) for p in paths], "seconds": time.perf_counter() - started}


def decode(files: list[str]) -> dict:
    from latentsky.instruments.themis import read_themis_pgm_frames

    started = time.perf_counter()
    frames = sum(len(read_themis_pgm_frames(path).frames) for path in files)
    seconds = time.perf_counter() - started
    return {"frames": frames, "seconds": seconds, "frames_per_s": frames / seconds}


def _operator(grid_size: int):
    from projection import load_skymap

    from latentsky.projection.geometry import build_projection_operator, grid_covering

    skymap, _ = load_skymap()
    grid = grid_covering([skymap], ALTITUDE_KM, MIN_ELEVATION, grid_size, grid_size)
    operator, fov_mask = build_projection_operator(skymap, grid, ALTITUDE_KM, MIN_ELEVATION)
    return operator, fov_mask, grid


def ingest(files: list[str], grid_size: int, out_dir: str) -> dict:
    """The workflow's ingest of every date (like its per-date jobs, one after the other)."""
    import logging

    from latentsky.acquisition.sources import SOURCES
    from latentsky.samples.images import ingest_files

    logging.getLogger("latentsky").setLevel(logging.WARNING)
    operator, fov_mask, grid = _operator(grid_size)
    by_date = defaultdict(list)
    for path in files:
        by_date[Path(path).name[:8]].append(Path(path))
    read = SOURCES["ucalgary_stream0"].frame_reader("fsim", skip_bad_frames=True)
    stores, frames = [], 0
    started = time.perf_counter()
    for day, paths in sorted(by_date.items()):
        store = Path(out_dir) / f"{day}.zarr"
        attrs = {"site": "fsim", "skymap": "synthetic", "altitude_km": ALTITUDE_KM}
        attrs["min_elevation_deg"] = MIN_ELEVATION
        ingest_files(sorted(paths), read, operator, fov_mask, grid, store, attrs)
        stores.append(str(store))
    seconds = time.perf_counter() - started
    import xarray as xr

    frames = sum(xr.open_zarr(s).sizes["time"] for s in stores)
    return {
        "stores": stores,
        "frames": frames,
        "seconds": seconds,
        "frames_per_s": frames / seconds,
    }


def stack(stores: list[str], out: str) -> dict:
    from latentsky.samples.images import stack_dates

    started = time.perf_counter()
    stack_dates(stores, out, 1.0, 99.5)
    return {"seconds": time.perf_counter() - started}


def projection(grid_size: int) -> dict:
    from projection import measure_projection_vs_csr

    started = time.perf_counter()
    result = measure_projection_vs_csr(grid_size, grid_size)
    result["seconds"] = time.perf_counter() - started
    return result


def feed(store: str, batch_size: int = 64, readers: int = 2) -> dict:
    import torch
    from training_throughput import feed_rate

    from latentsky.models.feed import SampleSource

    source = SampleSource.from_store(store, "image")
    torch.set_num_threads(2)
    feed_rate(source, batch_size, torch.device("cpu"), readers)  # warm the page cache
    started = time.perf_counter()
    rates = [feed_rate(source, batch_size, torch.device("cpu"), readers) for _ in range(3)]
    seconds = time.perf_counter() - started
    return {"samples_per_s": sorted(rates)[1], "samples": source.n, "seconds": seconds}


def training_steps(store: str, n_batches: int = 6) -> dict:
    from training_throughput import RES_AE

    from latentsky.models import build_model
    from latentsky.models.feed import SampleSource
    from latentsky.models.training import TrainConfig, measure_steps

    source = SampleSource.from_store(store, "image")
    model = build_model("res_ae", RES_AE, source.sample_shape, seed=0)
    config = TrainConfig(batch_size=64, device="cpu", num_threads=2)
    return measure_steps(model, source, config, n_batches)


def analysis(n: int) -> dict:
    from analysis_scale import measure_analysis

    result = measure_analysis(n=n, threads=2)
    result["seconds"] = result["analysis_s_35k"]
    return result


# --- the run --------------------------------------------------------------------------------------


def run(n_frames: int, workdir: Path, seed: int = 0) -> dict:
    results: dict = {"frames": n_frames}
    rows = []

    def stage(name, function, *args):
        print(f"... {name}", flush=True)
        result = in_fresh_process(function, *args)
        rows.append((name, result))
        return result

    raw = workdir / "stream0"
    generated = stage("generate stream0 files", generate, str(raw), n_frames, seed)
    files = generated["files"]
    ratios = []
    for size in (128, 256):
        # Decode-only and ingest of the same files back to back, so that both see the same
        # machine (it is shared and noisy).
        decoded = stage(f"decode only (before ingest {size}x{size})", decode, files)
        ingested = stage(f"ingest {size}x{size}", ingest, files, size, str(workdir / f"p{size}"))
        ratio = ingested["frames_per_s"] / decoded["frames_per_s"]
        results[f"decode_frames_per_s_{size}"] = decoded["frames_per_s"]
        results[f"ingest_frames_per_s_{size}"] = ingested["frames_per_s"]
        results[f"ingest_vs_decode_{size}"] = ratio
        ratios.append(ratio)
        store = str(workdir / f"images_{size}.zarr")
        stacked = stage(f"stack {size}x{size}", stack, ingested["stores"], store)
        results[f"stack_s_{size}"] = stacked["seconds"]
        fed = stage(f"feed {size}x{size}", feed, store)
        results[f"feed_img_s_{size}"] = fed["samples_per_s"]
        if size == 128:
            steps = stage("training steps 128x128 (CPU)", training_steps, store)
            results["train_img_s_128_cpu"] = steps["samples_per_s"]
        shutil.rmtree(workdir / f"p{size}", ignore_errors=True)
    results["ingest_vs_decode"] = min(ratios)
    for size in (64, 256):
        measured = stage(f"projection vs CSR {size}x{size}", projection, size)
        results[f"projection_vs_csr_{size}"] = measured["ratio"]
        results[f"projection_vs_csr_{size}_1_thread"] = measured["ratio_1_thread"]
    analysed = stage(f"analysis of {STUDY_FRAMES} latents", analysis, STUDY_FRAMES)
    results["analysis_s_35k"] = analysed["analysis_s_35k"]
    results["peak_rss_mb"] = {name: round(r["peak_rss_mb"]) for name, r in rows}
    results["stage_seconds"] = {name: round(r["seconds"], 1) for name, r in rows}
    results["details"] = {name: _plain(r) for name, r in rows}
    return results


def _plain(result: dict) -> dict:
    return {k: v for k, v in result.items() if isinstance(v, int | float | str)}


def print_table(results: dict) -> None:
    print()
    print(f"paper scale: {results['frames']:,} frames of 256x256 counts, this machine")
    print(f"{'measure':34s} {'value':>12s}   reference")
    for size in (128, 256):
        decode_rate = results[f"decode_frames_per_s_{size}"]
        print(
            f"{'ingest ' + str(size) + 'x' + str(size) + ' frames/s':34s} "
            f"{results[f'ingest_frames_per_s_{size}']:12.0f}   decode only {decode_rate:.0f}/s "
            f"-> ratio {results[f'ingest_vs_decode_{size}']:.2f}"
        )
    for size in (64, 256):
        print(
            f"{'projection vs CSR ' + str(size) + 'x' + str(size):34s} "
            f"{results[f'projection_vs_csr_{size}']:12.2f}   plain CSR product = 1; "
            f"one thread {results[f'projection_vs_csr_{size}_1_thread']:.2f}"
        )
    for size in (128, 256):
        print(
            f"{'feed ' + str(size) + 'x' + str(size) + ' img/s':34s} "
            f"{results[f'feed_img_s_{size}']:12.0f}"
        )
    print(f"{'Res-AE training steps 128x128 CPU img/s':34s} {results['train_img_s_128_cpu']:12.1f}")
    print(f"{'analysis of 35,277 latents, s':34s} {results['analysis_s_35k']:12.1f}   limit 180")
    print()
    print(f"{'stage':40s} {'seconds':>9s} {'peak RSS MB':>12s}")
    for name, seconds in results["stage_seconds"].items():
        print(f"{name:40s} {seconds:9.1f} {results['peak_rss_mb'][name]:12d}")
    print()
    print_study_wall_time(results)


def print_study_wall_time(results: dict, epochs: int = 30) -> None:
    """Expected wall time of config/fsim_2015_winter.yaml's stages on a machine like this one.

    That config reads 35,400 stream0 minute files (20 frames each) and keeps one frame a minute:
    the ingest decodes every frame, so its time is that of 708,000 frames."""
    n = STUDY_FRAMES
    read = 35_400 * 20
    ingest_s = read / results["ingest_frames_per_s_128"]
    print(f"expected wall time of config/fsim_2015_winter.yaml ({n:,} images, 128x128) here:")
    print(f"  ingest ({read:,} frames decoded, 1 in 20 kept) {ingest_s / 60:8.1f} min")
    print(f"  stacking                                  {results['stack_s_128'] / 60:8.1f} min")
    train_s = epochs * n / results["train_img_s_128_cpu"]
    print(f"  training, {epochs} epochs on the CPU            {train_s / 3600:8.1f} h")
    print(f"  embedding, clustering, fits               {results['analysis_s_35k'] / 60:8.1f} min")


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=STUDY_FRAMES)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, help="write the figures to this JSON file")
    parser.add_argument("--keep", type=Path, help="work in this folder and keep it")
    args = parser.parse_args(argv)
    if args.keep:
        args.keep.mkdir(parents=True, exist_ok=True)
        workdir = args.keep
    else:
        workdir = Path(tempfile.mkdtemp(prefix="paper-scale-"))
    started = time.perf_counter()
    try:
        results = run(args.frames, workdir, args.seed)
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    results["total_s"] = time.perf_counter() - started
    print_table(results)
    print(f"\ntotal {results['total_s'] / 60:.1f} min")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return results


if __name__ == "__main__":
    main()
