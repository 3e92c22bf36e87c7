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


rule figure_alignment:
    """Heatmap of the model x model alignment (best layer pair) with the permutation-null level."""
    input:
        alignment="results/alignment/{dataset}/{metric}.zarr",
    output:
        png="results/figures/alignment/{dataset}/{metric}.png",
        pdf="results/figures/alignment/{dataset}/{metric}.pdf",
    log:
        "logs/figures/alignment/{dataset}/{metric}.log",
    conda:
        "../../envs/convergence.yaml"
    script:
        "../../scripts/figure_alignment.py"


rule figure_crossmodal:
    """Heatmap of vision x language alignment on captioned stimuli, with the null level."""
    input:
        crossmodal="results/crossmodal/{dataset}/{metric}.zarr",
    output:
        png="results/figures/crossmodal/{dataset}/{metric}.png",
        pdf="results/figures/crossmodal/{dataset}/{metric}.pdf",
    log:
        "logs/figures/crossmodal/{dataset}/{metric}.log",
    conda:
        "../../envs/convergence.yaml"
    script:
        "../../scripts/figure_crossmodal.py"


rule figure_prh:
    """The PRH plot: each model's alignment to the reference model against its competence."""
    input:
        alignment="results/alignment/{dataset}/{metric}.zarr",
        competence="results/competence/{dataset}.csv",
    output:
        png="results/figures/prh/{dataset}/{metric}.png",
        pdf="results/figures/prh/{dataset}/{metric}.pdf",
    params:
        reference=config["alignment"].get("reference"),
    log:
        "logs/figures/prh/{dataset}/{metric}.log",
    conda:
        "../../envs/convergence.yaml"
    script:
        "../../scripts/figure_prh.py"
