# Analysis `layers` (study 003): how models get to their representations, layer by layer. CNNs are read per
# block from stores of their own (results/{embeddings,kernels}_blocks; convergence.granularity decides which
# models need them); every other model from its default stores, so no default embed/kernel job reruns.
from convergence.granularity import (
    block_spec,
    layers_datasets,
    layers_models,
    layers_store,
    merged_products,
)

LAYERS = config["layers"]


LAYERS_RULES = ("lowlevel", "layers_readout", "layers") + tuple(
    f"figure_layers_{kind}" for kind in ("grid", "depth", "smoothness", "readout", "diagonal")
)


register_targets(
    "layers",
    lambda: [
        p
        for d in layers_datasets(config)
        for p in [
            layers_store(config, kind, d, m) for kind in ("embeddings", "kernels") for m in layers_models(config, d)
        ]
        + [q for rule in LAYERS_RULES for q in outputs(rule, dataset=d)]
    ],
)


rule embed_blocks:
    """One CNN per block on one dataset (granularity: blocks, every block), for the layers analysis."""
    input:
        stimuli=lambda w: stimuli_store(w.dataset),
        weights=model_files,
    output:
        directory("results/embeddings_blocks/{dataset}/{model}.zarr"),
    log:
        "logs/embed_blocks/{dataset}/{model}.log",
    conda:
        "../../../envs/convergence.yaml"
    threads: config["embed_threads"]
    resources:
        gpu=config["embed_gpus"],
        mem_mb=8000,
        runtime=120,
    params:
        spec=lambda w: block_spec(model_spec(w)),
        version=STEP_VERSIONS["embed"],
    script:
        "../../../scripts/embed.py"


rule kernel_blocks:
    """Kernel products of one per-block embedding store (as rule kernel, plus what layers.metric reads)."""
    input:
        embeddings="results/embeddings_blocks/{dataset}/{model}.zarr",
    output:
        directory("results/kernels_blocks/{dataset}/{model}.zarr"),
    log:
        "logs/kernel_blocks/{dataset}/{model}.log",
    conda:
        "../../../envs/convergence.yaml"
    resources:
        mem_mb=8000,
        gpu=kernel_gpus(config),
    params:
        products=lambda w: merged_products(
            kernel_products(w), kernel_needs([LAYERS["metric"]], metric_settings(config))
        ),
        preprocess=config["kernels"]["preprocess"],
        gram_max_n=config["kernels"]["gram_max_n"],
        version=STEP_VERSIONS["kernel"],
    script:
        "../../../scripts/kernel.py"


rule lowlevel:
    """Low-level statistics of every stimulus image: luminance, RMS contrast, saturation, high-frequency energy."""
    input:
        stimuli=lambda w: stimuli_store(w.dataset),
    output:
        directory("results/lowlevel/{dataset}.zarr"),
    log:
        "logs/lowlevel/{dataset}.log",
    conda:
        "../../../envs/convergence.yaml"
    params:
        hf_cutoff=LAYERS["hf_cutoff"],
        version=STEP_VERSIONS["lowlevel"],
    script:
        "../../../scripts/lowlevel.py"


rule layers_readout:
    """Per layer of every compared model, the cross-validated ridge R^2 of each low-level statistic."""
    input:
        unpack(
            lambda w: {
                "lowlevel": f"results/lowlevel/{w.dataset}.zarr",
                **{m: layers_store(config, "embeddings", w.dataset, m) for m in layers_models(config, w.dataset)},
            }
        ),
    output:
        table="results/layers/{dataset}/readout.csv",
        curves="results/layers/{dataset}/readout_curves.csv",
        summary="results/layers/{dataset}/readout.json",
    log:
        "logs/layers_readout/{dataset}.log",
    conda:
        "../../../envs/convergence.yaml"
    params:
        options={key: LAYERS[key] for key in ("readout_folds", "readout_alphas", "seed")},
        summary={key: LAYERS[key] for key in ("n_bins", "n_bootstrap", "ci", "seed")},
        labels=model_labels,
        version=STEP_VERSIONS["layers"],
    script:
        "../../../scripts/layers_readout.py"


rule layers:
    """Layer x layer matrices of every model pair, best matches, the diagonal test, depth profile, smoothness, claims."""
    input:
        unpack(
            lambda w: {
                "readout": f"results/layers/{w.dataset}/readout.json",
                **{m: layers_store(config, "kernels", w.dataset, m) for m in layers_models(config, w.dataset)},
            }
        ),
    output:
        matrices=directory("results/layers/{dataset}/matrices.zarr"),
        matches="results/layers/{dataset}/best_matches.csv",
        profile="results/layers/{dataset}/depth_profile.csv",
        profile_summary="results/layers/{dataset}/depth_summary.csv",
        steps="results/layers/{dataset}/smoothness.csv",
        curves="results/layers/{dataset}/smoothness_curves.csv",
        summary="results/layers/{dataset}/summary.json",
    log:
        "logs/layers/{dataset}.log",
    conda:
        "../../../envs/convergence.yaml"
    params:
        metric=LAYERS["metric"],
        metric_params=metric_params(LAYERS["metric"], metric_settings(config)),
        options={key: LAYERS[key] for key in ("tolerance", "n_bins", "n_permutations", "n_bootstrap", "ci", "seed")},
        labels=lambda w: {m: v for m, v in model_labels(w).items() if m in layers_models(config, w.dataset)},
        pair_cache=lambda w: f"results/.cache/pairs/{w.dataset}/layers_{LAYERS['metric']}",
        version=STEP_VERSIONS["layers"],
    script:
        "../../../scripts/layers.py"


rule figure_layers_grid:
    """Layer x layer matrices of the chosen model pairs (layers.pairs; default every pair of distinct models)."""
    input:
        matrices="results/layers/{dataset}/matrices.zarr",
    output:
        png=report(
            "results/figures/layers/{dataset}/grid.png",
            caption="../../report/layers/figure_layers_grid.rst",
            category="Layers",
            subcategory="{dataset}",
        ),
        pdf="results/figures/layers/{dataset}/grid.pdf",
    log:
        "logs/figures/layers/{dataset}/grid.log",
    conda:
        "../../../envs/convergence.yaml"
    params:
        pairs=LAYERS["pairs"],
    script:
        "../../../scripts/figure_layers_grid.py"


rule figure_layers_depth:
    """Dissimilarity between models along relative depth, mean and spread over pairs."""
    input:
        summary="results/layers/{dataset}/depth_summary.csv",
    output:
        png=report(
            "results/figures/layers/{dataset}/depth.png",
            caption="../../report/layers/figure_layers_depth.rst",
            category="Layers",
            subcategory="{dataset}",
        ),
        pdf="results/figures/layers/{dataset}/depth.pdf",
    log:
        "logs/figures/layers/{dataset}/depth.log",
    conda:
        "../../../envs/convergence.yaml"
    script:
        "../../../scripts/figure_layers_depth.py"


rule figure_layers_smoothness:
    """Consecutive-layer similarity along relative depth, by family with bootstrap bands."""
    input:
        curves="results/layers/{dataset}/smoothness_curves.csv",
        summary="results/layers/{dataset}/summary.json",
    output:
        png=report(
            "results/figures/layers/{dataset}/smoothness.png",
            caption="../../report/layers/figure_layers_smoothness.rst",
            category="Layers",
            subcategory="{dataset}",
        ),
        pdf="results/figures/layers/{dataset}/smoothness.pdf",
    log:
        "logs/figures/layers/{dataset}/smoothness.log",
    conda:
        "../../../envs/convergence.yaml"
    script:
        "../../../scripts/figure_layers_smoothness.py"


rule figure_layers_readout:
    """Ridge read-out R^2 of each low-level statistic along relative depth, coloured by training objective."""
    input:
        table="results/layers/{dataset}/readout.csv",
    output:
        png=report(
            "results/figures/layers/{dataset}/readout.png",
            caption="../../report/layers/figure_layers_readout.rst",
            category="Layers",
            subcategory="{dataset}",
        ),
        pdf="results/figures/layers/{dataset}/readout.pdf",
    log:
        "logs/figures/layers/{dataset}/readout.log",
    conda:
        "../../../envs/convergence.yaml"
    script:
        "../../../scripts/figure_layers_readout.py"


rule figure_layers_diagonal:
    """The claim "similar relative depths are most similar": each layer's best match against its depth, the null."""
    input:
        matches="results/layers/{dataset}/best_matches.csv",
        summary="results/layers/{dataset}/summary.json",
    output:
        png=report(
            "results/figures/layers/{dataset}/diagonal.png",
            caption="../../report/layers/figure_layers_diagonal.rst",
            category="Layers",
            subcategory="{dataset}",
        ),
        pdf="results/figures/layers/{dataset}/diagonal.pdf",
    log:
        "logs/figures/layers/{dataset}/diagonal.log",
    conda:
        "../../../envs/convergence.yaml"
    script:
        "../../../scripts/figure_layers_diagonal.py"
