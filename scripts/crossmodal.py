"""rule crossmodal: the vision x language block of one dataset's alignment."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent / "src"))

from convergence.alignment.cached import crossmodal_block, summary_table
from convergence.runtime import logged
from convergence.store import open_store, write_store, write_table

with logged(snakemake.log[0], threads=snakemake.threads):
    block = crossmodal_block(open_store(snakemake.input.alignment, load=True))
    write_store(block, snakemake.output.store)
    write_table(summary_table(block), snakemake.output.table)
