"""Figure: sigma_phi per spectral cluster with the fitted log-normal curves, in cluster colours."""

import numpy as np
import pandas as pd

from latentsky.figures import plot_sigma_phi_distributions
from latentsky.logs import log_to_file
from latentsky.stores import open_zarr

log_to_file(snakemake.log[0])
table = pd.read_csv(snakemake.input.embedding)
sigma_phi = open_zarr(snakemake.input.sigma_phi)["sigma_phi"].to_numpy()
table["sigma_phi"] = sigma_phi[table["index"].to_numpy()]
values = {int(c): rows["sigma_phi"].to_numpy() for c, rows in table.groupby("cluster")}
fits = pd.read_csv(snakemake.input.fits)
fits = fits[fits["group_type"] == "cluster"].rename(columns={"group": "cluster"})
fits["cluster"] = fits["cluster"].astype(float).astype(int)
values = {c: v[np.isfinite(v) & (v > 0)] for c, v in values.items()}
plot_sigma_phi_distributions(values, fits, snakemake.output[0])
