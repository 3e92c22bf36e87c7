# Analysis `competence`: how good each model is on its own (probe accuracy, bits per byte).


register_targets(
    "competence",
    lambda: [f"results/competence/{d}.csv" for d in compared_datasets()],
)


rule competence:
    """How good each model is on its own: k-NN and linear-probe accuracy (labelled data), bits per byte (causal LMs)."""
    input:
        unpack(lambda w: {"stimuli": stimuli_store(w.dataset), **embeddings_of(w)}),
    output:
        "results/competence/{dataset}.csv",
    log:
        "logs/competence/{dataset}.log",
    conda:
        "../../../envs/convergence.yaml"
    params:
        k=config["competence"]["k"],
        seed=config["competence"]["seed"],
        labels=model_labels,
        version=STEP_VERSIONS["competence"],
    script:
        "../../../scripts/competence.py"
