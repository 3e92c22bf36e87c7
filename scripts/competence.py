"""rule competence: k-NN / linear-probe accuracy and bits per byte of every model on one dataset."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent / "src"))

from convergence.alignment.cached import competence_table
from convergence.runtime import logged
from convergence.store import open_store, write_table

with logged(snakemake.log[0], threads=snakemake.threads):
    stimuli = open_store(snakemake.input.stimuli)
    stores = {name: open_store(path) for name, path in snakemake.input.items() if name != "stimuli"}
    write_table(competence_table(stimuli, stores, k=snakemake.params.k, seed=snakemake.params.seed, model_labels=snakemake.params.labels), snakemake.output[0])
