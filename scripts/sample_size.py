"""rule sample_size: every model pair of one dataset scored on nested random subsets of growing size."""
from convergence.analyses.sample_size import curve_table, sample_size_curve, size_trend
from convergence.runtime import logged
from convergence.store import open_store, write_store, write_table

with logged(snakemake.log[0], threads=snakemake.threads, outputs=snakemake.output):
    kernels = {name: open_store(path) for name, path in snakemake.input.items()}
    curve = sample_size_curve(kernels, snakemake.wildcards.metric, model_labels=snakemake.params.labels,
                              progress=snakemake.params.progress, **snakemake.params.options)
    table = curve_table(curve)
    write_store(curve, snakemake.output.store)
    write_table(table, snakemake.output.table)
    write_table(size_trend(table), snakemake.output.trend)
