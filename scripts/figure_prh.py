"""rule figure_prh: the PRH plot from the stored numbers of rule prh."""
from convergence.analyses.prh import read_prh
from convergence.plots.alignment import plot_prh
from convergence.runtime import logged

with logged(snakemake.log[0], threads=snakemake.threads, outputs=snakemake.output):
    table, info = read_prh(snakemake.input.table, snakemake.input.fit)
    plot_prh(table, [snakemake.output.png, snakemake.output.pdf], fit=info["fit"],
             fit_trained=info.get("fit_trained"), reference=info["reference"], metric=info["metric"],
             x_label=info["x_label"], dataset=snakemake.wildcards.dataset, fit_calibrated=info.get("fit_calibrated"),
             fit_calibrated_trained=info.get("fit_calibrated_trained"), alpha=info.get("alpha"))
