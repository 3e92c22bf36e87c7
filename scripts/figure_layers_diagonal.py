"""rule figure_layers_diagonal: each layer's best-matching depth against its own, with the shuffled-depth null."""
import json

import pandas as pd

from convergence.plots.layers import plot_depth_matches
from convergence.runtime import logged

with logged(snakemake.log[0], threads=snakemake.threads):
    summary = json.loads(open(snakemake.input.summary).read())
    plot_depth_matches(pd.read_csv(snakemake.input.matches), summary["diagonal"],
                       [snakemake.output.png, snakemake.output.pdf],
                       title=f"{snakemake.wildcards.dataset}, {summary['metric']}: similar relative depths are most "
                             f"similar? (n={summary['n_stimuli']} stimuli)")
