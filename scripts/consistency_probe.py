"""rule consistency_probe: linear-probe accuracy of every compared model on one dataset's labels."""
from convergence.analyses.consistency import probe_table
from convergence.runtime import logged
from convergence.store import open_store, write_table

with logged(snakemake.log[0], threads=snakemake.threads, outputs=snakemake.output):
    stimuli = open_store(snakemake.input.stimuli)
    embeddings = {name: open_store(path) for name, path in snakemake.input.items() if name != "stimuli"}
    table = probe_table(stimuli, embeddings, layers=snakemake.params.layers, preprocess=snakemake.params.preprocess,
                        seed=snakemake.params.seed, n_splits=snakemake.params.n_splits,
                        inner_splits=snakemake.params.inner_splits, model_labels=snakemake.params.labels)
    write_table(table, snakemake.output[0])
