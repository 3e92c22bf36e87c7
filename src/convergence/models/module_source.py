"""Any ``torch.nn.Module`` with named layers: forward hooks on named submodules (``source: module``).

The way to plug a model the other sources do not know into the workflow. Python use::

    from convergence.models.module_source import ModuleEncoder
    from convergence.models import ImagePreprocessing

    net = MyNet()                                           # any nn.Module taking (B, 3, H, W) floats
    enc = ModuleEncoder("mynet", net, {"stage1": "body.0", "stage2": "body.1", "head": "fc"},
                        modality="vision", preprocessing=ImagePreprocessing(size=224))
    feats = enc.encode(images)                              # {"stage1": (B, C1), "stage2": (B, C2), "head": (B, D)}

Config use (``source: module``): ``factory`` names a callable ``"package.module:function"`` that returns the
model (its ``factory_kwargs`` are passed to it; the module is imported, so only name code you trust), and
``layers`` maps stored layer names to submodule paths (``model.named_modules()`` names; a list uses the
paths themselves, sanitised)::

    mynet:
      source: module
      modality: vision
      objective: supervised
      factory: mypackage.models:build_mynet
      factory_kwargs: {width: 64}
      layers: {stage1: body.0, stage2: body.1, head: fc}
      preprocessing: {size: 224, mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225]}

Language models take a transformers ``tokenizer`` (directory or hub name); the module is called with
``input_ids`` and ``attention_mask``. Each hooked output (the first tensor of a tuple output) is pooled to
one vector per stimulus: 4-D ``(B, C, H, W)`` by a global average; 3-D token sequences ``(B, T, D)`` by the
first token (``pooling: cls``, images only), the mean over tokens (``mean``; over the attention mask for text)
or the last valid token (``last``, text); 2-D as is. ``token_layout: TBD`` says sequences come
sequence-first. Layers are stored in the order given, which should run shallow to deep.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, Sequence

import numpy as np
import torch

from .base import Encoder, ImagePreprocessing, ModelLoadError, relative_depths

POOLINGS = ("auto", "cls", "mean", "last")
#: The layer path that stores the module call's own return value.
OUTPUT = "@output"


def _first_tensor(output):
    if isinstance(output, torch.Tensor):
        return output
    if isinstance(output, (tuple, list)) and output and isinstance(output[0], torch.Tensor):
        return output[0]
    if hasattr(output, "last_hidden_state"):
        return output.last_hidden_state
    raise TypeError(f"a hooked layer returned {type(output).__name__}, not a tensor (or a tuple starting with one)")


def pool_output(x: torch.Tensor, *, pooling: str, mask: torch.Tensor | None = None, token_layout: str = "BTD",
                layer: str = "?") -> torch.Tensor:
    """One vector per stimulus from a layer's output (see the module doc)."""
    if x.ndim == 4:
        return x.float().mean(dim=(2, 3))
    if x.ndim == 2:
        return x.float()
    if x.ndim != 3:
        raise ValueError(f"layer {layer!r}: cannot pool an output of shape {tuple(x.shape)} (expected 2-D, 3-D or 4-D)")
    if token_layout == "TBD":
        x = x.transpose(0, 1)
    x = x.float()
    if pooling == "cls":
        return x[:, 0]
    if mask is None:
        return x[:, -1] if pooling == "last" else x.mean(dim=1)
    if mask.shape != x.shape[:2]:
        raise ValueError(f"layer {layer!r}: output {tuple(x.shape)} does not match the attention mask "
                         f"{tuple(mask.shape)}; set token_layout if the sequence axis comes first")
    if pooling == "last":
        from .hf_source import last_pool

        return last_pool(x, mask)
    from .hf_source import mean_pool

    return mean_pool(x, mask)


class ModuleEncoder(Encoder):
    """Forward hooks on named submodules of any ``torch.nn.Module`` (see the module doc).

    ``layers`` maps stored layer names (valid identifiers) to submodule paths. Vision: ``preprocessing`` turns
    uint8 images into the module's input, ``run(module, x)`` calls it (default ``module(x)``). Language:
    ``tokenize(texts) -> (inputs, mask)`` gives the module's inputs and the (B, T) mask used for pooling,
    ``run(module, inputs)`` calls it (default ``module(**inputs)`` for a mapping, else ``module(inputs)``).
    """

    def __init__(
        self,
        name: str,
        module: torch.nn.Module,
        layers: Mapping[str, str],
        *,
        modality: str,
        preprocessing: ImagePreprocessing | None = None,
        tokenize: Callable[[Sequence[str]], tuple] | None = None,
        run: Callable | None = None,
        pooling: str = "auto",
        token_layout: str = "BTD",
        includes_input: bool = False,
        device: torch.device | str = "cpu",
        provenance: dict | None = None,
    ) -> None:
        if pooling not in POOLINGS:
            raise ValueError(f"model {name!r}: pooling must be one of {POOLINGS}, got {pooling!r}")
        if modality == "vision" and pooling == "last":
            raise ValueError(f"model {name!r}: pooling 'last' applies to text; for images use auto, cls or mean")
        if modality == "language" and pooling == "cls":
            raise ValueError(f"model {name!r}: pooling 'cls' applies to images; for text use auto, mean or last")
        if token_layout not in ("BTD", "TBD"):
            raise ValueError(f"model {name!r}: token_layout must be BTD or TBD, got {token_layout!r}")
        if modality == "vision" and preprocessing is None:
            raise ValueError(f"model {name!r}: a vision module needs an ImagePreprocessing")
        if modality == "language" and tokenize is None:
            raise ValueError(f"model {name!r}: a language module needs a tokenize function (or a tokenizer)")
        if not layers:
            raise ValueError(f"model {name!r}: name at least one layer (stored name -> submodule path)")
        submodules = dict(module.named_modules())
        for stored, path in layers.items():
            if not str(stored).isidentifier():
                raise ValueError(f"model {name!r}: stored layer name {stored!r} is not a valid identifier")
            if path != OUTPUT and path not in submodules:
                import difflib

                close = difflib.get_close_matches(path, [n for n in submodules if n], n=3)
                raise ValueError(f"model {name!r}: the module has no submodule {path!r}"
                                 + (f" (did you mean {close}?)" if close else "")
                                 + "; names come from model.named_modules()")
        self.module = module.eval().to(device)
        self.preprocessing = preprocessing
        self.tokenize = tokenize
        self.run = run
        self.pooling = ("cls" if modality == "vision" else "mean") if pooling == "auto" else pooling
        self.token_layout = token_layout
        self._paths = dict(layers)
        names = list(layers)
        prov = {"layers": dict(layers), "pooling": self.pooling, "token_layout": token_layout,
                "parameters": int(sum(p.numel() for p in module.parameters())), **(provenance or {})}
        if preprocessing is not None:
            prov["preprocessing"] = preprocessing.describe()
        super().__init__(name=name, modality=modality, layer_names=names,
                         depths=relative_depths(len(names), includes_input=includes_input), provenance=prov,
                         device=torch.device(device))

    def select_layers(self, wanted) -> None:
        """As :meth:`Encoder.select_layers`; submodule paths and ``{stored: path}`` mappings are accepted too."""
        if isinstance(wanted, Mapping):
            wanted = list(wanted)
        elif isinstance(wanted, (list, tuple)):
            by_path = {path: stored for stored, path in self._paths.items()}
            items = []
            for w in wanted:
                if isinstance(w, Mapping):
                    items.extend(w)
                else:
                    items.append(by_path.get(w, w) if isinstance(w, str) and w not in self._paths else w)
            wanted = items
        super().select_layers(wanted)

    @torch.inference_mode()
    def encode(self, batch) -> dict[str, np.ndarray]:
        submodules = dict(self.module.named_modules())
        captured: dict[str, torch.Tensor] = {}
        handles = []
        for stored in self.layer_names:
            if self._paths[stored] == OUTPUT:
                continue

            def hook(_mod, _inp, out, stored=stored):
                captured[stored] = _first_tensor(out)

            handles.append(submodules[self._paths[stored]].register_forward_hook(hook))
        try:
            mask = None
            if self.modality == "vision":
                x = self.preprocessing(np.asarray(batch), self.device)
                result = self.run(self.module, x) if self.run else self.module(x)
            else:
                if not batch or not all(isinstance(t, str) for t in batch):
                    raise ValueError("language models take a non-empty list of strings")
                inputs, mask = self.tokenize(list(batch))
                if isinstance(inputs, Mapping):
                    inputs = {k: v.to(self.device) if isinstance(v, torch.Tensor) else v for k, v in inputs.items()}
                elif isinstance(inputs, torch.Tensor):
                    inputs = inputs.to(self.device)
                mask = mask.to(self.device) if mask is not None else None
                if self.run:
                    result = self.run(self.module, inputs)
                elif isinstance(inputs, Mapping):
                    result = self.module(**inputs)
                else:
                    result = self.module(inputs)
        finally:
            for h in handles:
                h.remove()
        for stored in self.layer_names:
            if self._paths[stored] == OUTPUT:
                captured[stored] = _first_tensor(result)
        missing = [n for n in self.layer_names if n not in captured]
        if missing:
            raise RuntimeError(f"{self.name}: layers {missing} were not reached by the forward pass "
                               f"(submodules {[self._paths[n] for n in missing]})")
        return {n: pool_output(captured[n], pooling=self.pooling, mask=mask, token_layout=self.token_layout, layer=n)
                .cpu().numpy() for n in self.layer_names}


def _resolve_factory(target: str, name: str) -> Callable:
    if not isinstance(target, str) or ":" not in target:
        raise ModelLoadError(f"model {name!r}: factory must be 'package.module:callable', got {target!r}")
    mod_name, _, attr = target.partition(":")
    try:
        obj = importlib.import_module(mod_name)
    except ImportError as err:
        raise ModelLoadError(f"model {name!r}: cannot import {mod_name!r} for factory {target!r}: {err}") from err
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise ModelLoadError(f"model {name!r}: {mod_name!r} has no attribute {attr!r} (factory {target!r})")
        obj = getattr(obj, part)
    if not callable(obj):
        raise ModelLoadError(f"model {name!r}: factory {target!r} is not callable")
    return obj


def load(name: str, spec: dict, device: torch.device) -> Encoder:
    """``source: module``: ``factory`` builds the model, ``layers`` names the submodules to hook."""
    from .onnx_source import layer_map, preprocessing_from_spec

    factory = _resolve_factory(spec.get("factory"), name)
    torch.manual_seed(int(spec.get("seed", 0)))
    try:
        module = factory(**dict(spec.get("factory_kwargs") or {}))
    except Exception as err:
        raise ModelLoadError(f"model {name!r}: factory {spec['factory']!r} failed with factory_kwargs "
                             f"{spec.get('factory_kwargs') or {}}: {type(err).__name__}: {err}") from err
    if not isinstance(module, torch.nn.Module):
        raise ModelLoadError(f"model {name!r}: factory {spec['factory']!r} returned {type(module).__name__}, "
                             "not a torch.nn.Module")
    layers = spec.get("layers")
    if layers in (None, "all", "last"):
        raise ModelLoadError(f"model {name!r}: source 'module' needs `layers`: stored name -> submodule path "
                             "(or a list of submodule paths)")
    layers = layer_map(layers)
    modality = spec["modality"]
    prov = {"source": "module", "factory": spec["factory"], "factory_kwargs": dict(spec.get("factory_kwargs") or {})}
    if modality == "vision":
        pre, _ = preprocessing_from_spec(spec.get("preprocessing"))
        return ModuleEncoder(name, module, layers, modality="vision", preprocessing=pre,
                             pooling=spec.get("pooling", "auto"), token_layout=spec.get("token_layout", "BTD"),
                             device=device, provenance=prov)
    if not spec.get("tokenizer"):
        raise ModelLoadError(f"model {name!r}: a language module needs `tokenizer` (a transformers tokenizer "
                             "directory or hub name)")
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(spec["tokenizer"]))
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token or tok.unk_token
    max_length = int(spec.get("max_length", 128))

    def tokenize(texts):
        enc = tok(texts, return_tensors="pt", padding=True, truncation=True, max_length=max_length)
        inputs = {k: enc[k] for k in ("input_ids", "attention_mask")}
        return inputs, enc["attention_mask"]

    prov["tokenizer"] = str(spec["tokenizer"])
    return ModuleEncoder(name, module, layers, modality="language", tokenize=tokenize,
                         pooling=spec.get("pooling", "auto"), token_layout=spec.get("token_layout", "BTD"),
                         device=device, provenance=prov)
