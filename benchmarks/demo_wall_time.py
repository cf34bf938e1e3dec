"""Wall time of the demo, from the generated mirror to the report, per stage.

Runs the real workflow in a scratch copy of the repository (so results/ of the checkout are left
alone): first the demo generators (timed apart, they are not part of the pipeline), then the whole
DAG, then the report. Per-stage figures are the sums of Snakemake's own per-job benchmarks
(results/benchmarks/<rule>/*.tsv); stages overlap when cores allow, so their sum can exceed the wall.

    .venv/bin/python benchmarks/demo_wall_time.py [--cores 2] [--repeats 1] [--configfile F]
        [--drop-dataset NAME ...]   # e.g. --drop-dataset tle_demo: the auroral demo alone
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import pandas as pd
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from workflow_helpers import copy_workflow  # noqa: E402


def snakemake(workdir: Path, *args: str) -> float:
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "snakemake", *args],
        cwd=workdir,
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return time.perf_counter() - start


def one_run(cores: int, configfile: str | None, drop: list[str]) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="latentsky-bench-") as scratch:
        work = copy_workflow(Path(scratch))
        if drop:  # the same config without some datasets: what they add to the wall time
            source = Path(configfile).resolve() if configfile else work / "config/config.yaml"
            config = yaml.safe_load(source.read_text())
            for name in drop:
                del config["datasets"][name]
            configfile = str(work / "config" / "benchmark.yaml")
            Path(configfile).write_text(yaml.safe_dump(config))
        extra = ["--configfile", str(Path(configfile).resolve())] if configfile else []
        generators = ("generate_demo_mirror", "generate_tle_demo")
        generate = snakemake(work, "--cores", str(cores), *extra, "--until", *generators)
        pipeline = snakemake(work, "--cores", str(cores), *extra)
        report = snakemake(work, "--cores", "1", *extra, "--report", "results/report.html")
        stages: dict[str, float] = defaultdict(float)
        for tsv in (work / "results" / "benchmarks").glob("*/*.tsv"):
            stages[tsv.parent.name] += float(pd.read_csv(tsv, sep="\t")["s"].iloc[0])
        for name in generators:
            stages.pop(name, None)
        return {
            "demo generators (not counted)": generate,
            **stages,
            "report": report,
            "WALL: mirror -> results": pipeline,
            "WALL: mirror -> report": pipeline + report,
        }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--configfile", default=None)
    parser.add_argument(
        "--drop-dataset", nargs="+", default=[], help="leave these datasets out of the config"
    )
    args = parser.parse_args()
    runs = [one_run(args.cores, args.configfile, args.drop_dataset) for _ in range(args.repeats)]
    print(f"demo wall time, {args.cores} cores, {args.repeats} run(s); median seconds (min..max)")
    for key in runs[0]:
        values = [run.get(key, 0.0) for run in runs]
        print(
            f"  {key:<40s} {statistics.median(values):8.1f}   ({min(values):.1f}..{max(values):.1f})"
        )


if __name__ == "__main__":
    main()
