# Analysis `consistency`: is model-to-model similarity consistent across datasets, by training objective,
# and does it follow the models' behaviour? (Ciernik et al.; docs/science.md section B.)
# Its metrics are its own (`consistency.metrics`, not `alignment.metrics`): one layer per model with the
# study's preprocessing and no null, so this analysis scores its own similarity matrices from the
# embedding stores instead of asking the alignment rule for every-layer stores with nulls. Its `metric`
# wildcard is constrained per rule to its own metric names (a rule's constraint overrides the global one).

CONSISTENCY = config["consistency"]
CONSISTENCY_METRICS = list(CONSISTENCY["metrics"])
CONSISTENCY_WILDCARDS = {"metric": "|".join(CONSISTENCY_METRICS)}


# the models compared on each dataset (those of `consistency.modality`), and the datasets with at least
# two of them (the analysis needs at least two such datasets)
CONSISTENCY_MODELS = {
    d: models_for(config, d, None if CONSISTENCY["modality"] == "all" else CONSISTENCY["modality"]) for d in DATASETS
}
CONSISTENCY_DATASETS = [d for d in DATASETS if len(CONSISTENCY_MODELS[d]) >= 2]
CONSISTENCY_DATASETS = CONSISTENCY_DATASETS if len(CONSISTENCY_DATASETS) >= 2 else []


register_targets(
    "consistency",
    lambda: (
        outputs("consistency_probe", dataset=CONSISTENCY_DATASETS)
        + [
            p
            for rule in (
                "consistency_similarity",
                "consistency",
                "figure_consistency_matrices",
                "figure_consistency_distributions",
                "figure_consistency_behaviour",
            )
            for p in outputs(rule, metric=CONSISTENCY_METRICS, dataset=CONSISTENCY_DATASETS)
        ]
        if CONSISTENCY_DATASETS
        else []
    ),
)


rule consistency_similarity:
    """One dataset's model x model similarity at one layer per model (the study's features), for one metric."""
    input:
        unpack(lambda w: {m: embedding_store(w.dataset, m) for m in CONSISTENCY_MODELS[w.dataset]}),
    output:
        store=directory("results/consistency/{metric}/similarity/{dataset}.zarr"),
        table="results/consistency/{metric}/similarity/{dataset}.csv",
    log:
        "logs/consistency/{metric}/similarity/{dataset}.log",
    wildcard_constraints:
        **CONSISTENCY_WILDCARDS,
    conda:
        "../../../envs/convergence.yaml"
    params:
        params=lambda w: metric_params(w.metric, CONSISTENCY),
        layers=lambda w: {m: layer for m, layer in CONSISTENCY["layers"].items() if m in CONSISTENCY_MODELS[w.dataset]},
        preprocess=CONSISTENCY["preprocess"],
        labels=lambda w: {m: labels for m, labels in model_labels(w).items() if m in CONSISTENCY_MODELS[w.dataset]},
        pair_cache=lambda w: f"results/.cache/consistency/{w.dataset}/{w.metric}",
        version=STEP_VERSIONS["consistency"],
    script:
        "../../../scripts/consistency_similarity.py"


rule consistency_probe:
    """Linear-probe accuracy of every compared model on one dataset's labels (empty table without labels)."""
    input:
        unpack(
            lambda w: {
                "stimuli": stimuli_store(w.dataset),
                **{m: embedding_store(w.dataset, m) for m in CONSISTENCY_MODELS[w.dataset]},
            }
        ),
    output:
        "results/consistency/probes/{dataset}.csv",
    log:
        "logs/consistency/probes/{dataset}.log",
    conda:
        "../../../envs/convergence.yaml"
    params:
        layers=lambda w: {m: layer for m, layer in CONSISTENCY["layers"].items() if m in CONSISTENCY_MODELS[w.dataset]},
        preprocess=CONSISTENCY["preprocess"],
        seed=CONSISTENCY["seed"],
        n_splits=CONSISTENCY["probe_splits"],
        inner_splits=CONSISTENCY["probe_inner_splits"],
        labels=lambda w: {m: labels for m, labels in model_labels(w).items() if m in CONSISTENCY_MODELS[w.dataset]},
        version=STEP_VERSIONS["consistency"],
    script:
        "../../../scripts/consistency_probe.py"


rule consistency:
    """Consistency of one metric's similarities across every pair of datasets, per model-set pair, and the
    similarity-behaviour link per dataset."""
    input:
        similarity=lambda w: [f"results/consistency/{w.metric}/similarity/{d}.zarr" for d in CONSISTENCY_DATASETS],
        probes=lambda w: [f"results/consistency/probes/{d}.csv" for d in CONSISTENCY_DATASETS],
    output:
        consistency="results/consistency/{metric}/consistency.csv",
        behaviour="results/consistency/{metric}/behaviour.csv",
        pairs="results/consistency/{metric}/behaviour_pairs.csv",
    log:
        "logs/consistency/{metric}/consistency.log",
    wildcard_constraints:
        **CONSISTENCY_WILDCARDS,
    conda:
        "../../../envs/convergence.yaml"
    params:
        datasets=lambda w: CONSISTENCY_DATASETS,
        domains=lambda w: {d: config["datasets"][d].get("domain") for d in CONSISTENCY_DATASETS},
        missing=CONSISTENCY["missing"],
        min_pairs=CONSISTENCY["min_pairs"],
        n_permutations=CONSISTENCY["n_permutations"],
        alternative=CONSISTENCY["alternative"],
        seed=CONSISTENCY["seed"],
        version=STEP_VERSIONS["consistency"],
    script:
        "../../../scripts/consistency.py"


rule figure_consistency_matrices:
    """Dataset x dataset consistency (Spearman) of one metric, one panel per model-set pair."""
    input:
        consistency="results/consistency/{metric}/consistency.csv",
    output:
        png=report(
            "results/figures/consistency/{metric}/matrices.png",
            caption="../../report/consistency/figure_consistency_matrices.rst",
            category="Consistency",
            subcategory="{metric}",
        ),
        pdf="results/figures/consistency/{metric}/matrices.pdf",
    log:
        "logs/figures/consistency/{metric}/matrices.log",
    wildcard_constraints:
        **CONSISTENCY_WILDCARDS,
    conda:
        "../../../envs/convergence.yaml"
    script:
        "../../../scripts/figure_consistency_matrices.py"


rule figure_consistency_distributions:
    """The study's main figure: the distribution of consistency over dataset pairs, by model-set pair."""
    input:
        consistency="results/consistency/{metric}/consistency.csv",
    output:
        png=report(
            "results/figures/consistency/{metric}/distributions.png",
            caption="../../report/consistency/figure_consistency_distributions.rst",
            category="Consistency",
            subcategory="{metric}",
        ),
        pdf="results/figures/consistency/{metric}/distributions.pdf",
    log:
        "logs/figures/consistency/{metric}/distributions.log",
    wildcard_constraints:
        **CONSISTENCY_WILDCARDS,
    conda:
        "../../../envs/convergence.yaml"
    script:
        "../../../scripts/figure_consistency_distributions.py"


rule figure_consistency_behaviour:
    """Pairwise similarity against |difference in probe accuracy|, one panel per labelled dataset."""
    input:
        behaviour="results/consistency/{metric}/behaviour.csv",
        pairs="results/consistency/{metric}/behaviour_pairs.csv",
    output:
        png=report(
            "results/figures/consistency/{metric}/behaviour.png",
            caption="../../report/consistency/figure_consistency_behaviour.rst",
            category="Consistency",
            subcategory="{metric}",
        ),
        pdf="results/figures/consistency/{metric}/behaviour.pdf",
    log:
        "logs/figures/consistency/{metric}/behaviour.log",
    wildcard_constraints:
        **CONSISTENCY_WILDCARDS,
    conda:
        "../../../envs/convergence.yaml"
    script:
        "../../../scripts/figure_consistency_behaviour.py"
