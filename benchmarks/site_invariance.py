"""The multi-site ablation: what each site-invariance option does to the latents.

    python benchmarks/site_invariance.py [--json site_invariance.json] [--workdir DIR]

Runs the multi-site demo (config/multisite.yaml: three imagers with different cameras and their
own sigma_phi relations) through the whole workflow several times, changing only the options
that make the imagers comparable, one at a time from none to all:

1. none: a latitude-longitude grid over all sites, each site's own field of view, one
   normalisation for the dataset (what the study did);
2. + site frame: each site on the same grid of km from itself (azimuthal equidistant);
3. + common field of view: the same 350 km disc at every site;
4. + per-site, per-cell normalisation (low and high percentiles of every cell of every site);
5. + per-site ring scale instead: the low percentile per cell, the high one pooled over each
   ring of cells at one distance from the site (the demo's settings);
6. with ``--augment``, + rotations: training augmented by the eight symmetries of the square.

For each it prints, from the run's summary.json: site kNN accuracy (against chance 1/3),
cross-site class kNN accuracy (labels of one site predicted from another's), class kNN accuracy,
the adjusted Rand index of the clusters against the labels, and the share of discrete and arc
aurora in the cluster with the highest median sigma_phi. The runs share the downloads (the
generated mirror); each trains its own model. About 8 minutes a run on a 2-core machine.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
DATASET = "multisite"

#: The variants, each the previous plus one option (config edits on config/multisite.yaml).
VARIANTS = {
    "none": {
        "projection": {
            "grid": {"frame": "geographic", "n_lat": 64, "n_lon": 64},
            "fov_radius_km": None,
            "normalisation": {"scope": "dataset"},
        }
    },
    "+ site frame": {
        "projection": {
            "grid": {"frame": "site", "n_lat": 64, "n_lon": 64, "half_width_km": 500},
            "fov_radius_km": None,
            "normalisation": {"scope": "dataset"},
        }
    },
    "+ common field of view": {
        "projection": {
            "grid": {"frame": "site", "n_lat": 64, "n_lon": 64, "half_width_km": 500},
            "fov_radius_km": 350,
            "normalisation": {"scope": "dataset"},
        }
    },
    "+ per-site-cell normalisation": {"projection": {"normalisation": {"scope": "site_cell"}}},
    "+ per-site ring scale": {},  # config/multisite.yaml as shipped
}
#: Optional (``--augment``): the shipped settings with sky augmentations in training.
AUGMENTED = {"+ rotations": {"training": {"augment": "rotations"}}}
MEASURES = (
    "site_knn_accuracy",
    "cross_site_knn_accuracy",
    "knn_accuracy",
    "adjusted_rand_index",
    "bright_aurora_fraction",
)


def scratch_copy(destination: Path) -> Path:
    """The workflow (Snakefile, rules, scripts, configs, envs) in a folder of its own."""
    for name in ("Snakefile", "workflow", "config", "envs"):
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(
                source, destination / name, ignore=shutil.ignore_patterns("__pycache__")
            )
        else:
            shutil.copy2(source, destination / name)
    return destination


def merged(base: dict, edit: dict) -> dict:
    out = dict(base)
    for key, value in edit.items():
        out[key] = merged(base.get(key, {}), value) if isinstance(value, dict) else value
    return out


def run_variant(work: Path, name: str, edit: dict, cores: int) -> dict:
    config = merged(yaml.safe_load((ROOT / "config/multisite.yaml").read_text()), edit)
    (work / "config/variant.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    started = time.perf_counter()
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "snakemake",
            "--cores",
            str(cores),
            "--configfile",
            "config/variant.yaml",
        ],
        cwd=work,
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        raise RuntimeError(
            f"variant {name!r} failed:\n{result.stdout[-4000:]}{result.stderr[-4000:]}"
        )
    summary = json.loads((work / f"results/{DATASET}/summary.json").read_text())
    row = {key: summary.get(key) for key in MEASURES[:-1]}
    row["bright_aurora_fraction"] = summary.get("highest_sigma_phi_cluster", {}).get(
        "bright_aurora_fraction"
    )
    row["site_knn_chance"] = summary.get("site_knn_chance")
    row["seconds"] = time.perf_counter() - started
    return row


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path)
    parser.add_argument("--workdir", type=Path, help="work here and keep it (default: a temp dir)")
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--variants", nargs="*", default=list(VARIANTS))
    parser.add_argument("--augment", action="store_true", help="also run with rotations")
    args = parser.parse_args(argv)
    work = args.workdir or Path(tempfile.mkdtemp(prefix="site-invariance-"))
    if not (work / "Snakefile").exists():
        work.mkdir(parents=True, exist_ok=True)
        scratch_copy(work)
    rows = {}
    print(f"{'variant':32s} " + " ".join(f"{m[:22]:>22s}" for m in MEASURES), flush=True)
    variants = {**VARIANTS, **(AUGMENTED if args.augment else {})}
    for name in args.variants + (list(AUGMENTED) if args.augment else []):
        rows[name] = row = run_variant(work, name, variants[name], args.cores)
        values = " ".join(
            f"{row[m]:22.3f}" if row[m] is not None else f"{'-':>22s}" for m in MEASURES
        )
        print(f"{name:32s} {values}   ({row['seconds']:.0f} s)", flush=True)
    print(f"site kNN chance: {next(iter(rows.values()))['site_knn_chance']:.3f}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    if not args.workdir:
        shutil.rmtree(work, ignore_errors=True)
    return rows


if __name__ == "__main__":
    main()
