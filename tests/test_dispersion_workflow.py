"""The dispersion analysis in the workflow: its rules run on a tiny config and write labelled stores and
figures; adding or changing a model reruns only what depends on it; the study config plans its jobs."""
import re

import numpy as np
import pandas as pd
import pytest

from conftest import TINY_BERT, TINY_CNN, TINY_VIT
from test_workflow import check_every_result_is_a_target, check_report, finished_workdir, scheduled, study_plan
from test_workflow import jobs_after as workflow_jobs_after

pytestmark = pytest.mark.workflow

# random-init tiny models; their objective labels only decide group membership
CONFIG = {
    "progress": False,
    "embed_threads": 1,
    "datasets": {"emo": {"source": "emoji", "limit": 40, "seed": 1, "image_size": 32}},
    "models": {
        "cnn_a": {**TINY_CNN, "objective": "supervised"},
        "vit_a": {**TINY_VIT, "objective": "self-supervised"},
        "cnn_r": {**TINY_CNN, "name": "resnet10t"},  # objective random: out of the default group
        "text_a": dict(TINY_BERT),
    },
    "kernels": {"k": 5},
    "alignment": {"enabled": False, "metrics": ["mutual_knn"]},
    "crossmodal": {"enabled": False},
    "competence": {"enabled": False},
    "prh": {"enabled": False},
    "layers": {"enabled": False},
    "sample_size": {"enabled": False},
    "dispersion": {
        "groups": {"vision": {"exclude_objectives": ["random"]}, "pair": {"models": ["cnn_a", "cnn_r"]}},
        "layers": {"cnn_a": "layer3"},
        "quantiles": [0.25, 0.5],
        "sizes": [8, 30],  # 30 > n / 2: skipped
        "metrics": ["mutual_knn", "cka_linear"],
        "n_random": 12,
        "n_bootstrap": 10,
    },
}
GROUPS = {"vision": ["cnn_a", "vit_a"], "pair": ["cnn_a", "cnn_r"]}
DISPERSION_RULES = {"dispersion", "dispersion_alignment", "figure_dispersion", "figure_dispersion_alignment",
                    "figure_dispersion_ratio"}


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return finished_workdir(tmp_path_factory, "disp", CONFIG)


def test_every_result_of_the_dispersion_run_is_a_target(run):
    check_every_result_is_a_target(run, {"stimuli", "embeddings", "kernels", "dispersion", "dispersion_alignment"})


def test_dispersion_stores_hold_each_groups_models_by_stimulus_id(run):
    from convergence.store import open_store

    stimuli = open_store(run / "results/stimuli/emo.zarr")
    ids = sorted(str(s) for s in stimuli["stimulus"].values)
    for group, models in GROUPS.items():
        disp = open_store(run / f"results/dispersion/emo/{group}.zarr", load=True)
        assert [str(s) for s in disp["stimulus"].values] == ids
        assert [str(m) for m in disp["model"].values] == models
        values = disp["dispersion"].values
        assert np.isfinite(values).all() and (values >= 0).all() and values.std() > 0
        np.testing.assert_allclose(disp["distance"].values.mean(axis=0), values)
        assert disp.attrs["converged"] == 1 and disp.attrs["group"] == group
        layers = dict(zip(disp["model"].values, disp["layer"].values))
        assert layers["cnn_a"] == "layer3"  # the configured layer
        kernel = open_store(run / f"results/kernels/emo/{models[1]}.zarr")
        assert layers[models[1]] == kernel.attrs["layers"][-1]  # default: the last layer


def test_dispersion_alignment_compares_low_high_and_random_subsets(run):
    from convergence.store import open_store

    for group in GROUPS:
        disp = open_store(run / f"results/dispersion/emo/{group}.zarr", load=True)
        res = open_store(run / f"results/dispersion_alignment/emo/{group}.zarr", load=True)
        assert list(res["criterion"].values) == ["q0.25", "q0.5", "n8"] and res.attrs["skipped_criteria"] == ["n30"]
        assert list(res["size"].values) == [10, 20, 8]
        assert list(res["vision"].values) == ["cnn_a", "vit_a", "cnn_r"] and list(res["language"].values) == ["text_a"]
        assert res["random"].shape == (3, 2, 3, 1, 12)
        # the low subset holds exactly the lowest-dispersion stimuli, the high subset the highest
        values = disp["dispersion"].values
        for c, size in enumerate(res["size"].values):
            low, high = res["low_member"].values[c], res["high_member"].values[c]
            assert low.sum() == high.sum() == size and not (low & high).any()
            assert values[low].max() <= np.sort(values)[size - 1] and values[high].min() >= np.sort(values)[-size]
        ratio = res["ratio"].values
        np.testing.assert_allclose(ratio, res["low"].values / res["high"].values)
        finite = np.isfinite(res["ratio_ci_low"].values)
        assert finite.any() and (res["ratio_ci_low"].values[finite] <= res["ratio_ci_high"].values[finite]).all()
        for side in ("ratio", "low", "high"):  # jackknife intervals contain their estimate
            est, lo, hi = (res[f].values for f in (side, f"{side}_ci_low", f"{side}_ci_high"))
            ok = np.isfinite(lo)
            assert ok.any() and ((lo[ok] <= est[ok]) & (est[ok] <= hi[ok])).all()
        # calibrated against the random subsets; q-values over the pairs of each criterion and metric
        for side in ("low", "high"):
            cal, tau, est = (res[f].values for f in (f"{side}_calibrated", f"{side}_tau", side))
            ok = np.isfinite(cal)
            assert ok.any() and (cal[ok] >= 0).all() and (cal[ok] <= 1).all()
            assert ((cal[ok] > 0) == (est[ok] > tau[ok] + 1e-9)).all()  # both metrics: higher is more similar
            q, p = res[f"{side}_q"].values, res[f"{side}_p"].values
            assert (q[np.isfinite(p)] >= p[np.isfinite(p)] - 1e-12).all()
        pct = res[["low_percentile", "high_percentile"]].to_array().values
        assert ((pct >= 0) & (pct <= 100)).all()
        table = pd.read_csv(run / f"results/dispersion_alignment/emo/{group}.csv")
        assert len(table) == 3 * 2 * 3 and set(table["metric"]) == {"mutual_knn", "cka_linear"}
        for kind in ("dispersion", "dispersion_alignment", "dispersion_ratio"):
            for ext in ("png", "pdf"):
                assert (run / f"results/figures/{kind}/emo/{group}.{ext}").stat().st_size > 10_000


def test_report_has_the_dispersion_figures_and_captions(run, tmp_path):
    html = check_report(run, tmp_path, r'\"n_random\": 12')
    assert '"Dispersion"' in html and "group <tt" in html  # the captions render the group wildcard


def test_rerun_schedules_nothing(run):
    assert scheduled(run) == set()


def jobs_after(workdir, mutate):
    return workflow_jobs_after(workdir, mutate, base=CONFIG)


def _by_rule(jobs):
    out = {}
    for rule, wildcards in jobs:
        out.setdefault(rule, set()).add(wildcards)
    return out


def test_adding_a_language_model_redoes_the_alignment_not_the_gpa(run):
    jobs = _by_rule(jobs_after(run, lambda cfg: cfg["models"].update(text_b={**TINY_BERT, "seed": 1})))
    assert jobs.pop("embed") == jobs.pop("kernel") == {"dataset=emo, model=text_b"}
    assert "dispersion" not in jobs and "figure_dispersion" not in jobs
    assert jobs["dispersion_alignment"] == {"dataset=emo, group=vision", "dataset=emo, group=pair"}
    assert set(jobs) - {"all", "figure_overview"} <= DISPERSION_RULES


def test_adding_a_vision_model_redoes_only_the_groups_it_joins(run):
    jobs = _by_rule(jobs_after(run, lambda cfg: cfg["models"].update(
        cnn_b={**TINY_CNN, "name": "resnet10t", "seed": 1, "objective": "supervised"})))
    assert jobs["dispersion"] == {"dataset=emo, group=vision"}  # not "pair" (a fixed model list)
    assert jobs["dispersion_alignment"] == {"dataset=emo, group=vision", "dataset=emo, group=pair"}
    random = _by_rule(jobs_after(run, lambda cfg: cfg["models"].update(cnn_r2={**TINY_CNN, "seed": 2})))
    assert "dispersion" not in random  # a random-weight control joins no group by default
    assert {w for r, ws in random.items() if r in ("embed", "kernel") for w in ws} == {"dataset=emo, model=cnn_r2"}


def test_changing_subset_options_keeps_the_gpa(run):
    jobs = _by_rule(jobs_after(run, lambda cfg: cfg["dispersion"].update(n_random=13)))
    assert set(jobs) == {"dispersion_alignment", "figure_dispersion_alignment", "figure_dispersion_ratio", "all"}, jobs
    layer = _by_rule(jobs_after(run, lambda cfg: cfg["dispersion"]["layers"].update(cnn_a="layer4")))
    assert layer["dispersion"] == {"dataset=emo, group=vision", "dataset=emo, group=pair"}


def test_disabling_the_analysis_drops_its_targets(run):
    assert jobs_after(run, lambda cfg: cfg["dispersion"].update(enabled=False)) == set()


def test_dispersion_study_builds_dag(tmp_path):
    """studies/dispersion.yaml plans its extractions and one GPA per group without touching the hub."""
    text = study_plan("dispersion", tmp_path)
    assert re.search(r"embed\s+11\b", text) and re.search(r"\bdispersion\s+3\b", text), text[-3000:]
    assert re.search(r"dispersion_alignment\s+3\b", text) and re.search(r"figure_dispersion_ratio\s+3\b", text)
