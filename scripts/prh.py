"""rule prh: alignment to the reference model against competence, with the fitted line."""
import pandas as pd

from convergence.analyses.prh import prh
from convergence.runtime import logged
from convergence.store import open_store, write_json, write_table

with logged(snakemake.log[0], threads=snakemake.threads, outputs=snakemake.output):
    scores = open_store(snakemake.input.alignment, load=True)
    table, info = prh(scores, pd.read_csv(snakemake.input.competence), snakemake.params.reference,
                      summary=snakemake.params.summary)
    write_table(table, snakemake.output.table)
    write_json(info, snakemake.output.fit)
