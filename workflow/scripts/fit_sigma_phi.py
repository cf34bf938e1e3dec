"""Log-normal fits of sigma_phi for every spectral cluster and every label (and, with several
sites, every cluster at every site)."""

import pandas as pd

from latentsky.analysis.lognormal import fit_table
from latentsky.logs import log_to_file
from latentsky.stores import open_zarr

log = log_to_file(snakemake.log[0])
table = pd.read_csv(snakemake.input.embedding, parse_dates=["time"])
sigma_phi = open_zarr(snakemake.input.sigma_phi)["sigma_phi"].to_numpy()
groupings = {"cluster": table["cluster"].to_numpy(), "label": table["label"].to_numpy()}
if "site" in table:
    groupings["cluster_site"] = (table["cluster"].astype(str) + "@" + table["site"]).to_numpy()
fits = fit_table(
    sigma_phi[table["index"].to_numpy()],
    groupings,
    n_bootstrap=snakemake.params.bootstrap_samples,
    seed=snakemake.params.seed,
)
log.info("fits:\n%s", fits.to_string())
fits.to_csv(snakemake.output.fits, index=False)
