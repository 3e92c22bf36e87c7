"""rule consistency_similarity: one dataset's model x model similarity at one layer per model."""
from convergence.analyses.alignment import summary_table
from convergence.analyses.consistency import similarity_scores
from convergence.runtime import logged
from convergence.store import open_store, write_store, write_table

with logged(snakemake.log[0], threads=snakemake.threads, outputs=snakemake.output):
    embeddings = {name: open_store(path) for name, path in snakemake.input.items()}
    scores = similarity_scores(embeddings, snakemake.wildcards.metric, cache_dir=snakemake.params.pair_cache,
                               params=snakemake.params.params, layers=snakemake.params.layers,
                               preprocess=snakemake.params.preprocess, model_labels=snakemake.params.labels)
    write_store(scores, snakemake.output.store)
    write_table(summary_table(scores), snakemake.output.table)
