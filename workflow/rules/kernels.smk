rule kernel:
    """One model's cached products on one dataset: preprocessed features, top-k neighbours, centred Grams."""
    input:
        embeddings=lambda w: embedding_store(w.dataset, w.model),
    output:
        directory("results/kernels/{dataset}/{model}.zarr"),
    params:
        products=kernel_products,
        preprocess=config["alignment"]["preprocess"],
        gram_max_n=config["alignment"]["gram_max_n"],
        version=STEP_VERSIONS["kernel"],
    log:
        "logs/kernel/{dataset}/{model}.log",
    resources:
        mem_mb=8000,
    conda:
        "../../envs/convergence.yaml"
    script:
        "../../scripts/kernel.py"
