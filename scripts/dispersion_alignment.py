"""rule dispersion_alignment: vision x language alignment on low/high-dispersion stimuli vs random subsets."""
from convergence.analyses.dispersion import dispersion_alignment, ratio_table
from convergence.runtime import logged
from convergence.store import open_store, write_store, write_table

with logged(snakemake.log[0], threads=snakemake.threads, outputs=snakemake.output):
    disp = open_store(snakemake.input.dispersion, load=True)
    kernels = {name: open_store(path) for name, path in snakemake.input.items() if name != "dispersion"}
    result = dispersion_alignment(kernels, disp, vision=snakemake.params.vision, language=snakemake.params.language,
                                  layers=snakemake.params.layers, model_labels=snakemake.params.labels,
                                  **snakemake.params.options)
    write_store(result, snakemake.output.store)
    write_table(ratio_table(result), snakemake.output.table)
