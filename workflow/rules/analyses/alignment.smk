# Analysis `alignment`: every model pair on every dataset, each metric, all layer pairs.


register_targets(
    "alignment",
    lambda: [
        p
        for d in compared_datasets()
        for p in dataset_kernels(d)
        + outputs("alignment", dataset=d, metric=METRICS)
        + outputs("figure_alignment", dataset=d, metric=METRICS)
    ],
)


rule alignment:
    """Every model x every model on one dataset, over all layer pairs, with permutation null and bootstrap CI."""
    input:
        unpack(kernels_of),
    output:
        store=directory("results/alignment/{dataset}/{metric}.zarr"),
        table="results/alignment/{dataset}/{metric}.csv",
    log:
        "logs/alignment/{dataset}/{metric}.log",
    conda:
        "../../../envs/convergence.yaml"
    threads: 2
    params:
        options=lambda w: {
            "params": metric_params(w.metric, metric_settings(config)),
            "named_layers": named_layers(w.dataset),
            **{key: config["alignment"][key] for key in ("n_permutations", "n_bootstrap", "alpha", "seed")},
        },
        labels=model_labels,
        pair_cache=lambda w: f"results/.cache/pairs/{w.dataset}/{w.metric}",
        version=STEP_VERSIONS["alignment"],
    script:
        "../../../scripts/alignment.py"


rule figure_alignment:
    """Heatmap of the model x model alignment (best layer pair) with the permutation-null level."""
    input:
        alignment="results/alignment/{dataset}/{metric}.zarr",
    output:
        png=report(
            "results/figures/alignment/{dataset}/{metric}.png",
            caption="../../report/alignment/figure_alignment.rst",
            category="Alignment",
            subcategory="{dataset}",
        ),
        pdf="results/figures/alignment/{dataset}/{metric}.pdf",
    log:
        "logs/figures/alignment/{dataset}/{metric}.log",
    conda:
        "../../../envs/convergence.yaml"
    script:
        "../../../scripts/figure_alignment.py"
