# Tables for the report (`snakemake --report`): per dataset, the configuration that produced the
# results (with the data acknowledgements), the headline numbers of summary.json and the
# sigma_phi fits, each a small HTML page shown in the report beside the figures.


rule report_configuration:
    output:
        html=report(
            "results/{dataset}/report/configuration.html",
            caption="../report/configuration.rst",
            category="Configuration",
            subcategory="{dataset}",
        ),
    log:
        "results/logs/report_configuration/{dataset}.log",
    benchmark:
        "results/benchmarks/report_configuration/{dataset}.tsv"
    localrule: True
    conda:
        "../../envs/analysis.yaml"
    threads: 1
    resources:
        mem_mb=500,
        runtime=5,
    params:
        configuration=of_dataset(dataset_configuration),
        kind=lookup(dpath="datasets/{dataset}/kind", within=config),
        acknowledgement=of_dataset(dataset_acknowledgement),
    script:
        "../scripts/report_configuration.py"


rule report_summary:
    input:
        summary="results/{dataset}/summary.json",
    output:
        html=report(
            "results/{dataset}/report/summary.html",
            caption="../report/summary_table.rst",
            category="Summary",
            subcategory="{dataset}",
        ),
    log:
        "results/logs/report_summary/{dataset}.log",
    benchmark:
        "results/benchmarks/report_summary/{dataset}.tsv"
    localrule: True
    conda:
        "../../envs/analysis.yaml"
    threads: 1
    resources:
        mem_mb=500,
        runtime=5,
    params:
        findings=kind_param("findings"),
        scintillation=of_dataset(has_scintillation),
    script:
        "../scripts/report_summary.py"


rule report_sigma_phi_fits:
    input:
        fits="results/{dataset}/sigma_phi_fits.csv",
    output:
        html=report(
            "results/{dataset}/report/sigma_phi_fits.html",
            caption="../report/sigma_phi_fits.rst",
            category="Scintillation",
            subcategory="{dataset}",
        ),
    log:
        "results/logs/report_sigma_phi_fits/{dataset}.log",
    benchmark:
        "results/benchmarks/report_sigma_phi_fits/{dataset}.tsv"
    localrule: True
    conda:
        "../../envs/analysis.yaml"
    threads: 1
    resources:
        mem_mb=500,
        runtime=5,
    script:
        "../scripts/report_sigma_phi_fits.py"
