"""Every ``studies/*.yaml`` end to end, as a user with a model hub would run it: against a local hub
(:mod:`convergence.testing.hub`, random weights under the studies' own repo ids, ``HF_HUB_OFFLINE``), with
the study file changed only where it is trimmed: fewer stimuli, permutations and resamples, and one model per
architecture family (large timm ViTs/ConvNeXts as reduced-width stand-ins, the same architecture). Each run
must produce every figure of its rules, the report with all of them, and its row of the claims table."""
import copy
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import ROOT
from convergence.report import CLAIMS
from convergence.testing.hub import populate, with_standins
from test_workflow import check_report

pytestmark = [pytest.mark.workflow, pytest.mark.studies]
SNAKEMAKE = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile")]


@pytest.fixture(scope="session")
def hub_home(tmp_path_factory) -> Path:
    """One local hub (an HF_HOME) shared by the study runs; each run adds what its config resolves to."""
    return tmp_path_factory.mktemp("hub")


def merge(base: dict, change: dict) -> dict:
    out = copy.deepcopy(base)
    for key, value in change.items():
        out[key] = merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def trimmed(study: str, models: list[str], **changes) -> dict:
    """``studies/<study>.yaml`` keeping ``models`` only, with ``changes`` merged in (dataset sizes, resample
    counts), run quietly on one thread per job, its large timm models as stand-ins."""
    cfg = yaml.safe_load((ROOT / "studies" / f"{study}.yaml").read_text())
    missing = set(models) - set(cfg["models"])
    assert not missing, f"{study}: no models {missing}"
    cfg["models"] = {m: cfg["models"][m] for m in models}
    cfg = merge(cfg, {"progress": False, "embed_threads": 1, "embed_gpus": 0, **changes})
    return with_standins(cfg)


def run_study(workdir: Path, hub: Path, cfg: dict, rows: int) -> Path:
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    populate(hub, cfg, rows=rows)
    env = {**os.environ, "HF_HOME": str(hub), "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
           "TRANSFORMERS_OFFLINE": "1"}
    proc = subprocess.run([*SNAKEMAKE, "--configfile", str(workdir / "config.yaml"), "--cores", "2"], cwd=workdir,
                          capture_output=True, text=True, env=env, timeout=900)
    if proc.returncode != 0:
        logs = "\n".join(f"--- {p}\n{p.read_text()[-3000:]}" for p in sorted((workdir / "logs").rglob("*.log"))
                         if "Error" in p.read_text() or "Traceback" in p.read_text())
        raise AssertionError(f"{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}\n{logs[-8000:]}")
    return workdir


def claim_row(workdir: Path, study_prefix: str) -> tuple[str, str]:
    for study, _claim, measure in CLAIMS:
        if study.startswith(study_prefix):
            got = measure(workdir / "results")
            assert got is not None, f"no claims row for {study}"
            return got
    raise AssertionError(f"no claim {study_prefix!r}")


def check_run(workdir: Path, tmp_path: Path, study_prefix: str) -> str:
    """The report holds every figure with its caption; the claims row was measured. Returns the report."""
    html = check_report(workdir, tmp_path, r'\"progress\": false')
    measured, status = claim_row(workdir, study_prefix)
    assert measured != "-" and status
    return html


def test_prh_study(tmp_path, hub_home):
    """PRH: one ViT per architecture family (plain ViT on ImageNet-21k, DINOv2 - the reference -, CLIP's
    pre-norm ViT) and one causal LM per family (BLOOM, LLaMA) on rows in minhuh/prh@wit_1024's layout."""
    cfg = trimmed("prh", ["vit_base_in21k", "dinov2_large", "clip_base", "bloomz_560m", "open_llama_3b"],
                  alignment={"n_permutations": 5, "n_bootstrap": 5})
    run = run_study(tmp_path / "run", hub_home, cfg, rows=24)
    check_run(run, tmp_path, "Platonic")


def test_consistency_study(tmp_path, hub_home):
    """Consistency: a CNN of each family (EfficientNet, ConvNeXt), a DINOv2 ViT, SigLIP (no class token,
    pooled by mean) and the random ViT control, on three datasets of distinct layouts (CIFAR-100's img and
    fine_label, MNIST's greyscale images, the pets' extra columns); every dataset entry's columns are checked
    against its cached layout before any job (the config test covers all ten)."""
    keep = ["cifar100", "mnist", "pets"]
    cfg = trimmed("consistency", ["efficientnet_b0_sup", "convnext_base_sup", "dinov2_base", "siglip_vit_b16",
                                  "vit_base_random"],
                  consistency={"n_permutations": 10})
    cfg["datasets"] = {d: {**cfg["datasets"][d], "image_size": 64} for d in keep}
    run = run_study(tmp_path / "run", hub_home, cfg, rows=20)
    check_run(run, tmp_path, "Consistency")


def test_dispersion_study(tmp_path, hub_home):
    """Dispersion: DINOv2 and MAE (self-supervised), CLIP, two random ViTs (their own group), BLOOM, LLaMA and
    MiniLM (BERT), on WIT rows; subset sizes cut to the rows there are."""
    cfg = trimmed("dispersion", ["dinov2_base", "mae_large", "clip_large", "vit_random_0", "vit_random_1",
                                 "bloomz_1b7", "open_llama_7b", "minilm_l6"],
                  alignment={"n_permutations": 5, "n_bootstrap": 5},
                  dispersion={"sizes": [6, 12], "n_random": 10, "n_bootstrap": 10})
    run = run_study(tmp_path / "run", hub_home, cfg, rows=24)
    check_run(run, tmp_path, "Single-stimulus")


def test_taxonomy_study(tmp_path, hub_home):
    """Taxonomy: the hub's DINOv2 ViT-L (stand-in) and the packaged EfficientNet-Lite0, the packaged SmolLM2 and
    the hub's Qwen3 (tiny, same class); four of the conditions (a removal, its random-LM twin, a shuffle, a
    dropped category), one seed, one short epoch."""
    cfg = trimmed("taxonomy", ["dinov2_large", "efficientnet_lite0", "smollm2_135m", "qwen3_17b"])
    tax = cfg["taxonomy"]
    tax["language_models"] = ["smollm2_135m", "qwen3_17b"]
    tax["conditions"] = {k: tax["conditions"][k] for k in ("remove50", "remove50_random", "shuffle_across50",
                                                           "drop_bird")}
    tax.update(seeds=[0], epochs=1, questions_per_epoch=16, hidden=64, eval_concepts=10, threads=1, gpus=0)
    cfg["datasets"]["stamps"].update(variations={"n": 1}, image_size=64)
    run = run_study(tmp_path / "run", hub_home, cfg, rows=0)
    check_run(run, tmp_path, "Cross-modal taxonomic")


def test_competence_study(tmp_path, hub_home):
    """Competence: the packaged DINOv2 (the reference) and EfficientNet-Lite0, the random ResNet-50, and one
    causal LM per family (SmolLM2/LLaMA, Gemma 3, Qwen2.5) on 40 tuxpaint stamps."""
    cfg = trimmed("competence", ["dinov2_small", "efficientnet_lite0", "resnet50_random", "smollm2_135m",
                                 "gemma3_270m", "qwen25_coder_05b"],
                  alignment={"n_permutations": 5, "n_bootstrap": 5})
    cfg["datasets"]["tuxpaint"].update(limit=40, image_size=64)
    run = run_study(tmp_path / "run", hub_home, cfg, rows=0)
    check_run(run, tmp_path, "Platonic")


def test_openclipart_study(tmp_path, hub_home):
    """Openclipart: the packaged CNN, DINOv2 (the reference), the random ResNet-50, MiniLM and SmolLM2 on 40
    images of each of its two datasets."""
    cfg = trimmed("openclipart", ["efficientnet_lite0", "dinov2_small", "resnet50_random", "all_minilm_l6",
                                  "smollm2_135m"],
                  alignment={"n_permutations": 5, "n_bootstrap": 5})
    for d in cfg["datasets"].values():
        d.update(limit=40, image_size=64)
    run = run_study(tmp_path / "run", hub_home, cfg, rows=0)
    check_run(run, tmp_path, "Platonic")
