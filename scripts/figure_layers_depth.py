"""rule figure_layers_depth: dissimilarity between models along relative depth."""
import pandas as pd

from convergence.plots.layers import plot_depth_profile
from convergence.runtime import logged

with logged(snakemake.log[0], threads=snakemake.threads, outputs=snakemake.output):
    summary = pd.read_csv(snakemake.input.summary)
    plot_depth_profile(summary, [snakemake.output.png, snakemake.output.pdf],
                       title=f"{snakemake.wildcards.dataset}, {snakemake.config['layers']['metric']}: "
                             "where models differ along depth")
