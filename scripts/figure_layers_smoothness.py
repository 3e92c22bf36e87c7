"""rule figure_layers_smoothness: consecutive-layer similarity by family."""
import json

import pandas as pd

from convergence.plots.layers import plot_smoothness
from convergence.runtime import logged

with logged(snakemake.log[0], threads=snakemake.threads, outputs=snakemake.output):
    summary = json.loads(open(snakemake.input.summary).read())
    plot_smoothness(pd.read_csv(snakemake.input.curves), [snakemake.output.png, snakemake.output.pdf],
                    metric=summary["metric"],
                    title=f"{snakemake.wildcards.dataset}, {summary['metric']}: smoothness by family")
