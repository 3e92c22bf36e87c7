"""rule figure_overview: what each model's store holds, and a PCA of its last layer."""
from convergence.plots.overview import plot_overview
from convergence.runtime import logged
from convergence.store import open_store

with logged(snakemake.log[0], threads=snakemake.threads, outputs=snakemake.output):
    stimuli = open_store(snakemake.input.stimuli)
    stores = {name: open_store(path) for name, path in snakemake.input.items() if name != "stimuli"}
    plot_overview(stimuli, stores, [snakemake.output.png, snakemake.output.pdf],
                  objectives={m: v.get("objective", "") for m, v in snakemake.params.labels.items()})
