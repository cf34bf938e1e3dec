"""Write the offline demo mirror (archives in their real layouts) and its planted truth."""

import datetime as dt
import json
from pathlib import Path

from latentsky.demo.aurora import DemoParams, generate_demo_mirror
from latentsky.logs import log_to_file

log = log_to_file(snakemake.log[0])
demo = snakemake.params.demo
params = DemoParams(
    site=demo["site"],
    station=demo["station"],
    nights=[dt.date.fromisoformat(day) for day in demo["dates"]],
    first_hour=demo["hours_ut"][0],
    last_hour=demo["hours_ut"][1],
    cadence_s=demo["cadence_s"],
    labelled_fraction=demo["labelled_fraction"],
    seed=demo["seed"],
)
mirror_dir = Path(snakemake.params.mirror_dir)
summary = generate_demo_mirror(
    mirror_dir, Path(snakemake.output.labels), Path(snakemake.output.truth), params
)
log.info("demo mirror written to %s: %s", mirror_dir, summary)
Path(snakemake.output.flag).write_text(json.dumps(summary, indent=2, default=str))
