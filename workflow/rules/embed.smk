rule embed:
    """Run one dataset through one model; store every requested layer's pooled features."""
    input:
        stimuli=lambda w: stimuli_store(w.dataset),
        weights=model_files,
        text=competence_text,
    output:
        # unsharded datasets only (a sharded one's store is joined from its shards by embed_join)
        directory(f"results/embeddings/{{dataset,{UNSHARDED_RE}}}/{{model}}.zarr"),
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


rule embed_shard:
    """One shard (shard_size consecutive stimuli) of a sharded dataset through one model: a job of its own."""
    input:
        stimuli=lambda w: stimuli_store(w.dataset),
        weights=model_files,
        text=competence_text,
    output:
        directory(f"results/embeddings/{{dataset,{SHARDED_RE}}}/{{model}}.shards/{{shard}}.zarr"),
    log:
        "logs/embed/{dataset}/{model}.shards/{shard}.log",
    conda:
        "../../envs/convergence.yaml"
    threads: config["embed_threads"]
    resources:
        gpu=config["embed_gpus"],
        mem_mb=8000,
        runtime=120,
    params:
        spec=model_spec,
        rows=shard_range,
        version=STEP_VERSIONS["embed"],
    script:
        "../../scripts/embed.py"


rule embed_join:
    """The shards of one (dataset, model) extraction as one embedding store (what the unsharded job writes)."""
    input:
        shards=shard_stores,
    output:
        directory(f"results/embeddings/{{dataset,{SHARDED_RE}}}/{{model}}.zarr"),
    log:
        "logs/embed/{dataset}/{model}.join.log",
    conda:
        "../../envs/convergence.yaml"
    resources:
        mem_mb=2000,
    params:
        version=STEP_VERSIONS["embed"],
    script:
        "../../scripts/embed_join.py"


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
