rule kernel:
    """One model's cached products on one dataset: preprocessed features, top-k neighbours, centred Grams."""
    input:
        embeddings=lambda w: embedding_store(w.dataset, w.model),
    output:
        directory("results/kernels/{dataset}/{model}.zarr"),
    log:
        "logs/kernel/{dataset}/{model}.log",
    conda:
        "../../envs/convergence.yaml"
    resources:
        mem_mb=8000,
        gpu=kernel_gpus(config),
    params:
        products=kernel_products,
        preprocess=config["kernels"]["preprocess"],
        gram_max_n=config["kernels"]["gram_max_n"],
        version=STEP_VERSIONS["kernel"],
    script:
        "../../scripts/kernel.py"
