"""ONNX models run with onnxruntime: any intermediate tensor of the graph can be a layer.

The graph is loaded with ``onnx``, every requested tensor is appended to the graph's outputs (with its
element type from ONNX shape inference), and an onnxruntime session runs the modified graph, computing only
the outputs the selected layers need. Each tensor is pooled to one vector per stimulus:

* 4-D feature maps: global average pool over the spatial axes, NCHW or NHWC (``feature_layout``; ``auto``
  decides from the shape seen on a probe batch at load time: ``(B, C, S, S)`` is NCHW, ``(B, S, S, C)``
  NHWC, otherwise the input's layout);
* 3-D token sequences ``(B, T, D)``: mean over tokens (over the attention mask for text), or the first
  token with ``token_pooling: first``;
* 2-D ``(B, D)``: as is (1-D ``(B,)`` becomes ``(B, 1)``).

Config entry (``source: onnx``)::

    my_model:
      source: onnx
      modality: vision                  # or language (then `tokenizer` is a transformers tokenizer dir/name)
      path: /models/net.onnx
      layers: ["/stage1/Relu_output_0", {pool: "/ReduceMean_output_0"}]   # tensor names, or {stored_name: tensor}
      preprocessing: {size: 224, crop_pct: 0.875, mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225],
                      interpolation: bicubic, channel_order: RGB, scale: 1.0, layout: NCHW}
                                        # size: read from the graph when its input is static (else 224)
      feature_layout: auto              # or NCHW / NHWC, or a mapping tensor -> layout
      token_pooling: mean               # or first

Stored layer names are valid identifiers: a bare tensor name is sanitised (``/ReduceMean_output_0`` ->
``ReduceMean_output_0``); the original tensor names are kept in the provenance (``tensors``). Without
``layers`` the graph's own outputs are the layers. Layers are ordered as their producing nodes appear in the
(topologically sorted) graph, shallow to deep.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch

from .base import Encoder, ImagePreprocessing, ModelLoadError, relative_depths

LAYOUTS = ("NCHW", "NHWC")
TOKEN_POOLINGS = ("mean", "first")
_TEXT_INPUTS = ("input_ids", "attention_mask", "token_type_ids")


def sanitize_name(tensor: str) -> str:
    """A valid Python identifier (and Zarr/xarray variable name) for an ONNX tensor name."""
    name = re.sub(r"[^0-9A-Za-z_]+", "_", tensor).strip("_")
    name = re.sub(r"_+", "_", name)
    if not name:
        name = "tensor"
    if name[0].isdigit():
        name = f"t_{name}"
    return name


def _import_onnx():
    try:
        import onnx
        import onnxruntime
    except ImportError as err:
        raise ModelLoadError(
            f"the onnx source needs onnx and onnxruntime ({err}): pip install onnx onnxruntime "
            "(or pip install 'convergence[zoo]')"
        ) from err
    return onnx, onnxruntime


def graph_inputs(model) -> list:
    """The graph's real inputs (older IR versions also list initializers as inputs)."""
    inits = {i.name for i in model.graph.initializer}
    return [i for i in model.graph.input if i.name not in inits]


def producer_order(model) -> dict[str, int]:
    """Tensor name -> index of the node producing it (graph inputs and initializers get -1)."""
    order = {i.name: -1 for i in model.graph.input}
    order.update({i.name: -1 for i in model.graph.initializer})
    for idx, node in enumerate(model.graph.node):
        for out in node.output:
            if out:
                order[out] = idx
    return order


def expose_tensors(model, tensors: Sequence[str]):
    """Append ``tensors`` to ``model``'s graph outputs (in place) and return ``model``.

    Raises :class:`ModelLoadError` naming close matches when a tensor is not in the graph.
    """
    onnx, _ = _import_onnx()
    known = producer_order(model)
    missing = [t for t in tensors if t not in known]
    if missing:
        import difflib

        hints = {t: difflib.get_close_matches(t, list(known), n=5, cutoff=0.5) for t in missing}
        raise ModelLoadError(f"the ONNX graph has no tensor(s) {missing}; close names: {hints}")
    existing = {o.name for o in model.graph.output}
    wanted = [t for t in dict.fromkeys(tensors) if t not in existing]
    if not wanted:
        return model
    elem_types: dict[str, int] = {}
    try:
        inferred = onnx.shape_inference.infer_shapes(model)
        for vi in list(inferred.graph.value_info) + list(inferred.graph.input) + list(inferred.graph.output):
            if vi.type.tensor_type.elem_type:
                elem_types[vi.name] = vi.type.tensor_type.elem_type
    except Exception:  # shape inference is best effort; float is the usual type of features
        pass
    for init in model.graph.initializer:
        elem_types.setdefault(init.name, init.data_type)
    for t in wanted:
        model.graph.output.append(
            onnx.helper.make_tensor_value_info(t, elem_types.get(t, onnx.TensorProto.FLOAT), None)
        )
    return model


def make_session(model, device: torch.device | str = "cpu"):
    """An onnxruntime session for an in-memory ``ModelProto``; CUDA when asked for and available."""
    _, ort = _import_onnx()
    providers = ["CPUExecutionProvider"]
    if torch.device(device).type == "cuda" and "CUDAExecutionProvider" in ort.get_available_providers():
        providers = ["CUDAExecutionProvider", "CPUExecutionProvider"]
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    # the job's thread limit (torch's, which the workflow sets from embed_threads) holds for ONNX Runtime too;
    # unlimited, torch's default is the number of cores, as is ONNX Runtime's own
    opts.intra_op_num_threads = max(1, torch.get_num_threads())
    opts.inter_op_num_threads = 1
    try:
        return ort.InferenceSession(model.SerializeToString(), sess_options=opts, providers=providers)
    except Exception as err:
        raise ModelLoadError(f"onnxruntime could not load the graph: {err}") from err


def session_with_outputs(path: str | Path, tensors: Sequence[str], device: torch.device | str = "cpu"):
    """Load the ONNX file at ``path``, expose ``tensors`` as outputs and return an onnxruntime session."""
    onnx, _ = _import_onnx()
    model = onnx.load(str(path))
    return make_session(expose_tensors(model, tensors), device)


def resolve_layout(shape: Sequence[int], declared: str | None, fallback: str) -> str:
    """NCHW or NHWC for a 4-D feature map of ``shape`` (see the module docstring)."""
    if declared in LAYOUTS:
        return declared
    _, a, b, c = shape
    if b == c and a != b:
        return "NCHW"
    if a == b and c != b:
        return "NHWC"
    return fallback


def pool(
    array: np.ndarray, *, layout: str = "NCHW", token_pooling: str = "mean", mask: np.ndarray | None = None
) -> np.ndarray:
    """One float32 vector per stimulus from a ``(B, ...)`` tensor (see the module docstring)."""
    x = np.asarray(array)
    if x.ndim == 1:
        out = x[:, None]
    elif x.ndim == 2:
        out = x
    elif x.ndim == 3:
        if token_pooling == "first":
            out = x[:, 0]
        elif mask is not None and mask.shape == x.shape[:2]:
            m = mask.astype(np.float64)[..., None]
            out = (x.astype(np.float64) * m).sum(axis=1) / np.maximum(m.sum(axis=1), 1.0)
        else:
            out = x.mean(axis=1, dtype=np.float64)
    elif x.ndim == 4:
        axes = (2, 3) if layout == "NCHW" else (1, 2)
        out = x.mean(axis=axes, dtype=np.float64)
    else:
        raise ValueError(f"cannot pool a tensor of shape {x.shape}: expected 1 to 4 dimensions")
    return np.ascontiguousarray(out, dtype=np.float32)


def _np_dtype(elem_type: int):
    onnx, _ = _import_onnx()
    return onnx.helper.tensor_dtype_to_np_dtype(elem_type)


class OnnxEncoder(Encoder):
    """Named tensors of an ONNX graph, pooled; vision (uint8 images) or language (strings + tokenizer)."""

    autocast_capable = False  # ONNX Runtime runs the graph in float32 whatever config precision says

    def __init__(
        self,
        name: str,
        model,
        tensors: Mapping[str, str],
        *,
        modality: str = "vision",
        preprocessing: ImagePreprocessing | None = None,
        input_layout: str = "NCHW",
        tokenizer=None,
        max_length: int = 128,
        feature_layout: str | Mapping[str, str] = "auto",
        token_pooling: str = "mean",
        includes_input: bool = False,
        device: torch.device | str = "cpu",
        provenance: dict | None = None,
    ) -> None:
        """``model`` is an ``onnx.ModelProto`` (modified here); ``tensors`` maps stored layer name -> tensor.

        ``includes_input``: the first layer is the input representation (a text model's embedding layer) and
        gets depth 0, as in :class:`~convergence.models.hf_source.HFTextEncoder`.
        """
        if input_layout not in LAYOUTS:
            raise ValueError(f"{name}: input layout must be one of {LAYOUTS}, got {input_layout!r}")
        if token_pooling not in TOKEN_POOLINGS:
            raise ValueError(f"{name}: token_pooling must be one of {TOKEN_POOLINGS}, got {token_pooling!r}")
        if modality == "vision" and preprocessing is None:
            raise ValueError(f"{name}: a vision ONNX model needs an ImagePreprocessing")
        if modality == "language" and tokenizer is None:
            raise ModelLoadError(f"{name}: a language ONNX model needs a tokenizer (spec key `tokenizer`)")
        for stored in tensors:
            if not stored.isidentifier():
                raise ValueError(f"{name}: stored layer name {stored!r} is not a valid identifier")
        order = producer_order(model)
        ordered = sorted(tensors.items(), key=lambda kv: order.get(kv[1], 1 << 30))
        self._tensor_of = dict(ordered)
        self._name_of = {t: n for n, t in ordered}
        expose_tensors(model, list(self._tensor_of.values()))
        self.session = make_session(model, device)
        inputs = graph_inputs(model)
        self._inputs = {i.name: i.type.tensor_type.elem_type for i in inputs}
        self.preprocessing = preprocessing
        self.input_layout = input_layout
        self.tokenizer = tokenizer
        self.max_length = int(max_length)
        self.token_pooling = token_pooling
        self._declared_layout = feature_layout
        if modality == "vision":
            if len(inputs) != 1:
                raise ModelLoadError(f"{name}: a vision ONNX model must have one input, found {list(self._inputs)}")
            self._image_input = inputs[0].name
            dims = inputs[0].type.tensor_type.shape.dim
            self._fixed_batch = int(dims[0].dim_value) if len(dims) and dims[0].dim_value > 0 else 0
        else:
            unknown = [i for i in self._inputs if i not in _TEXT_INPUTS]
            if unknown or "input_ids" not in self._inputs:
                raise ModelLoadError(
                    f"{name}: a language ONNX model must take input_ids (and optionally attention_mask, "
                    f"token_type_ids); this one takes {list(self._inputs)}"
                )
            self._fixed_batch = 0
        names = list(self._tensor_of)
        prov = {
            "tensors": dict(self._tensor_of),
            "providers": list(self.session.get_providers()),
            "token_pooling": token_pooling,
            **(provenance or {}),
        }
        if preprocessing is not None:
            prov["preprocessing"] = {**preprocessing.describe(), "layout": input_layout}
        super().__init__(
            name=name,
            modality=modality,
            layer_names=names,
            depths=relative_depths(len(names), includes_input=includes_input),
            provenance=prov,
            device=torch.device(device),
        )
        self._all_names = list(names)
        self._layouts: dict[str, str] = {}
        self._probe()

    # -- layers -------------------------------------------------------------------------------------------
    def _to_stored(self, item):
        if isinstance(item, Mapping) and len(item) == 1:
            return next(iter(item))
        if isinstance(item, str) and item not in self._tensor_of and item in self._name_of:
            return self._name_of[item]
        return item

    def select_layers(self, wanted) -> None:
        """As :meth:`Encoder.select_layers`; ONNX tensor names and ``{stored: tensor}`` items are accepted too,
        and the kept layers stay in graph order (shallow to deep) whatever the order asked for."""
        if isinstance(wanted, (list, tuple)):
            wanted = [self._to_stored(w) for w in wanted]
            n = len(self.layer_names)
            rank = {name: i for i, name in enumerate(self.layer_names)}

            def position(item) -> int:
                if isinstance(item, int):
                    return item % n if -n <= item < n else item  # out of range: the base class reports it
                return rank.get(item, -1)

            wanted = sorted(wanted, key=position)
        super().select_layers(wanted)

    # -- running ------------------------------------------------------------------------------------------
    def _feeds(self, batch) -> tuple[list[dict[str, np.ndarray]], np.ndarray | None]:
        if self.modality == "vision":
            x = self.preprocessing(np.asarray(batch), "cpu").numpy()
            if self.input_layout == "NHWC":
                x = x.transpose(0, 2, 3, 1)
            dtype = np.dtype(_np_dtype(self._inputs[self._image_input]))
            if dtype.kind in "iu":  # an integer image input (uint8 pixels): round, never truncate, to its range
                info = np.iinfo(dtype)
                x = np.clip(np.rint(x), info.min, info.max)
            x = np.ascontiguousarray(x, dtype=dtype)
            if self._fixed_batch and x.shape[0] != self._fixed_batch:
                if self._fixed_batch != 1:
                    raise RuntimeError(f"{self.name}: the graph has a fixed batch of {self._fixed_batch}")
                return [{self._image_input: x[i : i + 1]} for i in range(x.shape[0])], None
            return [{self._image_input: x}], None
        texts = list(batch)
        if not texts or not all(isinstance(t, str) for t in texts):
            raise ValueError("language models take a non-empty list of strings")
        enc = self.tokenizer(texts, return_tensors="np", padding=True, truncation=True, max_length=self.max_length)
        feeds = {}
        for key, elem in self._inputs.items():
            if key == "token_type_ids" and key not in enc:
                value = np.zeros_like(enc["input_ids"])
            else:
                value = enc[key]
            feeds[key] = np.ascontiguousarray(value, dtype=_np_dtype(elem))
        return [feeds], np.asarray(enc["attention_mask"])

    def _run(self, batch, names: Sequence[str]) -> tuple[dict[str, np.ndarray], np.ndarray | None]:
        feeds_list, mask = self._feeds(batch)
        outputs = [self._tensor_of[n] for n in names]
        parts = [self.session.run(outputs, feeds) for feeds in feeds_list]
        raw = {
            n: (parts[0][i] if len(parts) == 1 else np.concatenate([p[i] for p in parts])) for i, n in enumerate(names)
        }
        return raw, mask

    def _probe(self) -> None:
        """One tiny forward pass: checks the tensors exist at run time, fixes 4-D layouts, records dims."""
        probe = np.zeros((1, 32, 32, 3), dtype=np.uint8) if self.modality == "vision" else ["a probe sentence"]
        raw, _ = self._run(probe, self._all_names)
        dims, layouts = {}, {}
        for n, arr in raw.items():
            if arr.ndim == 4:
                declared = self._declared_layout
                if isinstance(declared, Mapping):
                    declared = declared.get(self._tensor_of[n], declared.get(n, "auto"))
                layouts[n] = resolve_layout(arr.shape, declared, self.input_layout)
            dims[n] = int(pool(arr, layout=layouts.get(n, "NCHW"), token_pooling=self.token_pooling).shape[1])
        self._layouts = layouts
        self.provenance["feature_layouts"] = dict(layouts)
        self.provenance["dims"] = dims

    def encode(self, batch) -> dict[str, np.ndarray]:
        raw, mask = self._run(batch, self.layer_names)
        return {
            n: pool(raw[n], layout=self._layouts.get(n, "NCHW"), token_pooling=self.token_pooling, mask=mask)
            for n in self.layer_names
        }


def layer_map(layers) -> dict[str, str]:
    """``spec['layers']`` (tensor names, ``{stored: tensor}`` items, or one mapping) -> {stored name: tensor}."""
    if isinstance(layers, Mapping):
        items = list(layers.items())
    else:
        items = []
        for item in layers:
            if isinstance(item, Mapping):
                items.extend(item.items())
            elif isinstance(item, str):
                items.append((sanitize_name(item), item))
            else:
                raise ValueError(f"ONNX layers are tensor names or {{name: tensor}} mappings, got {item!r}")
    out: dict[str, str] = {}
    for stored, tensor in items:
        stored = str(stored)
        if stored in out and out[stored] != tensor:
            raise ValueError(f"two ONNX tensors map to the same layer name {stored!r}: {out[stored]!r}, {tensor!r}")
        out[stored] = str(tensor)
    return out


def static_input_size(model, layout: str = "NCHW") -> int | None:
    """The square image size a vision graph's single input fixes, or ``None`` when height or width is dynamic.

    ``layout`` says where the spatial axes are (NCHW: 2 and 3; NHWC: 1 and 2). A static but non-square input
    raises ``ValueError`` (images are centre-cropped squares). Graph inputs that are initializers are skipped.
    """
    inputs = graph_inputs(model)
    if len(inputs) != 1:
        return None
    dims = inputs[0].type.tensor_type.shape.dim
    if len(dims) != 4:
        raise ValueError(f"the image input {inputs[0].name!r} has {len(dims)} axes; a vision graph takes 4 "
                         f"(batch and three image axes, layout {layout})")
    axes = (2, 3) if layout == "NCHW" else (1, 2)
    hw = [int(dims[a].dim_value) if dims[a].HasField("dim_value") and dims[a].dim_value > 0 else None for a in axes]
    if None in hw:
        return None
    if hw[0] != hw[1]:
        raise ValueError(f"the image input {inputs[0].name!r} is fixed at {hw[0]}x{hw[1]} ({layout}); only square "
                         "inputs are supported")
    return hw[0]


def preprocessing_from_spec(pre: Mapping | None) -> tuple[ImagePreprocessing, str]:
    """``spec['preprocessing']`` -> (:class:`ImagePreprocessing`, input layout)."""
    pre = dict(pre or {})
    layout = str(pre.pop("layout", "NCHW")).upper()
    if layout not in LAYOUTS:
        raise ValueError(f"preprocessing.layout must be one of {LAYOUTS}, got {layout!r}")
    known = {"size", "crop_pct", "mean", "std", "interpolation", "channel_order", "scale"}
    unknown = set(pre) - known
    if unknown:
        raise ValueError(f"unknown preprocessing keys {sorted(unknown)}; allowed: {sorted(known | {'layout'})}")
    for key in ("mean", "std"):
        if key in pre:
            pre[key] = tuple(float(v) for v in pre[key])
            if len(pre[key]) != 3:
                raise ValueError(f"preprocessing.{key} needs 3 values, got {pre[key]}")
    if "channel_order" in pre and pre["channel_order"] not in ("RGB", "BGR"):
        raise ValueError(f"preprocessing.channel_order must be RGB or BGR, got {pre['channel_order']!r}")
    return ImagePreprocessing(**pre), layout


def load(name: str, spec: dict, device: torch.device) -> OnnxEncoder:
    """``source: onnx``: the ONNX file ``spec['path']`` with ``spec['layers']`` as layers."""
    onnx, ort = _import_onnx()
    from .timm_source import file_sha256

    path = Path(str(spec.get("path", ""))).expanduser()
    if not path.is_file():
        raise ModelLoadError(f"model {name!r}: ONNX file {str(path)!r} does not exist (spec key `path`)")
    try:
        model = onnx.load(str(path))
    except Exception as err:
        raise ModelLoadError(f"model {name!r}: could not read ONNX file {path}: {err}") from err
    layers = spec.get("layers")
    if layers in (None, "all", "last"):
        tensors = layer_map([o.name for o in model.graph.output])
    else:
        tensors = layer_map(layers)
    if not tensors:
        raise ModelLoadError(f"model {name!r}: no layers to expose (spec key `layers`)")
    modality = spec.get("modality", "vision")
    provenance = {
        "source": "onnx",
        "path": str(path),
        "weights_sha256": file_sha256(path),
        "onnxruntime_version": ort.__version__,
        "opsets": {d.domain or "ai.onnx": int(d.version) for d in model.opset_import},
    }
    try:
        if modality == "vision":
            pre_spec = dict(spec.get("preprocessing") or {})
            _, layout = preprocessing_from_spec(pre_spec)
            try:
                fixed = static_input_size(model, layout)
            except ValueError as err:
                raise ModelLoadError(str(err)) from err
            if "size" not in pre_spec:
                pre_spec["size"] = fixed if fixed is not None else 224
                provenance["input_size_from"] = "graph" if fixed is not None else "default (the graph's input is dynamic)"
            else:
                if fixed is not None and int(pre_spec["size"]) != fixed:
                    raise ModelLoadError(
                        f"preprocessing.size is {pre_spec['size']} but the graph's input is fixed at {fixed}x{fixed}; "
                        "leave size out to read it from the graph"
                    )
                provenance["input_size_from"] = "config"
            pre, layout = preprocessing_from_spec(pre_spec)
            return OnnxEncoder(
                name, model, tensors, modality="vision", preprocessing=pre, input_layout=layout,
                feature_layout=spec.get("feature_layout", "auto"), token_pooling=spec.get("token_pooling", "mean"),
                device=device, provenance=provenance,
            )
        if modality == "language":
            from transformers import AutoTokenizer

            tok_name = spec.get("tokenizer")
            if not tok_name:
                raise ModelLoadError(
                    f"model {name!r}: a language ONNX model needs `tokenizer` (a directory or hub name)"
                )
            tokenizer = AutoTokenizer.from_pretrained(str(tok_name))
            provenance["tokenizer"] = str(tok_name)
            return OnnxEncoder(
                name, model, tensors, modality="language", tokenizer=tokenizer,
                max_length=int(spec.get("max_length", 128)), token_pooling=spec.get("token_pooling", "mean"),
                device=device, provenance=provenance,
            )
    except ModelLoadError as err:
        raise ModelLoadError(f"model {name!r}: {err}") from err
    raise ValueError(f"model {name!r}: modality must be 'vision' or 'language', got {modality!r}")
