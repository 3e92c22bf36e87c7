"""rule crossmodal: the vision x language block of one dataset's alignment."""
from convergence.analyses.alignment import summary_table
from convergence.analyses.crossmodal import crossmodal
from convergence.runtime import logged
from convergence.store import open_store, write_store, write_table

with logged(snakemake.log[0], threads=snakemake.threads, outputs=snakemake.output):
    block = crossmodal(open_store(snakemake.input.alignment, load=True))
    write_store(block, snakemake.output.store)
    write_table(summary_table(block), snakemake.output.table)
