rule figure_overview:
    """Per dataset: stimuli, layers and feature sizes of every model, and a 2-D PCA of each last layer."""
    input:
        unpack(lambda w: {"stimuli": stimuli_store(w.dataset), **embeddings_of(w)}),
    output:
        png="results/figures/overview/{dataset}.png",
        pdf="results/figures/overview/{dataset}.pdf",
    log:
        "logs/figures/overview/{dataset}.log",
    conda:
        "../../envs/convergence.yaml"
    script:
        "../../scripts/figure_overview.py"
