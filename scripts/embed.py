"""rule embed: one dataset through one model, every requested layer stored."""
import os
from pathlib import Path

from convergence.embed import extract
from convergence.models import load_encoder
from convergence.runtime import logged
from convergence.store import open_store, write_store

os.environ.setdefault("CONVERGENCE_CACHE", str(Path(snakemake.config["cache_dir"]).resolve()))
spec = snakemake.params.spec
# the fixed competence text: an input of causal LMs' jobs only (a one-item list, or empty)
text = snakemake.input.get("text") or None
if isinstance(text, (list, tuple)):
    text = text[0] if text else None
with logged(snakemake.log[0], threads=snakemake.threads, outputs=snakemake.output):
    encoder = load_encoder(snakemake.wildcards.model, spec, device=snakemake.config["device"])
    stimuli = open_store(snakemake.input.stimuli)
    ds = extract(
        encoder,
        stimuli,
        batch_size=spec["batch_size"],
        progress=snakemake.config["progress"],
        seed=spec["seed"],
        text=text,
        precision=spec.get("precision", "float32"),  # set by the rule when config precision is not float32
    )
    write_store(ds, snakemake.output[0])
    print(f"{snakemake.wildcards.model} on {snakemake.wildcards.dataset}: {len(ds.attrs['layers'])} layers, {ds.attrs['seconds']:.1f} s")
