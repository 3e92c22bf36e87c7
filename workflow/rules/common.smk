# Validation and the helper functions every rule calls. No rule lives here.
import sys
from pathlib import Path

sys.path.insert(0, str(Path(workflow.basedir) / "src"))

from convergence.config import ConfigError, embedding_pairs, metric_params, models_for, validate_config
from convergence.versions import STEP_VERSIONS

try:
    config = validate_config(config, base_dir=Path.cwd())
except ConfigError as err:
    raise WorkflowError(f"invalid configuration: {err}") from None

DATASETS = list(config["datasets"])
MODELS = list(config["models"])
METRICS = list(config["alignment"]["metrics"])


wildcard_constraints:
    dataset="|".join(DATASETS),
    model="|".join(MODELS),
    metric="|".join(METRICS),


def stimuli_store(dataset):
    return f"results/stimuli/{dataset}.zarr"


def embedding_store(dataset, model):
    return f"results/embeddings/{dataset}/{model}.zarr"


def embeddings_of(wildcards):
    """Every embedding store of one dataset (input function: adding a model adds an input, nothing more)."""
    return {m: embedding_store(wildcards.dataset, m) for m in models_for(config, wildcards.dataset)}


def kernels_of(wildcards):
    """Every kernel store of one dataset, named by model."""
    return {m: f"results/kernels/{wildcards.dataset}/{m}.zarr" for m in models_for(config, wildcards.dataset)}


def kernel_k(wildcards):
    """Neighbours each kernel stores: the k every kNN-based metric uses."""
    return config["alignment"]["k"]


def alignment_options(wildcards):
    """What changes this metric's numbers: its own parameters, the null and bootstrap settings."""
    a = config["alignment"]
    named = {m: layer for m, layer in a.get("named_layers", {}).items() if m in models_for(config, wildcards.dataset)}
    return {
        "params": metric_params(wildcards.metric, a),
        "named_layers": named,
        **{key: a[key] for key in ("n_permutations", "n_bootstrap", "seed")},
    }


def has_crossmodal(dataset):
    return bool(models_for(config, dataset, "vision")) and bool(models_for(config, dataset, "language"))


# Entry fields that only label or route a config entry: changing them must not redo its extraction.
DATASET_ROUTING = ("models",)
MODEL_LABELS = ("objective", "family", "parameters")


def dataset_spec(wildcards):
    """A dataset entry minus its model list (adding a model to a dataset must not rebuild its stimuli)."""
    return {k: v for k, v in config["datasets"][wildcards.dataset].items() if k not in DATASET_ROUTING}


def model_spec(wildcards):
    """A model entry minus its labels (relabelling a model's objective must not re-extract it)."""
    return {k: v for k, v in config["models"][wildcards.model].items() if k not in MODEL_LABELS}


def model_labels(wildcards):
    """modality / objective / family of every model of the dataset, from the config (aggregates only)."""
    return {
        m: {f: config["models"][m].get(f, "") for f in ("modality", "objective", "family")}
        for m in models_for(config, wildcards.dataset)
    }


def dataset_files(wildcards):
    """Files a stimulus set is read from, so replacing them reruns it (image folder, CSV, saved HF dataset)."""
    d = config["datasets"][wildcards.dataset]
    return [d["path"]] if d.get("path") and d["source"] in ("image_folder", "csv", "huggingface") else []


def model_files(wildcards):
    """Weights files a model is read from (ONNX file, local timm weights), so replacing them reruns it."""
    m = config["models"][wildcards.model]
    return [p for p in (m.get("path"), m.get("weights")) if p]


def get_final_output():
    out = [embedding_store(d, m) for d, m in embedding_pairs(config)]
    reference = config["alignment"].get("reference")
    for d in DATASETS:
        out += expand("results/figures/overview/{dataset}.{ext}", dataset=d, ext=("png", "pdf"))
        if len(models_for(config, d)) < 2:
            continue
        out.append(f"results/competence/{d}.csv")
        out += expand("results/figures/alignment/{dataset}/{metric}.{ext}", dataset=d, metric=METRICS, ext=("png", "pdf"))
        if has_crossmodal(d):
            out += expand("results/figures/crossmodal/{dataset}/{metric}.{ext}", dataset=d, metric=METRICS, ext=("png", "pdf"))
        if reference in models_for(config, d):
            out += expand("results/figures/prh/{dataset}/{metric}.{ext}", dataset=d, metric=METRICS, ext=("png", "pdf"))
    return out
