"""rule figure_alignment: model x model heatmap with the null level."""
from convergence.plots.alignment import plot_alignment_heatmap
from convergence.runtime import logged
from convergence.store import open_store

with logged(snakemake.log[0], threads=snakemake.threads, outputs=snakemake.output):
    scores = open_store(snakemake.input.alignment, load=True)
    title = f"{snakemake.wildcards.dataset}: {scores.attrs['metric']}, best layer pair, n={scores.attrs['n_stimuli']}"
    if "neighbour_recall_min" in scores.attrs:  # approximate neighbour lists: their measured recall
        title += f"; approximate neighbours, recall@k >= {scores.attrs['neighbour_recall_min']:.4f}"
    plot_alignment_heatmap(scores, [snakemake.output.png, snakemake.output.pdf], title=title)
