"""rule alignment: all model pairs on one dataset for one metric, pair results cached by content."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent / "src"))

from convergence.alignment.cached import cached_pairwise, summary_table
from convergence.runtime import logged
from convergence.store import open_store, write_store, write_table

opts = snakemake.params.options
with logged(snakemake.log[0], threads=snakemake.threads):
    kernels = {name: open_store(path) for name, path in snakemake.input.items()}
    scores = cached_pairwise(
        kernels,
        snakemake.wildcards.metric,
        cache_dir=snakemake.params.pair_cache,
        params=opts["params"],
        n_permutations=opts["n_permutations"],
        n_bootstrap=opts["n_bootstrap"],
        seed=opts["seed"],
        named_layers=opts["named_layers"],
        model_labels=snakemake.params.labels,
    )
    write_store(scores, snakemake.output.store)
    write_table(summary_table(scores), snakemake.output.table)
