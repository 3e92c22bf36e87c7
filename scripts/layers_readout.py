"""rule layers_readout: ridge read-out of the low-level statistics from every layer of every compared model."""
from convergence.analyses.layers import layer_readout, readout_summary
from convergence.runtime import logged
from convergence.store import open_store, write_json, write_table

with logged(snakemake.log[0], threads=snakemake.threads, outputs=snakemake.output):
    options = snakemake.params.options
    stores = {name: open_store(path) for name, path in snakemake.input.items() if name != "lowlevel"}
    table = layer_readout(stores, open_store(snakemake.input.lowlevel, load=True), folds=options["readout_folds"],
                          alphas=options["readout_alphas"], seed=options["seed"], model_labels=snakemake.params.labels)
    curves, summary = readout_summary(table, **snakemake.params.summary)
    write_table(table, snakemake.output.table)
    write_table(curves, snakemake.output.curves)
    write_json(summary, snakemake.output.summary)
