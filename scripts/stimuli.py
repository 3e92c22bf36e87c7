"""rule stimuli: materialise one stimulus set, chunk by chunk."""
from convergence.runtime import logged
from convergence.stimuli import write_stimuli

with logged(snakemake.log[0], threads=snakemake.threads, outputs=snakemake.output):
    plan = write_stimuli(snakemake.wildcards.dataset, snakemake.params.spec, snakemake.output[0])
    print(f"{snakemake.wildcards.dataset}: {plan.n} stimuli -> {snakemake.output[0]}")
