"""The ``prh`` analysis: each model's alignment to a reference model against its competence.

The Platonic Representation Hypothesis (Huh et al. 2024) predicts that more competent models align more
with each other. :func:`prh` reads one dataset's alignment scores and competence table and returns the
plot's numbers: one row per model (competence, alignment to the reference with its interval, null,
p-value and q-value, and the calibrated alignment: the excess over the null's (1 - alpha) threshold,
``convergence.inference.THRESHOLD_RULE``) and the least-squares lines through the raw and through the
calibrated alignment. The figure rule only draws what is stored here.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
import xarray as xr


def prh_competence(table: pd.DataFrame) -> tuple[pd.Series, str]:
    """The competence the PRH plot uses, from the competence table.

    Language models: ``1 - bits per byte`` on the fixed competence text (``text_bits_per_byte``) when every
    causal LM has it, otherwise ``1 -`` the caption mean (``bits_per_byte``; mixing the two would compare
    different texts). Without causal LMs: the vision models' linear-probe accuracy. Returns
    (model -> value, axis label); empty when nothing applies.
    """
    text = table[table["measure"] == "text_bits_per_byte"]
    captions = table[table["measure"] == "bits_per_byte"]
    if len(text) and set(captions["model"]) <= set(text["model"]):
        return (pd.Series(1.0 - text["value"].to_numpy(), index=text["model"].to_numpy()),
                "competence (1 - bits per byte on the fixed text)")
    if len(captions):
        return (pd.Series(1.0 - captions["value"].to_numpy(), index=captions["model"].to_numpy()),
                "competence (1 - bits per byte, caption mean)")
    probe = table[table["measure"] == "linear_probe_accuracy"]
    return pd.Series(probe["value"].to_numpy(), index=probe["model"].to_numpy()), "linear-probe accuracy (last layer)"


def alignment_vs_competence(scores: xr.Dataset, competence: Mapping[str, float] | pd.Series, reference: str,
                            summary: str = "best") -> pd.DataFrame:
    """One row per model: its alignment to ``reference`` and its competence (the PRH plot's numbers).

    ``reference`` may be a ``model_a`` (the models are then the ``model_b`` entries) or a ``model_b``.
    Columns: model, competence, alignment, ci_low, ci_high, null_mean, p_value, q_value, tau, calibrated
    (NaN where the scores lack them), objective (the model's training objective label, "" where the scores
    carry none). Models without a competence value are left out; the reference itself is left out.
    """
    competence = pd.Series(competence, dtype=np.float64)
    if reference in scores["model_a"].values:
        sub = scores.sel(model_a=reference, summary=summary)
        models = [str(m) for m in sub["model_b"].values]
        dim = "model_b"
        objectives = sub["objective_b"].values if "objective_b" in sub.coords else [""] * len(models)
    elif reference in scores["model_b"].values:
        sub = scores.sel(model_b=reference, summary=summary)
        models = [str(m) for m in sub["model_a"].values]
        dim = "model_a"
        objectives = sub["objective_a"].values if "objective_a" in sub.coords else [""] * len(models)
    else:
        raise ValueError(f"reference {reference!r} is not a model of these scores")
    rows = []
    objective = dict(zip(models, (str(o) for o in objectives)))
    for m in models:
        if m == reference or m not in competence.index:
            continue
        at = sub.sel({dim: m})
        row = {"model": m, "competence": float(competence[m]), "alignment": float(at["summary_score"])}
        row.update({f: float(at[f]) if f in at else np.nan for f in _FIELDS})
        row["objective"] = objective[m]
        rows.append(row)
    return pd.DataFrame(rows, columns=["model", "competence", "alignment", *_FIELDS, "objective"])


_FIELDS = ("ci_low", "ci_high", "null_mean", "p_value", "q_value", "tau", "calibrated")


def linear_fit(x, y) -> dict:
    """Least-squares line ``y = slope x + intercept`` and Pearson r of finite pairs (needs >= 2 points)."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    ok = np.isfinite(x) & np.isfinite(y)
    if ok.sum() < 2 or np.ptp(x[ok]) == 0:
        raise ValueError(f"a line needs at least 2 points with distinct x; got {int(ok.sum())}")
    slope, intercept = np.polyfit(x[ok], y[ok], 1)
    r = float(np.corrcoef(x[ok], y[ok])[0, 1]) if np.ptp(y[ok]) > 0 else np.nan
    return {"slope": float(slope), "intercept": float(intercept), "r": r, "n": int(ok.sum())}


def prh(scores: xr.Dataset, competence: pd.DataFrame, reference: str, *, summary: str = "best") -> tuple[pd.DataFrame, dict]:
    """The PRH plot's numbers.

    Parameters
    ----------
    scores : the ``alignment`` analysis' store of one dataset and metric.
    competence : the ``competence`` analysis' table of the same dataset.
    reference : the model every other model's alignment is measured to.
    summary : which layer-pair summary of the scores (``best``, ``last``, ``named``).

    Returns
    -------
    (table, info)
        ``table``: one row per model with a competence value (``alignment_vs_competence``); ``info``:
        ``reference``, ``metric``, ``summary``, ``x_label`` (what competence means here), ``fit``
        (``linear_fit`` of alignment on competence; ``None`` with fewer than two models), ``fit_calibrated``
        (the same for the calibrated alignment; its r is NaN when it is constant, e.g. 0 for every model),
        ``fit_trained`` and ``fit_calibrated_trained`` (the same two over the trained models only: the
        random-weight controls, objective ``random``, left out) and ``alpha``.
    """
    values, x_label = prh_competence(competence)
    table = alignment_vs_competence(scores, values, reference, summary=summary)
    numeric = [c for c in table.columns if c not in ("model", "objective")]
    table[numeric] = table[numeric].astype(float)  # an empty table (no competence here) stays numeric
    trained = table[table["objective"].str.lower() != "random"]
    fits = {}
    for name, rows, column in (("fit", table, "alignment"), ("fit_trained", trained, "alignment"),
                               ("fit_calibrated", table, "calibrated"),
                               ("fit_calibrated_trained", trained, "calibrated")):
        try:
            fits[name] = linear_fit(rows["competence"], rows[column])
        except ValueError:
            fits[name] = None
    info = {"reference": reference, "metric": str(scores.attrs.get("metric", "")), "summary": summary,
            "x_label": x_label, "n_stimuli": int(scores.attrs.get("n_stimuli", 0)), **fits,
            "alpha": float(scores.attrs.get("alpha", np.nan))}
    return table, info


def read_prh(table_path, info_path) -> tuple[pd.DataFrame, dict]:
    """The stored numbers of rule ``prh`` (its CSV table and JSON info), numeric columns as floats even when
    the table is empty (no model with a competence value)."""
    import json
    from pathlib import Path

    table = pd.read_csv(table_path)
    if "objective" in table.columns:  # an empty label is read as NaN
        table["objective"] = table["objective"].fillna("").astype(str)
    numeric = [c for c in table.columns if c not in ("model", "objective")]
    table[numeric] = table[numeric].astype(float)
    return table, json.loads(Path(info_path).read_text())
