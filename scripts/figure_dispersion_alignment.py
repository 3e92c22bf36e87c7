"""rule figure_dispersion_alignment: alignment on low vs high vs random subsets per vision x language pair."""
from convergence.plots.dispersion import plot_subset_alignment
from convergence.runtime import logged
from convergence.store import open_store

with logged(snakemake.log[0], threads=snakemake.threads, outputs=snakemake.output):
    plot_subset_alignment(open_store(snakemake.input.result, load=True), [snakemake.output.png, snakemake.output.pdf],
                          title=f"{snakemake.wildcards.dataset}, group {snakemake.wildcards.group}")
