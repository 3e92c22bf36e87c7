"""rule kernel: one model's cached products on one dataset."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent / "src"))

from convergence.alignment.cached import with_fingerprints
from convergence.kernels import build_kernel
from convergence.runtime import logged
from convergence.store import open_store, write_store

with logged(snakemake.log[0], threads=snakemake.threads):
    kernel = with_fingerprints(build_kernel(
        open_store(snakemake.input.embeddings, load=True),
        k=snakemake.params.k,
        preprocess=snakemake.params.preprocess,
        gram_max_n=snakemake.params.gram_max_n,
    ))
    write_store(kernel, snakemake.output[0], chunk=1024)  # Grams are read in row blocks
