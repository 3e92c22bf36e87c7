"""The config schema and what JSON Schema itself checks.

:func:`load_schema` reads the package's ``schemas/config.schema.yaml`` (JSON Schema; the allowed metric
names are filled in from :mod:`convergence.metrics.registry`); the validator, its one-sentence error
messages (:func:`_explain`) and the filling of the schema's defaults are used by
:func:`convergence.config.validate_config`, as is the check for keys that moved to the ``kernels`` section.

Rules applied to the whole schema (:func:`load_schema`, so every section follows them without repeating
them): ``type: integer`` means a whole number written as one (``3``; ``3.0`` and ``true`` are refused, where
JSON Schema itself would accept ``3.0``); every ``seed`` / ``seeds`` entry is at least 0 (numpy refuses
negative seeds); every ``n_permutations`` / ``n_bootstrap`` is at most :data:`MAX_DRAWS` (the draws of one
analysis are held at once: ``8 * draws * n`` bytes of stimulus or model indices).
"""

from __future__ import annotations

import copy
import difflib
from importlib import resources
from pathlib import Path

import yaml

from ..metrics.registry import METRIC_NAMES

#: The config schema, shipped inside the package (found the same way from a wheel or a checkout).
SCHEMA_RESOURCE = "schemas/config.schema.yaml"
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


def _check_moved_keys(cfg: dict) -> None:
    """Kernel settings under ``alignment`` (where they lived before the ``kernels`` section): one error
    naming every such key and where it went."""
    section = cfg.get("alignment")
    moved = [key for key in MOVED_TO_KERNELS if isinstance(section, dict) and key in section]
    if moved:
        where = ", ".join(f"alignment.{key} -> kernels.{key}" for key in moved)
        raise ConfigError(f"config.alignment: {moved} moved to the kernels section ({where}): the kernel stores "
                          "every analysis reads are set there, e.g. `kernels: {k: 10, preprocess: prh}`")
