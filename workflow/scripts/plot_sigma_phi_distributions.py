"""Figure: sigma_phi per spectral cluster and per label (one value per record) with the fitted
log-normals, what each cluster holds, and the fitted parameters with their intervals."""

import numpy as np
import pandas as pd

from latentsky.analysis.embedding import dominant_labels
from latentsky.analysis.lognormal import unit_values
from latentsky.analysis.scintillation import record_keys
from latentsky.figures import plot_sigma_phi_distributions
from latentsky.logs import log_to_file
from latentsky.stores import open_zarr

log_to_file(snakemake.log[0])
table = pd.read_csv(snakemake.input.embedding)
store = open_zarr(snakemake.input.sigma_phi)
rows = table["index"].to_numpy()
table["sigma_phi"] = store["sigma_phi"].to_numpy()[rows]
table["record"] = record_keys(
    store["record_time"].to_numpy()[rows], table["site"] if "site" in table else None
)


def per_record(members: pd.DataFrame) -> np.ndarray:
    """sigma_phi once per record among ``members``, as the fits take it."""
    return np.exp(unit_values(members["sigma_phi"], members["record"].to_numpy(object))[0])


fits = pd.read_csv(snakemake.input.fits)
cluster_fits = fits[fits["group_type"] == "cluster"].rename(columns={"group": "cluster"})
cluster_fits["cluster"] = cluster_fits["cluster"].astype(float).astype(int)
label_fits = fits[fits["group_type"] == "label"].rename(columns={"group": "label"})
plot_sigma_phi_distributions(
    {int(c): per_record(members) for c, members in table.groupby("cluster")},
    cluster_fits,
    snakemake.output.png,
    label_values={label: per_record(members) for label, members in table.groupby("label")},
    label_fits=label_fits if len(label_fits) else None,
    dominant_labels=dominant_labels(table["cluster"], table["label"]),
)
