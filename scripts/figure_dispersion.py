"""rule figure_dispersion: the dispersion distribution with the stimuli at both ends."""
from convergence.plots.dispersion import plot_dispersion
from convergence.runtime import logged
from convergence.store import open_store

with logged(snakemake.log[0], threads=snakemake.threads, outputs=snakemake.output):
    plot_dispersion(open_store(snakemake.input.dispersion, load=True), open_store(snakemake.input.stimuli),
                    [snakemake.output.png, snakemake.output.pdf], examples=snakemake.params.examples,
                    title=f"{snakemake.wildcards.dataset}, group {snakemake.wildcards.group}")
