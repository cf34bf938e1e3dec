# Photometer datasets (ASIM MMIA): FITS folder -> windows.zarr (window, band, sample), which the
# generic model and analysis rules take from there; then TLE features, anomaly scores and candidates.


rule ingest_photometer:
    input:
        fits=lookup(dpath="datasets/{dataset}/fits_dir", within=config),
        labels=labels_file,
    output:
        windows=directory("results/{dataset}/windows.zarr"),
    log:
        "results/logs/ingest_photometer/{dataset}.log",
    benchmark:
        "results/benchmarks/ingest_photometer/{dataset}.tsv"
    conda:
        "../../envs/photometer.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=60,
    params:
        photometer=lookup(dpath="datasets/{dataset}/photometer", within=config),
        on_bad_input=config["on_bad_input"],
        label_tolerance_s=setting("analysis", "label_tolerance_s"),
    script:
        "../scripts/ingest_photometer.py"


rule analyse_tle_clusters:
    input:
        windows="results/{dataset}/windows.zarr",
        checkpoint="results/{dataset}/model/checkpoint.pt",
        latents="results/{dataset}/latents.zarr",
        embedding="results/{dataset}/embedding.csv",
    output:
        windows="results/{dataset}/tle/windows.csv",
        clusters="results/{dataset}/tle/clusters.csv",
        candidates=report(
            "results/{dataset}/tle/candidates.csv",
            caption="../report/tle_candidates.rst",
            category="Transient luminous events",
            subcategory="{dataset}",
        ),
        waveforms="results/{dataset}/tle/mean_waveforms.npz",
        summary="results/{dataset}/tle/summary.json",
    log:
        "results/logs/analyse_tle_clusters/{dataset}.log",
    benchmark:
        "results/benchmarks/analyse_tle_clusters/{dataset}.tsv"
    conda:
        "../../envs/torch.yaml"
    threads: 2
    resources:
        mem_mb=4000,
        runtime=60,
    params:
        tle=setting("analysis", "tle"),
    script:
        "../scripts/analyse_tle_clusters.py"
