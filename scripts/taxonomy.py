"""rule taxonomy: train one projector (vision model -> frozen causal LM) and answer the test questions."""
from convergence.analyses.taxonomy_train import run_taxonomy_job
from convergence.runtime import logged
from convergence.store import open_store, write_json, write_table

with logged(snakemake.log[0], threads=snakemake.threads, outputs=snakemake.output):
    metrics, answers, per_hypernym = run_taxonomy_job(
        open_store(snakemake.input.stimuli), open_store(snakemake.input.embeddings, load=True),
        snakemake.wildcards.lm, snakemake.params.lm_spec, snakemake.params.condition, snakemake.params.options,
        seed=int(snakemake.wildcards.seed), device=snakemake.params.device, threads=snakemake.threads,
        progress=snakemake.params.progress,
        labels={"vision": snakemake.wildcards.vision, "lm": snakemake.wildcards.lm,
                "condition": snakemake.wildcards.condition},
    )
    write_table(answers, snakemake.output.answers)
    write_table(per_hypernym, snakemake.output.hypernyms)
    write_json(metrics, snakemake.output.metrics)
