"""rule figure_consistency_distributions: consistency over dataset pairs, by model-set pair."""
import pandas as pd

from convergence.plots.consistency import plot_consistency_distributions
from convergence.runtime import logged

with logged(snakemake.log[0], threads=snakemake.threads, outputs=snakemake.output):
    table = pd.read_csv(snakemake.input.consistency)
    plot_consistency_distributions(table, [snakemake.output.png, snakemake.output.pdf],
                                   title=f"{snakemake.wildcards.metric}: consistency across datasets by model-set pair")
