"""The README's numbers, generated from a finished run so that they cannot drift from what was measured.

:func:`run_timing` reads a Snakemake run log (``.snakemake/log/*.snakemake.log``): when each job started
and finished. :func:`claims` reads the results of the default run and states, per study, what was
measured and whether it reproduces the study's claim (by an explicit criterion); rows built on raw
similarity scores give the same verdict computed on the calibrated scores beside it ("calibrated: ...",
Groger, Wen & Brbic 2026: each score's excess over its null's (1 - alpha) threshold), and "above its null"
means a Benjamini-Hochberg q-value at most alpha. :func:`update_readme`
rewrites the README's generated blocks: ``make readme`` after ``make run``.
"""

from __future__ import annotations

import glob
import json
import re
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd

from .inference import ALPHA

_STAMP = re.compile(r"^\[(\w{3} \w{3} +\d+ \d\d:\d\d:\d\d \d{4})\]$")
_START = re.compile(r"^(?:local)?(?:rule|checkpoint) (\w+):$")
_JOBID = re.compile(r"^\s+jobid: (\d+)$")
_FINISHED = re.compile(r"^Finished jobid: (\d+) \(Rule: (\w+)\)$")
_WILDCARDS = re.compile(r"^\s+wildcards: (.*)$")


def _parse_time(text: str) -> datetime:
    return datetime.strptime(" ".join(text.split()), "%a %b %d %H:%M:%S %Y")


def run_timing(log_path: str | Path) -> tuple[pd.DataFrame, dict]:
    """Per job of a Snakemake run log: rule, wildcards, start, end and seconds (the log's resolution is one
    second); and a summary (first start, last end, elapsed seconds, Snakemake version, cores)."""
    lines = Path(log_path).read_text().splitlines()
    stamp, jobs, pending = None, {}, None
    info = {"log": str(log_path)}
    for line in lines:
        if m := _STAMP.match(line):
            stamp = _parse_time(m.group(1))
        elif m := _START.match(line):
            pending = {"rule": m.group(1), "start": stamp, "wildcards": ""}
        elif pending is not None and (m := _WILDCARDS.match(line)):
            pending["wildcards"] = m.group(1)
        elif pending is not None and (m := _JOBID.match(line)):
            jobs[int(m.group(1))] = pending
        elif m := _FINISHED.match(line):
            if int(m.group(1)) in jobs:
                jobs[int(m.group(1))]["end"] = stamp
        elif line.startswith("  Snakemake version:"):
            info["snakemake"] = line.split(":", 1)[1].strip()
        elif line.startswith("Provided cores:"):
            info["cores"] = int(line.split(":", 1)[1])
    table = pd.DataFrame([{**job, "jobid": jobid} for jobid, job in jobs.items() if "end" in job])
    if table.empty:
        raise ValueError(f"{log_path}: no finished job found; is it a Snakemake run log?")
    table["seconds"] = (table["end"] - table["start"]).dt.total_seconds()
    info.update(start=table["start"].min(), end=table["end"].max())
    info["elapsed"] = (info["end"] - info["start"]).total_seconds()
    info["complete"] = any("(100%) done" in line for line in lines)
    return table, info


def latest_complete_log(workdir: str | Path = ".") -> Path:
    """The newest Snakemake log under ``workdir/.snakemake/log`` of a run that finished every job."""
    for path in sorted(glob.glob(str(Path(workdir) / ".snakemake" / "log" / "*.snakemake.log")), reverse=True):
        text = Path(path).read_text()
        if "(100%) done" in text and "Finished jobid" in text:
            return Path(path)
    raise FileNotFoundError(f"no complete Snakemake run log under {Path(workdir) / '.snakemake' / 'log'}; run `make run` first")


def _minutes(seconds: float) -> str:
    return f"{int(seconds // 60)} min {int(round(seconds % 60))} s"


def run_section(workdir: str | Path = ".") -> str:
    """The README's "default run" paragraph and per-step table, from the newest complete run log."""
    table, info = run_timing(latest_complete_log(workdir))
    figures = sorted(glob.glob(str(Path(workdir) / "results" / "figures" / "**" / "*.png"), recursive=True))
    steps = table[table["rule"] != "all"].groupby("rule")["seconds"].agg(["count", "sum", "max"])
    slowest = table.loc[table.groupby("rule")["seconds"].idxmax()].set_index("rule")
    rows = ["| step | jobs | job time | slowest job |", "|---|---|---|---|"]
    for rule, r in steps.sort_values("sum", ascending=False).iterrows():
        rows.append(f"| `{rule}` | {int(r['count'])} | {int(r['sum'])} s | {int(r['max'])} s ({slowest.loc[rule, 'wildcards']}) |")
    return (
        f"Measured from the run log of `make run` on {info['start']:%Y-%m-%d} ({info.get('cores', '?')} cores, "
        f"Snakemake {info.get('snakemake', '?')}): {len(table)} jobs in **{_minutes(info['elapsed'])}**, "
        f"{len(figures)} figures (each as PNG and PDF). Job time by step (jobs run side by side, so the sum "
        "exceeds the elapsed time):\n\n" + "\n".join(rows) + "\n"
    )


# ------------------------------------------------------------------------------------------- claims


def _above(table: pd.DataFrame, alpha: float) -> pd.Series:
    """Rows above their null: q-value (Benjamini-Hochberg) at most ``alpha``; tables from before q-values
    were stored fall back to the p-value."""
    return table["q_value" if "q_value" in table else "p_value"] <= alpha


def _prh_claim(results: Path, alpha: float = ALPHA) -> tuple[str, str] | None:
    cross = sorted(glob.glob(str(results / "crossmodal" / "*" / "mutual_knn.csv")))
    prh = sorted(glob.glob(str(results / "prh" / "*" / "mutual_knn.json")))
    if not cross and not prh:
        return None
    parts, trend, trend_cal, above, above_cal = [], [], [], [], []
    for path in cross:
        t = pd.read_csv(path)
        best = t[t["summary"] == "best"]
        by = best.groupby("objective_a")["score"].mean()
        dataset = Path(path).parent.name
        text = (f"images vs captions on {dataset} (mutual kNN, best layer pair): "
                + ", ".join(f"{obj} {v:.3f}" for obj, v in by.items())
                + f"; null {best['null_mean'].mean():.3f}")
        above.append(bool(_above(best, alpha).all()))
        if "q_value" in best:
            text += (f"; {int(_above(best, alpha).sum())} of {len(best)} pairs above their null (q <= {alpha:g}, "
                     f"largest q {best['q_value'].max():.3g})")
        else:
            text += f"; largest p {best['p_value'].max():.3g}"
        if "calibrated" in best:
            cal = best.groupby("objective_a")["calibrated"].mean()
            above_cal.append(float((best["calibrated"] > 0).mean()))
            text += ("; calibrated " + ", ".join(f"{obj} {v:.3f}" for obj, v in cal.items())
                     + f" ({int((best['calibrated'] > 0).sum())} of {len(best)} pairs above 0)")
        parts.append(text)
    for path in prh:
        info = json.loads(Path(path).read_text())
        dataset = Path(path).parent.name
        if info["fit"]:
            trend.append((info["fit"]["r"], "bits per byte" in info["x_label"]))
            text = (f"{dataset}: alignment to {info['reference']} vs {info['x_label']}: r = {info['fit']['r']:.2f} "
                    f"over {info['fit']['n']} models")
            fit_cal = info.get("fit_calibrated")
            if fit_cal:
                trend_cal.append((fit_cal["r"], "bits per byte" in info["x_label"]))
                text += f" (calibrated: r = {fit_cal['r']:.2f})" if np.isfinite(fit_cal["r"]) else \
                    " (calibrated: the same for every model, no trend)"
            parts.append(text)
        else:
            parts.append(f"{dataset}: fewer than two models with a competence value, no trend")
    status = _prh_status(all(above), trend)
    if trend_cal or above_cal:
        status += "; calibrated: " + _prh_status(bool(above_cal) and min(above_cal) == 1.0, trend_cal, short=True)
    return "; ".join(parts), status


def _prh_status(above: bool, trend: list, short: bool = False) -> str:
    """The PRH verdict from "every cross-modal pair above its null" and the (r, is-language) trends (a NaN r,
    a constant alignment, does not rise)."""
    lm_r = [r for r, lm in trend if lm]
    vision_r = [r for r, lm in trend if not lm]

    def finite(rs):
        return [r for r in rs if np.isfinite(r)]

    rising = {kind: bool(finite(rs)) and float(np.mean(finite(rs))) > 0.3
              for kind, rs in (("language", lm_r), ("vision", vision_r))}

    def mean_r(rs):
        return f"{np.mean(finite(rs)):.2f}" if finite(rs) else "undefined: no spread"

    if short:
        found = [f"{kind} {'rises' if ok else 'does not rise'} (mean r {mean_r(rs)})"
                 for (kind, ok), rs in zip(rising.items(), (lm_r, vision_r)) if rs]
        verdict = "reproduced" if above and all(rising.values()) else "**partly**" if above else "**not reproduced**"
        return (f"{verdict} (cross-modal pairs {'all' if above else 'not all'} above the threshold; "
                + "; ".join(found) + ")")
    if above and all(rising.values()):
        status = "reproduced"
    else:
        found = [f"{kind} models' alignment to the reference {'rises' if ok else 'does not rise'} with their "
                 f"competence (mean r {mean_r(rs)})" for (kind, ok), rs in zip(rising.items(), (lm_r, vision_r)) if rs]
        status = (("**partly**: cross-modal alignment is above its null; " if above else "**not reproduced**: ")
                  + "; ".join(found) + ". Likely reasons where it does not: a few small vision models of similar "
                  "competence on low-resolution greyscale images, where random-weight features keep pixel-level "
                  "neighbourhoods, and a reference whose late blocks were fine-tuned for saliency; three language "
                  "models are a short series")
    return status


def _layers_claim(results: Path) -> tuple[str, str] | None:
    """Study 003's three claims from ``results/layers/*/summary.json`` (criteria: ``analyses.layers.claims``)."""
    paths = sorted(glob.glob(str(results / "layers" / "*" / "summary.json")))
    if not paths:
        return None
    parts, verdicts = [], {"positions": [], "lowlevel": [], "smoothness": []}
    for path in paths:
        c = json.loads(Path(path).read_text())["claims"]
        pos, low, smooth = c["positions"], c["lowlevel"], c["smoothness"]
        parts.append(
            f"{Path(path).parent.name}: {100 * pos['fraction']:.0f} % of layers best-match within {pos['tolerance']} "
            f"relative depth [{100 * pos['ci'][0]:.0f}, {100 * pos['ci'][1]:.0f}] vs {100 * pos['null_mean']:.0f} % "
            f"shuffled (p {pos['p_value']:.2g}), most different at depth {pos['most_different_depth']:.2f}; "
            f"classifiers lose R^2 {low['classifier_drop']:.2f} of low-level statistics from their best to their "
            f"last layer (random {low['other_drops'].get('random', float('nan')):.2f}); consecutive-layer "
            f"similarity CNN {smooth['families'].get('cnn', float('nan')):.3f} vs transformer "
            f"{smooth['families'].get('transformer', float('nan')):.3f} (p {smooth['p_value']:.2g})")
        for key in verdicts:
            verdicts[key].append(bool(c[key]["reproduced"]))
    names = {"positions": "similar depths most similar", "lowlevel": "classifiers discard low-level statistics",
             "smoothness": "transformers smoother than CNNs"}
    status = "; ".join(f"{names[k]}: {'reproduced' if all(v) else 'partly' if any(v) else '**not reproduced**'}"
                       for k, v in verdicts.items())
    status += "; calibrated: not computed (the layer x layer matrices carry no null per score)"
    return "; ".join(parts), status


def _dispersion_claim(results: Path) -> tuple[str, str] | None:
    """Study 000 from ``results/dispersion_alignment/*/*.csv`` (mutual kNN): the low/high-dispersion ratio of
    cross-modal alignment for trained vision models, per selection criterion, against the random-weight
    controls. Reproduced when every criterion's mean ratio of trained models is above 1 with most intervals
    excluding 1, and the controls do not show the same effect."""
    paths = sorted(glob.glob(str(results / "dispersion_alignment" / "*" / "*.csv")))
    if not paths:
        return None
    parts, robust, controls_too, robust_cal, controls_cal = [], [], [], [], []
    for path in paths:
        t = pd.read_csv(path)
        t = t[t["metric"] == "mutual_knn"]
        trained, random = t[t["objective_vision"] != "random"], t[t["objective_vision"] == "random"]
        if trained.empty:
            continue
        by = trained.groupby("criterion")
        ratios = by["ratio"].mean()
        excl = by.apply(lambda g: float(np.mean(g["ratio_ci_low"] > 1)), include_groups=False)
        robust.append(bool((ratios > 1).all() and (excl >= 0.5).all()))
        text = (f"{Path(path).parent.name} ({Path(path).stem} group): low/high ratio of trained vision x LM pairs "
                + ", ".join(f"{c} {ratios[c]:.2f} ({100 * excl[c]:.0f} % of intervals above 1)" for c in ratios.index))
        if not random.empty:
            rr = random.groupby("criterion")["ratio"].mean()
            controls_too.append(bool((rr >= 0.9 * ratios.reindex(rr.index)).any()))
            text += "; random-weight controls " + ", ".join(f"{c} {rr[c]:.2f}" for c in rr.index)
        if "low_calibrated" in trained:
            # calibrated: the low subset's excess over the random subsets' (1 - alpha) threshold
            share = trained.groupby("criterion")["low_calibrated"].apply(lambda v: float(np.mean(v > 0)))
            robust_cal.append(bool((share >= 0.5).all()))
            text += ("; calibrated (low above the random subsets' threshold): "
                     + ", ".join(f"{c} {100 * share[c]:.0f} % of pairs" for c in share.index))
            if not random.empty and "low_calibrated" in random:
                rs = random.groupby("criterion")["low_calibrated"].apply(lambda v: float(np.mean(v > 0)))
                controls_cal.append(bool((rs >= 0.9 * share.reindex(rs.index)).any() and (rs > 0).any()))
                text += ", controls " + ", ".join(f"{c} {100 * rs[c]:.0f} %" for c in rs.index)
        parts.append(text)
    if not parts:
        return None
    if all(robust) and not any(controls_too):
        status = "reproduced"
    elif all(robust):
        status = ("**partly**: the ratio is there and robust to the criteria, but random-weight controls show it "
                  "as much, so here it likely reflects the stimulus set (near-duplicate clusters that any representation "
                  "groups with their captions), not converging vision models")
    else:
        status = ("**not reproduced**: low-dispersion stimuli do align better (ratios above 1), but not robustly "
                  "across the selection criteria (some criteria have most intervals including 1)"
                  + (", and random-weight controls show the ratio as much, so it likely reflects the stimulus set "
                     "rather than converging vision models" if any(controls_too) else ""))
    if robust_cal:
        if all(robust_cal) and not any(controls_cal):
            status += "; calibrated: reproduced (most low-dispersion subsets beat random subsets beyond chance)"
        elif all(robust_cal):
            status += ("; calibrated: **partly** (low-dispersion subsets beat random subsets beyond chance, but so do "
                       "the random-weight controls')")
        else:
            status += ("; calibrated: **not reproduced** (for some criterion fewer than half of the trained pairs' "
                       "low-dispersion subsets beat random subsets beyond chance)")
    return "; ".join(parts), status


def _consistency_claim(results: Path) -> tuple[str, str] | None:
    """Study 001 from ``results/consistency/*/{consistency,behaviour}.csv``: per metric the mean Spearman
    consistency over dataset pairs of each model-set pair, and the similarity-behaviour rho per labelled
    dataset. Two verdicts. Objective: reproduced when ``self-supervised x self-supervised`` is the most
    consistent within-objective model-set pair for every metric; not testable unless the results have it and
    another within-objective pair. Behaviour: reproduced when, for every metric, the link (rho, negative =
    similar models behave alike) is stronger on every ``single``-domain dataset than on every ``multi``-domain
    one; partly when only its mean over single-domain datasets is; not testable without both domains."""
    paths = sorted(glob.glob(str(results / "consistency" / "*" / "consistency.csv")))
    if not paths:
        return None
    parts, objective, behaviour_verdicts, within_seen, pair_counts = [], [], [], set(), []
    for path in paths:
        t = pd.read_csv(path).dropna(subset=["spearman"])
        if t.empty:
            continue
        metric = Path(path).parent.name
        pair_counts.extend(t.loc[t["set_pair"] != "all", "n_pairs"].tolist())
        means = t.groupby("set_pair")["spearman"].mean().sort_values(ascending=False)
        text = f"{metric}: " + ", ".join(f"{k} {v:.2f}" for k, v in means.items())
        within = [k for k in means.index if k != "all" and k.split(" x ")[0] == k.split(" x ")[-1]]
        within_seen.update(within)
        if "self-supervised x self-supervised" in within and len(within) >= 2:
            objective.append(within[0] == "self-supervised x self-supervised")
        behaviour = Path(path).with_name("behaviour.csv")
        if behaviour.exists():
            b = pd.read_csv(behaviour).dropna(subset=["rho"])
            if len(b):
                text += "; similarity vs |probe difference|: " + ", ".join(
                    f"{r.dataset}{f' ({r.domain})' if 'domain' in b and isinstance(r.domain, str) else ''} "
                    f"rho {r.rho:.2f} (p {r.p_value:.3f})" for r in b.itertuples())
                if "domain" in b:
                    single = b.loc[b["domain"] == "single", "rho"]
                    multi = b.loc[b["domain"] == "multi", "rho"]
                    if len(single) and len(multi):
                        behaviour_verdicts.append(
                            "all" if single.max() < multi.min() else "mean" if single.mean() < multi.mean() else "no")
        parts.append(text)
    if not parts:
        return None
    if not objective:
        sizes = f"{min(pair_counts)}-{max(pair_counts)}" if pair_counts else "too few"
        status = ("objective: **not testable here**: the claim contrasts objectives, and these results have no "
                  "`self-supervised x self-supervised` pair (within-objective pairs: "
                  + (", ".join(sorted(within_seen)) or "none") + f"), on {sizes} model pairs per correlation")
    else:
        status = "objective: " + ("reproduced" if all(objective) else "partly" if any(objective)
                                  else "**not reproduced**")
    if not behaviour_verdicts:
        status += "; behaviour link by domain: not testable (needs labelled single- and multi-domain datasets)"
    elif all(v == "all" for v in behaviour_verdicts):
        status += ("; behaviour link: **reproduced**: it depends on the dataset and is stronger on every "
                   "single-domain dataset than on every multi-domain one, for every metric")
    elif all(v in ("all", "mean") for v in behaviour_verdicts):
        status += ("; behaviour link: partly: stronger on single-domain datasets on average, for every metric, "
                   "but not on each of them")
    else:
        status += "; behaviour link: **not reproduced**: not stronger on single-domain datasets for every metric"
    status += "; calibrated: not computed (the similarity matrices it correlates carry no null)"
    return "; ".join(parts) + " (mean Spearman r over dataset pairs)", status


def _sample_size_claim(results: Path) -> tuple[str, str] | None:
    """The PRH critiques from ``results/sample_size/*/*_trend.csv``: per dataset and metric, the mean score over
    model pairs and the mean null at the smallest and largest n, and Spearman's rho of n with the score and
    with the excess over the null. Reproduced when alignment falls as n grows for every dataset and metric:
    the raw score's rho with n is negative (positive for a distance, where lower is more similar)."""
    from .metrics.registry import get_metric

    paths = sorted(glob.glob(str(results / "sample_size" / "*" / "*_trend.csv")))
    if not paths:
        return None
    parts, falls, falls_cal = [], [], []
    for path in paths:
        t = pd.read_csv(path)
        t = t[t["pair_kind"] == "all"].sort_values("n_stimuli")
        if len(t) < 2:
            continue
        lo, hi = t.iloc[0], t.iloc[-1]
        metric = Path(path).name[: -len("_trend.csv")]
        text = (f"{Path(path).parent.name}, {metric}, {int(lo.n_pairs)} model pairs: n {int(lo.n_stimuli)} -> "
                f"{int(hi.n_stimuli)}: mean score {lo.score:.3f} -> {hi.score:.3f} (null {lo.null_mean:.3f} -> "
                f"{hi.null_mean:.3f}; above null {lo.excess:.3f} -> {hi.excess:.3f}); rho(n, score) "
                f"{lo.rho_n_score:+.2f}, rho(n, score - null) {lo.rho_n_excess:+.2f}")
        direction = 1 if get_metric(metric).higher_is_better else -1
        falls.append(bool(direction * lo.rho_n_score < 0))
        if "calibrated" in t and "rho_n_calibrated" in t:
            # calibrated scores are on the oriented scale (higher = more similar) for every metric
            rho_cal = lo.rho_n_calibrated
            text += (f"; calibrated {lo.calibrated:.3f} -> {hi.calibrated:.3f}, rho(n, calibrated) "
                     + (f"{rho_cal:+.2f}" if np.isfinite(rho_cal) else "undefined (the same at every n)"))
            falls_cal.append(bool(np.isfinite(rho_cal) and rho_cal < 0))
        parts.append(text)
    if not parts:
        return None

    def verdict(found):
        out = "reproduced" if all(found) else "partly" if any(found) else "**not reproduced**"
        return out + (": alignment falls as n grows" if all(found) else "")

    status = verdict(falls)
    if falls_cal:
        status += "; calibrated: " + verdict(falls_cal)
    return "; ".join(parts), status


def _taxonomy_claim(results: Path) -> tuple[str, str] | None:
    """Study 002 from ``results/taxonomy/*/summary.csv``: unseen-concept macro-F1 (mean over seeds) of the
    pretrained and the random-init LM at the smallest and largest removal fraction, and of the across- and
    within-category shuffles, beside the study's numbers. Reproduced when the pretrained LM stays well above
    chance at 100 % removed (>= 0.65) and above the random LM there, the across shuffle falls to chance
    (<= 0.6) and the within shuffle stays within 0.1 of the unshuffled run; partly when the pretrained LM is
    above chance at 100 % removed but other parts fail. The language-only ceiling (``oracle.csv``: the LM asked
    with the concept named in the text) is reported beside them; when it is near chance (AUC < 0.6) the LM
    has no hypernym knowledge to recover, which the status says."""
    paths = sorted(glob.glob(str(results / "taxonomy" / "*" / "summary.csv")))
    if not paths:
        return None
    parts, verdicts, ceilings, sizes = [], [], [], None
    for path in paths:
        t = pd.read_csv(path)
        t["drop"] = t["drop"].fillna("")
        if {"n_concepts", "n_hypernyms"} <= set(t.columns) and len(t):
            sizes = (int(t["n_concepts"].max()), int(t["n_hypernyms"].max()))
        plain = t[(t["shuffle"] == "none") & (t["drop"] == "")]
        f1 = plain.groupby(["lm_weights", "remove"])["f1_unseen"].mean()
        text = f"{Path(path).parent.name}: " + ", ".join(f"{a} ({b})" for a, b in
                                                          t[["vision", "lm"]].drop_duplicates().itertuples(index=False))
        lo_hi = {}
        for weights in ("pretrained", "random"):
            if weights in f1.index.get_level_values(0):
                s = f1[weights]
                lo_hi[weights] = (s.index.min(), s.iloc[0], s.index.max(), s.iloc[-1])
                text += (f"; {weights} LM F1 {s.iloc[0]:.2f} ({100 * s.index.min():g} % removed) -> "
                         f"{s.iloc[-1]:.2f} ({100 * s.index.max():g} %)")
        shuffles = {}
        for shuffle in ("across", "within"):
            part = t[(t["shuffle"] == shuffle) & (t["lm_weights"] == "pretrained")]
            if len(part):
                frac = part["remove"].iloc[0]
                shuffles[shuffle] = float(part["f1_unseen"].mean())
                base = f1.get(("pretrained", frac), np.nan)
                coh = part["coherence_mean"].mean()
                text += (f"; {shuffle}-category shuffle {shuffles[shuffle]:.2f} at {100 * frac:g} % removed "
                         f"(unshuffled {base:.2f}; coherence {coh:.2f} vs {part['coherence_original_mean'].mean():.2f})")
                shuffles[f"{shuffle}_base"] = float(base)
        oracle_path = Path(path).parent / "oracle.csv"
        oracle = pd.read_csv(oracle_path) if oracle_path.exists() else pd.DataFrame()
        for row in (oracle.itertuples(index=False) if len(oracle) else []):
            ceilings.append(float(row.auc))
            text += (f"; language-only ceiling ({row.lm} asked with the concept named in the text, no image): "
                     f"F1 {row.f1:.2f}, AUC {row.auc:.2f} over {row.n_questions} questions")
        parts.append(text)
        pre, rnd = lo_hi.get("pretrained"), lo_hi.get("random")
        if pre and pre[2] >= 1.0:
            strong = pre[3] >= 0.65 and (rnd is None or pre[3] > rnd[3])
            across_ok = shuffles.get("across", 0.5) <= 0.6
            within_ok = abs(shuffles.get("within", shuffles.get("within_base", 0)) - shuffles.get("within_base", 0)) <= 0.1
            verdicts.append("yes" if strong and across_ok and within_ok else "partly" if pre[3] > 0.55 else "no")
    if not parts:
        return None
    scale = f"{sizes[0]} concepts and {sizes[1]} hypernyms" if sizes else "a few hundred concepts"
    reduced = (f"reduced setting: a small vision model and a small causal LM on {scale}, "
               "one seed, a few hundred questions per epoch on CPU (study: DINOv2 ViT-L/14 + Qwen3-1.7B on THINGS, "
               "53 categories, ~1200 concepts; pretrained 0.90 -> 0.75 from 10 to 100 % removed, random LM "
               "0.86 -> 0.45, across shuffle ~0.5, within shuffle close to unshuffled)")
    if verdicts and all(v == "yes" for v in verdicts):
        status = "reproduced"
    elif any(v in ("yes", "partly") for v in verdicts):
        status = "**partly**"
    elif verdicts and ceilings and max(ceilings) < 0.6:
        status = ("**not reproduced** in the reduced setting, and not reproducible with this LM: asked in plain text "
                  f"with the concept named, the LM itself answers the hypernym questions near chance (AUC "
                  f"{max(ceilings):.2f}), so it holds no hypernym knowledge for the projector to recover")
    elif verdicts:
        status = ("**not reproduced** in the reduced setting: the projector, trained for a few hundred questions on "
                  "CPU, does not lift the pretrained LM's unseen-concept F1 clearly above chance")
    else:
        status = "**not testable here**: no run with 100 % removed"
    return "; ".join(parts) + f" ({reduced})", status


#: One row per study: (study, claim, function of the results folder -> (measured, status) or None).
CLAIMS: list[tuple[str, str, Callable[[Path], tuple[str, str] | None]]] = [
    ("Platonic Representation Hypothesis (Huh et al. 2024)",
     "models converge: more competent models align more with each other and across modalities", _prh_claim),
    ("Layer-by-layer convergence (Mahaut & Baroni, study 003)", "similar relative depths are most similar yet "
     "strong differences remain; classifiers discard low-level image statistics in their final layers; "
     "transformers change their representations more smoothly than CNNs", _layers_claim),
    ("Single-stimulus dispersion (study 000)", "stimuli on which vision models agree (low intra-modal dispersion) "
     "align up to 2x better with language models than high-dispersion ones, robust to selection criteria",
     _dispersion_claim),
    ("PRH critiques: alignment vs number of stimuli", "mutual k-NN falls as the stimulus set grows, so a score "
     "means little without its chance level at the same n", _sample_size_claim),
    ("Consistency across datasets (Ciernik et al., study 001)", "the training objective drives how consistent "
     "model-to-model similarity is across datasets (self-supervised models the most); the similarity-behaviour "
     "link depends on the dataset and is strongest on single-domain datasets", _consistency_claim),
    ("Cross-modal taxonomic generalisation (study 002)", "a projector between a frozen image encoder and a frozen "
     "LM generalises hypernyms to concepts it never saw them for (pretrained LM F1 0.90 -> 0.75 from 10 to 100 % "
     "removed, random LM 0.86 -> 0.45); an across-category label shuffle falls to chance, a within-category one "
     "does not", _taxonomy_claim),
]


def claims_table(results: str | Path = "results", pending: list[tuple[str, str]] | None = None) -> str:
    """The README's claims table from ``results``; ``pending``: (study, claim) rows not yet implemented."""
    rows = ["| study | claim | the default run measured | status |", "|---|---|---|---|"]
    for study, claim, measure in CLAIMS:
        got = measure(Path(results))
        measured, status = got if got else ("-", "not run (enable the analysis)")
        rows.append(f"| {study} | {claim} | {measured} | {status} |")
    for study, claim in pending or []:
        rows.append(f"| {study} | {claim} | - | not yet implemented |")
    return "\n".join(rows) + "\n"


PENDING: list[tuple[str, str]] = []

#: The stored intervals :func:`interval_check` counts: (results glob, estimate column, low column, high column).
INTERVAL_TABLES = (
    ("alignment/*/*.csv", "score", "ci_low", "ci_high"),
    ("crossmodal/*/*.csv", "score", "ci_low", "ci_high"),
    ("sample_size/*/*[!d].csv", "score", "ci_low", "ci_high"),  # not the *_trend.csv summaries
    ("dispersion_alignment/*/*.csv", "low", "low_ci_low", "low_ci_high"),
    ("dispersion_alignment/*/*.csv", "high", "high_ci_low", "high_ci_high"),
    ("dispersion_alignment/*/*.csv", "ratio", "ratio_ci_low", "ratio_ci_high"),
)


def interval_check(results: str | Path = "results") -> pd.DataFrame:
    """Per stored table and estimate of a run: how many intervals exclude their own point estimate
    (``convergence.inference.count_excluding``; cells with a finite estimate and interval only). The total
    row is ``table == "all"``. Run it on a finished default run: ``python -c 'from convergence.report import
    interval_check; print(interval_check())'``."""
    from .inference import count_excluding

    rows = []
    for pattern, est, lo, hi in INTERVAL_TABLES:
        for path in sorted(glob.glob(str(Path(results) / pattern))):
            t = pd.read_csv(path)
            if not {est, lo, hi} <= set(t.columns):
                continue
            bad, total = count_excluding(t[est], t[lo], t[hi])
            rows.append({"table": str(Path(path).relative_to(results)), "estimate": est, "excluding": bad,
                         "intervals": total})
    table = pd.DataFrame(rows, columns=["table", "estimate", "excluding", "intervals"])
    total = {"table": "all", "estimate": "", "excluding": int(table["excluding"].sum()),
             "intervals": int(table["intervals"].sum())}
    return pd.concat([table, pd.DataFrame([total])], ignore_index=True)


def taxonomy_budget(workdir: str | Path = ".") -> str:
    """The README's taxonomy budget paragraph, from the newest complete run log: the taxonomy jobs (the
    extraction of ``taxonomy.dataset``'s images, training, aggregate, figures) and their summed job time (in
    the default run they interleave with the other analyses' jobs, so their wall-clock span says little)."""
    table, info = run_timing(latest_complete_log(workdir))
    summaries = sorted(glob.glob(str(Path(workdir) / "results" / "taxonomy" / "*" / "summary.csv")))
    datasets = {Path(p).parent.name for p in summaries}
    mine = table[table["rule"].str.startswith(("taxonomy", "figure_taxonomy"))
                 | (table["rule"].isin(["stimuli", "embed"]) & table["wildcards"].apply(
                     lambda w: any(f"dataset={d}," in f"{w}," for d in datasets)))]
    if mine.empty:
        return "The last default run trained no taxonomy condition.\n"
    train = mine[mine["rule"] == "taxonomy"]
    return (f"Measured in the default run of {info['start']:%Y-%m-%d} ({info.get('cores', '?')} cores, one thread per "
            f"job, beside the other analyses' jobs): {len(train)} training conditions, "
            f"{_minutes(train['seconds'].sum())} of job time (longest {_minutes(train['seconds'].max())}); with the "
            f"stimuli and extraction of the renderings, the aggregate and the figures {len(mine)} jobs, "
            f"{_minutes(mine['seconds'].sum())} of job time: under the 8-minute budget even run one after another.\n")


def _replace_block(text: str, name: str, body: str) -> str:
    start, end = f"<!-- {name} -->", f"<!-- end of {name} -->"
    i, j = text.find(start), text.find(end)
    if i < 0 or j < i:
        raise ValueError(f"the README has no {start!r} ... {end!r} block")
    return text[: i + len(start)] + "\n" + body + text[j:]


def update_readme(readme: str | Path = "README.md", workdir: str | Path = ".") -> None:
    """Rewrite the README's generated blocks (metric table, default run, claims) from the code and the
    newest complete run in ``workdir``."""
    from .metrics.registry import markdown_table

    path = Path(readme)
    text = _replace_block(path.read_text(), "metric table", markdown_table())
    try:
        text = _replace_block(text, "default run", run_section(workdir))
        text = _replace_block(text, "claims table", claims_table(Path(workdir) / "results", PENDING))
        text = _replace_block(text, "taxonomy budget", taxonomy_budget(workdir))
    except FileNotFoundError as err:  # no run yet: the metric table alone
        print(f"{err}; only the metric table was regenerated")
    path.write_text(text)
