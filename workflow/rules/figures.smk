# Figures: each rule writes a PNG, a report() output with a caption in workflow/report/, and the
# same figure as a PDF beside it for papers (vector text and lines).


rule plot_reconstructions:
    input:
        reconstructions="results/{dataset}/model/reconstructions.npz",
    output:
        png=report(
            "results/{dataset}/figures/reconstructions.png",
            caption="../report/reconstructions.rst",
            category="Model",
            subcategory="{dataset}",
        ),
        pdf="results/{dataset}/figures/reconstructions.pdf",
    log:
        "results/logs/plot_reconstructions/{dataset}.log",
    benchmark:
        "results/benchmarks/plot_reconstructions/{dataset}.tsv"
    conda:
        "../../envs/analysis.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        layout=kind_param("sample_layout"),
    script:
        "../scripts/plot_reconstructions.py"


rule plot_training_curves:
    input:
        metrics="results/{dataset}/model/metrics.csv",
    output:
        png=report(
            "results/{dataset}/figures/training_curves.png",
            caption="../report/training_curves.rst",
            category="Model",
            subcategory="{dataset}",
        ),
        pdf="results/{dataset}/figures/training_curves.pdf",
    log:
        "results/logs/plot_training_curves/{dataset}.log",
    benchmark:
        "results/benchmarks/plot_training_curves/{dataset}.tsv"
    conda:
        "../../envs/analysis.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        loss_name=kind_param("loss_name"),
    script:
        "../scripts/plot_training_curves.py"


rule plot_embeddings_by_label:
    input:
        coordinates="results/{dataset}/embedding/coordinates.csv",
    output:
        png=report(
            "results/{dataset}/figures/embeddings_by_label.png",
            caption="../report/embeddings_by_label.rst",
            category="Latent space",
            subcategory="{dataset}",
        ),
        pdf="results/{dataset}/figures/embeddings_by_label.pdf",
    log:
        "results/logs/plot_embeddings_by_label/{dataset}.log",
    benchmark:
        "results/benchmarks/plot_embeddings_by_label/{dataset}.tsv"
    conda:
        "../../envs/analysis.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        samples=kind_param("sample_noun"),
    script:
        "../scripts/plot_embeddings_by_label.py"


rule plot_clusters:
    input:
        embedding="results/{dataset}/embedding.csv",
    output:
        png=report(
            "results/{dataset}/figures/clusters.png",
            caption="../report/clusters.rst",
            category="Latent space",
            subcategory="{dataset}",
        ),
        pdf="results/{dataset}/figures/clusters.pdf",
    log:
        "results/logs/plot_clusters/{dataset}.log",
    benchmark:
        "results/benchmarks/plot_clusters/{dataset}.tsv"
    conda:
        "../../envs/analysis.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    script:
        "../scripts/plot_clusters.py"


rule plot_cluster_label_table:
    input:
        embedding="results/{dataset}/embedding.csv",
    output:
        png=report(
            "results/{dataset}/figures/cluster_label_table.png",
            caption="../report/cluster_label_table.rst",
            category="Latent space",
            subcategory="{dataset}",
        ),
        pdf="results/{dataset}/figures/cluster_label_table.pdf",
    log:
        "results/logs/plot_cluster_label_table/{dataset}.log",
    benchmark:
        "results/benchmarks/plot_cluster_label_table/{dataset}.tsv"
    conda:
        "../../envs/analysis.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        samples=kind_param("sample_noun"),
    script:
        "../scripts/plot_cluster_label_table.py"


rule plot_sigma_phi_distributions:
    input:
        embedding="results/{dataset}/embedding.csv",
        sigma_phi="results/{dataset}/sigma_phi.zarr",
        fits="results/{dataset}/sigma_phi_fits.csv",
    output:
        png=report(
            "results/{dataset}/figures/sigma_phi_distributions.png",
            caption="../report/sigma_phi_distributions.rst",
            category="Scintillation",
            subcategory="{dataset}",
        ),
        pdf="results/{dataset}/figures/sigma_phi_distributions.pdf",
    log:
        "results/logs/plot_sigma_phi_distributions/{dataset}.log",
    benchmark:
        "results/benchmarks/plot_sigma_phi_distributions/{dataset}.tsv"
    conda:
        "../../envs/analysis.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    script:
        "../scripts/plot_sigma_phi_distributions.py"


rule plot_mean_waveforms:
    input:
        waveforms="results/{dataset}/tle/mean_waveforms.npz",
    output:
        png=report(
            "results/{dataset}/figures/mean_waveforms.png",
            caption="../report/mean_waveforms.rst",
            category="Transient luminous events",
            subcategory="{dataset}",
        ),
        pdf="results/{dataset}/figures/mean_waveforms.pdf",
    log:
        "results/logs/plot_mean_waveforms/{dataset}.log",
    benchmark:
        "results/benchmarks/plot_mean_waveforms/{dataset}.tsv"
    conda:
        "../../envs/analysis.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    script:
        "../scripts/plot_mean_waveforms.py"


rule plot_embeddings_by_site:
    input:
        coordinates="results/{dataset}/embedding/coordinates.csv",
    output:
        png=report(
            "results/{dataset}/figures/embeddings_by_site.png",
            caption="../report/embeddings_by_site.rst",
            category="Latent space",
            subcategory="{dataset}",
        ),
        pdf="results/{dataset}/figures/embeddings_by_site.pdf",
    log:
        "results/logs/plot_embeddings_by_site/{dataset}.log",
    benchmark:
        "results/benchmarks/plot_embeddings_by_site/{dataset}.tsv"
    conda:
        "../../envs/analysis.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    script:
        "../scripts/plot_embeddings_by_site.py"
