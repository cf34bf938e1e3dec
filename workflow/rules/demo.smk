# The offline demo: a seeded generator writes a mirror of the real archives in their real layouts and
# formats, which the normal download rules then fetch from. Its planted truth (resources/demo_truth/)
# is for tests only; no rule reads it.


rule generate_demo_mirror:
    output:
        flag="resources/demo_mirror/{dataset}/mirror.json",
        labels="resources/demo_mirror/{dataset}/labels.csv",
        truth=directory("resources/demo_truth/{dataset}"),
    log:
        "results/logs/generate_demo_mirror/{dataset}.log",
    benchmark:
        "results/benchmarks/generate_demo_mirror/{dataset}.tsv"
    localrule: True
    conda:
        "../../envs/demo.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
    params:
        demo=of_dataset(demo_mirror_settings),
        mirror_dir="resources/demo_mirror/{dataset}",
    script:
        "../scripts/generate_demo_mirror.py"


# The photometer demo: MMIA-layout level-1 FITS files with planted events (ASIM data are not public,
# so a photometer dataset reads a local folder; the demo generates that folder).
rule generate_tle_demo:
    output:
        flag="resources/demo_tle/{dataset}/demo.json",
        fits=directory("resources/demo_tle/{dataset}/mmia"),
        labels="resources/demo_tle/{dataset}/labels.csv",
        truth=directory("resources/demo_tle/{dataset}/truth"),
    log:
        "results/logs/generate_tle_demo/{dataset}.log",
    benchmark:
        "results/benchmarks/generate_tle_demo/{dataset}.tsv"
    localrule: True
    conda:
        "../../envs/photometer.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
    params:
        demo=lookup(dpath="datasets/{dataset}/demo_tle", within=config),
    script:
        "../scripts/generate_tle_demo.py"
