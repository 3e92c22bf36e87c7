"""rule figure_layers_grid: layer x layer matrices of the chosen model pairs."""
from itertools import combinations

from convergence.plots.layers import plot_layer_grid
from convergence.runtime import logged
from convergence.store import open_store

with logged(snakemake.log[0], threads=snakemake.threads, outputs=snakemake.output):
    scores = open_store(snakemake.input.matrices, load=True)
    models = [str(m) for m in scores["model_a"].values]
    pairs = [tuple(p) for p in snakemake.params.pairs if set(p) <= set(models)] or list(combinations(models, 2))
    title = f"{snakemake.wildcards.dataset}: {scores.attrs['metric']} per layer pair, n={scores.attrs['n_stimuli']}"
    plot_layer_grid(scores, pairs, [snakemake.output.png, snakemake.output.pdf], title=title)
