"""The entry point: :func:`validate_config` checks a config against the schema, fills its defaults, then
checks what a schema cannot (:func:`_check_references`): cross-references between entries, paths that must
exist, packaged model names.
"""

from __future__ import annotations

import copy
import difflib
from pathlib import Path

from ..metrics.registry import METRIC_NAMES
from ..models.architectures import timm_class_token
from .analyses import _check_neighbour_counts, _check_taxonomy
from .datasets import _check_csv_captions, _check_dataset_inputs, _check_hub_columns, dataset_has_captions
from .models import _check_layer_names, _check_packaged, models_for
from .schema import ConfigError, _check_moved_keys, _explain, _fill_defaults, _validator_class, load_schema


def validate_config(config: dict, *, schema_path: str | Path | None = None, base_dir: str | Path = ".") -> dict:
    """Return a validated copy of ``config`` with defaults filled; raise :class:`ConfigError` otherwise."""
    schema = load_schema(schema_path)
    cfg = copy.deepcopy(dict(config))
    _check_moved_keys(cfg)
    validator = _validator_class()(schema)
    errors = sorted(validator.iter_errors(cfg), key=lambda e: (len(list(e.absolute_path)), str(list(e.absolute_path))))
    if errors:
        deepest = max(errors, key=lambda e: len(list(e.absolute_path)))
        raise ConfigError(_explain(deepest, schema))
    _fill_defaults(cfg, schema, schema)
    _check_references(cfg, Path(base_dir))
    return cfg


def _check_references(cfg: dict, base: Path) -> None:
    models, datasets = cfg["models"], cfg["datasets"]
    for dname, d in datasets.items():
        for m in d.get("models", []):
            if m not in models:
                close = difflib.get_close_matches(m, list(models), n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise ConfigError(f"config.datasets.{dname}.models: unknown model {m!r}{hint}; configured models: {sorted(models)}")
        only_openclipart = sorted(k for k in ("svg_path", "captions", "captioned_only") if k in d)
        if only_openclipart and d["source"] != "openclipart":
            raise ConfigError(f"config.datasets.{dname}: {only_openclipart} apply to source 'openclipart' only, "
                              f"not {d['source']!r}")
        if d["source"] == "openclipart" and d.get("captioned_only") and d.get("captions") is False:
            raise ConfigError(f"config.datasets.{dname}: captioned_only: true needs captions (captions: false "
                              "reads no titles)")
        if d["source"] in ("image_folder", "csv") or (d["source"] == "huggingface" and d.get("path")):
            p = Path(d["path"])
            p = p if p.is_absolute() else base / p
            if not p.exists():
                raise ConfigError(f"config.datasets.{dname}.path: {d['path']!r} does not exist")
            if d["source"] == "csv" and not p.is_file():
                raise ConfigError(f"config.datasets.{dname}.path: {d['path']!r} is a directory, not a CSV file; "
                                  "give the CSV itself (source image_folder reads a folder of images)")
            if d["source"] == "image_folder" and not p.is_dir():
                raise ConfigError(f"config.datasets.{dname}.path: {d['path']!r} is a file, not a folder of images "
                                  "(source csv reads a CSV listing images)")
            if d["source"] == "csv":
                _check_csv_captions(dname, d, p, models)
        if d.get("shard_size"):
            for m in models_for(cfg, dname):
                if d["shard_size"] % models[m]["batch_size"]:
                    raise ConfigError(f"config.datasets.{dname}.shard_size: {d['shard_size']} is not a multiple of model "
                                      f"{m!r}'s batch_size {models[m]['batch_size']}; allowed: multiples of every "
                                      "batch_size on the dataset (so shards batch as one job would)")
        if d["source"] == "huggingface" and d.get("name") and not d.get("path"):
            _check_hub_columns(dname, d)
        _check_dataset_inputs(dname, d, base)
        if not dataset_has_captions(d) and any(models[m]["modality"] == "language" for m in d.get("models", [])):
            raise ConfigError(f"config.datasets.{dname}: this dataset has no captions, so it cannot list language models")
    for mname, m in models.items():
        if m["source"] == "packaged":
            from ..models.zoo import PACKAGED

            if m["name"] not in PACKAGED:
                close = difflib.get_close_matches(m["name"], list(PACKAGED), n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise ConfigError(f"config.models.{mname}.name: no packaged model {m['name']!r}{hint}; packaged models: {sorted(PACKAGED)}")
            if m.get("granularity") == "blocks" and PACKAGED[m["name"]].get("n_layers", 2) < 2:
                raise ConfigError(f"config.models.{mname}.granularity: packaged model {m['name']!r} has one layer (its "
                                  "graph's own output), so no blocks; allowed: leave granularity out, or stages")
            _check_packaged(mname, m)
        if m["source"] == "onnx":
            p = Path(m["path"])
            p = p if p.is_absolute() else base / p
            if not p.is_file():
                raise ConfigError(f"config.models.{mname}.path: ONNX file {m['path']!r} does not exist")
        if m["source"] in ("timm",) and m.get("weights"):
            p = Path(m["weights"])
            if not (p if p.is_absolute() else base / p).is_file():
                raise ConfigError(f"config.models.{mname}.weights: {m['weights']!r} does not exist")
        if isinstance(m.get("pretrained"), str) and m["source"] != "open_clip":
            raise ConfigError(f"config.models.{mname}.pretrained: a tag ({m['pretrained']!r}) is for source "
                              f"'open_clip' only; {m['source']!r} takes true or false")
        if m["source"] == "open_clip":
            want = "vision" if m["tower"] == "image" else "language"
            if m["modality"] != want:
                raise ConfigError(f"config.models.{mname}: tower {m['tower']!r} is modality {want!r}, not "
                                  f"{m['modality']!r}")
        pooling = m.get("pooling", "auto")
        if m["modality"] == "vision" and pooling == "last":
            raise ConfigError(f"config.models.{mname}.pooling: 'last' (last token) applies to text models only; "
                              "allowed for vision models: auto, cls, mean")
        if m["modality"] == "language" and pooling == "cls":
            raise ConfigError(f"config.models.{mname}.pooling: 'cls' is not defined for text models; allowed for "
                              "language models: auto (= mean), mean, last")
        if m["source"] == "timm" and pooling == "cls" and timm_class_token(m["name"], m.get("model_kwargs")) is False:
            raise ConfigError(f"config.models.{mname}.pooling: 'cls' needs a class token and timm's {m['name']!r} "
                              "has none; allowed for it: auto (= mean here), mean (the mean of the patch tokens)")
    text = cfg.get("competence", {}).get("text")
    if text is not None:
        p = Path(text)
        if not (p if p.is_absolute() else base / p).is_file():
            raise ConfigError(f"config.competence.text: {text!r} does not exist (the fixed text causal LMs are "
                              "scored on; leave it out for the built-in one)")
    _check_neighbour_counts(cfg, base)
    for m in cfg.get("alignment", {}).get("named_layers", {}):
        if m not in models:
            raise ConfigError(f"config.alignment.named_layers: unknown model {m!r}; configured models: {sorted(models)}")
    _check_layer_names(cfg)
    layers = cfg.get("layers", {})
    if layers.get("metric") is not None and layers["metric"] not in METRIC_NAMES:
        close = difflib.get_close_matches(layers["metric"], list(METRIC_NAMES), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ConfigError(f"config.layers.metric: {layers['metric']!r} is not allowed{hint}; allowed values: {list(METRIC_NAMES)}")
    for d in layers.get("datasets", []):
        if d not in datasets:
            raise ConfigError(f"config.layers.datasets: unknown dataset {d!r}; configured datasets: {sorted(datasets)}")
    for pair in layers.get("pairs", []):
        for m in pair:
            if m not in models:
                raise ConfigError(f"config.layers.pairs: unknown model {m!r}; configured models: {sorted(models)}")
    disp = cfg.get("dispersion", {})
    for key in ("layers",):
        for m in disp.get(key, {}):
            if m not in models:
                raise ConfigError(f"config.dispersion.{key}: unknown model {m!r}; configured models: {sorted(models)}")
    for gname, group in disp.get("groups", {}).items():
        for m in group.get("models", []):
            if m not in models:
                raise ConfigError(f"config.dispersion.groups.{gname}.models: unknown model {m!r}; configured models: {sorted(models)}")
            if models[m]["modality"] != "vision":
                raise ConfigError(f"config.dispersion.groups.{gname}.models: {m!r} is not a vision model")
    for m in cfg.get("consistency", {}).get("layers", {}):
        if m not in models:
            raise ConfigError(f"config.consistency.layers: unknown model {m!r}; configured models: {sorted(models)}")
    for d in cfg.get("sample_size", {}).get("datasets") or []:
        if d not in cfg["datasets"]:
            raise ConfigError(f"config.sample_size.datasets: unknown dataset {d!r}; configured datasets: "
                              f"{sorted(cfg['datasets'])}")
    ref = cfg.get("prh", {}).get("reference")
    if ref is not None and ref not in models:
        raise ConfigError(f"config.prh.reference: unknown model {ref!r}; configured models: {sorted(models)}")
    _check_taxonomy(cfg, base)
