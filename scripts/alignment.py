"""rule alignment: all model pairs on one dataset for one metric, pair results cached by content."""
from convergence.analyses.alignment import alignment, summary_table
from convergence.runtime import logged
from convergence.store import open_store, write_store, write_table

with logged(snakemake.log[0], threads=snakemake.threads, outputs=snakemake.output):
    kernels = {name: open_store(path) for name, path in snakemake.input.items()}
    scores = alignment(kernels, snakemake.wildcards.metric, cache_dir=snakemake.params.pair_cache,
                       model_labels=snakemake.params.labels, **snakemake.params.options)
    write_store(scores, snakemake.output.store)
    write_table(summary_table(scores), snakemake.output.table)
