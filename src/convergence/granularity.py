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
  whose family (the entry's label, else the zoo's) is ``cnn`` and whose stored layers are not its blocks
  already (the zoo entry's ``stores_blocks``: HED stores its five VGG16 blocks).

A model known to have a single layer (a packaged model whose zoo entry says ``n_layers: 1``: the SSCD graphs,
whose only layer is their own output) has no layers to compare one by one: the layers analysis leaves it
out (:func:`layers_models`) and never extracts it per block.

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


def single_layer(entry: Mapping) -> bool:
    """Whether the entry is a packaged model whose zoo entry fixes it at one layer (``n_layers: 1``)."""
    if entry.get("source") != "packaged":
        return False
    from .models.zoo import PACKAGED

    return PACKAGED.get(entry.get("name", ""), {}).get("n_layers", 2) < 2


def needs_block_extraction(entry: Mapping, granularity: str = "blocks") -> bool:
    """Whether the ``layers`` analysis extracts this model entry per block into stores of its own."""
    if granularity not in LAYER_GRANULARITIES:
        raise ValueError(f"layers.granularity must be one of {LAYER_GRANULARITIES}, got {granularity!r}")
    if granularity == "stored" or entry.get("granularity") or entry.get("modality") != "vision" or single_layer(entry):
        return False
    if entry.get("source") == "timm":
        return model_family(entry) != "transformer"
    if entry.get("source") == "packaged":
        from .models.zoo import PACKAGED

        return model_family(entry) == "cnn" and not PACKAGED.get(entry.get("name", ""), {}).get("stores_blocks")
    return False


def block_spec(entry: Mapping) -> dict:
    """The entry to extract per block: every block (``layers: all``) at ``granularity: blocks``."""
    return {**dict(entry), "granularity": "blocks", "layers": "all"}


def layers_models(cfg: Mapping, dataset: str) -> list[str]:
    """The models the layers analysis compares on ``dataset``: those of ``layers.modalities``, config order,
    less those with a single layer (:func:`single_layer`)."""
    from .config import models_for

    wanted = cfg["layers"]["modalities"]
    return [m for m in models_for(cfg, dataset)
            if cfg["models"][m]["modality"] in wanted and not single_layer(cfg["models"][m])]


def layers_datasets(cfg: Mapping) -> list[str]:
    """Datasets with at least two models to compare layer by layer (among ``layers.datasets`` when given)."""
    chosen = cfg.get("layers", {}).get("datasets") or list(cfg["datasets"])
    return [d for d in cfg["datasets"] if d in chosen and len(layers_models(cfg, d)) >= 2]


def layers_store(cfg: Mapping, kind: str, dataset: str, model: str) -> str:
    """The ``embeddings`` or ``kernels`` store the layers analysis reads for ``model`` on ``dataset``: the
    per-block one (``results/<kind>_blocks/...``) when :func:`needs_block_extraction`, else the default."""
    if kind not in ("embeddings", "kernels"):
        raise ValueError(f"kind must be 'embeddings' or 'kernels', got {kind!r}")
    blocks = needs_block_extraction(cfg["models"][model], cfg["layers"]["granularity"])
    return f"results/{kind}{'_blocks' if blocks else ''}/{dataset}/{model}.zarr"


def merged_products(base: Mapping, extra: Mapping) -> dict:
    """Kernel products serving both the default alignment (``base``) and the layers metric (``extra``): the
    larger k, and a Gram when either reads one (``metrics.registry.kernel_needs`` entries)."""
    return {**base, "k": max(int(base["k"] or 0), int(extra["k"] or 0)), "gram": bool(base["gram"] or extra["gram"])}
