"""rule figure_prh: alignment to the reference model against competence."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent / "src"))

import pandas as pd

from convergence.alignment import alignment_vs_competence, linear_fit
from convergence.alignment.cached import prh_competence
from convergence.plots.alignment import plot_prh
from convergence.runtime import logged
from convergence.store import open_store

with logged(snakemake.log[0], threads=snakemake.threads):
    scores = open_store(snakemake.input.alignment, load=True)
    competence, x_label = prh_competence(pd.read_csv(snakemake.input.competence))
    reference = snakemake.params.reference
    table = alignment_vs_competence(scores, competence, reference)
    numeric = [c for c in table.columns if c != "model"]
    table[numeric] = table[numeric].astype(float)  # an empty table (no competence here) stays plottable
    try:
        fit = linear_fit(table["competence"], table["alignment"])
    except ValueError as err:  # fewer than two models with a competence: no line to draw
        print(f"no fit: {err}")
        fit = None
    plot_prh(table, [snakemake.output.png, snakemake.output.pdf], fit=fit, reference=reference,
             metric=scores.attrs["metric"], x_label=x_label)
