"""The photometer demo's summary.json over generator and training seeds, through the workflow.

Each run takes a clean copy of the workflow (as demo_wall_time.py does), writes a config holding
only the photometer dataset (`--dataset`, from config/config.yaml) with `demo_tle.seed` and
`training.seed` set, plus any `--set KEY=VALUE` overrides (dotted paths into the config, values
read as YAML), runs Snakemake and prints the headline figures of summary.json: balanced kNN
accuracy and recall per TLE type in the configured distance and in the Euclidean one beside it,
`ari_at_n_types` (latents; UMAP layout), `anomaly_auc_by_type`, `anomaly_roc_auc` and the wall
time. The README's tables of the shipped config ("The shipped config's summary.json", "Global
maxima") come from it:

    .venv/bin/python benchmarks/photometer_seeds.py --seeds 7 2 3 --train-seeds 0 1
    .venv/bin/python benchmarks/photometer_seeds.py --seeds 7 2 3 \\
        --set model.beta_vae_1d.kl_weight=0.5                      # the KL-0.5 rows
    .venv/bin/python benchmarks/photometer_seeds.py --seeds 7 2 \\
        --set datasets.tle_demo.demo_tle.episode_samples=1400      # the 14 ms probe

`--keep DIR` keeps each run's directory (DIR/seed<G>_train<T>) for
benchmarks/photometer_scores.py. A run takes about 3 minutes on 2 CPU cores.
"""

from __future__ import annotations

import argparse
import copy
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from workflow_helpers import copy_workflow  # noqa: E402

TLE = ["elve", "blue_corona", "sprite", "blue_jet"]


def config_for(base: dict, dataset: str, seed: int, train_seed: int, sets: list[str]) -> dict:
    """``base`` with only ``dataset``, its generator seed, the training seed and the overrides."""
    config = copy.deepcopy(base)
    config["datasets"] = {dataset: config["datasets"][dataset]}
    config["datasets"][dataset]["demo_tle"]["seed"] = seed
    config["training"] = {**config.get("training", {}), "seed": train_seed}
    for item in sets:
        key, _, value = item.partition("=")
        *path, last = key.split(".")
        node = config
        for part in path:
            node = node.setdefault(part, {})
        node[last] = yaml.safe_load(value)
    return config


def one_run(work: Path, config: dict, dataset: str, cores: int) -> dict:
    configfile = work / "config" / "seeds.yaml"
    configfile.write_text(yaml.safe_dump(config, sort_keys=False))
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "snakemake", "--cores", str(cores), "--configfile", configfile],
        cwd=work,
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wall = time.perf_counter() - start
    summary = json.loads((work / "results" / dataset / "summary.json").read_text())
    return {"wall_s": round(wall, 1), **summary}


def headline(summary: dict) -> str:
    tle = summary["tle"]
    euclidean = tle.get("euclidean", tle)

    def recalls(figures: dict) -> str:
        return " / ".join(f"{figures['knn_recall'][t]:.2f}" for t in TLE)

    aucs = " / ".join(f"{summary['anomaly_auc_by_type'][t]:.2f}" for t in TLE)
    return (
        f"balanced {tle['balanced_knn_accuracy']:.3f} ({tle.get('knn_metric', 'euclidean')}), "
        f"recall {recalls(tle)}; Euclidean {euclidean['balanced_knn_accuracy']:.3f}, "
        f"{recalls(euclidean)}; ARI {tle['ari_at_n_types']:.3f} "
        f"(UMAP {tle['ari_at_n_types_umap']:.3f}); AUC {aucs}; "
        f"anomaly_roc_auc {summary['anomaly_roc_auc']:.3f}; {summary['wall_s']} s"
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[7, 2, 3])
    parser.add_argument("--train-seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--dataset", default="tle_demo")
    parser.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--keep", type=Path, default=None, help="keep the run directories here")
    args = parser.parse_args()
    root = Path(__file__).resolve().parents[1]
    base = yaml.safe_load((root / "config" / "config.yaml").read_text())
    for train_seed in args.train_seeds:
        for seed in args.seeds:
            config = config_for(base, args.dataset, seed, train_seed, args.sets)
            with tempfile.TemporaryDirectory(prefix="latentsky-seeds-") as scratch:
                where = args.keep / f"seed{seed}_train{train_seed}" if args.keep else None
                work = copy_workflow(where or Path(scratch))
                summary = one_run(work, config, args.dataset, args.cores)
            print(f"generator seed {seed}, training seed {train_seed}: {headline(summary)}")


if __name__ == "__main__":
    main()
