# The autoencoder: trained on the projected images, then used to encode every image to a latent vector.
# Training keeps its resumable checkpoint outside the declared outputs (results/<dataset>/model/resume/),
# because Snakemake deletes the outputs of an interrupted job.


rule train_autoencoder:
    input:
        images="results/{dataset}/images.zarr",
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
        kind=dataset_kind,
        model=model_params,
        training=config["training"],
        resume_dir="results/{dataset}/model/resume",
    script:
        "../scripts/train_autoencoder.py"


rule encode_latents:
    input:
        images="results/{dataset}/images.zarr",
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
    script:
        "../scripts/encode_latents.py"
