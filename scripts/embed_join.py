"""rule embed_join: the shards of one (dataset, model) extraction as one embedding store."""
from convergence.embed import join_shards
from convergence.runtime import logged

with logged(snakemake.log[0], threads=snakemake.threads):
    ds = join_shards(list(snakemake.input.shards), snakemake.output[0])
    print(f"{snakemake.wildcards.model} on {snakemake.wildcards.dataset}: {len(snakemake.input.shards)} shards, "
          f"{ds.sizes['stimulus']} stimuli")
