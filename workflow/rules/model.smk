# The model of the dataset's kind (Res-AE for images, Beta VAE for photometer windows): trained on
# the dataset's sample store, then used to encode every sample to a latent vector.
# Training keeps its resumable checkpoint outside the declared outputs (results/<dataset>/model/resume/),
# because Snakemake deletes the outputs of an interrupted job.


rule train_autoencoder:
    input:
        samples=sample_store,
    output:
        checkpoint="results/{dataset}/model/checkpoint.pt",
        metrics="results/{dataset}/model/metrics.csv",
    log:
        "results/logs/train_autoencoder/{dataset}.log",
    benchmark:
        "results/benchmarks/train_autoencoder/{dataset}.tsv"
    conda:
        "../../envs/torch.yaml"
    threads: 2
    # gpu: one GPU on a cluster (the Slurm plugin sends sbatch --gpus=1); local runs ignore it, and
    # training uses CUDA when there is one, else the CPU.
    resources:
        mem_mb=8000,
        runtime=240,
        gpu=1,
    params:
        model=of_dataset(model_settings),
        training=section("training"),
        resume_dir="results/{dataset}/model/resume",
        variable=kind_param("variable"),
    script:
        "../scripts/train_autoencoder.py"


rule encode_latents:
    input:
        samples=sample_store,
        checkpoint="results/{dataset}/model/checkpoint.pt",
    output:
        latents=directory("results/{dataset}/latents.zarr"),
        reconstructions="results/{dataset}/model/reconstructions.npz",
    log:
        "results/logs/encode_latents/{dataset}.log",
    benchmark:
        "results/benchmarks/encode_latents/{dataset}.tsv"
    conda:
        "../../envs/torch.yaml"
    threads: 2
    resources:
        mem_mb=4000,
        runtime=60,
    params:
        n_examples=8,
        variable=kind_param("variable"),
    script:
        "../scripts/encode_latents.py"
