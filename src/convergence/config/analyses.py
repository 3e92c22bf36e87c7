"""The analysis sections: the settings metric parameters are read from, the kernel rule's neighbour search,
dispersion groups, taxonomy runs, whether an analysis is on, and the checks of neighbour counts and of the
taxonomy section.
"""

from __future__ import annotations

from pathlib import Path

from ..metrics.registry import get_metric, kernel_needs
from .datasets import dataset_has_labels, max_stimuli
from .models import is_causal_lm, models_for
from .schema import ConfigError


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
