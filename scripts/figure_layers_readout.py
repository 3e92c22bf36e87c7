"""rule figure_layers_readout: low-level read-out along depth by training objective."""
import pandas as pd

from convergence.plots.layers import plot_readout
from convergence.runtime import logged

with logged(snakemake.log[0], threads=snakemake.threads, outputs=snakemake.output):
    plot_readout(pd.read_csv(snakemake.input.table), [snakemake.output.png, snakemake.output.pdf],
                 title=f"{snakemake.wildcards.dataset}: low-level statistics read out per layer")
