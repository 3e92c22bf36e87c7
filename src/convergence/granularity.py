"""Which layers the ``layers`` analysis reads for each model: decided when the DAG is built (no torch).

The analysis compares processing steps, so every model should expose one layer per block: a
transformer's blocks (what timm ViTs, Hugging Face and the packaged transformers store by default) and a
CNN's residual/MBConv blocks (timm CNNs and the packaged CNNs store their feature *stages* by default). The
default alignment's stores stay as they are; a CNN is extracted a second time, per block, into its own
embedding and kernel stores (``results/embeddings_blocks``, ``results/kernels_blocks``) when

- ``layers.granularity`` is ``blocks`` (the default; ``stored`` reads every model's default stores), and
- its entry sets no ``granularity`` of its own (an entry's ``granularity: blocks`` makes its default store
  per block already; ``granularity: stages`` keeps the stages for this analysis too), and
- it is a vision model of source ``timm`` not labelled ``family: transformer``, or of source ``packaged``
  whose family (the entry's label, else the zoo's) is ``cnn``.

Everything else (ViTs, language models, ONNX files whose layers are named tensors) is read from its
default stores, so the analysis schedules no embedding or kernel job for it.
"""

from __future__ import annotations

from collections.abc import Mapping

LAYER_GRANULARITIES = ("blocks", "stored")


def model_family(entry: Mapping) -> str:
    """The entry's ``family`` label, else the packaged zoo's family for a packaged model, else ``""``."""
    if entry.get("family"):
        return str(entry["family"])
    if entry.get("source") == "packaged":
        from .models.zoo import PACKAGED

        return str(PACKAGED.get(entry.get("name", ""), {}).get("family", ""))
    return ""


def needs_block_extraction(entry: Mapping, granularity: str = "blocks") -> bool:
    """Whether the ``layers`` analysis extracts this model entry per block into stores of its own."""
    if granularity not in LAYER_GRANULARITIES:
        raise ValueError(f"layers.granularity must be one of {LAYER_GRANULARITIES}, got {granularity!r}")
    if granularity == "stored" or entry.get("granularity") or entry.get("modality") != "vision":
        return False
    if entry.get("source") == "timm":
        return model_family(entry) != "transformer"
    if entry.get("source") == "packaged":
        return model_family(entry) == "cnn"
    return False


def block_spec(entry: Mapping) -> dict:
    """The entry to extract per block: every block (``layers: all``) at ``granularity: blocks``."""
    return {**dict(entry), "granularity": "blocks", "layers": "all"}
