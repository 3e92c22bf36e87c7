# Analysis `crossmodal`: vision models against language models on captioned stimuli.


register_targets(
    "crossmodal",
    lambda: [
        p
        for d in compared_datasets()
        if has_crossmodal(d)
        for rule in ("crossmodal", "figure_crossmodal")
        for p in outputs(rule, dataset=d, metric=METRICS)
    ],
)


rule crossmodal:
    """Every vision model x every language model on one captioned dataset: the image-caption block of the alignment."""
    input:
        alignment="results/alignment/{dataset}/{metric}.zarr",
    output:
        store=directory("results/crossmodal/{dataset}/{metric}.zarr"),
        table="results/crossmodal/{dataset}/{metric}.csv",
    log:
        "logs/crossmodal/{dataset}/{metric}.log",
    conda:
        "../../../envs/convergence.yaml"
    script:
        "../../../scripts/crossmodal.py"


rule figure_crossmodal:
    """Heatmap of vision x language alignment on captioned stimuli, with the null level."""
    input:
        crossmodal="results/crossmodal/{dataset}/{metric}.zarr",
    output:
        png=report(
            "results/figures/crossmodal/{dataset}/{metric}.png",
            caption="../../report/crossmodal/figure_crossmodal.rst",
            category="Cross-modal",
            subcategory="{dataset}",
        ),
        pdf="results/figures/crossmodal/{dataset}/{metric}.pdf",
    log:
        "logs/figures/crossmodal/{dataset}/{metric}.log",
    conda:
        "../../../envs/convergence.yaml"
    script:
        "../../../scripts/figure_crossmodal.py"
