"""Write the offline demo mirror (archives in their real layouts) and its planted truth."""

import datetime as dt
import json
from pathlib import Path

from latentsky.demo.aurora import (
    DemoParams,
    demo_sites,
    generate_demo_mirror,
    generate_multisite_mirror,
)
from latentsky.logs import log_to_file

log = log_to_file(snakemake.log[0])
demo = snakemake.params.demo
common = {
    "nights": [dt.date.fromisoformat(day) for day in demo["dates"]],
    "first_hour": demo["hours_ut"][0],
    "last_hour": demo["hours_ut"][1],
    "cadence_s": demo["cadence_s"],
    "labelled_fraction": demo["labelled_fraction"],
}
mirror_dir = Path(snakemake.params.mirror_dir)
outputs = (mirror_dir, Path(snakemake.output.labels), Path(snakemake.output.truth))
if "sites" in demo:  # several sites, each with its own camera and scintillation
    summary = generate_multisite_mirror(*outputs, demo_sites(demo["sites"], demo["seed"]), **common)
else:
    params = DemoParams(site=demo["site"], station=demo["station"], seed=demo["seed"], **common)
    summary = generate_demo_mirror(*outputs, params)
log.info("demo mirror written to %s: %s", mirror_dir, summary)
Path(snakemake.output.flag).write_text(json.dumps(summary, indent=2, default=str))
