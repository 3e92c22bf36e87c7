"""Validate a workflow config and derive the plan the Snakemake rules are generated from.

:func:`validate_config` checks the config against the package's ``schemas/config.schema.yaml`` (JSON
Schema; the allowed metric names are filled in from :mod:`convergence.metrics.registry`), fills the
schema's defaults, then checks what a schema cannot: cross-references between entries, paths that must
exist, packaged model names. Any problem is ONE :class:`ConfigError` whose message names the entry and the
allowed values.

Rules applied to the whole schema (:func:`load_schema`, so every section follows them without repeating
them): ``type: integer`` means a whole number written as one (``3``; ``3.0`` and ``true`` are refused, where
JSON Schema itself would accept ``3.0``); every ``seed`` / ``seeds`` entry is at least 0 (numpy refuses
negative seeds); every ``n_permutations`` / ``n_bootstrap`` is at most :data:`MAX_DRAWS` (the draws of one
analysis are held at once: ``8 * draws * n`` bytes of stimulus or model indices).

This module is imported whenever the workflow's DAG is built, so it imports no deep-learning library:
packaged model names come from :mod:`convergence.models.zoo`.
"""

from __future__ import annotations

import copy
import difflib
from importlib import resources
from pathlib import Path

import yaml

from .metrics.registry import METRIC_NAMES, get_metric, kernel_needs
from .models.architectures import timm_class_token

#: The config schema, shipped inside the package (found the same way from a wheel or a checkout).
SCHEMA_RESOURCE = "schemas/config.schema.yaml"
#: The fields that label a model entry for the analyses (never for its extraction).
MODEL_FIELDS = ("modality", "objective", "family")
#: Config sections whose ``metrics`` list names registry metrics (the schema's allowed names are filled in).
METRIC_SECTIONS = ("alignment", "dispersion", "consistency", "sample_size")
#: Keys that moved from ``alignment`` to ``kernels`` (what every kernel store holds, read by every analysis).
MOVED_TO_KERNELS = ("k", "preprocess", "gram_max_n", "neighbours", "approximate_above", "recall_sample", "backend",
                    "device")
#: The most permutation or bootstrap draws one entry may ask for: p-values resolve 1e-5, and the (draws, n)
#: index array of 10,000 stimuli takes 8 GB.
MAX_DRAWS = 100_000
#: Entries the schema-wide rules above apply to.
_SEED_KEYS = ("seed", "seeds")
_DRAW_KEYS = ("n_permutations", "n_bootstrap")


class ConfigError(ValueError):
    """The workflow config is invalid; the message says where and what is allowed."""


def load_schema(path: str | Path | None = None) -> dict:
    """The config schema (the package's own unless ``path`` is given), with the registry's metric names."""
    if path is None:
        schema = yaml.safe_load(resources.files("convergence").joinpath(SCHEMA_RESOURCE).read_text())
    else:
        schema = yaml.safe_load(Path(path).read_text())
    for section in METRIC_SECTIONS:
        metrics = schema.get("properties", {}).get(section, {}).get("properties", {}).get("metrics")
        if metrics is not None:
            metrics["items"] = {"enum": list(METRIC_NAMES)}
    _apply_rules(schema)
    return schema


def _apply_rules(node) -> None:
    """The schema-wide bounds of the module docstring, added in place wherever a key of that name is an
    integer (or an array of integers)."""
    if isinstance(node, dict):
        for key, sub in (node.get("properties") or {}).items():
            if not isinstance(sub, dict):
                continue
            target = sub.get("items") if sub.get("type") == "array" else sub
            if isinstance(target, dict) and target.get("type") == "integer":
                if key in _SEED_KEYS:
                    target.setdefault("minimum", 0)
                if key in _DRAW_KEYS:
                    target.setdefault("maximum", MAX_DRAWS)
        for value in node.values():
            _apply_rules(value)
    elif isinstance(node, list):
        for value in node:
            _apply_rules(value)


def _validator_class():
    """Draft 2020-12 with ``integer`` meaning a Python ``int`` (not a bool, not a float such as ``3.0``):
    a float where an integer is required would pass JSON Schema and crash inside a job."""
    import jsonschema

    base = jsonschema.Draft202012Validator
    checker = base.TYPE_CHECKER.redefine(
        "integer", lambda _checker, value: isinstance(value, int) and not isinstance(value, bool))
    return jsonschema.validators.extend(base, type_checker=checker)


def _where(path) -> str:
    return "config" + "".join(f"[{p!r}]" if isinstance(p, int) else f".{p}" for p in path)


def _explain(error, schema: dict) -> str:
    """One readable sentence for a jsonschema error, naming the entry and the allowed values."""
    where = _where(error.absolute_path)
    if error.validator == "enum":
        close = difflib.get_close_matches(str(error.instance), [str(v) for v in error.validator_value], n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        return f"{where}: {error.instance!r} is not allowed{hint}; allowed values: {list(error.validator_value)}"
    if error.validator == "additionalProperties":
        allowed = sorted(error.schema.get("properties", {}))
        extra = sorted(set(error.instance) - set(allowed)) if isinstance(error.instance, dict) else []
        return f"{where}: unknown field(s) {extra}; allowed fields: {allowed}"
    if error.validator == "required":
        return f"{where}: {error.message}"
    if error.validator == "type" and "integer" in (error.validator_value if isinstance(error.validator_value, list)
                                                   else [error.validator_value]):
        example = f" (write {int(error.instance)}, not {error.instance!r})" if (
            isinstance(error.instance, float) and error.instance.is_integer()) else ""
        return f"{where}: {error.instance!r} is not allowed; an integer is required{example}"
    if error.validator in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
        bounds = {"minimum": ">=", "maximum": "<=", "exclusiveMinimum": ">", "exclusiveMaximum": "<"}
        parts = [f"{bounds[b]} {error.schema[b]}" for b in bounds if b in error.schema]
        why = ""
        if error.absolute_path and str(list(error.absolute_path)[-1]) in _DRAW_KEYS:
            why = " (draws are held in memory at once: 8 x draws x stimuli bytes)"
        elif any(str(p) in _SEED_KEYS for p in error.absolute_path):
            why = " (random seeds are non-negative)"
        return f"{where}: {error.instance!r} is out of range; allowed: {' and '.join(parts)}{why}"
    if error.validator in ("oneOf", "anyOf") and error.context:
        return _explain(min(error.context, key=lambda e: len(list(e.absolute_path))), schema)
    return f"{where}: {error.message}"


def _fill_defaults(node, schema: dict, root: dict) -> None:
    if "$ref" in schema:
        ref = schema["$ref"].split("/")[-1]
        schema = root["$defs"][ref]
    if not isinstance(node, dict):
        return
    for key, sub in schema.get("properties", {}).items():
        if "$ref" in sub:
            sub = root["$defs"][sub["$ref"].split("/")[-1]]
        if key not in node and "default" in sub:
            node[key] = copy.deepcopy(sub["default"])
        if key in node:
            _fill_defaults(node[key], sub, root)
    extra = schema.get("additionalProperties")
    if isinstance(extra, dict):
        for key, value in node.items():
            if key not in schema.get("properties", {}):
                _fill_defaults(value, extra, root)


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


def _check_moved_keys(cfg: dict) -> None:
    """Kernel settings under ``alignment`` (where they lived before the ``kernels`` section): one error
    naming every such key and where it went."""
    section = cfg.get("alignment")
    moved = [key for key in MOVED_TO_KERNELS if isinstance(section, dict) and key in section]
    if moved:
        where = ", ".join(f"alignment.{key} -> kernels.{key}" for key in moved)
        raise ConfigError(f"config.alignment: {moved} moved to the kernels section ({where}): the kernel stores "
                          "every analysis reads are set there, e.g. `kernels: {k: 10, preprocess: prh}`")


def metric_settings(cfg: dict) -> dict:
    """The settings metric parameters are read from (``metric_params``): the ``alignment`` section (e.g.
    ``rbf_sigma``) with the ``kernels`` section's ``k``."""
    return {**cfg.get("alignment", {}), **cfg.get("kernels", {})}


def kernel_search(cfg: dict) -> dict:
    """The neighbour-search options of the kernel rule, from the validated ``kernels`` section."""
    return {key: cfg["kernels"][key] for key in ("neighbours", "approximate_above", "recall_sample", "backend", "device")}


def kernel_gpus(cfg: dict) -> int:
    """GPUs a kernel job asks the scheduler for: 1 when the exact search runs on torch on CUDA, else 0
    (decided from the config alone: building the DAG imports no torch)."""
    search = kernel_search(cfg)
    return int(search["backend"] == "torch" and str(search["device"]).startswith("cuda"))


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
            from .models.zoo import PACKAGED

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


def _check_hub_columns(dname: str, d: dict) -> None:
    """The columns a Hugging Face dataset entry names exist in its cached copy (its ``dataset_info.json``);
    nothing is checked for a dataset that is not cached yet."""
    from .hubcache import cached_columns

    splits = cached_columns(d["name"], d.get("revision"))
    if not splits:
        return
    columns = next(iter(splits.values()))
    for key in ("image_column", "caption_column", "label_column", "id_column"):
        col = d.get(key) if key != "image_column" else d.get(key, "image")
        if col and col not in columns:
            raise ConfigError(f"config.datasets.{dname}.{key}: {d['name']!r} has no column {col!r} (its cached "
                              f"copy has {columns})")


def _check_taxonomy(cfg: dict, base: Path) -> None:
    tax = cfg.get("taxonomy", {})
    if not tax.get("dataset"):
        return
    models, datasets = cfg["models"], cfg["datasets"]
    d = tax["dataset"]
    if d not in datasets:
        raise ConfigError(f"config.taxonomy.dataset: unknown dataset {d!r}; configured datasets: {sorted(datasets)}")
    for key in ("vision_models", "language_models"):
        if not tax.get(key):
            raise ConfigError(f"config.taxonomy.{key}: give at least one model (the taxonomy runs on dataset {d!r})")
    for m in tax["vision_models"]:
        if m not in models or models[m]["modality"] != "vision":
            raise ConfigError(f"config.taxonomy.vision_models: {m!r} is not a configured vision model; vision models: "
                              f"{sorted(n for n, s in models.items() if s['modality'] == 'vision')}")
        if m not in models_for(cfg, d, "vision"):
            raise ConfigError(f"config.taxonomy.vision_models: {m!r} does not run on dataset {d!r} (its models: "
                              f"{models_for(cfg, d)}); add it to datasets.{d}.models")
    for m in tax["language_models"]:
        if m not in models or not is_causal_lm(models[m]):
            raise ConfigError(f"config.taxonomy.language_models: {m!r} is not a configured causal LM; causal LMs: "
                              f"{sorted(n for n, s in models.items() if is_causal_lm(s))}")
    if tax.get("hypernyms", "folders") != "folders":
        p = Path(tax["hypernyms"])
        if not (p if p.is_absolute() else base / p).is_file():
            raise ConfigError(f"config.taxonomy.hypernyms: {tax['hypernyms']!r} is neither 'folders' nor an existing "
                              "CSV (columns concept,hypernym)")
    if not tax.get("conditions"):
        raise ConfigError("config.taxonomy.conditions: give at least one condition")


def taxonomy_runs(cfg: dict) -> list[tuple[str, str, str, int]]:
    """Every (vision model, language model, condition, seed) the taxonomy analysis trains (none without
    ``taxonomy.dataset``)."""
    tax = cfg.get("taxonomy", {})
    if not tax.get("dataset"):
        return []
    return [(v, lm, c, int(s)) for v in tax["vision_models"] for lm in tax["language_models"]
            for c in tax["conditions"] for s in tax["seeds"]]


#: Classes of the built-in sources whose classes are known before their stimuli are read, and their sizes.
_KNOWN_CLASSES = {"fashion_mnist": 10, "digits": 10}
_KNOWN_SIZES = {"digits": 1797}


def max_stimuli(dataset: dict, base_dir: str | Path | None = None) -> int | None:
    """An upper bound on a dataset entry's number of stimuli known before any stimulus is read (its ``limit``,
    ``per_class`` times a built-in source's classes, a built-in source's size and, with ``base_dir``, the
    counted rows of a CSV or files of an image folder), times its ``variations.n``; or ``None``."""
    bounds = [dataset.get("limit"), _KNOWN_SIZES.get(dataset["source"])]
    if dataset.get("per_class") and dataset["source"] in _KNOWN_CLASSES:
        bounds.append(dataset["per_class"] * _KNOWN_CLASSES[dataset["source"]])
    if base_dir is not None:
        bounds.append(counted_stimuli(dataset, base_dir))
    bounds = [b for b in bounds if b]
    if not bounds:
        return None
    return min(bounds) * int((dataset.get("variations") or {}).get("n", 1))


def _resolve(path, base: str | Path) -> Path:
    p = Path(path)
    return p if p.is_absolute() else Path(base) / p


def csv_rows(path: str | Path) -> int | None:
    """The data rows of a CSV dataset (blank lines skipped, as the stimulus job reads it); ``None`` when the
    file cannot be read."""
    import csv

    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            rows = csv.reader(fh)
            next(rows, None)
            return sum(1 for row in rows if any(cell.strip() for cell in row))
    except (OSError, UnicodeDecodeError, csv.Error):
        return None


def counted_stimuli(dataset: dict, base_dir: str | Path = ".") -> int | None:
    """A CSV dataset's rows or an image folder's image files, counted without decoding anything (``None``
    for other sources or an unreadable path)."""
    if dataset["source"] == "csv":
        p = _resolve(dataset["path"], base_dir)
        return csv_rows(p) if p.is_file() else None
    if dataset["source"] == "image_folder":
        from .stimuli import image_folder_files

        p = _resolve(dataset["path"], base_dir)
        try:
            return len(image_folder_files(p)) if p.is_dir() else None
        except Exception:  # a link cycle and the like: the stimulus job reports it
            return None
    return None


def _image_folder_classes(root: Path) -> set[str] | None:
    """The class folders of an image folder (``None`` when flat or unreadable)."""
    from .stimuli import image_folder_files

    try:
        files = image_folder_files(root)
    except Exception:
        return None
    if not files or all(f.parent == root for f in files):
        return None
    return {f.relative_to(root).parent.as_posix() for f in files if f.parent != root}


def dataset_has_labels(dataset: dict, base_dir: str | Path = ".") -> bool | None:
    """Whether a dataset entry's stimuli carry labels, known from the config and cheap looks at its files;
    ``None`` when that is not knowable before the stimuli are read."""
    source = dataset["source"]
    if source in ("fashion_mnist", "digits", "tuxpaint", "openclipart"):
        return True
    if source == "emoji":
        return False
    if source == "huggingface":
        return bool(dataset.get("label_column"))
    if source == "csv":
        columns = csv_columns(_resolve(dataset["path"], base_dir))
        return None if columns is None else "label" in columns
    if source == "image_folder":
        root = _resolve(dataset["path"], base_dir)
        return _image_folder_classes(root) is not None if root.is_dir() else None
    return None


def _check_dataset_inputs(dname: str, d: dict, base: Path) -> None:
    """What a dataset entry asks of its source, checked before any job: variations and per_class only where
    the source can have them, a colour Pillow knows, a CSV with rows, more than one class where labels are
    compared."""
    from .stimuli import VARIATION_SOURCES, StimulusError, parse_background

    where = f"config.datasets.{dname}"
    if d.get("variations") and d["source"] not in VARIATION_SOURCES:
        raise ConfigError(f"{where}.variations: source {d['source']!r} cannot be rendered with variations (they "
                          f"need the image files); allowed for sources: {list(VARIATION_SOURCES)}")
    if "background" in d:
        try:
            parse_background(d["background"])
        except StimulusError as err:
            raise ConfigError(f"{where}.background: {err}") from None
    if d["source"] == "csv":
        p = _resolve(d["path"], base)
        if p.is_file() and csv_rows(p) == 0:
            raise ConfigError(f"{where}.path: {d['path']!r} has a header but no rows; list one image per row "
                              "(columns: path, and optionally caption, label, id)")
    for key in ("per_class",):
        if d.get(key) and dataset_has_labels(d, base) is False:
            how = {"emoji": "emoji have no labels", "huggingface": "give label_column",
                   "csv": "add a 'label' column", "image_folder": "put the images in class sub-folders"}
            raise ConfigError(f"{where}.{key}: a per-class subsample needs labels, and this {d['source']} dataset "
                              f"has none ({how.get(d['source'], '')}); use limit instead")


def _check_packaged(mname: str, m: dict) -> None:
    """A packaged entry's modality is the packaged model's, and its listed layers exist where the zoo names
    them."""
    from .models.zoo import PACKAGED

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
    from .models.zoo import PACKAGED

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


def _check_neighbour_counts(cfg: dict, base: Path | None = None) -> None:
    """k must be below every compared dataset's number of stimuli: caught here, before any extraction,
    wherever the config (or a cheap count of a CSV's rows or a folder's files) bounds that number (the kNN
    code checks again on the real stimuli). The same for the competence k-NN classifier on labelled data."""
    section = cfg.get("alignment", {})
    k = kernel_needs(section.get("metrics", []), metric_settings(cfg))["k"]
    sizes = {name: max_stimuli(d, base) for name, d in cfg["datasets"].items()}
    for name, d in cfg["datasets"].items():
        n = sizes[name]
        if k is not None and n is not None and len(models_for(cfg, name)) >= 2 and k > n - 1:
            raise ConfigError(
                f"config.kernels.k: k={k} neighbours need more than k stimuli, but dataset {name!r} has at most "
                f"{n}; allowed: 1 <= k <= {n - 1} (or raise the dataset's limit / per_class)"
            )
    competence = cfg.get("competence", {})
    if not competence.get("enabled", True) or "k" not in competence:
        return
    kc = competence["k"]
    for name, d in cfg["datasets"].items():
        n = sizes[name]
        if (n is not None and kc > n - 1 and models_for(cfg, name, "vision")
                and dataset_has_labels(d, base if base is not None else ".")):
            raise ConfigError(
                f"config.competence.k: the k-NN classifier's k={kc} neighbours need more than k stimuli, but "
                f"labelled dataset {name!r} has at most {n}; allowed: 1 <= k <= {n - 1}"
            )


# ----------------------------------------------------------------------------------------------- plan


def csv_columns(path: str | Path) -> list[str] | None:
    """The header of a CSV dataset (UTF-8, with or without the byte-order mark spreadsheet programs
    write), each name stripped of surrounding spaces; ``None`` when the file cannot be opened."""
    import csv

    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            return [c.strip() for c in next(csv.reader(fh), [])]
    except OSError:
        return None
    except UnicodeDecodeError as err:
        raise ConfigError(f"{path} is not UTF-8 text ({err.reason} at byte {err.start}); save the CSV as UTF-8") from None


#: The built-in competence text (package data): see convergence/texts/README.md.
COMPETENCE_TEXT_RESOURCE = "texts/CC0-1.0.txt"


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
        from .models.zoo import CAUSAL_LMS

        return model.get("name") in CAUSAL_LMS
    return model.get("source") == "hf" and model.get("kind") == "causal_lm"


def dataset_has_captions(dataset: dict) -> bool:
    """Whether a dataset entry provides captions (so language models run on it)."""
    if dataset["source"] in ("emoji", "tuxpaint"):
        return True
    if dataset["source"] == "openclipart":
        return bool(dataset.get("captioned_only", False))
    if dataset["source"] == "huggingface":
        return bool(dataset.get("caption_column"))
    if dataset["source"] == "csv":
        return "caption" in (csv_columns(dataset["path"]) or [])
    return False


def _check_csv_captions(dname: str, d: dict, path: Path, models: dict) -> None:
    """A CSV dataset's caption column is found, or its absence is meant: language models never drop out of
    it silently."""
    try:
        columns = csv_columns(path)
    except ConfigError as err:
        raise ConfigError(f"config.datasets.{dname}.path: {err}") from None
    if columns is None or "caption" in columns:
        return
    near = [c for c in columns if c.lower() in ("caption", "captions")]
    if near:
        raise ConfigError(f"config.datasets.{dname}: {d['path']!r} has a column {near[0]!r}; the caption column "
                          f"must be named exactly 'caption' (columns: {columns})")
    language = [m for m, spec in models.items() if spec["modality"] == "language"]
    if language and not d.get("models"):
        raise ConfigError(f"config.datasets.{dname}: language model(s) {language} are configured but {d['path']!r} "
                          f"has no 'caption' column (columns: {columns}); add a 'caption' column, or list this "
                          "dataset's models (models: [...], vision models only) to run it without captions")


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


def metric_params(metric: str, settings: dict) -> dict:
    """The parameters ``metric`` takes from the config's settings (``metric_settings(cfg)``: the ``alignment``
    section with ``kernels.k``), as the metric registry declares them (and only those, so that changing k
    never reruns CKA)."""
    return get_metric(metric).from_config(settings)


def dispersion_groups(cfg: dict, dataset: str) -> dict[str, list[str]]:
    """The vision-model groups of ``dispersion.groups`` on ``dataset`` (group -> models in config order),
    only those with at least two models (generalised Procrustes needs two). A model belongs to a group when
    it is a vision model of the dataset, listed in the group's ``models`` (if given), of one of its
    ``objectives`` (if given) and of none of its ``exclude_objectives``."""
    vision = models_for(cfg, dataset, "vision")
    out = {}
    for name, spec in cfg.get("dispersion", {}).get("groups", {}).items():
        members = [m for m in vision
                   if ("models" not in spec or m in spec["models"])
                   and ("objectives" not in spec or cfg["models"][m]["objective"] in spec["objectives"])
                   and cfg["models"][m]["objective"] not in spec.get("exclude_objectives", [])]
        if len(members) >= 2:
            out[name] = members
    return out


def analysis_enabled(cfg: dict, name: str) -> bool:
    """Whether the analysis with config section ``name`` is switched on (``enabled``, true by default)."""
    return bool(cfg.get(name, {}).get("enabled", True))
