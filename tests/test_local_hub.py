"""The local hub (convergence.testing.hub) through the real loaders, offline: what each store records of the
hub (resolved commits, weights hashes, the dtype that ran), and datasets loaded at the revision they name."""
import json
import os
import subprocess
import sys

import pytest

from convergence.hubcache import file_sha256
from convergence.testing.hub import fake_commit, populate, write_dataset

CONFIG = {
    "models": {
        "vit": {"source": "timm", "name": "vit_tiny_patch16_224.augreg_in21k", "modality": "vision",
                "model_kwargs": {"depth": 2}},
        "lm": {"source": "hf", "name": "bigscience/bloomz-560m", "kind": "causal_lm", "modality": "language",
               "dtype": "bfloat16"},
    },
    "datasets": {"wit": {"source": "huggingface", "name": "minhuh/prh", "revision": "wit_1024", "split": "train",
                         "image_column": "image", "caption_column": "text", "image_size": 32}},
}

SCRIPT = """
import json, sys
from convergence.stimuli import build_stimuli
cfg = json.loads(sys.argv[1])
out = {}
try:
    ds = build_stimuli("wit", cfg["datasets"]["wit"])
    out["dataset"] = ds.attrs.get("hub_dataset")
    out["n"] = ds.sizes["stimulus"]
except Exception as err:
    out["dataset_error"] = str(err)
    print(json.dumps(out)); raise SystemExit
for name, spec in cfg["models"].items():
    from convergence.embed import extract
    from convergence.models import load_encoder
    enc = load_encoder(name, spec, "cpu")
    store = extract(enc, ds.isel(stimulus=slice(0, 3)), batch_size=2, progress=False)
    out[name] = {"provenance": store.attrs["provenance"], "precision": store.attrs["precision"]}
print(json.dumps(out, default=str))
"""


def offline_run(home, cfg) -> dict:
    env = {**os.environ, "HF_HOME": str(home), "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    proc = subprocess.run([sys.executable, "-c", SCRIPT, json.dumps(cfg)], capture_output=True, text=True, env=env,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    home = tmp_path_factory.mktemp("hub")
    populate(home, CONFIG, rows=6)
    return home


def test_models_and_dataset_load_offline_and_record_what_was_resolved(hub):
    out = offline_run(hub, CONFIG)
    assert out["n"] == 6
    assert out["dataset"]["commit"] == fake_commit("dataset", "minhuh/prh", "wit_1024")
    assert out["dataset"]["revision"] == "wit_1024" and out["dataset"]["fingerprint"]
    vit = out["vit"]["provenance"]
    repo = "timm/vit_tiny_patch16_224.augreg_in21k"
    commit = fake_commit("model", repo, None)
    assert vit["hub_repo"] == repo and vit["hub_commit"] == commit and vit["weights_file"] == "model.safetensors"
    weights = hub / "hub" / f"models--{repo.replace('/', '--')}" / "snapshots" / commit / "model.safetensors"
    assert vit["weights_sha256"] == file_sha256(weights)
    lm = out["lm"]
    assert lm["provenance"]["commit"] == fake_commit("model", "bigscience/bloomz-560m", None)
    assert lm["provenance"]["weights_dtype"] == "bfloat16"
    assert lm["precision"] == "bfloat16"  # the weights were bfloat16, so the forward pass was, on the CPU too
    assert out["vit"]["precision"] == "float32"


def test_offline_a_dataset_loads_the_copy_of_its_revision_or_says_it_cannot(hub):
    # a newer prepared copy of another revision: offline `load_dataset` alone would load it
    write_dataset(hub, {**CONFIG["datasets"]["wit"], "revision": "other"}, rows=4)
    out = offline_run(hub, {**CONFIG, "models": {}})
    assert out["n"] == 6 and out["dataset"]["commit"] == fake_commit("dataset", "minhuh/prh", "wit_1024")
    cfg = {**CONFIG, "models": {}, "datasets": {"wit": {**CONFIG["datasets"]["wit"], "revision": "never_seen"}}}
    err = offline_run(hub, cfg)["dataset_error"]
    assert "revision 'never_seen' cannot be verified offline" in err and "wit_1024" not in err.split("cached:")[0]
    assert "default@" in err  # names the copies there are


def test_every_consistency_dataset_column_is_checked_against_its_cached_copy(tmp_path, monkeypatch):
    """All ten datasets of studies/consistency.yaml in their cached layout: the study validates; a column a
    dataset lacks is one error before any job, naming the entry and the columns there are."""
    import copy

    import yaml

    from conftest import ROOT
    from convergence.config import ConfigError, validate_config

    study = yaml.safe_load((ROOT / "studies" / "consistency.yaml").read_text())
    populate(tmp_path, {"datasets": study["datasets"]}, rows=2)
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    validate_config(copy.deepcopy(study))
    bad = copy.deepcopy(study)
    bad["datasets"]["cifar10"]["image_column"] = "image"
    with pytest.raises(ConfigError, match=r"config.datasets.cifar10.image_column: 'uoft-cs/cifar10' has no column "
                                          r"'image' \(its cached copy has \['img', 'label'\]\)"):
        validate_config(bad)


FAILING = """
import json, sys
from convergence.models import load_encoder
out = {}
for name, spec in json.loads(sys.argv[1]).items():
    try:
        load_encoder(name, spec, "cpu")
        out[name] = "loaded"
    except Exception as err:
        out[name] = f"{type(err).__name__}: {err}"
print(json.dumps(out))
"""


def test_hub_failures_name_the_model_and_what_to_do(hub):
    """Offline: a repo the cache lacks, a revision it lacks; each one message naming the model and the fix."""
    specs = {"missing_vit": {"source": "timm", "name": "vit_small_patch16_224.augreg_in21k", "modality": "vision"},
             "missing_lm": {"source": "hf", "name": "huggyllama/llama-13b", "kind": "causal_lm",
                            "modality": "language"},
             "bad_revision": {**CONFIG["models"]["lm"], "revision": "no-such-branch"}}
    env = {**os.environ, "HF_HOME": str(hub), "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run([sys.executable, "-c", FAILING, json.dumps(specs)], capture_output=True, text=True,
                          env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["missing_vit"].startswith("ModelLoadError: model 'missing_vit': timm weights")
    assert "'timm/vit_small_patch16_224.augreg_in21k'@main is not in the local Hugging Face cache" in out["missing_vit"]
    assert "hf download" in out["missing_vit"] and "pretrained: false" in out["missing_vit"]
    assert out["missing_lm"].startswith("ModelLoadError: model 'missing_lm': 'huggyllama/llama-13b'@main is not in")
    assert "'bigscience/bloomz-560m'@no-such-branch is not in the local" in out["bad_revision"]
