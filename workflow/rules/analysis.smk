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
        sites=of_dataset(site_names),
        embedding=section("embedding"),
        exclude_labels=setting("analysis", "exclude_labels"),
        label_tolerance_s=setting("analysis", "label_tolerance_s"),
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
        clustering=section("clustering"),
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
        bootstrap_samples=setting("analysis", "bootstrap_samples"),
        seed=setting("clustering", "seed"),
    script:
        "../scripts/fit_sigma_phi.py"


rule summarise_results:
    input:
        embedding="results/{dataset}/embedding.csv",
        latents="results/{dataset}/latents.zarr",
        samples=sample_store,
        metrics="results/{dataset}/model/metrics.csv",
        fits=only_if(has_scintillation, "results/{dataset}/sigma_phi_fits.csv"),
        sigma_phi=only_if(has_scintillation, "results/{dataset}/sigma_phi.zarr"),
        image_manifests=per_site(
            "resources/{dataset}/manifests/{site}/images_{date}.tsv"
        ),
        ismr_manifests=per_site(
            "resources/{dataset}/manifests/{site}/ismr_{date}.tsv", stations_only=True
        ),
        kind_outputs=kind_outputs,
        labels=labels_file,
    output:
        summary=report(
            "results/{dataset}/summary.json",
            caption="../report/summary.rst",
            category="Summary",
            subcategory="{dataset}",
        ),
        quality=report(
            "results/{dataset}/data_quality.html",
            caption="../report/data_quality.rst",
            category="Data quality",
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
        analysis=section("analysis"),
        sites=of_dataset(site_names),
        count_key=kind_param("count_key"),
        variable=kind_param("variable"),
        findings=kind_param("findings"),
        scintillation=of_dataset(has_scintillation),
    script:
        "../scripts/summarise_results.py"
