# Latent space -> 2-D embeddings -> spectral clusters -> log-normal sigma_phi per cluster and label
# (image datasets) -> summary. The same rules serve every kind of dataset.


rule embed_latents:
    input:
        latents="results/{dataset}/latents.zarr",
        labels=labels_file,
    output:
        coordinates="results/{dataset}/embedding/coordinates.csv",
    log:
        "results/logs/embed_latents/{dataset}.log",
    benchmark:
        "results/benchmarks/embed_latents/{dataset}.tsv"
    conda:
        "../../envs/analysis.yaml"
    threads: 2
    resources:
        mem_mb=4000,
        runtime=60,
    params:
        site=dataset_site,
        embedding=embedding_params,
        exclude_labels=lambda wildcards: analysis_params(wildcards)["exclude_labels"],
        label_tolerance_s=lambda wildcards: analysis_params(wildcards)[
            "label_tolerance_s"
        ],
    script:
        "../scripts/embed_latents.py"


rule cluster_embedding:
    input:
        coordinates="results/{dataset}/embedding/coordinates.csv",
    output:
        embedding="results/{dataset}/embedding.csv",
    log:
        "results/logs/cluster_embedding/{dataset}.log",
    benchmark:
        "results/benchmarks/cluster_embedding/{dataset}.tsv"
    conda:
        "../../envs/analysis.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        clustering=clustering_params,
    script:
        "../scripts/cluster_embedding.py"


rule fit_sigma_phi:
    input:
        embedding="results/{dataset}/embedding.csv",
        sigma_phi="results/{dataset}/sigma_phi.zarr",
    output:
        fits="results/{dataset}/sigma_phi_fits.csv",
    log:
        "results/logs/fit_sigma_phi/{dataset}.log",
    benchmark:
        "results/benchmarks/fit_sigma_phi/{dataset}.tsv"
    conda:
        "../../envs/analysis.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=20,
    params:
        bootstrap_samples=lambda wildcards: analysis_params(wildcards)[
            "bootstrap_samples"
        ],
        seed=lambda wildcards: clustering_params(wildcards)["seed"],
    script:
        "../scripts/fit_sigma_phi.py"


rule summarise_results:
    input:
        embedding="results/{dataset}/embedding.csv",
        latents="results/{dataset}/latents.zarr",
        samples=sample_store,
        metrics="results/{dataset}/model/metrics.csv",
        fits=sigma_phi_fits,
        sigma_phi=sigma_phi_store,
        image_manifests=image_manifests,
        ismr_manifests=ismr_manifests_if_any,
        tle=tle_summary,
    output:
        summary=report(
            "results/{dataset}/summary.json",
            caption="../report/summary.rst",
            category="Summary",
            subcategory="{dataset}",
        ),
    log:
        "results/logs/summarise_results/{dataset}.log",
    benchmark:
        "results/benchmarks/summarise_results/{dataset}.tsv"
    conda:
        "../../envs/analysis.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=20,
    params:
        analysis=analysis_params,
        samples=sample_params,
    script:
        "../scripts/summarise_results.py"
