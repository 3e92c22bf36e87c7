"""Validate a workflow config and derive the plan the Snakemake rules are generated from.

:func:`validate_config` checks the config against the package's ``schemas/config.schema.yaml`` (JSON
Schema; the allowed metric names are filled in from :mod:`convergence.metrics.registry`), fills the
schema's defaults, then checks what a schema cannot: cross-references between entries, paths that must
exist, packaged model names. Any problem is ONE :class:`ConfigError` whose message names the entry and the
allowed values.

What lives where (every public name is imported from here, ``from convergence.config import ...``):

- :mod:`.schema`: :class:`ConfigError`, :func:`load_schema` and the schema-wide rules (integers, seeds,
  :data:`MAX_DRAWS`), the validator, its error messages, default filling, keys moved to ``kernels``;
- :mod:`.validate`: :func:`validate_config`, and the cross-reference checks it runs after the schema;
- :mod:`.datasets`: dataset entries (:func:`max_stimuli`, :func:`csv_rows`, :func:`counted_stimuli`,
  :func:`dataset_has_labels`, :func:`dataset_has_captions`, :func:`csv_columns`) and the checks of their
  inputs, hub columns and CSV captions;
- :mod:`.models`: model entries (:func:`packaged_layer_names`, :func:`stored_layer_names`,
  :func:`is_causal_lm`, :func:`models_for`, :func:`embedding_pairs`, :func:`competence_text_path`) and the
  checks of packaged models and layer names;
- :mod:`.analyses`: the analysis sections (:func:`metric_settings`, :func:`metric_params`,
  :func:`kernel_search`, :func:`kernel_gpus`, :func:`dispersion_groups`, :func:`taxonomy_runs`,
  :func:`analysis_enabled`) and the checks of neighbour counts and of the taxonomy.

This package is imported whenever the workflow's DAG is built, so it imports no deep-learning library:
packaged model names come from :mod:`convergence.models.zoo`.
"""

from .analyses import (
    analysis_enabled,
    dispersion_groups,
    kernel_gpus,
    kernel_search,
    metric_params,
    metric_settings,
    taxonomy_runs,
)
from .datasets import counted_stimuli, csv_columns, csv_rows, dataset_has_captions, dataset_has_labels, max_stimuli
from .models import (
    COMPETENCE_TEXT_RESOURCE,
    MODEL_FIELDS,
    competence_text_path,
    embedding_pairs,
    is_causal_lm,
    models_for,
    packaged_layer_names,
    stored_layer_names,
)
from .schema import MAX_DRAWS, METRIC_SECTIONS, MOVED_TO_KERNELS, SCHEMA_RESOURCE, ConfigError, load_schema
from .validate import validate_config

__all__ = [
    "COMPETENCE_TEXT_RESOURCE",
    "MAX_DRAWS",
    "METRIC_SECTIONS",
    "MODEL_FIELDS",
    "MOVED_TO_KERNELS",
    "SCHEMA_RESOURCE",
    "ConfigError",
    "analysis_enabled",
    "competence_text_path",
    "counted_stimuli",
    "csv_columns",
    "csv_rows",
    "dataset_has_captions",
    "dataset_has_labels",
    "dispersion_groups",
    "embedding_pairs",
    "is_causal_lm",
    "kernel_gpus",
    "kernel_search",
    "load_schema",
    "max_stimuli",
    "metric_params",
    "metric_settings",
    "models_for",
    "packaged_layer_names",
    "stored_layer_names",
    "taxonomy_runs",
    "validate_config",
]
