"""Compare photometer representations on the TLE demo, outside Snakemake (a few minutes each).

Generates the demo (realistic or the old flattering one), cuts windows as the ingest does, labels
every labellable episode from the truth (not only the labelled half), trains the Beta VAE directly
and measures what issue 14 asks: balanced kNN accuracy over the six types, kNN recall per type, ARI
of spectral clusters of the UMAP embedding at 4 and at 6 clusters, the anomaly AUC of each TLE type
against lightning, the candidates' top 50, and the band signature's false-positive rate on quiet
windows. Prints one JSON line.

    .venv/bin/python benchmarks/tle_representation.py --seed 7 --centre pulse --scaling band_log
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "workflow" / "scripts"))

import xarray as xr  # noqa: E402

from latentsky.analysis.embedding import adjusted_rand, spectral_clusters, umap_embed  # noqa: E402
from latentsky.analysis.labels import match_labels, read_labels  # noqa: E402
from latentsky.analysis.scoring import anomaly_scores  # noqa: E402
from latentsky.analysis.tle import feature_table, rank_candidates  # noqa: E402
from latentsky.analysis.tle_clusters import FEATURES, latent_clusters, type_scores  # noqa: E402
from latentsky.demo.tle import TYPES, TleDemoParams, generate_tle_demo  # noqa: E402
from latentsky.instruments.mmia import find_fits_files  # noqa: E402
from latentsky.models import build_model  # noqa: E402
from latentsky.models.encoding import encode  # noqa: E402
from latentsky.models.training import TrainConfig, train  # noqa: E402
from latentsky.samples.colours import Colours  # noqa: E402
from latentsky.samples.windows import Scaling, WindowSettings, window_pieces  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--observations", type=int, default=80)
    parser.add_argument("--flattering", action="store_true", help="the old demo generator")
    parser.add_argument("--centre", default="none", choices=["none", "pulse"])
    parser.add_argument("--length", type=int, default=1000)
    parser.add_argument("--stride", type=int, default=None)
    parser.add_argument("--scaling", default="{}", help="JSON of photometer.scaling")
    parser.add_argument("--model", default="{}", help="JSON of model keys")
    parser.add_argument("--colours", default="{}", help="JSON of photometer.colours")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument(
        "--train-seed", type=int, default=0, help="seed of the weights and batch order"
    )
    parser.add_argument("--lr", type=float, default=0.002)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--tolerance", type=float, default=0.005, help="label tolerance, s")
    parser.add_argument("--no-train", action="store_true")
    parser.add_argument("--work", default=None)
    args = parser.parse_args()
    torch.set_num_threads(2)
    work = Path(args.work or tempfile.mkdtemp(prefix="tle_bench_"))
    params = TleDemoParams(
        seed=args.seed,
        n_observations=args.observations,
        frames_per_observation=3,
        episode_samples=1000,
        labelled_fraction=0.5,
        realistic=not args.flattering,
    )
    folder = work / f"demo_{args.seed}_{int(params.realistic)}"
    if not (folder / "truth" / "truth.csv").exists():
        generate_tle_demo(folder / "fits", folder / "labels.csv", folder / "truth", params)
    scaling_config = {
        "method": "log",
        "low": -10.0,
        "high": 200.0,
        "log_scale": 10.0,
        "baseline": "window_median",
        **json.loads(args.scaling),
    }
    scaling = Scaling(**scaling_config)
    settings = WindowSettings(
        length=args.length, stride=args.stride or args.length, centre=args.centre
    )
    t0 = time.time()
    ds = xr.concat(
        list(
            window_pieces(
                find_fits_files(folder / "fits"),
                settings,
                scaling,
                {},
                colours=Colours.from_config(json.loads(args.colours)),
            )
        ),
        "window",
    )
    truth = pd.read_csv(folder / "truth" / "truth.csv")
    truth = truth[truth["labellable"] == 1]
    labels = pd.DataFrame(
        {
            "time": pd.to_datetime(truth["time"], utc=True).dt.tz_localize(None),
            "label": truth["type"],
        }
    ).sort_values("time")
    matched, counts = match_labels(ds["time"].to_numpy(), labels, args.tolerance)
    features = {name: ds[name].to_numpy() for name in FEATURES}
    table = feature_table(features)
    table["label"] = matched
    out = {
        "seed": args.seed,
        "train_seed": args.train_seed,
        "realistic": params.realistic,
        "centre": args.centre,
        "scaling": scaling_config,
        "model": json.loads(args.model),
        "colours": json.loads(args.colours),
        "n_windows": int(ds.sizes["window"]),
        "label_matching": counts,
        "ingest_s": round(time.time() - t0, 1),
    }
    # Truly quiet windows: no planted event (onset to end) overlaps them.
    events = pd.read_csv(folder / "truth" / "truth.csv").dropna(subset=["onset_time"])
    onsets = pd.to_datetime(events["onset_time"], utc=True).dt.tz_localize(None).to_numpy()
    ends = pd.to_datetime(events["end_time"], utc=True).dt.tz_localize(None).to_numpy()
    order = np.argsort(onsets)
    onsets, ends = onsets[order], np.maximum.accumulate(ends[order])
    first = ds["start_time"].to_numpy()
    last = first + np.timedelta64(int(args.length * 1e4), "ns")
    k = np.searchsorted(onsets, last) - 1  # last event starting before the window ends
    lit = (k >= 0) & (ends[np.clip(k, 0, None)] > first)
    out["n_quiet_windows"] = int((~lit).sum())
    out["signature_false_positive_quiet"] = float((table["signature"][~lit] != "quiet").mean())
    corona = table["label"] == "blue_corona"
    out["corona_lightning_like"] = float((table["signature"][corona] == "lightning_like").mean())
    out["signature_by_type"] = {
        kind: table["signature"][table["label"] == kind]
        .value_counts(normalize=True)
        .round(2)
        .to_dict()
        for kind in TYPES
    }
    if not args.no_train:
        waveform = ds["waveform"].to_numpy().astype(np.float32)
        model = build_model(
            "beta_vae_1d",
            {"base_channels": 8, "max_channels": 32, "depth": 5, "latent_dim": 50, **out["model"]},
            waveform.shape[1:],
            seed=args.train_seed,
        )
        config = TrainConfig(
            epochs=args.epochs,
            batch_size=args.batch,
            learning_rate=args.lr,
            seed=args.train_seed,
            device="cpu",
            num_threads=2,
            shuffle_buffer=len(waveform),
        )
        t1 = time.time()
        train(model, waveform, config, work / "ckpt.pt", work / "metrics.csv")
        out["train_s"] = round(time.time() - t1, 1)
        latents = encode(model, waveform, device="cpu")
        scores = anomaly_scores(model, waveform, device="cpu")
        np.savez(work / "latents.npz", latents=latents, neg_elbo=scores["neg_elbo"])
        table["neg_elbo"] = scores["neg_elbo"]
        labelled = table["label"].notna().to_numpy()
        coords = umap_embed(latents[labelled], seed=0)
        clusters = {k: spectral_clusters(coords, k, seed=0) for k in (4, 6)}
        out.update(
            type_scores(
                latents[labelled],
                table.loc[labelled, "label"].to_numpy(),
                clusters,
                table.loc[labelled, "neg_elbo"].to_numpy(),
            )
        )
        # Each TLE type against quiet sky alone (the README's "Colour channels").
        out["anomaly_auc_vs_background"] = type_scores(
            latents[labelled],
            table.loc[labelled, "label"].to_numpy(),
            {},
            table.loc[labelled, "neg_elbo"].to_numpy(),
            reference="background",
        )["anomaly_auc_by_type"]
        # What the workflow's summary.json measures: the labelled half only (the labels CSV).
        hand, _ = match_labels(ds["time"].to_numpy(), read_labels(folder / "labels.csv"), 0.005)
        hand = np.asarray(hand, dtype=object)
        chosen = np.flatnonzero(pd.notna(hand))
        n_types = len(set(hand[chosen]))
        hand_coords = umap_embed(latents[chosen], seed=0)
        half = type_scores(
            latents[chosen],
            hand[chosen].astype(str),
            {n_types: latent_clusters(latents[chosen], n_types, seed=0)},
            scores["neg_elbo"][chosen],
        )
        on_umap = spectral_clusters(hand_coords, n_types, seed=0)
        out["labelled_half"] = {
            "n": len(chosen),
            "balanced_knn_accuracy": half["balanced_knn_accuracy"],
            "knn_recall": half["knn_recall"],
            "ari_at_n_types": half["ari_at"][n_types],
            "ari_at_n_types_umap": adjusted_rand(on_umap, hand[chosen].astype(str)),
        }
        ranked = rank_candidates(table, n=50)
        top = ranked["label"].dropna()
        out["candidates_top50"] = top.value_counts().to_dict()
    print(json.dumps(out))


if __name__ == "__main__":
    main()
