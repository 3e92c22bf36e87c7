"""rule figure_sample_size: score and null against the number of stimuli, from rule sample_size's tables."""
import pandas as pd

from convergence.plots.sample_size import plot_sample_size
from convergence.runtime import logged

with logged(snakemake.log[0], threads=snakemake.threads, outputs=snakemake.output):
    plot_sample_size(pd.read_csv(snakemake.input.table), pd.read_csv(snakemake.input.trend),
                     [snakemake.output.png, snakemake.output.pdf], metric=snakemake.wildcards.metric,
                     dataset=snakemake.wildcards.dataset, summary=snakemake.params.summary)
