# Downloads, per site (and date), run on the submitting host (cluster compute nodes often have no
# internet). Each writes a manifest (url, path, bytes, sha256, status, detail, final_url); the files
# themselves land under resources/<dataset>/raw/ and are not declared outputs, so an interrupted or
# repeated download keeps every verified file. How files are fetched (config `download`) and
# `on_bad_input` are read by the scripts from the config, not passed as params: changing them must
# not rerun downloads that are done, nor anything after them.


rule download_images:
    input:
        demo_mirror,
    output:
        manifest="resources/{dataset}/manifests/{site}/images_{date}.tsv",
    log:
        "results/logs/download_images/{dataset}_{site}_{date}.log",
    benchmark:
        "results/benchmarks/download_images/{dataset}_{site}_{date}.tsv"
    localrule: True
    conda:
        "../../envs/download.yaml"
    threads: 4
    resources:
        mem_mb=1000,
        runtime=240,
    params:
        images=download_params("images"),
        raw_dir="resources/{dataset}/raw",
    script:
        "../scripts/download_images.py"


rule download_skymaps:
    input:
        demo_mirror,
    output:
        manifest="resources/{dataset}/manifests/{site}/skymaps.tsv",
    log:
        "results/logs/download_skymaps/{dataset}_{site}.log",
    benchmark:
        "results/benchmarks/download_skymaps/{dataset}_{site}.tsv"
    localrule: True
    conda:
        "../../envs/download.yaml"
    threads: 1
    resources:
        mem_mb=500,
        runtime=30,
    params:
        skymaps=download_params("skymaps"),
        raw_dir="resources/{dataset}/raw",
    script:
        "../scripts/download_skymaps.py"


rule download_scintillation:
    input:
        demo_mirror,
    output:
        manifest="resources/{dataset}/manifests/{site}/ismr_{date}.tsv",
    log:
        "results/logs/download_scintillation/{dataset}_{site}_{date}.log",
    benchmark:
        "results/benchmarks/download_scintillation/{dataset}_{site}_{date}.tsv"
    localrule: True
    conda:
        "../../envs/download.yaml"
    threads: 2
    resources:
        mem_mb=500,
        runtime=60,
    params:
        ismr=download_params("scintillation"),
        raw_dir="resources/{dataset}/raw",
    script:
        "../scripts/download_scintillation.py"
