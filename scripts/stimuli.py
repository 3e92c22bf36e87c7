"""rule stimuli: materialise one stimulus set."""
from convergence.runtime import logged
from convergence.stimuli import build_stimuli
from convergence.store import write_store

with logged(snakemake.log[0], threads=snakemake.threads, outputs=snakemake.output):
    ds = build_stimuli(snakemake.wildcards.dataset, snakemake.params.spec)
    write_store(ds, snakemake.output[0], chunk=1024)
    print(f"{snakemake.wildcards.dataset}: {ds.sizes['stimulus']} stimuli -> {snakemake.output[0]}")
