# Analysis `alignment`: every model pair on every dataset, each metric, all layer pairs.


@analysis("alignment")
def alignment_targets():
    return [p for d in compared_datasets() for m in METRICS for p in figure("alignment", d, m)]


def alignment_options(wildcards):
    """What changes this metric's numbers: its own parameters (from the registry), the null and bootstrap
    settings, the named layers of this dataset's models."""
    a = config["alignment"]
    models = models_for(config, wildcards.dataset)
    return {
        "params": metric_params(wildcards.metric, a),
        "named_layers": {m: layer for m, layer in a.get("named_layers", {}).items() if m in models},
        **{key: a[key] for key in ("n_permutations", "n_bootstrap", "seed")},
    }


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
        "../../../envs/convergence.yaml"
    script:
        "../../../scripts/alignment.py"


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
        "../../../envs/convergence.yaml"
    script:
        "../../../scripts/figure_alignment.py"
