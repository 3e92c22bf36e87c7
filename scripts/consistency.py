"""rule consistency: consistency across dataset pairs by model-set pair, and the similarity-behaviour link."""
import pandas as pd

from convergence.analyses.consistency import behaviour_table, dataset_consistency, similarity_matrix
from convergence.runtime import logged
from convergence.store import open_store, write_table

with logged(snakemake.log[0], threads=snakemake.threads, outputs=snakemake.output):
    datasets = snakemake.params.datasets
    matrices = {d: similarity_matrix(open_store(path, load=True)) for d, path in zip(datasets, snakemake.input.similarity)}
    probes = {d: pd.read_csv(path) for d, path in zip(datasets, snakemake.input.probes)}
    table = dataset_consistency(matrices, missing=snakemake.params.missing, min_pairs=snakemake.params.min_pairs)
    links, pairs = behaviour_table(matrices, probes, n_permutations=snakemake.params.n_permutations,
                                   alternative=snakemake.params.alternative, seed=snakemake.params.seed,
                                   domains=snakemake.params.domains,
                                   min_pairs=snakemake.params.min_pairs)
    write_table(table, snakemake.output.consistency)
    write_table(links, snakemake.output.behaviour)
    write_table(pairs, snakemake.output.pairs)
