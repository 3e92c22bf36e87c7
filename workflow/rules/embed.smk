rule embed:
    """Run one dataset through one model; store every requested layer's pooled features."""
    input:
        stimuli=lambda w: stimuli_store(w.dataset),
        weights=model_files,
        text=competence_text,
    output:
        directory("results/embeddings/{dataset}/{model}.zarr"),
    log:
        "logs/embed/{dataset}/{model}.log",
    conda:
        "../../envs/convergence.yaml"
    threads: config["embed_threads"]
    resources:
        gpu=config["embed_gpus"],
        mem_mb=8000,
        runtime=120,
    params:
        spec=model_spec,
        version=STEP_VERSIONS["embed"],
    script:
        "../../scripts/embed.py"


rule figure_overview:
    """Per dataset: stimuli, layers and feature sizes of every model, and a 2-D PCA of each last layer."""
    input:
        unpack(lambda w: {"stimuli": stimuli_store(w.dataset), **embeddings_of(w)}),
    output:
        png=report(
            "results/figures/overview/{dataset}.png",
            caption="../report/overview/figure_overview.rst",
            category="Overview",
            subcategory="{dataset}",
        ),
        pdf="results/figures/overview/{dataset}.pdf",
    log:
        "logs/figures/overview/{dataset}.log",
    conda:
        "../../envs/convergence.yaml"
    params:
        labels=model_labels,
    script:
        "../../scripts/figure_overview.py"
