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
# device, precision and (on the CPU) threads as the rule's parameters say (convergence.reproducibility): the
# thread count the numbers were computed with is the configured one, whatever --cores granted
with logged(snakemake.log[0], threads=spec.get("threads") or snakemake.threads, outputs=snakemake.output):
    encoder = load_encoder(snakemake.wildcards.model, spec, device=spec["device"])
    ds = extract_to_store(
        encoder,
        snakemake.input.stimuli,
        snakemake.output[0],
        params=spec,
        batch_size=spec["batch_size"],
        progress=snakemake.config["progress"],
        seed=spec["seed"],
        text=text,
        precision=spec["precision"],
        start=rows[0],
        stop=rows[1],
    )
    print(f"{snakemake.wildcards.model} on {snakemake.wildcards.dataset}: {len(ds.attrs['layers'])} layers, "
          f"{ds.sizes['stimulus']} stimuli, {ds.attrs['seconds']:.1f} s")
