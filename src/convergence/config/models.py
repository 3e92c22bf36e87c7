"""Model entries: the layers a packaged or configured model stores (known without loading it), the checks of
layer names analyses read, causal LMs and their competence text, and which models run on which dataset.

Packaged model names come from :mod:`convergence.models.zoo`, imported only where needed (it loads no
deep-learning library either).
"""

from __future__ import annotations

from importlib import resources

from .datasets import dataset_has_captions
from .schema import ConfigError

#: The fields that label a model entry for the analyses (never for its extraction).
MODEL_FIELDS = ("modality", "objective", "family")
#: The built-in competence text (package data): see convergence/texts/README.md.
COMPETENCE_TEXT_RESOURCE = "texts/CC0-1.0.txt"


def _check_packaged(mname: str, m: dict) -> None:
    """A packaged entry's modality is the packaged model's, and its listed layers exist where the zoo names
    them."""
    from ..models.zoo import PACKAGED

    entry = PACKAGED[m["name"]]
    if m["modality"] != entry["modality"]:
        raise ConfigError(f"config.models.{mname}.modality: packaged model {m['name']!r} is a {entry['modality']} "
                          f"model, not {m['modality']!r}; allowed: {entry['modality']!r}")
    known = packaged_layer_names(m)
    if known is not None and isinstance(m.get("layers"), list):
        tensors = _packaged_tensors(m)
        for item in m["layers"]:
            if isinstance(item, str) and item not in known and item not in tensors.values():
                raise ConfigError(f"config.models.{mname}.layers: packaged model {m['name']!r} has no layer "
                                  f"{item!r}; its layers: {known}")
            if isinstance(item, int) and not -len(known) <= item < len(known):
                raise ConfigError(f"config.models.{mname}.layers: layer index {item} is out of range; packaged "
                                  f"model {m['name']!r} has {len(known)} layers (indices {-len(known)} to {len(known) - 1})")


def packaged_layer_names(m: dict) -> list[str] | None:
    """The layer names a packaged model exposes (before ``layers`` selects among them), where the zoo's table
    names them without loading anything (its ``tensors`` / ``block_tensors``); else ``None``."""
    tensors = _packaged_tensors(m)
    return list(tensors) if tensors else None


def _packaged_tensors(m: dict) -> dict[str, str]:
    """A packaged ONNX model's {stored layer name: graph tensor} at the entry's granularity ({} if unknown)."""
    from ..models.zoo import PACKAGED

    entry = PACKAGED.get(m.get("name"), {})
    return dict(entry.get("block_tensors" if m.get("granularity") == "blocks" else "tensors") or {})


def stored_layer_names(m: dict) -> list[str] | None:
    """The names of the layers a model entry stores, where the config alone tells them: an explicit list of
    layer names (sources that store a layer under the name it is selected by), a ``{stored_name: tensor}``
    mapping (onnx, module), or a packaged model's known layers; else ``None`` (an onnx or module list of
    tensor or submodule names is stored under sanitised names, which the loader makes)."""
    layers = m.get("layers", "all")
    if isinstance(layers, dict):
        return list(layers)
    if isinstance(layers, list):
        if all(isinstance(item, str) for item in layers) and m.get("source") != "packaged":
            return None if m.get("source") in ("onnx", "module") else list(layers)
        if all(isinstance(item, dict) for item in layers):
            return [name for item in layers for name in item]
        known = packaged_layer_names(m) if m.get("source") == "packaged" else None
        if known is None:
            return None
        stored = {tensor: name for name, tensor in _packaged_tensors(m).items()}  # a tensor name selects its layer
        return [known[i] if isinstance(i, int) else stored.get(i, i) for i in layers]
    if m.get("source") == "packaged":
        known = packaged_layer_names(m)
        if known is not None:
            return known if layers == "all" else known[-1:]
    return None


def _check_layer_names(cfg: dict) -> None:
    """Layer names that analyses read (``alignment.named_layers``, ``consistency.layers``,
    ``dispersion.layers``, ``taxonomy.layer``) exist in the model's stored layers wherever the config tells
    them (:func:`stored_layer_names`)."""
    models = cfg["models"]
    uses = [(f"config.{section}.{key}", mapping) for section, key in
            (("alignment", "named_layers"), ("consistency", "layers"), ("dispersion", "layers"))
            for mapping in [cfg.get(section, {}).get(key) or {}]]
    tax = cfg.get("taxonomy", {})
    if tax.get("dataset") and tax.get("layer"):
        uses.append(("config.taxonomy.layer", {m: tax["layer"] for m in tax.get("vision_models", [])}))
    for where, mapping in uses:
        for mname, layer in mapping.items():
            if mname not in models:
                continue  # reported as an unknown model
            names = stored_layer_names(models[mname])
            if names is not None and str(layer) not in names:
                raise ConfigError(f"{where}: model {mname!r} stores no layer {layer!r}; its stored layers: {names}")


def competence_text_path(cfg: dict) -> str:
    """The fixed text causal LMs are scored on: ``competence.text`` when set, else the package's own."""
    text = cfg.get("competence", {}).get("text")
    if text:
        return str(text)
    return str(resources.files("convergence").joinpath(COMPETENCE_TEXT_RESOURCE))


def is_causal_lm(model: dict) -> bool:
    """Whether a model entry is a causal LM that records bits per byte, known without loading it: a packaged
    causal LM, or an ``hf`` entry with ``kind: causal_lm``."""
    if model.get("source") == "packaged":
        from ..models.zoo import CAUSAL_LMS

        return model.get("name") in CAUSAL_LMS
    return model.get("source") == "hf" and model.get("kind") == "causal_lm"


def models_for(cfg: dict, dataset: str, modality: str | None = None) -> list[str]:
    """Models run on ``dataset`` (its ``models`` list, or all applicable), in config order."""
    d = cfg["datasets"][dataset]
    names = d.get("models") or list(cfg["models"])
    out = []
    for name in names:
        m = cfg["models"][name]
        if m["modality"] == "language" and not dataset_has_captions(d):
            continue
        if modality is None or m["modality"] == modality:
            out.append(name)
    return out


def embedding_pairs(cfg: dict) -> list[tuple[str, str]]:
    return [(d, m) for d in cfg["datasets"] for m in models_for(cfg, d)]
