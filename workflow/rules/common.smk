# Validation and the helper functions every rule calls. No rule lives here.
from pathlib import Path

from convergence.config import (
    ConfigError,
    MODEL_FIELDS,
    analysis_enabled,
    competence_text_path,
    dispersion_groups,
    embedding_pairs,
    is_causal_lm,
    kernel_gpus,
    kernel_search,
    metric_params,
    metric_settings,
    models_for,
    validate_config,
)
from convergence.metrics.registry import kernel_needs
from convergence.reproducibility import extraction_device, extraction_settings
from convergence.stimuli import count_stimuli, refresh_manifest, shard_rows
from convergence.versions import STEP_VERSIONS

try:
    config = validate_config(config, base_dir=Path.cwd())
except ConfigError as err:
    raise WorkflowError(f"invalid configuration: {err}") from None

DATASETS = list(config["datasets"])
MODELS = list(config["models"])
METRICS = list(config["alignment"]["metrics"])
GROUPS = list(config["dispersion"]["groups"]) or ["none"]
# Datasets whose extractions run in shards (dataset option shard_size), and the rest.
SHARDED = [d for d in DATASETS if config["datasets"][d].get("shard_size")]
UNSHARDED = [d for d in DATASETS if d not in SHARDED]
# wildcard constraints of the two ways to an embedding store ("(?!x)x" matches nothing: no dataset of that kind)
SHARDED_RE = "|".join(SHARDED) or "(?!x)x"
UNSHARDED_RE = "|".join(UNSHARDED) or "(?!x)x"


wildcard_constraints:
    dataset="|".join(DATASETS),
    model="|".join(MODELS),
    metric="|".join(METRICS),
    group="|".join(GROUPS),
    shard="[0-9]{5}",


# ------------------------------------------------------------------------------------------ paths


def stimuli_store(dataset):
    return f"results/stimuli/{dataset}.zarr"


def embedding_store(dataset, model):
    return f"results/embeddings/{dataset}/{model}.zarr"


def shard_store(dataset, model, shard):
    return f"results/embeddings/{dataset}/{model}.shards/{shard}.zarr"


def kernel_store(dataset, model):
    return f"results/kernels/{dataset}/{model}.zarr"


def figure(name, *parts):
    """Both formats of one figure: results/figures/<name>/<parts...>.{png,pdf}."""
    return [f"results/figures/{name}/{'/'.join(parts)}.{ext}" for ext in ("png", "pdf")]


def embeddings_of(wildcards):
    """Every embedding store of one dataset (input function: adding a model adds an input, nothing more)."""
    return {m: embedding_store(wildcards.dataset, m) for m in models_for(config, wildcards.dataset)}


def kernels_of(wildcards):
    """Every kernel store of one dataset, named by model."""
    return {m: kernel_store(wildcards.dataset, m) for m in models_for(config, wildcards.dataset)}


# ------------------------------------------------------------------------------- per-entry params

# Entry fields that only route, label or describe a config entry: changing them must not redo its extraction
# (a model's modality stays in: it decides how the model is run).
DATASET_ROUTING = ("models", "domain", "shard_size")
MODEL_LABELS = ("objective", "family", "parameters")


def dataset_spec(wildcards):
    """A dataset entry minus its model list, description and sharding (adding a model to a dataset, naming its
    domain or sharding its extractions must not rebuild its stimuli)."""
    return dataset_entry(wildcards.dataset)


def dataset_entry(dataset):
    return {k: v for k, v in config["datasets"][dataset].items() if k not in DATASET_ROUTING}


def shards_of(dataset):
    """Row ranges of a sharded dataset's shards: its number of stimuli from the source's listing (no pixel
    decoded; remembered beside the content manifest until the entry or its files change), cut into
    shard_size runs."""
    entry = dataset_entry(dataset)
    manifest = refresh_manifest(entry, f"results/manifests/{dataset}.json")
    n = count_stimuli(dataset, entry, f"results/manifests/{dataset}.count.json", manifest)
    return shard_rows(n, config["datasets"][dataset]["shard_size"])


def shard_stores(wildcards):
    """Every shard store of one (dataset, model) extraction, in row order."""
    n = len(shards_of(wildcards.dataset))
    return [shard_store(wildcards.dataset, wildcards.model, f"{i:05d}") for i in range(n)]


def shard_range(wildcards):
    """The row range [start, stop) of the stimulus store that one shard job extracts."""
    return list(shards_of(wildcards.dataset)[int(wildcards.shard)])


def model_spec(wildcards):
    """A model entry minus its labels (relabelling a model's objective must not re-extract it), plus what
    else decides the extraction's numbers, and only that (convergence.reproducibility): the resolved device,
    the effective precision (float32 on the CPU whatever is asked) and, on the CPU, the thread count."""
    spec = {k: v for k, v in config["models"][wildcards.model].items() if k not in MODEL_LABELS}
    # pretrained hub/file weights go through their source's own image transform (the loaders' default): named
    # here so that their extractions made with the on-device pipeline rerun; random-init entries keep theirs
    pretrained = spec.get("pretrained", True) is not False or spec.get("weights")
    if spec.get("modality") == "vision" and spec["source"] in ("timm", "open_clip", "hf") and pretrained:
        spec.setdefault("image_transform", "source")
    return {**spec, **extraction_settings(config)}


def model_labels(wildcards):
    """modality / objective / family of every model of the dataset, from the config (aggregates only), by model
    name: a lookup whose order decides nothing, so reordering the models' entries reruns no aggregate."""
    models = sorted(models_for(config, wildcards.dataset))
    return {m: {f: config["models"][m].get(f, "") for f in MODEL_FIELDS} for m in models}


def dataset_files(wildcards):
    """Files a stimulus set is read from, so replacing them reruns it (image folder, CSV, saved HF dataset)."""
    d = config["datasets"][wildcards.dataset]
    return [d["path"]] if d.get("path") and d["source"] in ("image_folder", "csv", "huggingface") else []


def model_files(wildcards):
    """Weights files a model is read from (ONNX file, local timm weights), so replacing them reruns it."""
    m = config["models"][wildcards.model]
    return [p for p in (m.get("path"), m.get("weights")) if p]


def competence_text(wildcards):
    """The fixed text a causal LM is scored on (config competence.text), for causal LMs only, so that other
    models' extractions do not depend on it."""
    return [competence_text_path(config)] if is_causal_lm(config["models"][wildcards.model]) else []


def kernel_products(wildcards):
    """What every kernel store holds, from the metric registry: the largest k any configured neighbour
    metric uses, and whether any configured metric reads the stored Grams; with kernels.neighbours other than
    exact, the approximate search's settings (absent for exact, so exact stores keep their parameters)."""
    needs = kernel_needs(METRICS, metric_settings(config))
    out = {"k": needs["k"] or config["kernels"]["k"], "gram": needs["gram"]}
    search = kernel_search(config)
    if search["neighbours"] != "exact":
        out.update({key: search[key] for key in ("neighbours", "approximate_above", "recall_sample")})
    return out


def named_layers(dataset):
    """alignment.named_layers restricted to the models of `dataset` (so adding a model elsewhere changes nothing)."""
    models = models_for(config, dataset)
    return {m: layer for m, layer in config["alignment"].get("named_layers", {}).items() if m in models}


def has_crossmodal(dataset):
    return bool(models_for(config, dataset, "vision")) and bool(models_for(config, dataset, "language"))


def group_models(dataset, group):
    """The vision models of dispersion group `group` on `dataset` (config order)."""
    groups = dispersion_groups(config, dataset)
    if group not in groups:
        raise WorkflowError(f"dispersion group {group!r} has fewer than two vision models on dataset {dataset!r}")
    return groups[group]


def group_kernels(dataset, group):
    """Kernel stores of one dispersion group, named by model (adding a model elsewhere adds nothing)."""
    return {m: kernel_store(dataset, m) for m in group_models(dataset, group)}


def dataset_kernels(dataset):
    """Kernel stores of every model of `dataset` (the targets of the analyses that read them)."""
    return [kernel_store(dataset, m) for m in models_for(config, dataset)]


def crossmodal_kernels(dataset):
    """Kernel stores of every vision and language model of a captioned dataset, named by model."""
    return {m: kernel_store(dataset, m) for m in models_for(config, dataset)}


def group_labels(dataset, group):
    """modality / objective / family of the models of one dispersion group (only theirs: relabelling another
    model must not redo this group's GPA)."""
    return {m: {f: config["models"][m].get(f, "") for f in MODEL_FIELDS} for m in sorted(group_models(dataset, group))}


def dispersion_layers(models):
    """dispersion.layers restricted to `models` (unlisted models use their last layer)."""
    return {m: layer for m, layer in config["dispersion"]["layers"].items() if m in models}


# The GPA options of the dispersion section: besides its models, all the dispersion step depends on.
GPA_OPTIONS = ("tol", "max_iter", "centre", "scale", "width", "allow_reflection")


def dispersion_alignment_options(wildcards):
    """The parameters of the dispersion_alignment step: selection criteria, metrics with their parameters (from the
    alignment section, as the registry declares), k scaling, draws."""
    d = config["dispersion"]
    keys = ("quantiles", "sizes", "k_fraction", "k_min", "n_random", "n_bootstrap", "ci", "seed")
    return {
        # k of the kNN metrics is set per subset from k_full (kernels.k), k_fraction and k_min
        "metrics": {
            m: {p: v for p, v in metric_params(m, metric_settings(config)).items() if p != "k"} for m in d["metrics"]
        },
        "k_full": config["kernels"]["k"],
        "alpha": config["alignment"]["alpha"],
        **{key: d[key] for key in keys},
    }


def dispersion_targets():
    """Per dataset and group: the kernel stores read, the dispersion store, and with captions the alignment on
    dispersion subsets; each with its figures."""
    out = []
    for d in DATASETS:
        for g in dispersion_groups(config, d):
            rules_ = ["dispersion", "figure_dispersion"]
            if has_crossmodal(d):
                rules_ += ["dispersion_alignment", "figure_dispersion_alignment", "figure_dispersion_ratio"]
            kernels = crossmodal_kernels(d) if has_crossmodal(d) else group_kernels(d, g)
            out += list(kernels.values()) + [p for rule in rules_ for p in outputs(rule, dataset=d, group=g)]
    return out


def compared_datasets():
    """Datasets with at least two models: the ones pairwise analyses run on."""
    return [d for d in DATASETS if len(models_for(config, d)) >= 2]


# ------------------------------------------------------------------------------------------ targets

# Each analysis (workflow/rules/analyses/<name>.smk, config section <name>) registers the function that
# lists its final outputs; `rule all` asks every enabled one. Adding an analysis touches nothing here.
ANALYSIS_TARGETS = {}


def register_targets(name, targets):
    """Register `targets()`, the final outputs of the analysis with config section `name`."""
    if name not in config:
        raise WorkflowError(f"analysis {name!r} has rules but no config section {name!r} in the schema")
    ANALYSIS_TARGETS[name] = targets


def outputs(rule, **wildcards):
    """Every output of rule `rule` (stores, tables, figures) for the given wildcard values (lists expand as a
    product), for the target functions: a result is rebuilt when lost only if `rule all` asks for it (Snakemake
    does not rebuild a missing intermediate of an up-to-date target), so every store and table is a target."""
    return expand(list(getattr(rules, rule).output), **wildcards)


def get_final_output():
    """Every stimulus store, embedding store and overview figure, then the targets of every enabled analysis:
    each lists every result it writes (stores and tables as well as figures), so a lost one is rebuilt."""
    out = [stimuli_store(d) for d in DATASETS]
    out += [embedding_store(d, m) for d, m in embedding_pairs(config)]
    for d in DATASETS:
        out += figure("overview", d)
    for name, targets in ANALYSIS_TARGETS.items():
        if analysis_enabled(config, name):
            out += targets()
    return list(dict.fromkeys(out))
