"""rule taxonomy: train one projector (vision model -> frozen causal LM) and answer the test questions."""
from convergence.analyses.taxonomy_train import run_taxonomy_job
from convergence.runtime import logged

with logged(snakemake.log[0], threads=snakemake.threads):
    run_taxonomy_job(
        snakemake.input.stimuli, snakemake.input.embeddings, snakemake.wildcards.lm, snakemake.params.lm_spec,
        snakemake.params.condition, snakemake.params.options, seed=int(snakemake.wildcards.seed),
        device=snakemake.params.device, threads=snakemake.threads, progress=snakemake.params.progress,
        outputs=dict(snakemake.output.items()),
        labels={"vision": snakemake.wildcards.vision, "lm": snakemake.wildcards.lm,
                "condition": snakemake.wildcards.condition},
    )
