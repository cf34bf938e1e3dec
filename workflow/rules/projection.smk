# All-sky frames -> regular latitude-longitude grid. The pixel-to-cell weights are built once per
# skymap as a sparse operator; projecting a day of frames is then one sparse matrix product per chunk.


rule build_projection_operator:
    input:
        skymaps="resources/{dataset}/manifests/skymaps.tsv",
    output:
        operators=directory("results/{dataset}/projection"),
    log:
        "results/logs/build_projection_operator/{dataset}.log",
    benchmark:
        "results/benchmarks/build_projection_operator/{dataset}.tsv"
    conda:
        "../../envs/geometry.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=20,
    params:
        site=lookup(dpath="datasets/{dataset}/site", within=config),
        skymap_source=lookup(dpath="datasets/{dataset}/skymap_source", within=config),
        altitude_km=config["projection"]["altitude_km"],
        min_elevation_deg=config["projection"]["min_elevation_deg"],
        grid=config["projection"]["grid"],
    script:
        "../scripts/build_projection_operator.py"


rule project_images:
    input:
        images="resources/{dataset}/manifests/images_{date}.tsv",
        skymaps="resources/{dataset}/manifests/skymaps.tsv",
        operators="results/{dataset}/projection",
    output:
        projected=directory("results/{dataset}/projected/{date}.zarr"),
    log:
        "results/logs/project_images/{dataset}_{date}.log",
    benchmark:
        "results/benchmarks/project_images/{dataset}_{date}.tsv"
    conda:
        "../../envs/geometry.yaml"
    # One thread decodes files while the other projects and writes.
    threads: 2
    resources:
        mem_mb=4000,
        runtime=60,
    params:
        site=lookup(dpath="datasets/{dataset}/site", within=config),
        image_source=lookup(dpath="datasets/{dataset}/image_source", within=config),
        frame_interval_s=config["projection"]["frame_interval_s"],
        on_bad_input=config["on_bad_input"],
    script:
        "../scripts/project_images.py"


rule stack_images:
    input:
        projected=per_date("results/{dataset}/projected/{date}.zarr"),
    output:
        images=directory("results/{dataset}/images.zarr"),
    log:
        "results/logs/stack_images/{dataset}.log",
    benchmark:
        "results/benchmarks/stack_images/{dataset}.tsv"
    conda:
        "../../envs/geometry.yaml"
    threads: 2
    resources:
        mem_mb=4000,
        runtime=60,
    params:
        normalisation=config["projection"]["normalisation"],
    script:
        "../scripts/stack_images.py"
