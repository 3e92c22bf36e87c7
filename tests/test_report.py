"""The README's generated numbers: read from a Snakemake run log and the results, never typed by hand."""
import pytest

from convergence.report import _replace_block, run_timing

LOG = """\
  Snakemake version: 9.27.1
Provided cores: 2
[Sat Nov 28 03:44:05 2026]
localrule stimuli:
    output: results/stimuli/emoji.zarr
    jobid: 2
    wildcards: dataset=emoji
[Sat Nov 28 03:44:06 2026]
rule embed:
    jobid: 12
    wildcards: dataset=emoji, model=cnn
[Sat Nov 28 03:44:09 2026]
Finished jobid: 2 (Rule: stimuli)
1 of 2 steps (50%) done
[Sat Nov 28 03:45:16 2026]
Finished jobid: 12 (Rule: embed)
2 of 2 steps (100%) done
"""


def test_run_timing_reads_each_jobs_start_and_end(tmp_path):
    path = tmp_path / "run.snakemake.log"
    path.write_text(LOG)
    table, info = run_timing(path)
    seconds = dict(zip(table["rule"], table["seconds"]))
    assert seconds == {"stimuli": 4.0, "embed": 70.0}
    assert dict(zip(table["rule"], table["wildcards"]))["embed"] == "dataset=emoji, model=cnn"
    assert info["elapsed"] == 71.0 and info["cores"] == 2 and info["snakemake"] == "9.27.1" and info["complete"]


def test_a_log_without_finished_jobs_is_refused(tmp_path):
    path = tmp_path / "dry.log"
    path.write_text("Building DAG of jobs...\nNothing to be done.\n")
    with pytest.raises(ValueError, match="no finished job"):
        run_timing(path)


def test_generated_blocks_replace_only_their_own_text():
    text = "intro\n<!-- x -->\nold\n<!-- end of x -->\noutro\n"
    assert _replace_block(text, "x", "new\n") == "intro\n<!-- x -->\nnew\n<!-- end of x -->\noutro\n"
    with pytest.raises(ValueError, match="no '<!-- y -->'"):
        _replace_block(text, "y", "")


def test_consistency_claim_needs_a_self_supervised_group_to_judge(tmp_path):
    import pandas as pd

    from convergence.report import _consistency_claim

    assert _consistency_claim(tmp_path) is None
    folder = tmp_path / "consistency" / "rsa"
    folder.mkdir(parents=True)

    def write(rows):
        pd.DataFrame([{"set_pair": s, "spearman": v, "n_pairs": n} for s, v, n in rows]).to_csv(
            folder / "consistency.csv", index=False)

    rows = [("all", 0.9, 10), ("supervised x supervised", 0.8, 3), ("random x random", 0.2, 3),
            ("random x supervised", 0.1, 9)]
    write(rows)
    pd.DataFrame([{"dataset": "digits", "rho": -0.5, "p_value": 0.01}]).to_csv(folder / "behaviour.csv", index=False)
    measured, status = _consistency_claim(tmp_path)
    assert "supervised x supervised 0.80" in measured and "digits rho -0.50 (p 0.010)" in measured
    assert status.startswith("objective: **not testable here**") and "on 3-9 model pairs" in status
    assert "random x random, supervised x supervised" in status
    assert "behaviour link by domain: not testable" in status
    rows.append(("self-supervised x self-supervised", 0.95, 3))
    write(rows)
    assert _consistency_claim(tmp_path)[1].startswith("objective: reproduced;")
    rows[-1] = ("self-supervised x self-supervised", 0.5, 3)
    write(rows)
    assert _consistency_claim(tmp_path)[1].startswith("objective: **not reproduced**;")


@pytest.mark.parametrize("rhos, verdict", [
    ({"digits": -0.7, "fashion": -0.6, "clipart": -0.2, "emoji": 0.1}, "behaviour link: **reproduced**"),
    ({"digits": -0.7, "fashion": -0.1, "clipart": -0.2, "emoji": 0.1}, "behaviour link: partly"),
    ({"digits": 0.1, "fashion": -0.1, "clipart": -0.6, "emoji": 0.1}, "behaviour link: **not reproduced**"),
])
def test_consistency_claim_compares_the_behaviour_link_by_domain(tmp_path, rhos, verdict):
    import pandas as pd

    from convergence.report import _consistency_claim

    folder = tmp_path / "consistency" / "rsa"
    folder.mkdir(parents=True)
    pd.DataFrame([{"set_pair": "all", "spearman": 0.9, "n_pairs": 10}]).to_csv(folder / "consistency.csv", index=False)
    domains = {"digits": "single", "fashion": "single", "clipart": "multi", "emoji": "multi"}
    pd.DataFrame([{"dataset": d, "domain": domains[d], "rho": r, "p_value": 0.05} for d, r in rhos.items()]).to_csv(
        folder / "behaviour.csv", index=False)
    measured, status = _consistency_claim(tmp_path)
    assert verdict in status
    assert "digits (single) rho" in measured and "clipart (multi) rho" in measured


def test_sample_size_claim_reads_the_trend_of_every_dataset_and_metric(tmp_path):
    import pandas as pd

    from convergence.report import _sample_size_claim

    assert _sample_size_claim(tmp_path) is None
    folder = tmp_path / "sample_size" / "emoji"
    folder.mkdir(parents=True)
    trend = pd.DataFrame({"pair_kind": ["all"] * 3, "n_stimuli": [32, 64, 128], "score": [0.4, 0.3, 0.2],
                          "null_mean": [0.3, 0.15, 0.08], "excess": [0.1, 0.15, 0.12], "rho_n_score": [-1.0] * 3,
                          "rho_n_excess": [0.5] * 3, "n_pairs": [6] * 3})
    trend.to_csv(folder / "mutual_knn_trend.csv", index=False)
    measured, status = _sample_size_claim(tmp_path)
    assert "emoji, mutual_knn, 6 model pairs: n 32 -> 128: mean score 0.400 -> 0.200" in measured
    assert status.startswith("reproduced")
    # a distance (lower is more similar) whose score rises with n: alignment falls, as the claim says
    trend.assign(rho_n_score=0.5).to_csv(folder / "procrustes_trend.csv", index=False)
    assert _sample_size_claim(tmp_path)[1] == "reproduced: alignment falls as n grows"
    trend.assign(rho_n_score=0.5).to_csv(folder / "cka_linear_trend.csv", index=False)
    assert _sample_size_claim(tmp_path)[1] == "partly"


def test_taxonomy_claim_reads_the_summary(tmp_path):
    import pandas as pd

    from convergence.report import CLAIMS, PENDING, _taxonomy_claim

    assert _taxonomy_claim(tmp_path) is None
    assert any(fn is _taxonomy_claim for _, _, fn in CLAIMS) and not any("002" in s for s, _ in PENDING)
    rows = []
    for weights, f1s in (("pretrained", (0.9, 0.8, 0.75)), ("random", (0.85, 0.6, 0.45))):
        for remove, f1 in zip((0.1, 0.5, 1.0), f1s):
            rows.append({"vision": "v", "lm": "l", "lm_weights": weights, "remove": remove, "shuffle": "none",
                         "drop": None, "f1_unseen": f1, "coherence_mean": 0.3, "coherence_original_mean": 0.3})
    for shuffle, f1, coh in (("across", 0.5, 0.1), ("within", 0.78, 0.3)):
        rows.append({"vision": "v", "lm": "l", "lm_weights": "pretrained", "remove": 0.5, "shuffle": shuffle,
                     "drop": None, "f1_unseen": f1, "coherence_mean": coh, "coherence_original_mean": 0.3})
    (tmp_path / "taxonomy" / "d").mkdir(parents=True)
    pd.DataFrame(rows).to_csv(tmp_path / "taxonomy" / "d" / "summary.csv", index=False)
    measured, status = _taxonomy_claim(tmp_path)
    assert "pretrained LM F1 0.90 (10 % removed) -> 0.75 (100 %)" in measured
    assert "random LM F1 0.85 (10 % removed) -> 0.45 (100 %)" in measured
    assert "across-category shuffle 0.50" in measured and status == "reproduced"
    rows = [dict(r, f1_unseen=0.5) for r in rows]
    pd.DataFrame(rows).to_csv(tmp_path / "taxonomy" / "d" / "summary.csv", index=False)
    assert _taxonomy_claim(tmp_path)[1].startswith("**not reproduced** in the reduced setting: the projector")
    oracle = pd.DataFrame([{"lm": "l", "f1": 0.41, "auc": 0.55, "n_questions": 800, "n_concepts": 400, "template": "t"}])
    oracle.to_csv(tmp_path / "taxonomy" / "d" / "oracle.csv", index=False)
    measured, status = _taxonomy_claim(tmp_path)
    assert "language-only ceiling (l asked with the concept named in the text, no image): F1 0.41, AUC 0.55" in measured
    assert "not reproducible with this LM" in status and "AUC 0.55" in status
    oracle.assign(auc=0.9).to_csv(tmp_path / "taxonomy" / "d" / "oracle.csv", index=False)
    assert "the projector" in _taxonomy_claim(tmp_path)[1]


def _calibrated_cross(tmp_path, calibrated, q):
    import pandas as pd

    folder = tmp_path / "crossmodal" / "emoji"
    folder.mkdir(parents=True, exist_ok=True)
    pd.DataFrame({"summary": ["best", "best", "last"], "objective_a": ["supervised", "random", "random"],
                  "score": [0.3, 0.2, 0.1], "null_mean": [0.05, 0.05, 0.05], "p_value": [0.01, 0.01, 0.5],
                  "q_value": q + [0.5], "calibrated": calibrated + [0.0]}).to_csv(folder / "mutual_knn.csv", index=False)


def test_prh_claim_uses_q_values_and_gives_the_calibrated_verdict_beside_the_raw_one(tmp_path):
    import json

    from convergence.report import _prh_claim

    _calibrated_cross(tmp_path, [0.2, 0.0], [0.02, 0.02])
    folder = tmp_path / "prh" / "emoji"
    folder.mkdir(parents=True)
    fit = {"slope": 1.0, "intercept": 0.0, "r": 0.8, "n": 3}
    (folder / "mutual_knn.json").write_text(json.dumps({
        "reference": "ref", "x_label": "competence (1 - bits per byte on the fixed text)", "fit": fit,
        "fit_calibrated": {**fit, "r": float("nan")}, "alpha": 0.05}))
    measured, status = _prh_claim(tmp_path)
    assert "2 of 2 pairs above their null (q <= 0.05" in measured and "1 of 2 pairs above 0" in measured
    assert "calibrated: r = " not in measured and "calibrated: the same for every model" in measured
    raw, calibrated = status.split("; calibrated: ")
    # every pair above its null (q) and the LM trend rises; no vision trend (a vision reference is not there)
    assert raw.startswith("**partly**: cross-modal alignment is above its null")
    assert calibrated.startswith("**not reproduced**") and "undefined: no spread" in calibrated
    _calibrated_cross(tmp_path, [0.2, 0.1], [0.02, 0.2])  # q 0.2 > alpha: that pair is not above its null
    assert _prh_claim(tmp_path)[1].startswith("**not reproduced**")


def test_sample_size_claim_gives_the_calibrated_verdict(tmp_path):
    import pandas as pd

    from convergence.report import _sample_size_claim

    folder = tmp_path / "sample_size" / "emoji"
    folder.mkdir(parents=True)
    pd.DataFrame({"pair_kind": ["all"] * 3, "n_stimuli": [32, 64, 128], "score": [0.4, 0.3, 0.2],
                  "null_mean": [0.3, 0.15, 0.08], "excess": [0.1, 0.15, 0.12], "calibrated": [0.0, 0.05, 0.1],
                  "rho_n_score": [-1.0] * 3, "rho_n_excess": [0.5] * 3, "rho_n_calibrated": [1.0] * 3,
                  "n_pairs": [6] * 3}).to_csv(folder / "mutual_knn_trend.csv", index=False)
    measured, status = _sample_size_claim(tmp_path)
    assert "calibrated 0.000 -> 0.100, rho(n, calibrated) +1.00" in measured
    assert status == "reproduced: alignment falls as n grows; calibrated: **not reproduced**"


def test_interval_check_counts_intervals_that_exclude_their_estimate(tmp_path):
    import pandas as pd

    from convergence.report import interval_check

    folder = tmp_path / "alignment" / "emoji"
    folder.mkdir(parents=True)
    pd.DataFrame({"score": [0.5, 0.5, 0.5], "ci_low": [0.4, 0.6, float("nan")], "ci_high": [0.6, 0.7, 0.9]}).to_csv(
        folder / "cka_linear.csv", index=False)
    (tmp_path / "sample_size" / "emoji").mkdir(parents=True)
    pd.DataFrame({"score": [0.1], "ci_low": [0.2], "ci_high": [0.3]}).to_csv(
        tmp_path / "sample_size" / "emoji" / "mutual_knn.csv", index=False)
    pd.DataFrame({"score": [0.1], "ci_low": [0.2], "ci_high": [0.3]}).to_csv(  # a trend table: not counted
        tmp_path / "sample_size" / "emoji" / "mutual_knn_trend.csv", index=False)
    table = interval_check(tmp_path)
    assert table.set_index("table").loc["all", ["excluding", "intervals"]].tolist() == [2, 3]


def test_dispersion_claim_gives_the_calibrated_verdict(tmp_path):
    import pandas as pd

    from convergence.report import _dispersion_claim

    folder = tmp_path / "dispersion_alignment" / "emoji"
    folder.mkdir(parents=True)
    rows = [{"metric": "mutual_knn", "criterion": c, "objective_vision": obj, "ratio": r, "ratio_ci_low": r - 0.1,
             "low_calibrated": cal} for c in ("q0.1", "q0.5")
            for obj, r, cal in (("supervised", 1.5, 0.2), ("supervised", 1.4, 0.1), ("random", 1.0, 0.0))]
    pd.DataFrame(rows).to_csv(folder / "vision.csv", index=False)
    measured, status = _dispersion_claim(tmp_path)
    assert "q0.1 100 % of pairs" in measured and "controls q0.1 0 %" in measured
    assert status.startswith("reproduced; calibrated: reproduced")
    pd.DataFrame([{**r, "low_calibrated": 0.0 if r["objective_vision"] == "supervised" else 0.3} for r in rows]).to_csv(
        folder / "vision.csv", index=False)
    assert "; calibrated: **not reproduced**" in _dispersion_claim(tmp_path)[1]
