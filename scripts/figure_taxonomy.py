"""rules figure_taxonomy_*: the removal curve, the shuffle conditions, F1 against visual coherence."""
import pandas as pd

from convergence.plots.taxonomy import plot_taxonomy
from convergence.runtime import logged

with logged(snakemake.log[0], outputs=snakemake.output):
    tables = {name: pd.read_csv(path) for name, path in snakemake.input.items()}
    plot_taxonomy(snakemake.params.kind, tables, [snakemake.output.png, snakemake.output.pdf])
