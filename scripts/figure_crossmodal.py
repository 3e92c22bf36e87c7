"""rule figure_crossmodal: vision x language heatmap with CIs and the null level."""
from convergence.plots.alignment import plot_crossmodal_heatmap
from convergence.runtime import logged
from convergence.store import open_store

with logged(snakemake.log[0], threads=snakemake.threads, outputs=snakemake.output):
    scores = open_store(snakemake.input.crossmodal, load=True)
    title = f"{snakemake.wildcards.dataset}: images vs captions, {scores.attrs['metric']}, n={scores.attrs['n_stimuli']}"
    plot_crossmodal_heatmap(scores, [snakemake.output.png, snakemake.output.pdf], title=title)
