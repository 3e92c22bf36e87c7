# Validation and the helper functions every rule calls. No rule lives here.
import sys
from pathlib import Path

sys.path.insert(0, str(Path(workflow.basedir) / "src"))

from convergence.config import ConfigError, embedding_pairs, models_for, validate_config
from convergence.versions import STEP_VERSIONS

try:
    config = validate_config(config, base_dir=Path.cwd())
except ConfigError as err:
    raise WorkflowError(f"invalid configuration: {err}") from None

DATASETS = list(config["datasets"])
MODELS = list(config["models"])


wildcard_constraints:
    dataset="|".join(DATASETS),
    model="|".join(MODELS),


def stimuli_store(dataset):
    return f"results/stimuli/{dataset}.zarr"


def embedding_store(dataset, model):
    return f"results/embeddings/{dataset}/{model}.zarr"


def embeddings_of(wildcards):
    """Every embedding store of one dataset (input function: adding a model adds an input, nothing more)."""
    return {m: embedding_store(wildcards.dataset, m) for m in models_for(config, wildcards.dataset)}


def dataset_spec(wildcards):
    return config["datasets"][wildcards.dataset]


def model_spec(wildcards):
    return config["models"][wildcards.model]


def get_final_output():
    out = [embedding_store(d, m) for d, m in embedding_pairs(config)]
    for d in DATASETS:
        out += expand("results/figures/overview/{dataset}.{ext}", dataset=d, ext=("png", "pdf"))
    return out
