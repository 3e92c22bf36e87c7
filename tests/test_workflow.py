"""The workflow end to end on a tiny config, and its incrementality, read from Snakemake's own dry runs."""
import contextlib
import copy
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import xarray as xr
import yaml

from conftest import ROOT, TINY_BERT, TINY_CNN, TINY_GPT, TINY_VIT
from convergence.reproducibility import extraction_device

pytestmark = pytest.mark.workflow
SNAKEMAKE = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile")]


def study_plan(study: str, cwd: Path) -> str:
    """What ``snakemake -n --quiet rules`` plans for ``studies/<study>.yaml`` with no hub (HF_HUB_OFFLINE):
    its output, the job counts per rule; a failed plan fails the test with Snakemake's log."""
    proc = subprocess.run(
        [*SNAKEMAKE, "-n", "--quiet", "rules", "--configfile", str(ROOT / f"studies/{study}.yaml")],
        cwd=cwd, capture_output=True, text=True, timeout=300, env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    text = proc.stdout + proc.stderr
    assert proc.returncode == 0, text[-4000:]
    return text

TINY_CONFIG = {
    "progress": False,
    "embed_threads": 1,
    "datasets": {"emo": {"source": "emoji", "limit": 40, "seed": 1, "image_size": 32}},
    "models": {"cnn_a": dict(TINY_CNN), "vit_a": dict(TINY_VIT), "text_a": dict(TINY_BERT)},
    "kernels": {"k": 5},
    "alignment": {"metrics": ["mutual_knn", "cka_linear"], "n_permutations": 5, "n_bootstrap": 5,
                  "named_layers": {"cnn_a": "layer2"}},
    "prh": {"reference": "cnn_a"},
}


def snakemake(workdir: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "CONVERGENCE_CACHE": str(workdir / "cache")}
    proc = subprocess.run(
        [*SNAKEMAKE, "--configfile", str(workdir / "config.yaml"), *args],
        cwd=workdir, capture_output=True, text=True, env=env, timeout=900,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(args)} failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-6000:]}")
    return proc


def planned_jobs(workdir: Path, *args: str) -> dict[tuple[str, str], set[str]]:
    """(rule, wildcards) -> output paths of every job a dry run would execute (``args`` added to ``-n``)."""
    out = snakemake(workdir, "-n", *args)
    text = out.stdout + out.stderr
    jobs = {}
    for block in re.split(r"\n(?=\S*\s*rule \w+:|localrule \w+:)", text):
        m = re.search(r"(?:local)?rule (\w+):", block)
        if m:
            w = re.search(r"wildcards: ([^\n]*)", block)
            o = re.search(r"\n\s*output: ([^\n]*)", block)
            jobs[(m.group(1), w.group(1).strip() if w else "")] = set(o.group(1).split(", ")) if o else set()
    if "Nothing to be done" in text:
        assert not {j for j in jobs if j[0] != "all"}, text
        return {}
    return jobs


def scheduled(workdir: Path, *args: str) -> set[tuple[str, str]]:
    """(rule, wildcards) of every job a dry run would execute."""
    return set(planned_jobs(workdir, *args))


def write_config(workdir: Path, cfg: dict) -> None:
    (workdir / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))


def finished_workdir(tmp_path_factory, name: str, cfg: dict) -> Path:
    """A fresh working directory in which the workflow has run to completion on ``cfg``."""
    workdir = tmp_path_factory.mktemp(name)
    write_config(workdir, cfg)
    snakemake(workdir, "--cores", "2")
    return workdir


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    return finished_workdir(tmp_path_factory, "wf", TINY_CONFIG)


def test_run_writes_labelled_stores(finished_run):
    stim = xr.open_zarr(finished_run / "results/stimuli/emo.zarr", consolidated=False)
    ids = stim["stimulus"].values.tolist()
    assert len(ids) == 40 and "caption" in stim and stim["image"].dtype == "uint8"
    for model in ("cnn_a", "vit_a", "text_a"):
        ds = xr.open_zarr(finished_run / f"results/embeddings/emo/{model}.zarr", consolidated=False)
        assert ds["stimulus"].values.tolist() == ids
        layers = ds.attrs["layers"]
        assert set(layers) <= set(ds.data_vars) and len(ds.attrs["depths"]) == len(layers)
        for layer in layers:
            assert ds[layer].dims == ("stimulus", f"feature_{layer}") and ds[layer].dtype == "float32"
        assert ds.attrs["model"] == model and ds.attrs["provenance"]["weights"] == "random-init"
        assert {"torch", "xarray", "zarr"} <= set(ds.attrs["versions"])
        assert ds.attrs["threads"] == 1 and ds.attrs["batch_size"] == 16 and ds.attrs["cpu_capability"]
    assert (finished_run / "results/figures/overview/emo.png").stat().st_size > 10_000
    assert (finished_run / "results/figures/overview/emo.pdf").exists()


def test_run_writes_alignment_with_null_and_figures(finished_run):
    import pandas as pd

    for metric in ("mutual_knn", "cka_linear"):
        scores = xr.open_zarr(finished_run / f"results/alignment/emo/{metric}.zarr", consolidated=False)
        assert scores["score"].dims == ("model_a", "model_b", "layer_a", "layer_b")
        assert scores.sizes["model_a"] == scores.sizes["model_b"] == 3
        assert {"null_mean", "z_score", "p_value", "ci_low", "ci_high"} <= set(scores.data_vars)
        table = pd.read_csv(finished_run / f"results/alignment/emo/{metric}.csv")
        assert len(table) == 3 * 3 * 3 and table["p_value"].between(0, 1).all()  # best, last, named
        named = table[(table.summary == "named") & (table.model_a == "cnn_a")]
        assert set(named["layer_a"]) == {"layer2"}
        cross = pd.read_csv(finished_run / f"results/crossmodal/emo/{metric}.csv")
        assert set(cross["model_a"]) == {"cnn_a", "vit_a"} and set(cross["model_b"]) == {"text_a"}
        for kind in ("alignment", "crossmodal", "prh"):
            assert (finished_run / f"results/figures/{kind}/emo/{metric}.png").stat().st_size > 10_000
        # calibrated scores and q-values beside every score with a null; intervals contain their estimate
        for t in (table, cross):
            assert {"tau", "calibrated", "q_value"} <= set(t.columns) and t["calibrated"].dropna().between(0, 1).all()
            assert ((t["ci_low"] <= t["score"]) & (t["score"] <= t["ci_high"]))[t["score"].notna()].all()
        prh = pd.read_csv(finished_run / f"results/prh/emo/{metric}.csv")
        assert {"calibrated", "q_value", "tau"} <= set(prh.columns)
    from convergence.report import interval_check

    assert interval_check(finished_run / "results").set_index("table").loc["all", "excluding"] == 0
    kernel = xr.open_zarr(finished_run / "results/kernels/emo/cnn_a.zarr", consolidated=False)
    assert kernel["neighbors"].shape == (5, 40, 5) and "gram" in kernel


def test_run_writes_alignment_against_the_number_of_stimuli(finished_run):
    """The default sizes (32 ... 512) on a 40-stimulus dataset: 32 and the full set; every pair once."""
    import pandas as pd

    table = pd.read_csv(finished_run / "results/sample_size/emo/mutual_knn.csv")
    assert sorted(table["n_stimuli"].unique()) == [32, 40]
    assert len(table) == 2 * 3 and table["p_value"].between(0, 1).all()
    assert {"tau", "calibrated", "q_value"} <= set(table.columns) and table["q_value"].between(0, 1).all()
    assert (table["model_a"] < table["model_b"]).all()
    curve = xr.open_zarr(finished_run / "results/sample_size/emo/mutual_knn.zarr", consolidated=False)
    assert list(curve.attrs["sizes_left_out"]) == [64, 128, 256, 512]
    assert (finished_run / "results/figures/sample_size/emo/mutual_knn.png").stat().st_size > 10_000


def test_rerun_with_no_change_schedules_nothing(finished_run):
    assert scheduled(finished_run) == set()


def test_touching_scripts_and_library_reruns_nothing(finished_run):
    for path in [ROOT / "scripts/embed.py", ROOT / "scripts/stimuli.py", ROOT / "src/convergence/embed.py"]:
        os.utime(path)
    assert scheduled(finished_run) == set()


# A phrase of each figure kind's caption (workflow/report/<analysis>/<rule>.rst), by figure folder.
CAPTION_PHRASES = {
    "overview": "What every model stored on dataset",
    "alignment": "Model x model alignment on",
    "crossmodal": "Vision (rows) x language (columns) alignment",
    "prh": "The Platonic Representation Hypothesis plot",
    "layers/{dataset}/grid": "Layer x layer similarity on",
    "layers/{dataset}/depth": "Where along depth models differ",
    "layers/{dataset}/smoothness": "How smoothly representations change with depth",
    "layers/{dataset}/readout": "How much low-level image information each layer keeps",
    "layers/{dataset}/diagonal": "Left: one point per layer of model A and ordered model pair",
    "consistency/{metric}/matrices": "Consistency of model-to-model similarity across datasets",
    "consistency/{metric}/distributions": "main figure for metric",
    "consistency/{metric}/behaviour": "Does similarity predict behaviour?",
    "dispersion": "Per-stimulus dispersion on",
    "dispersion_alignment": "Vision x language alignment on stimulus subsets chosen by dispersion",
    "dispersion_ratio": "The low / high dispersion alignment ratio",
    "sample_size": "against the number of stimuli",
    "taxonomy/{dataset}/coherence": "against the visual coherence of the images",
    "taxonomy/{dataset}/removal": "Cross-modal taxonomic generalisation (study 002)",
    "taxonomy/{dataset}/shuffle": "Counterfactual image-label maps (study 002)",
}


def caption_phrase(figure: Path) -> str:
    """The caption phrase of a figure under results/figures/ (its folder, or folder/<wildcard>/stem)."""
    parts = figure.parts
    for key in (f"{parts[0]}/{{dataset}}/{figure.stem}", f"{parts[0]}/{{metric}}/{figure.stem}", parts[0]):
        if key in CAPTION_PHRASES:
            return CAPTION_PHRASES[key]
    raise AssertionError(f"no caption phrase known for figure {figure}: add one to CAPTION_PHRASES")


def check_report(workdir: Path, tmp_path: Path, expected_config: str) -> str:
    """Build `snakemake --report` in a finished run and check it: it runs no job, and it holds every figure
    the run made (PNG) with its caption, the workflow description and the run's config. Returns the HTML."""
    results = workdir / "results"
    before = {p: p.stat().st_mtime_ns for p in results.rglob("*")}
    html_path = tmp_path / "report.html"
    out = snakemake(workdir, "--report", str(html_path))
    assert "Finished jobid" not in out.stdout + out.stderr
    assert {p: p.stat().st_mtime_ns for p in results.rglob("*")} == before, "building the report changed results"
    html = html_path.read_text()
    figures = sorted(p.relative_to(results / "figures") for p in (results / "figures").rglob("*.png"))
    assert figures
    for figure in figures:
        assert f"results/figures/{figure.as_posix()}" in html, figure
        assert caption_phrase(figure) in html, figure
    assert "measures how similarly neural networks represent the same stimuli" in html
    assert expected_config in html
    assert r'<details id=\"run-config\">' in html  # the config sits in a folded block (JSON-escaped in the page)
    assert "{{" not in html  # every caption's template was rendered
    return html


def test_report_has_every_figure_with_its_caption_and_the_config(finished_run, tmp_path):
    html = check_report(finished_run, tmp_path, r'\"n_permutations\": 5')
    for category in ("Overview", "Alignment", "Cross-modal", "PRH", "Layers"):
        assert f'"{category}"' in html
    # the captions' templates see the job's wildcards and the config
    assert "shuffled 5 times" in html and r'reference model <tt class=\"docutils literal\">cnn_a' in html


# Injected into a copy of the report: after the page has rendered, note where the introduction and the rule
# graph lie, open the first category's first subcategory and its first figure, note where the figure lies and
# where a figure far larger than the window lies in its place, and write it all as JSON into <pre id="probe">
# (read back with chromium --dump-dom).
REPORT_PROBE = """<script>
(function () {
  const out = {steps: [], window: [innerWidth, innerHeight]};
  const box = (el) => { if (!el) return null; const r = el.getBoundingClientRect();
    return {top: r.top, bottom: r.bottom, left: r.left, right: r.right}; };
  const menu = () => [...document.querySelectorAll("a")].filter((a) => a.textContent.trim());
  const click = (a) => { out.steps.push(a ? a.textContent.trim() : null); if (a) a.click(); };
  const done = () => { const pre = document.createElement("pre"); pre.id = "probe";
    pre.textContent = JSON.stringify(out); document.body.appendChild(pre); };
  setTimeout(() => {
    const intro = [...document.querySelectorAll("p")].find((p) => p.textContent.includes("measures how similarly"));
    out.intro = box(intro);
    out.rulegraph = box(document.getElementById("rulegraph"));
    const config = document.getElementById("run-config");
    out.config_open = config ? config.open : null;
    const first = Object.keys(categories).sort((a, b) => a.localeCompare(b))[0];
    click(menu().find((a) => a.textContent.trim() === first));
    setTimeout(() => {
      // a category with one subcategory opens its results at once; else open the first subcategory
      const sub = Object.keys(categories[first]).sort((a, b) => a.localeCompare(b))[0];
      const link = menu().find((a) => a.textContent.trim() === sub);
      if (link) click(link);
      setTimeout(() => {
        click(document.querySelector("td div[role=group] a"));
        setTimeout(() => { const img = document.querySelector("div.grow.h-screen img");
          out.figure = box(img);
          if (!img) { done(); return; }
          // a figure far taller and wider than the window, shown in the same place
          const canvas = document.createElement("canvas"); canvas.width = 3000; canvas.height = 4000;
          img.src = canvas.toDataURL();
          setTimeout(() => { out.tall_figure = box(img); done(); }, 800);
        }, 800);
      }, 800);
    }, 800);
  }, 1500);
})();
</script>"""


def report_layout(html: str, tmp_path: Path) -> dict:
    """Render the report in headless Chromium (1400 x 1000 window) with REPORT_PROBE and return what it noted."""
    import json

    chromium = shutil.which("chromium")
    assert chromium, "headless Chromium is missing: apt-get install chromium (make test installs it)"
    page = tmp_path / "probed.html"
    at = html.rindex("</body>")
    page.write_text(html[:at] + REPORT_PROBE + html[at:])
    proc = subprocess.run(
        [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={tmp_path / 'chrome'}",
         "--window-size=1400,1000", "--virtual-time-budget=15000", "--dump-dom", page.as_uri()],
        capture_output=True, text=True, timeout=180,
    )
    found = re.search(r'<pre id="probe">(.*?)</pre>', proc.stdout, re.S)
    assert found, f"the report did not render in Chromium:\n{proc.stderr[-3000:]}"
    import html as html_module

    return json.loads(html_module.unescape(found.group(1)))


def test_report_in_a_browser_shows_the_introduction_and_the_first_figure_without_scrolling(finished_run, tmp_path):
    html = check_report(finished_run, tmp_path, r'\"n_permutations\": 5')
    layout = report_layout(html, tmp_path)
    width, height = layout["window"]
    intro, graph, figure = layout["intro"], layout["rulegraph"], layout["figure"]
    assert intro and 0 <= intro["top"] and intro["bottom"] <= height, layout  # the Workflow page opens at its top
    assert graph and 0 <= graph["top"] < height, layout  # the rule graph starts in view
    assert layout["config_open"] is False  # the config is folded, so it cannot push the text away
    assert None not in layout["steps"] and layout["steps"][0], layout  # category, [subcategory,] figure button
    assert figure, layout
    for shown in (figure, layout["tall_figure"]):  # the whole figure within the window, a huge one scaled down
        inside = 0 <= shown["top"] and shown["bottom"] <= height + 1 and 0 <= shown["left"] and shown["right"] <= width + 1
        assert inside, layout


def jobs_after(workdir: Path, mutate, base: dict = TINY_CONFIG) -> set[tuple[str, str]]:
    """Jobs a dry run schedules after ``mutate(config)`` (a copy of ``base``, the config the run finished on);
    ``base`` is restored afterwards."""
    cfg = copy.deepcopy(base)
    mutate(cfg)
    write_config(workdir, cfg)
    try:
        return scheduled(workdir)
    finally:
        write_config(workdir, base)


def per_model_jobs(jobs, model: str) -> set[tuple[str, str]]:
    per_model = {j for j in jobs if "model=" in j[1]}
    assert per_model and all(f"model={model}" in w for _, w in per_model), jobs
    return per_model


def add_cnn_b(cfg):
    cfg["models"]["cnn_b"] = {**TINY_CNN, "name": "resnet10t"}


def test_adding_a_model_schedules_only_its_jobs(finished_run):
    jobs = jobs_after(finished_run, add_cnn_b)
    per_model = per_model_jobs(jobs, "cnn_b")
    assert {("embed", "dataset=emo, model=cnn_b"), ("kernel", "dataset=emo, model=cnn_b")} <= jobs
    assert not any(rule == "stimuli" for rule, _ in jobs)
    # whatever else runs is an aggregate over models (figures, alignment), never another model's job
    assert all(rule in AGGREGATE_RULES or rule == "all" for rule, w in jobs - per_model), jobs


def test_changing_one_models_parameters_reruns_only_that_model(finished_run):
    per_model_jobs(jobs_after(finished_run, lambda cfg: cfg["models"]["vit_a"].update(pooling="mean")), "vit_a")


def test_relabelling_a_model_reruns_only_aggregates(finished_run):
    """A model's objective/family only label it: no extraction or kernel job reruns, only the tables."""
    jobs = jobs_after(finished_run, lambda cfg: cfg["models"]["vit_a"].update(objective="self-supervised"))
    assert jobs and all(rule in AGGREGATE_RULES or rule == "all" for rule, _ in jobs), jobs
    assert ("alignment", "dataset=emo, metric=mutual_knn") in jobs


EVERY_EXTRACTION = {("embed", f"dataset=emo, model={m}") for m in TINY_CONFIG["models"]} | {
    ("embed_blocks", "dataset=emo, model=cnn_a")}


def test_settings_that_cannot_change_the_numbers_rerun_nothing(finished_run):
    """On a CPU-only run the precision is float32 whatever is asked, and the order of the models' entries
    decides no number (the tiny run's stores, reindexed by model, are bit-identical after a reorder)."""
    if extraction_device(TINY_CONFIG) != "cpu":
        pytest.skip("this machine extracts on a GPU")
    assert jobs_after(finished_run, lambda c: c.update(precision="bfloat16")) == set()
    assert jobs_after(finished_run, lambda c: c.update(models=dict(reversed(c["models"].items())))) == set()


def test_settings_that_change_the_numbers_rerun_extraction(finished_run):
    """The thread count on the CPU, the device (and on CUDA the precision), and a model's batch size (it
    changes language models' padding and CNN convolution algorithms, benchmarks/invariance.py)."""
    assert EVERY_EXTRACTION <= jobs_after(finished_run, lambda c: c.update(embed_threads=2))
    assert EVERY_EXTRACTION <= jobs_after(finished_run, lambda c: c.update(device="cuda"))
    embeds = {j for j in jobs_after(finished_run, lambda c: c["models"]["text_a"].update(batch_size=5))
              if j[0].startswith("embed")}
    assert embeds == {("embed", "dataset=emo, model=text_a")}


@pytest.mark.parametrize("change", [{"models": ["cnn_a", "vit_a", "text_a"]}, {"domain": "multi"}])
def test_listing_models_or_naming_the_domain_does_not_rebuild_its_stimuli(finished_run, change):
    jobs = jobs_after(finished_run, lambda cfg: cfg["datasets"]["emo"].update(change))
    assert not any(rule in ("stimuli", "embed", "kernel") for rule, _ in jobs), jobs


def test_one_figure_regenerates_alone_from_cached_numbers(finished_run):
    out = snakemake(finished_run, "-n", "-f", "results/figures/alignment/emo/mutual_knn.png", "--allowed-rules", "figure_alignment")
    text = out.stdout + out.stderr
    assert re.search(r"figure_alignment\s+1\b", text) and re.search(r"total\s+1\b", text), text


AGGREGATE_RULES = {"figure_overview", "alignment", "crossmodal", "figure_alignment", "figure_crossmodal", "prh", "figure_prh",
                   "competence", "layers", "layers_readout", "figure_layers_grid", "figure_layers_depth",
                   "figure_layers_smoothness", "figure_layers_readout", "figure_layers_diagonal", "sample_size",
                   "figure_sample_size"}
LAYERS_RULES = {"embed_blocks", "kernel_blocks", "lowlevel", "layers", "layers_readout", "figure_layers_grid",
                "figure_layers_depth", "figure_layers_smoothness", "figure_layers_readout", "figure_layers_diagonal"}


def test_layers_analysis_outputs(finished_run):
    import json

    import numpy as np
    import pandas as pd

    out = finished_run / "results/layers/emo"
    blocks = xr.open_zarr(finished_run / "results/embeddings_blocks/emo/cnn_a.zarr", consolidated=False)
    assert blocks.attrs["layers"][0] == "layer1_0" and len(blocks.attrs["layers"]) == 8  # resnet18: 8 blocks
    assert not (finished_run / "results/embeddings_blocks/emo/vit_a.zarr").exists()  # a ViT is per block already
    scores = xr.open_zarr(out / "matrices.zarr", consolidated=False)
    assert [str(m) for m in scores["model_a"].values] == ["cnn_a", "vit_a"]  # vision models only
    for x, m in enumerate(["cnn_a", "vit_a"]):
        n = int(scores["n_layers_a"].values[x])
        np.testing.assert_allclose(np.diag(scores["score"].values[x, x, :n, :n]), 1.0, atol=1e-5)
        d = scores["depth_a"].values[x, :n]
        assert ((d > 0) & (d <= 1)).all() and (np.diff(d) > 0).all()
    summary = json.loads((out / "summary.json").read_text())
    assert summary["layers"] == {"cnn_a": 8, "vit_a": 12} and summary["diagonal"]["n_pairs"] == 2
    assert 0 <= summary["diagonal"]["fraction_p_value"] <= 1
    assert {"positions", "lowlevel", "smoothness"} <= set(summary["claims"])
    readout = pd.read_csv(out / "readout.csv")
    assert set(readout["statistic"]) == {"luminance", "contrast", "saturation", "high_frequency"}
    assert len(readout) == 4 * (8 + 12) and readout["r2"].le(1).all()
    for kind in ("grid", "depth", "smoothness", "readout"):
        assert (finished_run / f"results/figures/layers/emo/{kind}.png").stat().st_size > 10_000


def test_adding_layers_to_a_finished_run_reruns_no_embed_or_kernel(finished_run, tmp_path):
    """A run without the layers products (as a default run made before this analysis existed): asking for
    them schedules only the layers analysis' own jobs, never an `embed`, `kernel` or `alignment` job."""
    workdir = tmp_path / "run"
    shutil.copytree(finished_run, workdir, symlinks=True)
    for folder in ("results/layers", "results/embeddings_blocks", "results/kernels_blocks", "results/lowlevel",
                   "results/figures/layers"):
        shutil.rmtree(workdir / folder)
    jobs = scheduled(workdir)
    assert {rule for rule, _ in jobs} == LAYERS_RULES | {"all"}, jobs
    assert {w for rule, w in jobs if rule == "embed_blocks"} == {"dataset=emo, model=cnn_a"}


def test_bad_config_fails_before_any_job(tmp_path):
    cfg = copy.deepcopy(TINY_CONFIG)
    cfg["models"]["cnn_a"]["source"] = "timmm"
    write_config(tmp_path, cfg)
    proc = snakemake(tmp_path, "-n", check=False)
    assert proc.returncode != 0
    err = proc.stdout + proc.stderr
    assert "config.models.cnn_a.source" in err and "'timmm'" in err
    assert not (tmp_path / "results").exists()


def test_default_config_builds_dag(tmp_path):
    """config.yaml plans its jobs; --config overrides one value without dropping the default config."""
    proc = subprocess.run(
        [*SNAKEMAKE, "-n", "--quiet", "rules", "--config", "device=cpu"], cwd=ROOT, capture_output=True, text=True, timeout=300,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    assert proc.returncode == 0, proc.stderr[-4000:]


def test_prh_study_builds_dag(tmp_path):
    """The full PRH setup plans its 24 extractions without touching the hub."""
    assert re.search(r"embed\s+24\b", study_plan("prh", tmp_path))


def test_added_model_computes_only_its_own_pair_scores(finished_run, tmp_path):
    """After adding a fourth model, the alignment job reuses the 9 existing pair results and computes the
    7 pairs that involve the new model (16 ordered pairs in all): the pair cache gains exactly 7 entries.
    Works on a copy of the finished run, so the other tests see it unchanged whatever the order."""
    workdir = tmp_path / "wf"
    shutil.copytree(finished_run, workdir, symlinks=True)
    cfg = copy.deepcopy(TINY_CONFIG)
    add_cnn_b(cfg)
    write_config(workdir, cfg)
    caches = {m: workdir / f"results/.cache/pairs/emo/{m}" for m in TINY_CONFIG["alignment"]["metrics"]}
    before = {m: set(c.glob("*.pkl")) for m, c in caches.items()}
    assert all(len(entries) == 9 for entries in before.values()), before
    snakemake(workdir, "--cores", "2")
    for metric, cache in caches.items():
        assert len(set(cache.glob("*.pkl")) - before[metric]) == 7, metric
        scores = xr.open_zarr(workdir / f"results/alignment/emo/{metric}.zarr", consolidated=False)
        assert scores.sizes["model_a"] == 4


# --------------------------------------------------------------------------- a lost result is rebuilt


def results_of(workdir: Path) -> list[str]:
    """Every result a user reads in a finished run: each store (a ``.zarr`` folder) and each CSV or JSON table
    under results/ (figures, the pair caches and the stimulus manifests aside), relative to ``workdir``."""
    found = []
    for path in sorted((workdir / "results").rglob("*")):
        rel = path.relative_to(workdir)
        if rel.parts[1] in ("figures", "manifests", ".cache") or any(p.endswith(".zarr") for p in rel.parts[:-1]):
            continue
        if path.suffix == ".zarr" or (path.is_file() and path.suffix in (".csv", ".json")):
            found.append(rel.as_posix())
    return found


@contextlib.contextmanager
def set_aside(workdir: Path, paths):
    """``paths`` (relative to ``workdir``) lost while the block runs: moved out of ``results/`` and moved back
    afterwards unchanged (a rename keeps their modification times), so the finished run stays up to date."""
    hold = workdir / "set_aside"
    hold.mkdir()
    moved = []
    try:
        for i, path in enumerate(paths):
            os.rename(workdir / path, hold / str(i))
            moved.append((workdir / path, hold / str(i)))
        yield
    finally:
        for path, kept in moved:
            os.rename(kept, path)
        shutil.rmtree(hold)


def check_every_result_is_a_target(workdir: Path, kinds: set[str]) -> None:
    """With every store and table of a finished run lost at once (figures kept), the dry run plans to
    rebuild each of them: each is a target of `rule all` (Snakemake rebuilds no lost intermediate of an
    up-to-date target). ``kinds``: the results/ folders the run must have written."""
    results = results_of(workdir)
    assert {r.split("/")[1] for r in results} == kinds, results
    with set_aside(workdir, results):
        planned = set().union(*planned_jobs(workdir).values())
    assert set(results) <= planned, sorted(set(results) - planned)
    assert scheduled(workdir) == set()


def test_every_result_of_the_run_is_a_target(finished_run):
    check_every_result_is_a_target(finished_run, {
        "stimuli", "embeddings", "kernels", "alignment", "crossmodal", "competence", "prh", "sample_size", "layers",
        "lowlevel", "embeddings_blocks", "kernels_blocks"})


@pytest.mark.parametrize("lost", [
    "results/stimuli/emo.zarr", "results/embeddings/emo/text_a.zarr", "results/kernels/emo/vit_a.zarr",
    "results/alignment/emo/mutual_knn.zarr", "results/competence/emo.csv", "results/layers/emo/readout.csv",
])
def test_a_lost_result_plans_exactly_it_and_what_depends_on_it(finished_run, lost):
    """Deleting one result plans its job and every job downstream of it, nothing else: the same jobs as
    forcing that file's job to rerun (``-R``) on the intact run."""
    forced = scheduled(finished_run, "-R", lost)
    with set_aside(finished_run, [lost]):
        jobs = planned_jobs(finished_run)
    assert set(jobs) == forced, set(jobs) ^ forced
    assert any(lost in outputs for outputs in jobs.values()), jobs
    if lost == "results/alignment/emo/mutual_knn.zarr":  # the rest of the chain of one metric, by hand
        assert {rule for rule, _ in jobs} == {"alignment", "crossmodal", "prh", "figure_alignment",
                                              "figure_crossmodal", "figure_prh", "all"}
        assert all("metric=mutual_knn" in w for rule, w in jobs if rule != "all"), jobs
    if lost == "results/kernels/emo/vit_a.zarr":  # no extraction, no other model's kernel
        assert ("kernel", "dataset=emo, model=vit_a") in jobs
        assert not any(rule in ("stimuli", "embed") or "model=" in w and "vit_a" not in w for rule, w in jobs)


def test_a_lost_table_is_rebuilt_identical_and_nothing_else_runs(finished_run):
    """A real rerun after deleting the competence table: the table comes back with the same content, the PRH
    numbers and figures that read it are redone, no other result is touched; then nothing is left to do."""
    lost = finished_run / "results/competence/emo.csv"
    before = lost.read_bytes()
    stamps = {r: (finished_run / r).stat().st_mtime_ns for r in results_of(finished_run)}
    lost.unlink()
    snakemake(finished_run, "--cores", "2")
    assert lost.read_bytes() == before
    redone = {r for r in results_of(finished_run) if (finished_run / r).stat().st_mtime_ns != stamps[r]}
    assert redone == {"results/competence/emo.csv", *(f"results/prh/emo/{m}.{ext}" for m in ("mutual_knn", "cka_linear")
                                                       for ext in ("csv", "json"))}, redone
    assert scheduled(finished_run) == set()


# ------------------------------------------------------------------------- stimuli follow their files


def _png(path: Path, seed: int) -> None:
    from PIL import Image
    import numpy as np

    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    # stored without compression: every such image has the same size, so one can replace another by `cp -p`
    Image.fromarray(rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)).save(path, compress_level=0)


FILES_CONFIG = {
    "progress": False,
    "embed_threads": 1,
    "datasets": {
        "pics": {"source": "image_folder", "path": "pics", "image_size": 16},
        "table": {"source": "csv", "path": "table/stimuli.csv", "image_size": 16},
    },
    "models": {"cnn_a": dict(TINY_CNN)},
    "kernels": {"k": 3},
    "alignment": {"metrics": ["mutual_knn"], "n_permutations": 5, "n_bootstrap": 5},
    "competence": {"k": 3},  # six labelled images: the k-NN classifier's k must stay below that
}


@pytest.fixture(scope="module")
def files_run(tmp_path_factory):
    """A finished run on an image folder (two classes) and a CSV naming images of its own folder."""
    workdir = tmp_path_factory.mktemp("files")
    for i in range(6):
        _png(workdir / "pics" / ("cat" if i % 2 else "dog") / f"{i}.png", i)
        _png(workdir / "table" / "img" / f"{i}.png", 10 + i)
    rows = "".join(f"img/{i}.png,thing number {i}\n" for i in range(6))
    (workdir / "table" / "stimuli.csv").write_text("path,caption\n" + rows)
    write_config(workdir, FILES_CONFIG)
    snakemake(workdir, "--cores", "2")
    return workdir


def replace_in_place(path: Path, seed: int) -> None:
    """Overwrite an existing image with a different one, as an editor saving over it does (the folder's
    own modification time does not change)."""
    folder_mtime = path.parent.stat().st_mtime_ns
    _png(path, seed)
    os.utime(path.parent, ns=(folder_mtime, folder_mtime))


def of_dataset(jobs, dataset):
    return {rule for rule, w in jobs if f"dataset={dataset}" in w}


def test_stimuli_rerun_exactly_when_their_files_change(files_run):
    assert scheduled(files_run) == set()  # nothing touched: nothing to do
    assert scheduled(files_run) == set()  # and building the DAG itself changed nothing

    replace_in_place(files_run / "pics" / "cat" / "3.png", seed=99)
    jobs = scheduled(files_run)
    assert {"stimuli", "embed", "figure_overview"} <= of_dataset(jobs, "pics"), jobs
    assert not of_dataset(jobs, "table"), jobs  # the other dataset's chain is not stale
    snakemake(files_run, "--cores", "2")
    assert scheduled(files_run) == set()

    replace_in_place(files_run / "table" / "img" / "4.png", seed=98)  # an image the CSV names
    jobs = scheduled(files_run)
    assert {"stimuli", "embed", "figure_overview"} <= of_dataset(jobs, "table"), jobs
    assert not of_dataset(jobs, "pics"), jobs
    snakemake(files_run, "--cores", "2")

    # replaced by `cp -p` with an image of the same size and modification time: seen all the same
    target, new = files_run / "pics" / "dog" / "2.png", files_run / "replacement.png"
    old = target.stat()
    _png(new, seed=97)
    os.utime(new, ns=(old.st_atime_ns, old.st_mtime_ns))
    subprocess.run(["cp", "-p", str(new), str(target)], check=True)
    assert (target.stat().st_size, target.stat().st_mtime_ns) == (old.st_size, old.st_mtime_ns)
    assert "stimuli" in of_dataset(scheduled(files_run), "pics")
    snakemake(files_run, "--cores", "2")

    _png(files_run / "pics" / "dog" / "new.png", seed=7)  # an added image
    assert "stimuli" in of_dataset(scheduled(files_run), "pics")
def test_causal_lms_are_scored_on_the_fixed_text_and_prh_uses_it(tmp_path):
    """Two causal LMs (mean and last-token pooling) on tuxpaint-like data: each embed store carries the fixed
    text's bits per byte, the competence table reports it beside the caption mean, the PRH table uses it;
    only the causal LMs' jobs depend on the text."""
    import json

    import pandas as pd

    text = tmp_path / "text.txt"
    text.write_text("A fixed English text that every causal language model is scored on. " * 8)
    cfg = {
        "progress": False, "embed_threads": 1,
        "datasets": {"emo": {"source": "emoji", "limit": 24, "seed": 2, "image_size": 32}},
        "models": {"cnn_a": dict(TINY_CNN), "gpt_mean": dict(TINY_GPT),
                   "gpt_last": {**TINY_GPT, "pooling": "last", "seed": 1}, "text_a": dict(TINY_BERT)},
        "kernels": {"k": 5},
        "alignment": {"metrics": ["mutual_knn"], "n_permutations": 3, "n_bootstrap": 3},
        "competence": {"text": str(text)},
        "prh": {"reference": "cnn_a"},
    }
    write_config(tmp_path, cfg)
    snakemake(tmp_path, "--cores", "2")
    for model, pooling in (("gpt_mean", "mean over attention mask"), ("gpt_last", "last non-padding token")):
        ds = xr.open_zarr(tmp_path / f"results/embeddings/emo/{model}.zarr", consolidated=False)
        info = ds.attrs["text_bits_per_byte"]
        assert info["text"] == "text.txt" and info["bytes"] == len(text.read_bytes()) and info["bits_per_byte"] > 0
        assert ds.attrs["provenance"]["pooling"] == pooling
    bert = xr.open_zarr(tmp_path / "results/embeddings/emo/text_a.zarr", consolidated=False)
    assert "text_bits_per_byte" not in bert.attrs
    table = pd.read_csv(tmp_path / "results/competence/emo.csv")
    assert set(table[table.measure == "text_bits_per_byte"]["model"]) == {"gpt_mean", "gpt_last"}
    info = json.loads((tmp_path / "results/prh/emo/mutual_knn.json").read_text())
    assert info["x_label"] == "competence (1 - bits per byte on the fixed text)"
    # a new text reruns the causal LMs' extractions (and what follows), not the others'
    text.write_text("Another text. " * 30)
    embeds = {w for r, w in scheduled(tmp_path) if r == "embed"}
    assert embeds == {"dataset=emo, model=gpt_mean", "dataset=emo, model=gpt_last"}, embeds


CONSISTENCY_CONFIG = {
    "progress": False,
    "embed_threads": 1,
    "datasets": {
        "emo": {"source": "emoji", "limit": 24, "seed": 1, "image_size": 32},
        "dig": {"source": "digits", "per_class": 4, "seed": 0},
        "dig2": {"source": "digits", "per_class": 4, "seed": 1},
    },
    "models": {"cnn_a": {**TINY_CNN, "objective": "supervised"}, "vit_a": dict(TINY_VIT),
               "cnn_b": {**TINY_CNN, "name": "resnet10t"}, "text_a": dict(TINY_BERT)},
    "alignment": {"enabled": False}, "crossmodal": {"enabled": False}, "competence": {"enabled": False},
    "prh": {"enabled": False}, "layers": {"enabled": False}, "dispersion": {"enabled": False},
    "sample_size": {"enabled": False},
    "consistency": {"metrics": ["cka_linear_unbiased", "cka_rbf"], "n_permutations": 20, "probe_splits": 2,
                    "probe_inner_splits": 2},
}


@pytest.fixture(scope="module")
def consistency_run(tmp_path_factory):
    return finished_workdir(tmp_path_factory, "consistency", CONSISTENCY_CONFIG)


def test_consistency_run_writes_tables_and_figures(consistency_run):
    import pandas as pd

    for metric in ("cka_linear_unbiased", "cka_rbf"):
        table = pd.read_csv(consistency_run / f"results/consistency/{metric}/consistency.csv")
        every = table[table.set_pair == "all"]
        assert len(every) == 3 and set(every.n_models) == {3}  # vision models only: text_a is left out
        assert every["spearman"].between(-1, 1).all() and (every.n_pairs == 3).all()
        assert "random x supervised" in set(table.set_pair)
        links = pd.read_csv(consistency_run / f"results/consistency/{metric}/behaviour.csv")
        assert set(links.dataset) == {"dig", "dig2"}  # emoji has no labels: no probe
        assert links["p_value"].between(0, 1).all() and (links.n_pairs == 3).all()
        for name in ("matrices", "distributions", "behaviour"):
            assert (consistency_run / f"results/figures/consistency/{metric}/{name}.png").stat().st_size > 10_000
    probes = pd.read_csv(consistency_run / "results/consistency/probes/dig.csv")
    assert set(probes.model) == {"cnn_a", "vit_a", "cnn_b"} and probes["accuracy"].between(0, 1).all()
    for row in probes.itertuples():  # the default layer: each model's last stored layer
        store = xr.open_zarr(consistency_run / f"results/embeddings/dig/{row.model}.zarr", consolidated=False)
        assert row.layer == store.attrs["layers"][-1]


def test_consistency_report_has_its_figures_and_captions(consistency_run, tmp_path):
    html = check_report(consistency_run, tmp_path, r'\"probe_splits\": 2')
    assert '"Consistency"' in html and '"cka_rbf"' in html  # category and subcategory (the metric)


def test_every_result_of_the_consistency_run_is_a_target(consistency_run):
    check_every_result_is_a_target(consistency_run, {"stimuli", "embeddings", "consistency"})


def test_adding_a_dataset_reruns_only_its_jobs_and_the_consistency_aggregate(consistency_run):
    cfg = copy.deepcopy(CONSISTENCY_CONFIG)
    cfg["datasets"]["dig3"] = {"source": "digits", "per_class": 4, "seed": 2}
    write_config(consistency_run, cfg)
    try:
        jobs = scheduled(consistency_run)
    finally:
        write_config(consistency_run, CONSISTENCY_CONFIG)
    per_dataset = {j for j in jobs if "dataset=" in j[1]}
    assert per_dataset and all("dataset=dig3" in w for _, w in per_dataset), jobs
    assert {("stimuli", "dataset=dig3"), ("embed", "dataset=dig3, model=cnn_a"),
            ("consistency_similarity", "metric=cka_rbf, dataset=dig3")} <= jobs
    aggregates = {"consistency", "figure_consistency_matrices", "figure_consistency_distributions",
                  "figure_consistency_behaviour"}
    assert {rule for rule, _ in jobs - per_dataset} <= aggregates | {"all"}, jobs
    assert ("consistency", "metric=cka_linear_unbiased") in jobs


def test_consistency_study_builds_dag(tmp_path):
    """studies/consistency.yaml (hub models by objective, hub datasets) plans its jobs without the hub."""
    text = study_plan("consistency", tmp_path)
    assert re.search(r"consistency\s+3\b", text) and re.search(r"consistency_similarity\s+\d+", text), text
