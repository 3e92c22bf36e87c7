"""rule figure_prh: alignment to the reference model against competence."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent / "src"))

import pandas as pd

from convergence.alignment.cached import prh_table
from convergence.plots.alignment import plot_prh
from convergence.runtime import logged
from convergence.store import open_store

with logged(snakemake.log[0], threads=snakemake.threads):
    scores = open_store(snakemake.input.alignment, load=True)
    reference = snakemake.params.reference
    table, fit, x_label = prh_table(scores, pd.read_csv(snakemake.input.competence), reference)
    plot_prh(table, [snakemake.output.png, snakemake.output.pdf], fit=fit, reference=reference,
             metric=scores.attrs["metric"], x_label=x_label)
