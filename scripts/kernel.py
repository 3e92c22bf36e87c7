"""rule kernel: one model's cached products on one dataset."""
from convergence.kernels import build_kernel
from convergence.runtime import logged
from convergence.store import open_store, write_store

with logged(snakemake.log[0], threads=snakemake.threads, outputs=snakemake.output):
    kernel = build_kernel(
        open_store(snakemake.input.embeddings, load=True),
        k=snakemake.params.products["k"],
        gram=snakemake.params.products["gram"],
        preprocess=snakemake.params.preprocess,
        gram_max_n=snakemake.params.gram_max_n,
    )
    write_store(kernel, snakemake.output[0], chunk=1024)  # Grams are read in row blocks
