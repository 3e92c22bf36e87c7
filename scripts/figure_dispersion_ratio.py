"""rule figure_dispersion_ratio: the low/high ratio with its interval across selection criteria."""
from convergence.plots.dispersion import plot_ratio
from convergence.runtime import logged
from convergence.store import open_store

with logged(snakemake.log[0], threads=snakemake.threads, outputs=snakemake.output):
    plot_ratio(open_store(snakemake.input.result, load=True), [snakemake.output.png, snakemake.output.pdf],
               title=f"{snakemake.wildcards.dataset}, group {snakemake.wildcards.group}")
