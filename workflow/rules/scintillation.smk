# GNSS phase scintillation: CHAIN ISMR records -> quality cuts -> one sigma_phi per image, each
# image taking the record of its own site's station.


rule extract_sigma_phi:
    input:
        manifests=per_site(
            "resources/{dataset}/manifests/{site}/ismr_{date}.tsv", stations_only=True
        ),
        images="results/{dataset}/images.zarr",
    output:
        sigma_phi=directory("results/{dataset}/sigma_phi.zarr"),
    log:
        "results/logs/extract_sigma_phi/{dataset}.log",
    benchmark:
        "results/benchmarks/extract_sigma_phi/{dataset}.tsv"
    conda:
        "../../envs/geometry.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
    params:
        scintillation=config["scintillation"],
        on_bad_input=config["on_bad_input"],
        manifests_by_site=ismr_manifests_by_site,
    script:
        "../scripts/extract_sigma_phi.py"
