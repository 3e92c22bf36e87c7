# Analysis `prh`: each model's alignment to a reference model against its competence.


@analysis("prh")
def prh_targets():
    reference = config["prh"].get("reference")
    datasets = [d for d in compared_datasets() if reference in models_for(config, d)]
    return [p for d in datasets for m in METRICS for p in figure("prh", d, m)]


rule prh:
    """The PRH numbers: alignment to the reference model and competence of every model, with the fitted line."""
    input:
        alignment="results/alignment/{dataset}/{metric}.zarr",
        competence="results/competence/{dataset}.csv",
    output:
        table="results/prh/{dataset}/{metric}.csv",
        fit="results/prh/{dataset}/{metric}.json",
    params:
        reference=config["prh"].get("reference"),
        summary=config["prh"]["summary"],
    log:
        "logs/prh/{dataset}/{metric}.log",
    conda:
        "../../../envs/convergence.yaml"
    script:
        "../../../scripts/prh.py"


rule figure_prh:
    """The PRH plot, drawn from the stored numbers of rule prh."""
    input:
        table="results/prh/{dataset}/{metric}.csv",
        fit="results/prh/{dataset}/{metric}.json",
    output:
        png="results/figures/prh/{dataset}/{metric}.png",
        pdf="results/figures/prh/{dataset}/{metric}.pdf",
    log:
        "logs/figures/prh/{dataset}/{metric}.log",
    conda:
        "../../../envs/convergence.yaml"
    script:
        "../../../scripts/figure_prh.py"
