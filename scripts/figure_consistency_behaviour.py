"""rule figure_consistency_behaviour: pairwise similarity vs |difference in probe accuracy| per dataset."""
import pandas as pd

from convergence.plots.consistency import plot_behaviour
from convergence.runtime import logged

with logged(snakemake.log[0], threads=snakemake.threads, outputs=snakemake.output):
    plot_behaviour(pd.read_csv(snakemake.input.behaviour), pd.read_csv(snakemake.input.pairs),
                   [snakemake.output.png, snakemake.output.pdf],
                   title=f"{snakemake.wildcards.metric}: similarity vs behaviour difference")
