"""Log-normal fits of sigma_phi for every spectral cluster and every label (and, with several
sites, every cluster at every site), over the independent sigma_phi records: a record counts once
in each group that holds any of its frames."""

import numpy as np
import pandas as pd

from latentsky.analysis.lognormal import count_groups, fit_table
from latentsky.analysis.scintillation import record_keys
from latentsky.logs import log_to_file
from latentsky.progress import LogProgress
from latentsky.stores import open_zarr

log = log_to_file(snakemake.log[0])
table = pd.read_csv(snakemake.input.embedding, parse_dates=["time"])
store = open_zarr(snakemake.input.sigma_phi)
rows = table["index"].to_numpy()
sigma_phi = store["sigma_phi"].to_numpy()[rows]
# The record behind each value (its site's station's): the independent unit.
records = record_keys(
    store["record_time"].to_numpy()[rows], table["site"] if "site" in table else None
)
groupings = {"cluster": table["cluster"].to_numpy(), "label": table["label"].to_numpy()}
if "site" in table:
    groupings["cluster_site"] = (table["cluster"].astype(str) + "@" + table["site"]).to_numpy()
n_bootstrap = snakemake.params.bootstrap_samples
log.info(
    "%d frames with sigma_phi from %d distinct records",
    np.isfinite(sigma_phi).sum(),
    len(set(records[np.isfinite(sigma_phi)]) - {None}),
)
with LogProgress(count_groups(groupings) * n_bootstrap, "bootstrap replicates", log) as progress:
    fits = fit_table(
        sigma_phi,
        groupings,
        units=records,
        n_bootstrap=n_bootstrap,
        seed=snakemake.params.seed,
        progress=progress.update,
    )
log.info("fits (n: records, n_frames: frames behind them):\n%s", fits.to_string())
fits.to_csv(snakemake.output.fits, index=False)
