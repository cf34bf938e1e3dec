# latentsky: unsupervised structure in all-sky auroral images, related to GNSS phase scintillation.
#
#   generate_demo_mirror (demo only) -> download_images / download_skymaps / download_scintillation
#   -> build_projection_operator -> project_images (per date) -> stack_images -> images.zarr
#   -> extract_sigma_phi -> sigma_phi.zarr
#   -> train_autoencoder -> encode_latents -> latents.zarr
#   -> embed_latents (UMAP, t-SNE) -> cluster_embedding (spectral) -> fit_sigma_phi (log-normal)
#   -> plot_* figures, summarise_results -> summary.json; `snakemake --report` -> report.html


from snakemake.utils import min_version, validate

min_version("9.0")


# The demo configuration applies unless --configfile names another one: that one then replaces it
# whole (Snakemake would otherwise merge the two, running the demo's datasets as well).
if not config:

    configfile: "config/config.yaml"


validate(config, "config/schema.yaml", set_default=True)


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


rule all:
    default_target: True
    input:
        final_outputs(),


rule download:
    input:
        download_outputs(),
