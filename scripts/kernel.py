"""rule kernel: one model's cached products on one dataset."""
from convergence.kernels import build_kernel
from convergence.runtime import logged
from convergence.store import open_store, write_store

products = snakemake.params.products
# the exact search's backend and device change no number (every backend gives the exact lists), so they are
# read from the config rather than params: switching them reruns nothing
search = snakemake.config["kernels"]
with logged(snakemake.log[0], threads=snakemake.threads, outputs=snakemake.output):
    kernel = build_kernel(
        open_store(snakemake.input.embeddings, load=True),
        k=products["k"],
        gram=products["gram"],
        preprocess=snakemake.params.preprocess,
        gram_max_n=snakemake.params.gram_max_n,
        neighbours=products.get("neighbours", "exact"),
        approximate_above=products.get("approximate_above"),
        recall_sample=products.get("recall_sample"),
        backend=search["backend"],
        device=search["device"],
    )
    write_store(kernel, snakemake.output[0], chunk=1024)  # Grams are read in row blocks
