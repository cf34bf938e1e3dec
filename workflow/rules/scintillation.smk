# GNSS phase scintillation: CHAIN ISMR records -> quality cuts -> one sigma_phi per image.


rule extract_sigma_phi:
    input:
        manifests=per_date("resources/{dataset}/manifests/ismr_{date}.tsv"),
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
    script:
        "../scripts/extract_sigma_phi.py"
