"""The package as users install it: the DAG is built without deep-learning imports, and a wheel (not an
editable install) carries the config schema."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "torchvision", "timm", "transformers")


def test_building_the_dag_imports_no_deep_learning_library(tmp_path):
    """`snakemake -n` on the default config: python -X importtime lists every module imported."""
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "snakemake", "-s", str(ROOT / "Snakefile"),
         "--configfile", str(ROOT / "config.yaml"), "-n", "--quiet", "rules"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300, env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    imported = {line.rsplit("|", 1)[-1].strip() for line in proc.stderr.splitlines() if line.startswith("import time:")}
    assert "convergence.config" in imported and "snakemake" in imported
    assert not imported & set(HEAVY), sorted(imported & set(HEAVY))


def test_config_validation_and_zoo_names_need_no_torch():
    code = ("import sys, yaml; from convergence.config import validate_config; "
            f"validate_config(yaml.safe_load(open({str(ROOT / 'config.yaml')!r})), base_dir={str(ROOT)!r}); "
            "from convergence.models import SOURCES; from convergence.models.zoo import PACKAGED; "
            f"print(sorted(set(sys.modules) & {set(HEAVY)!r}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr


@pytest.mark.slow
def test_a_wheel_install_validates_the_default_config(tmp_path):
    """`pip wheel .` then install that wheel elsewhere: the schema comes with it (importlib.resources)."""
    pip = [sys.executable, "-m", "pip"]
    source = tmp_path / "source"  # a copy: building in the checkout would leave build/ behind
    shutil.copytree(ROOT / "src", source / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    subprocess.run([*pip, "wheel", "--no-deps", "-q", "-w", str(tmp_path / "dist"), str(source)], check=True,
                   capture_output=True, timeout=600)
    (wheel,) = (tmp_path / "dist").glob("convergence-*.whl")
    subprocess.run([*pip, "install", "-q", "--no-deps", "--target", str(tmp_path / "site"), str(wheel)], check=True,
                   capture_output=True, timeout=600)
    code = ("import yaml, convergence.config as c; print(c.__file__); "
            f"cfg = c.validate_config(yaml.safe_load(open({str(ROOT / 'config.yaml')!r})), base_dir={str(ROOT)!r}); "
            "print(cfg['alignment']['metrics'])")
    env = {**os.environ, "PYTHONPATH": str(tmp_path / "site")}
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    where, metrics = out.stdout.splitlines()
    assert where.startswith(str(tmp_path / "site"))  # the wheel's copy, not the checkout
    assert yaml.safe_load(metrics) == yaml.safe_load((ROOT / "config.yaml").read_text())["alignment"]["metrics"]
