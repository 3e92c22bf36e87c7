# Analysis `sample_size`: alignment against the number of stimuli, on nested seeded random subsets.

SAMPLE_SIZE = config["sample_size"]
SAMPLE_SIZE_DATASETS = [
    d for d in compared_datasets() if SAMPLE_SIZE.get("datasets") is None or d in SAMPLE_SIZE["datasets"]
]


register_targets(
    "sample_size",
    lambda: [
        p
        for d in SAMPLE_SIZE_DATASETS
        for p in dataset_kernels(d)
        + [
            q
            for rule in ("sample_size", "figure_sample_size")
            for q in outputs(rule, dataset=d, metric=SAMPLE_SIZE["metrics"])
        ]
    ],
)


rule sample_size:
    """Every model pair of one dataset on nested random subsets of growing size, with null and interval."""
    input:
        unpack(kernels_of),
    output:
        store=directory("results/sample_size/{dataset}/{metric}.zarr"),
        table="results/sample_size/{dataset}/{metric}.csv",
        trend="results/sample_size/{dataset}/{metric}_trend.csv",
    log:
        "logs/sample_size/{dataset}/{metric}.log",
    conda:
        "../../../envs/convergence.yaml"
    params:
        options=lambda w: {
            "params": metric_params(w.metric, metric_settings(config)),
            **{key: SAMPLE_SIZE[key] for key in ("sizes", "summary", "n_permutations", "n_bootstrap", "seed")},
            "alpha": config["alignment"]["alpha"],
        },
        labels=model_labels,
        progress=config["progress"],
        version=STEP_VERSIONS["sample_size"],
    script:
        "../../../scripts/sample_size.py"


rule figure_sample_size:
    """Score and permutation null of every model pair against the number of stimuli."""
    input:
        table="results/sample_size/{dataset}/{metric}.csv",
        trend="results/sample_size/{dataset}/{metric}_trend.csv",
    output:
        png=report(
            "results/figures/sample_size/{dataset}/{metric}.png",
            caption="../../report/sample_size/figure_sample_size.rst",
            category="Sample size",
            subcategory="{dataset}",
        ),
        pdf="results/figures/sample_size/{dataset}/{metric}.pdf",
    log:
        "logs/figures/sample_size/{dataset}/{metric}.log",
    conda:
        "../../../envs/convergence.yaml"
    params:
        summary=SAMPLE_SIZE["summary"],
    script:
        "../../../scripts/figure_sample_size.py"
