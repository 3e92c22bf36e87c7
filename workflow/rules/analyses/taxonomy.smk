# Analysis `taxonomy` (study 002, science.md section E): cross-modal taxonomic generalisation. A projector
# maps a frozen vision model's cached features (the embedding store of `taxonomy.dataset`, e.g. seeded
# render variations of the tuxpaint stamps) to prefix vectors of a frozen causal LM; one job per (vision
# model, language model, condition, seed), then an aggregate table and three figures.
from types import SimpleNamespace

from convergence.config import taxonomy_runs

TAXONOMY = config["taxonomy"]
TAXONOMY_RUNS = taxonomy_runs(config)
TAXONOMY_DATASET = TAXONOMY.get("dataset") or "none"
TAXONOMY_OPTIONS = {
    k: TAXONOMY[k]
    for k in (
        "hypernyms",
        "min_concepts",
        "exclude",
        "names",
        "projector",
        "hidden",
        "k",
        "epochs",
        "questions_per_epoch",
        "batch_size",
        "lr",
        "eval_concepts",
        "answers",
        "template",
        "name_questions",
        "oracle_template",
        "bf16",
    )
    if k in TAXONOMY
}
TAXONOMY_WILDCARDS = {
    "vision": "|".join(TAXONOMY.get("vision_models", [])) or "none",
    "lm": "|".join(TAXONOMY.get("language_models", [])) or "none",
    "condition": "|".join(TAXONOMY.get("conditions", {})) or "none",
    "seed": r"\d+",
}
TAXONOMY_FIGURES = ("removal", "shuffle", "coherence")
TAXONOMY_ORACLES = TAXONOMY.get("language_models", []) if TAXONOMY_RUNS and TAXONOMY.get("oracle", True) else []


register_targets(
    "taxonomy",
    lambda: (
        [
            p
            for v, lm, c, s in TAXONOMY_RUNS
            for p in outputs("taxonomy", dataset=TAXONOMY_DATASET, vision=v, lm=lm, condition=c, seed=s)
        ]
        + outputs("taxonomy_oracle", dataset=TAXONOMY_DATASET, lm=TAXONOMY_ORACLES)
        + [
            p
            for rule in ("taxonomy_aggregate",) + tuple(f"figure_taxonomy_{name}" for name in TAXONOMY_FIGURES)
            for p in outputs(rule, dataset=TAXONOMY_DATASET)
        ]
        if TAXONOMY_RUNS
        else []
    ),
)


rule taxonomy:
    """Train the projector of one (vision model, language model, condition, seed) and answer the test questions."""
    input:
        stimuli=lambda w: stimuli_store(w.dataset),
        embeddings=lambda w: embedding_store(w.dataset, w.vision),
        weights=lambda w: model_files(SimpleNamespace(model=w.lm)),
    output:
        metrics="results/taxonomy/{dataset}/{vision}/{lm}/{condition}/seed{seed}/metrics.json",
        answers="results/taxonomy/{dataset}/{vision}/{lm}/{condition}/seed{seed}/answers.csv",
        hypernyms="results/taxonomy/{dataset}/{vision}/{lm}/{condition}/seed{seed}/hypernyms.csv",
    log:
        "logs/taxonomy/{dataset}/{vision}/{lm}/{condition}/seed{seed}.log",
    wildcard_constraints:
        **TAXONOMY_WILDCARDS,
    conda:
        "../../../envs/convergence.yaml"
    threads: TAXONOMY["threads"]
    resources:
        gpu=TAXONOMY["gpus"],
        mem_mb=6000,
        runtime=60,
    params:
        lm_spec=lambda w: config["models"][w.lm],
        condition=lambda w: TAXONOMY["conditions"][w.condition],
        options={**TAXONOMY_OPTIONS, "layer": TAXONOMY.get("layer")},
        # the resolved device and the thread count training computes with (whatever --cores granted)
        device=extraction_device(config),
        threads=TAXONOMY["threads"],
        progress=config["progress"],
        version=STEP_VERSIONS["taxonomy"],
    script:
        "../../../scripts/taxonomy.py"


rule taxonomy_oracle:
    """The language-only ceiling of one LM: every concept's hypernym questions with the concept named in the text."""
    input:
        stimuli=lambda w: stimuli_store(w.dataset),
        weights=lambda w: model_files(SimpleNamespace(model=w.lm)),
    output:
        metrics="results/taxonomy/{dataset}/oracle/{lm}.json",
        answers="results/taxonomy/{dataset}/oracle/{lm}.csv",
    log:
        "logs/taxonomy/{dataset}/oracle/{lm}.log",
    wildcard_constraints:
        lm=TAXONOMY_WILDCARDS["lm"],
    conda:
        "../../../envs/convergence.yaml"
    threads: TAXONOMY["threads"]
    resources:
        gpu=TAXONOMY["gpus"],
        mem_mb=6000,
        runtime=30,
    params:
        lm_spec=lambda w: config["models"][w.lm],
        options=TAXONOMY_OPTIONS,
        seed=TAXONOMY.get("seeds", [0])[0],
        # the resolved device and the thread count training computes with (whatever --cores granted)
        device=extraction_device(config),
        threads=TAXONOMY["threads"],
        version=STEP_VERSIONS["taxonomy"],
    script:
        "../../../scripts/taxonomy_oracle.py"


rule taxonomy_aggregate:
    """Every run's scores in one table (summary.csv), the per-hypernym coherence and F1 (hypernyms.csv) and the
    language-only ceilings (oracle.csv)."""
    input:
        runs=lambda w: [
            f"results/taxonomy/{w.dataset}/{v}/{lm}/{c}/seed{s}/metrics.json" for v, lm, c, s in TAXONOMY_RUNS
        ],
        hypernyms=lambda w: [
            f"results/taxonomy/{w.dataset}/{v}/{lm}/{c}/seed{s}/hypernyms.csv" for v, lm, c, s in TAXONOMY_RUNS
        ],
        oracles=lambda w: [f"results/taxonomy/{w.dataset}/oracle/{lm}.json" for lm in TAXONOMY_ORACLES],
    output:
        summary="results/taxonomy/{dataset}/summary.csv",
        hypernyms="results/taxonomy/{dataset}/hypernyms.csv",
        oracle="results/taxonomy/{dataset}/oracle.csv",
    log:
        "logs/taxonomy/{dataset}/aggregate.log",
    conda:
        "../../../envs/convergence.yaml"
    params:
        runs=TAXONOMY_RUNS,
    script:
        "../../../scripts/taxonomy_aggregate.py"


rule figure_taxonomy_removal:
    """Unseen-concept macro-F1 against the fraction of hypernym questions removed, pretrained vs random LM, beside
    the language-only ceiling."""
    input:
        summary="results/taxonomy/{dataset}/summary.csv",
        oracle="results/taxonomy/{dataset}/oracle.csv",
    output:
        png=report(
            "results/figures/taxonomy/{dataset}/removal.png",
            caption="../../report/taxonomy/figure_taxonomy_removal.rst",
            category="Taxonomy",
        ),
        pdf="results/figures/taxonomy/{dataset}/removal.pdf",
    log:
        "logs/figures/taxonomy/{dataset}/removal.log",
    conda:
        "../../../envs/convergence.yaml"
    params:
        kind="removal",
    script:
        "../../../scripts/figure_taxonomy.py"


rule figure_taxonomy_shuffle:
    """Unseen-concept macro-F1 of the counterfactual label maps (across / within categories) beside unshuffled."""
    input:
        summary="results/taxonomy/{dataset}/summary.csv",
    output:
        png=report(
            "results/figures/taxonomy/{dataset}/shuffle.png",
            caption="../../report/taxonomy/figure_taxonomy_shuffle.rst",
            category="Taxonomy",
        ),
        pdf="results/figures/taxonomy/{dataset}/shuffle.pdf",
    log:
        "logs/figures/taxonomy/{dataset}/shuffle.log",
    conda:
        "../../../envs/convergence.yaml"
    params:
        kind="shuffle",
    script:
        "../../../scripts/figure_taxonomy.py"


rule figure_taxonomy_coherence:
    """Per hypernym, unseen-concept macro-F1 against the visual coherence of its images under each label map."""
    input:
        hypernyms="results/taxonomy/{dataset}/hypernyms.csv",
        summary="results/taxonomy/{dataset}/summary.csv",
    output:
        png=report(
            "results/figures/taxonomy/{dataset}/coherence.png",
            caption="../../report/taxonomy/figure_taxonomy_coherence.rst",
            category="Taxonomy",
        ),
        pdf="results/figures/taxonomy/{dataset}/coherence.pdf",
    log:
        "logs/figures/taxonomy/{dataset}/coherence.log",
    conda:
        "../../../envs/convergence.yaml"
    params:
        kind="coherence",
    script:
        "../../../scripts/figure_taxonomy.py"
