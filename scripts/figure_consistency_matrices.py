"""rule figure_consistency_matrices: dataset x dataset consistency, one panel per model-set pair."""
import pandas as pd

from convergence.plots.consistency import plot_consistency_matrices
from convergence.runtime import logged

with logged(snakemake.log[0], threads=snakemake.threads, outputs=snakemake.output):
    table = pd.read_csv(snakemake.input.consistency)
    plot_consistency_matrices(table, [snakemake.output.png, snakemake.output.pdf],
                              title=f"{snakemake.wildcards.metric}: Spearman r of pairwise similarities between "
                                    "datasets (model pairs in brackets)")
