# All-sky frames -> a grid (latitude-longitude, or km from each site). The pixel-to-cell weights are
# built once per skymap as a sparse operator; projecting a site's date of frames is then a kernel
# that writes counts straight into chunk-sized blocks of the store.


rule build_projection_operator:
    input:
        skymaps=per_site("resources/{dataset}/manifests/{site}/skymaps.tsv"),
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
        sites=of_dataset(dataset_sites),
        skymap_source=lookup(dpath="datasets/{dataset}/skymap_source", within=config),
        altitude_km=config["projection"]["altitude_km"],
        min_elevation_deg=config["projection"]["min_elevation_deg"],
        grid=config["projection"]["grid"],
        fov_radius_km=config["projection"]["fov_radius_km"],
    script:
        "../scripts/build_projection_operator.py"


rule project_images:
    input:
        images="resources/{dataset}/manifests/{site}/images_{date}.tsv",
        skymaps="resources/{dataset}/manifests/{site}/skymaps.tsv",
        operators="results/{dataset}/projection",
    output:
        projected=directory("results/{dataset}/projected/{site}/{date}.zarr"),
    log:
        "results/logs/project_images/{dataset}_{site}_{date}.log",
    benchmark:
        "results/benchmarks/project_images/{dataset}_{site}_{date}.tsv"
    conda:
        "../../envs/geometry.yaml"
    # One thread decodes files while the other projects and writes.
    threads: 2
    resources:
        mem_mb=4000,
        runtime=60,
    params:
        image_source=lookup(dpath="datasets/{dataset}/image_source", within=config),
        frame_interval_s=config["projection"]["frame_interval_s"],
        on_bad_input=config["on_bad_input"],
    script:
        "../scripts/project_images.py"


rule stack_images:
    input:
        projected=per_site("results/{dataset}/projected/{site}/{date}.zarr"),
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
