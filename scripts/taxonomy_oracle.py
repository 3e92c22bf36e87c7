"""rule taxonomy_oracle: the language-only ceiling of one LM (the concept named in the text, no image)."""
from convergence.analyses.taxonomy_train import run_oracle_job
from convergence.runtime import logged
from convergence.store import open_store, write_json, write_table

with logged(snakemake.log[0], threads=snakemake.threads, outputs=snakemake.output):
    metrics, questions = run_oracle_job(
        open_store(snakemake.input.stimuli), snakemake.wildcards.lm, snakemake.params.lm_spec,
        snakemake.params.options, seed=int(snakemake.params.seed), device=snakemake.params.device,
        threads=snakemake.threads,
    )
    write_table(questions, snakemake.output.answers)
    write_json(metrics, snakemake.output.metrics)
