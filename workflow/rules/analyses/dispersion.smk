# Analysis `dispersion` (study 000): per-stimulus dispersion of groups of vision models by generalised
# Procrustes, and cross-modal alignment on low- vs high-dispersion stimuli against random subsets.


register_targets("dispersion", dispersion_targets)


rule dispersion:
    """Per-stimulus dispersion of one group of vision models (each at its configured layer) by GPA."""
    input:
        unpack(lambda w: group_kernels(w.dataset, w.group)),
    output:
        directory("results/dispersion/{dataset}/{group}.zarr"),
    log:
        "logs/dispersion/{dataset}/{group}.log",
    conda:
        "../../../envs/convergence.yaml"
    params:
        layers=lambda w: dispersion_layers(group_models(w.dataset, w.group)),
        options={key: config["dispersion"][key] for key in GPA_OPTIONS},
        labels=lambda w: group_labels(w.dataset, w.group),
        version=STEP_VERSIONS["dispersion"],
    script:
        "../../../scripts/dispersion.py"


rule dispersion_alignment:
    """Vision x language alignment on the low- and high-dispersion stimuli of one group, against random subsets."""
    input:
        unpack(
            lambda w: {
                "dispersion": f"results/dispersion/{w.dataset}/{w.group}.zarr",
                **crossmodal_kernels(w.dataset),
            }
        ),
    output:
        store=directory("results/dispersion_alignment/{dataset}/{group}.zarr"),
        table="results/dispersion_alignment/{dataset}/{group}.csv",
    log:
        "logs/dispersion_alignment/{dataset}/{group}.log",
    conda:
        "../../../envs/convergence.yaml"
    params:
        vision=lambda w: models_for(config, w.dataset, "vision"),
        language=lambda w: models_for(config, w.dataset, "language"),
        layers=lambda w: dispersion_layers(models_for(config, w.dataset)),
        options=dispersion_alignment_options,
        labels=model_labels,
        version=STEP_VERSIONS["dispersion_alignment"],
    script:
        "../../../scripts/dispersion_alignment.py"


rule figure_dispersion:
    """The dispersion distribution with the stimuli at both ends (images and captions)."""
    input:
        dispersion="results/dispersion/{dataset}/{group}.zarr",
        stimuli=lambda w: stimuli_store(w.dataset),
    output:
        png=report(
            "results/figures/dispersion/{dataset}/{group}.png",
            caption="../../report/dispersion/figure_dispersion.rst",
            category="Dispersion",
            subcategory="{dataset}",
        ),
        pdf="results/figures/dispersion/{dataset}/{group}.pdf",
    log:
        "logs/figures/dispersion/{dataset}/{group}.log",
    conda:
        "../../../envs/convergence.yaml"
    params:
        examples=config["dispersion"]["examples"],
    script:
        "../../../scripts/figure_dispersion.py"


rule figure_dispersion_alignment:
    """Alignment on low vs high vs random subsets, per vision x language pair and selection criterion."""
    input:
        result="results/dispersion_alignment/{dataset}/{group}.zarr",
    output:
        png=report(
            "results/figures/dispersion_alignment/{dataset}/{group}.png",
            caption="../../report/dispersion/figure_dispersion_alignment.rst",
            category="Dispersion",
            subcategory="{dataset}",
        ),
        pdf="results/figures/dispersion_alignment/{dataset}/{group}.pdf",
    log:
        "logs/figures/dispersion_alignment/{dataset}/{group}.log",
    conda:
        "../../../envs/convergence.yaml"
    script:
        "../../../scripts/figure_dispersion_alignment.py"


rule figure_dispersion_ratio:
    """The low/high alignment ratio with its interval across selection criteria, per pair."""
    input:
        result="results/dispersion_alignment/{dataset}/{group}.zarr",
    output:
        png=report(
            "results/figures/dispersion_ratio/{dataset}/{group}.png",
            caption="../../report/dispersion/figure_dispersion_ratio.rst",
            category="Dispersion",
            subcategory="{dataset}",
        ),
        pdf="results/figures/dispersion_ratio/{dataset}/{group}.pdf",
    log:
        "logs/figures/dispersion_ratio/{dataset}/{group}.log",
    conda:
        "../../../envs/convergence.yaml"
    script:
        "../../../scripts/figure_dispersion_ratio.py"
