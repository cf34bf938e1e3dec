"""Log-normal fits of sigma_phi for every spectral cluster and every label."""

import pandas as pd

from latentsky.analysis.lognormal import fit_groups
from latentsky.logs import log_to_file
from latentsky.stores import open_zarr

log = log_to_file(snakemake.log[0])
table = pd.read_csv(snakemake.input.embedding, parse_dates=["time"])
sigma_phi = open_zarr(snakemake.input.sigma_phi)["sigma_phi"].to_numpy()
table["sigma_phi"] = sigma_phi[table["index"].to_numpy()]
fits = []
for group_type in ("cluster", "label"):
    rows = table.dropna(subset=[group_type])
    if rows.empty:
        continue
    fit = fit_groups(
        rows["sigma_phi"].to_numpy(),
        rows[group_type].to_numpy(),
        n_bootstrap=snakemake.params.bootstrap_samples,
        seed=snakemake.params.seed,
    )
    fit.insert(0, "group_type", group_type)
    fits.append(fit)
fits = pd.concat(fits, ignore_index=True)
log.info("fits:\n%s", fits.to_string())
fits.to_csv(snakemake.output.fits, index=False)
