"""rule taxonomy_aggregate: every taxonomy run's scores in one table, the per-hypernym table, the ceilings."""
from convergence.analyses.taxonomy import aggregate, oracle_table
from convergence.runtime import logged
from convergence.store import write_table

with logged(snakemake.log[0], outputs=snakemake.output):
    summary, hypernyms = aggregate(snakemake.input.runs, snakemake.input.hypernyms)
    write_table(summary, snakemake.output.summary)
    write_table(hypernyms, snakemake.output.hypernyms)
    write_table(oracle_table(snakemake.input.oracles), snakemake.output.oracle)
