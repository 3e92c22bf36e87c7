# Analysis `prh`: each model's alignment to a reference model against its competence.


register_targets(
    "prh",
    lambda: [
        p
        for d in compared_datasets()
        if config["prh"].get("reference") in models_for(config, d)
        for m in METRICS
        for p in figure("prh", d, m)
    ],
)


rule prh:
    """The PRH numbers: alignment to the reference model and competence of every model, with the fitted line."""
    input:
        alignment="results/alignment/{dataset}/{metric}.zarr",
        competence="results/competence/{dataset}.csv",
    output:
        table="results/prh/{dataset}/{metric}.csv",
        fit="results/prh/{dataset}/{metric}.json",
    log:
        "logs/prh/{dataset}/{metric}.log",
    conda:
        "../../../envs/convergence.yaml"
    params:
        reference=config["prh"].get("reference"),
        summary=config["prh"]["summary"],
        version=STEP_VERSIONS["prh"],
    script:
        "../../../scripts/prh.py"


rule figure_prh:
    """The PRH plot, drawn from the stored numbers of rule prh."""
    input:
        table="results/prh/{dataset}/{metric}.csv",
        fit="results/prh/{dataset}/{metric}.json",
    output:
        png=report(
            "results/figures/prh/{dataset}/{metric}.png",
            caption="../../report/prh/figure_prh.rst",
            category="PRH",
            subcategory="{dataset}",
        ),
        pdf="results/figures/prh/{dataset}/{metric}.pdf",
    log:
        "logs/figures/prh/{dataset}/{metric}.log",
    conda:
        "../../../envs/convergence.yaml"
    script:
        "../../../scripts/figure_prh.py"
