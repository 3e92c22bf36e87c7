"""rule embed: one dataset through one model, every requested layer stored, chunk by chunk (resumable)."""
import os
from pathlib import Path

from convergence.embed import extract_to_store
from convergence.models import load_encoder
from convergence.runtime import logged

os.environ.setdefault("CONVERGENCE_CACHE", str(Path(snakemake.config["cache_dir"]).resolve()))
spec = snakemake.params.spec
# the fixed competence text: an input of causal LMs' jobs only (a one-item list, or empty)
text = snakemake.input.get("text") or None
if isinstance(text, (list, tuple)):
    text = text[0] if text else None
rows = getattr(snakemake.params, "rows", None) or (0, None)  # a shard (rule embed_shard): its row range
with logged(snakemake.log[0], threads=snakemake.threads, outputs=snakemake.output):
    encoder = load_encoder(snakemake.wildcards.model, spec, device=snakemake.config["device"])
    ds = extract_to_store(
        encoder,
        snakemake.input.stimuli,
        snakemake.output[0],
        params=spec,
        batch_size=spec["batch_size"],
        progress=snakemake.config["progress"],
        seed=spec["seed"],
        text=text,
        precision=spec.get("precision", "float32"),  # set by the rule when config precision is not float32
        start=rows[0],
        stop=rows[1],
    )
    print(f"{snakemake.wildcards.model} on {snakemake.wildcards.dataset}: {len(ds.attrs['layers'])} layers, "
          f"{ds.sizes['stimulus']} stimuli, {ds.attrs['seconds']:.1f} s")
