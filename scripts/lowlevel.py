"""rule lowlevel: low-level statistics of every stimulus image of one dataset."""
from convergence.lowlevel import lowlevel_statistics
from convergence.runtime import logged
from convergence.store import open_store, write_store

with logged(snakemake.log[0], threads=snakemake.threads, outputs=snakemake.output):
    stats = lowlevel_statistics(open_store(snakemake.input.stimuli), hf_cutoff=snakemake.params.hf_cutoff)
    write_store(stats, snakemake.output[0])
