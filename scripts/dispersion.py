"""rule dispersion: per-stimulus dispersion of one group of vision models by generalised Procrustes."""
from convergence.analyses.dispersion import dispersion
from convergence.runtime import logged
from convergence.store import open_store, write_store

with logged(snakemake.log[0], threads=snakemake.threads, outputs=snakemake.output):
    kernels = {name: open_store(path) for name, path in snakemake.input.items()}
    result = dispersion(kernels, group=snakemake.wildcards.group, layers=snakemake.params.layers,
                        model_labels=snakemake.params.labels, **snakemake.params.options)
    print(f"GPA of {list(kernels)}: {result.attrs['n_iter']} iterations, converged={bool(result.attrs['converged'])}")
    write_store(result, snakemake.output[0])
