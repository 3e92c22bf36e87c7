rule alignment:
    """Every model x every model on one dataset, over all layer pairs, with permutation null and bootstrap CI."""
    input:
        unpack(kernels_of),
    output:
        store=directory("results/alignment/{dataset}/{metric}.zarr"),
        table="results/alignment/{dataset}/{metric}.csv",
    params:
        options=alignment_options,
        labels=model_labels,
        pair_cache=lambda w: f"results/.cache/pairs/{w.dataset}/{w.metric}",
        version=STEP_VERSIONS["alignment"],
    log:
        "logs/alignment/{dataset}/{metric}.log",
    threads: 2
    conda:
        "../../envs/convergence.yaml"
    script:
        "../../scripts/alignment.py"


rule crossmodal:
    """Every vision model x every language model on one captioned dataset: the image-caption block of the alignment."""
    input:
        alignment="results/alignment/{dataset}/{metric}.zarr",
    output:
        store=directory("results/crossmodal/{dataset}/{metric}.zarr"),
        table="results/crossmodal/{dataset}/{metric}.csv",
    log:
        "logs/crossmodal/{dataset}/{metric}.log",
    conda:
        "../../envs/convergence.yaml"
    script:
        "../../scripts/crossmodal.py"


rule competence:
    """How good each model is on its own: k-NN and linear-probe accuracy (labelled data), bits per byte (causal LMs)."""
    input:
        unpack(lambda w: {"stimuli": stimuli_store(w.dataset), **embeddings_of(w)}),
    output:
        "results/competence/{dataset}.csv",
    params:
        k=config["alignment"]["k"],
        seed=config["alignment"]["seed"],
        labels=model_labels,
        version=STEP_VERSIONS["competence"],
    log:
        "logs/competence/{dataset}.log",
    conda:
        "../../envs/convergence.yaml"
    script:
        "../../scripts/competence.py"
