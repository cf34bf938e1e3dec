# latentsky: unsupervised structure in sky data, for each dataset of the config:
#
#   all-sky images (kind asi):
#     generate_demo_mirror (demo only) -> download_images, download_skymaps (per date, local rules)
#     -> build_projection_operator -> project_images (per date) -> stack_images -> images.zarr
#     download_scintillation (per date) -> extract_sigma_phi -> sigma_phi.zarr
#   photometer windows (kind photometer):
#     generate_tle_demo (demo only) -> ingest_photometer -> windows.zarr
#   every kind, from its sample store:
#     train_autoencoder -> encode_latents -> latents.zarr -> embed_latents (UMAP, t-SNE)
#     -> cluster_embedding (spectral) -> fit_sigma_phi (log-normal; datasets with a GNSS station)
#     -> analyse_tle_clusters (photometer) -> plot_* figures (PNG and PDF), summarise_results
#     -> summary.json; report_* tables (configuration, summary, sigma_phi fits) for the report
#   `snakemake --report` -> report.html


import sys

from snakemake.utils import min_version

min_version("9.0")

# The library's configuration checks and registries (standard library only) serve the rules too.
sys.path.insert(0, f"{workflow.basedir}/workflow/scripts")
from latentsky.config import prepare

# The default config applies unless --configfile names another, which then replaces it whole;
# --config values apply on top of either.
if not workflow.config_settings.configfiles:

    configfile: "config/config.yaml"


prepare(config, f"{workflow.basedir}/config/schema.yaml")


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/demo.smk"
include: "workflow/rules/download.smk"
include: "workflow/rules/projection.smk"
include: "workflow/rules/scintillation.smk"
include: "workflow/rules/photometer.smk"
include: "workflow/rules/model.smk"
include: "workflow/rules/analysis.smk"
include: "workflow/rules/figures.smk"
include: "workflow/rules/report.smk"


rule all:
    default_target: True
    input:
        final_outputs(),


rule download:
    input:
        download_outputs(),
