"""rule competence: k-NN / linear-probe accuracy and bits per byte of every model on one dataset."""
from convergence.analyses.competence import competence_table
from convergence.runtime import logged
from convergence.store import open_store, write_table

with logged(snakemake.log[0], threads=snakemake.threads, outputs=snakemake.output):
    stimuli = open_store(snakemake.input.stimuli)
    stores = {name: open_store(path) for name, path in snakemake.input.items() if name != "stimuli"}
    table = competence_table(stimuli, stores, k=snakemake.params.k, seed=snakemake.params.seed,
                             model_labels=snakemake.params.labels)
    write_table(table, snakemake.output[0])
