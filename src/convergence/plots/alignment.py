"""Alignment figures: model x model heatmaps (with the null level), cross-modal heatmaps, the PRH plot.

Heatmaps scale their colours on the pairs of different models (a model's self pair, drawn grey, would
otherwise flatten every other cell), annotate each cell with the winning layer pair (``lI/lJ``), and draw
cells without a score (constant layers: NaN) hatched, never as a value.

Every function takes stored numbers (the ``convergence.pairwise.pairwise`` dataset, or the table of
``alignment_vs_competence`` and the fit of ``linear_fit``) and output paths (format from each suffix, e.g.
``.png`` and ``.pdf``); none computes science.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import xarray as xr

from .common import (
    CONTROL_LABEL,
    draw_intervals,
    control_order,
    figure_title,
    footnote,
    is_control,
    label_points,
    mark_controls,
    marker_style,
    metric_style,
    save_figure,
)


def _labels(values) -> list[str]:
    return [str(v) for v in values]


SELF_COLOUR = "0.82"  # self pairs (a model with itself): shown, never part of the colour scale
MISSING_NOTE = "hatched: no score (a constant layer, e.g. all zero)"


def self_pairs(rows: Sequence[str], cols: Sequence[str]) -> np.ndarray:
    """Boolean (rows, cols): the cells that pair a model with itself."""
    return np.array([[r == c for c in cols] for r in rows], dtype=bool).reshape(len(rows), len(cols))


def colour_limits(matrix: np.ndarray, exclude: np.ndarray | None = None) -> tuple[float, float]:
    """(vmin, vmax) of the finite values of ``matrix`` outside ``exclude`` (the self pairs), so a self-pair
    score of 1 or a huge self z-score does not flatten every other cell; all finite values if none are left."""
    matrix = np.asarray(matrix, dtype=np.float64)
    keep = np.isfinite(matrix) & (~exclude if exclude is not None else True)
    values = matrix[keep] if keep.any() else matrix[np.isfinite(matrix)]
    if values.size == 0:
        return 0.0, 1.0
    low, high = float(values.min()), float(values.max())
    if low == high:
        low, high = low - 0.5, high + 0.5
    return low, high


def winning_layers(sub: xr.Dataset) -> np.ndarray:
    """Per cell, the summary's layer pair as ``"lI/lJ"`` (positions from 1 in model_a / model_b); "" where
    undefined."""
    if "summary_layer_a" not in sub or "summary_layer_b" not in sub:
        return np.full(sub["summary_score"].shape, "", dtype=object)
    la = np.asarray(sub["summary_layer_a"].values, dtype=np.int64)
    lb = np.asarray(sub["summary_layer_b"].values, dtype=np.int64)
    out = np.full(la.shape, "", dtype=object)
    ok = (la >= 0) & (lb >= 0)
    out[ok] = [f"l{i + 1}/l{j + 1}" for i, j in zip(la[ok], lb[ok])]
    return out


EXCLUDES_MARK = " (!)"  # after an interval that does not contain its estimate
COMPACT_FROM = 9  # from this many models on a side, cells show the score only (details: the CSV table)


def _heatmap(ax, matrix: np.ndarray, rows: Sequence[str], cols: Sequence[str], text: np.ndarray, *, cmap: str,
             label: str, vmin=None, vmax=None, control_rows=None, control_cols=None) -> list[str]:
    """Draw one heatmap: colours scaled on the off-self-pair values, self pairs in grey, NaN cells hatched
    (never coloured as a value), random-weight controls (``control_rows`` / ``control_cols``, booleans;
    put last by the caller) set apart by grey labels and a separator. Returns the notes that explain what is
    drawn, for the figure's footnote."""
    from matplotlib.patches import Rectangle

    matrix = np.asarray(matrix, dtype=np.float64)
    own = self_pairs(rows, cols)
    lo, hi = colour_limits(matrix, own)
    vmin = lo if vmin is None else vmin
    vmax = hi if vmax is None else vmax
    shown = np.ma.masked_array(matrix, mask=~np.isfinite(matrix) | own)
    colours = plt.get_cmap(cmap).with_extremes(bad="white")
    image = ax.imshow(shown, cmap=colours, vmin=vmin, vmax=vmax, aspect="auto")
    for i, j in zip(*np.nonzero(own)):
        ax.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, facecolor=SELF_COLOUR, edgecolor="none"))
    missing = ~np.isfinite(matrix) & ~own
    for i, j in zip(*np.nonzero(missing)):
        ax.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, facecolor="white", edgecolor="0.55", hatch="///", lw=0))
    ax.set_xticks(range(len(cols)), cols, rotation=60, ha="right", fontsize=7)
    ax.set_yticks(range(len(rows)), rows, fontsize=7)
    middle = (vmin + vmax) / 2
    if len(rows) * len(cols) <= 400:
        for i in range(len(rows)):
            for j in range(len(cols)):
                cell = text[i, j] if not missing[i, j] else "n/a"
                if cell:
                    value = matrix[i, j]
                    dark = np.isfinite(value) and not own[i, j] and value < middle
                    ax.text(j, i, cell, ha="center", va="center", fontsize=7, color="white" if dark else "black")
    ax.figure.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label=label)
    controls = False
    for axis, flags in (("y", control_rows), ("x", control_cols)):
        if flags is not None and any(flags):
            mark_controls(ax, axis, flags)
            controls = True
    notes = []
    if own.any():
        notes.append("grey: a model with itself (not on the colour scale)")
    if missing.any():
        notes.append(MISSING_NOTE)
    if controls:
        notes.append(f"grey italic names after the black line: {CONTROL_LABEL}s (objective 'random')")
    return notes


def _control_flags(sub: xr.Dataset, side: str):
    name = f"objective_{side}"
    return [is_control(o) for o in sub[name].values] if name in sub.coords else None


def _controls_last(sub: xr.Dataset) -> xr.Dataset:
    """``sub`` with the random-weight controls moved after the trained models on both axes."""
    for side in ("a", "b"):
        name = f"objective_{side}"
        if name in sub.coords:
            order = control_order(list(sub[f"model_{side}"].values), list(sub[name].values))
            sub = sub.isel({f"model_{side}": order})
    return sub


def _fmt(value, digits: int = 2) -> str:
    return "" if not np.isfinite(value) else f"{value:.{digits}f}"


def _summary(scores: xr.Dataset, summary: str) -> xr.Dataset:
    if summary not in [str(s) for s in scores["summary"].values]:
        raise ValueError(f"summary {summary!r} is not in these scores; present: {list(scores['summary'].values)}")
    return scores.sel(summary=summary)


def _layer_note(summary: str) -> str:
    return f"lI/lJ: the {summary} layer pair (position in model_a / model_b, from 1)"


def plot_alignment_heatmap(scores: xr.Dataset, paths: Sequence[str | Path], *, summary: str = "best",
                           title: str | None = None):
    """Model x model heatmap of the summary score, each cell annotated ``score``, ``(null mean)`` and the
    winning layer pair ``lI/lJ`` (the score only from ``COMPACT_FROM`` models on: the rest is in the CSV
    table); a second panel shows the z-score against the permutation null (when the scores have one) and a
    third the calibrated score with its q <= alpha marks (:func:`calibrated_panel`). Colours are scaled on
    the pairs of different models (self pairs grey); cells without a score (constant layers) are hatched;
    random-weight controls come last, behind a separator, their names grey. Returns the (closed) figure."""
    sub = _controls_last(_summary(scores, summary))
    value = np.asarray(sub["summary_score"].values, dtype=np.float64)
    null = np.asarray(sub["null_mean"].values, dtype=np.float64)
    z = np.asarray(sub["z_score"].values, dtype=np.float64)
    pairs = winning_layers(sub)
    rows, cols = _labels(sub["model_a"].values), _labels(sub["model_b"].values)
    flags = {"control_rows": _control_flags(sub, "a"), "control_cols": _control_flags(sub, "b")}
    has_null = np.isfinite(null).any()
    compact = max(len(rows), len(cols)) >= COMPACT_FROM
    has_calibrated = has_calibration(sub)
    panels = (2 if has_null else 1) + has_calibrated
    side = max(4.0, (0.62 if compact else 0.6) * max(len(rows), len(cols)) + 2)
    fig, axes = plt.subplots(1, panels, figsize=(side * panels + 1, side + 0.6), squeeze=False)
    if compact:
        text = np.vectorize(lambda v: _fmt(v), otypes=[object])(value)
    else:
        text = np.vectorize(lambda v, n, lp: _fmt(v) + (f"\n({_fmt(n)})" if np.isfinite(n) else "")
                            + (f"\n{lp}" if lp and np.isfinite(v) else ""), otypes=[object])(value, null, pairs)
    metric = scores.attrs.get("metric", "score")
    label, cmap = metric_style(metric)
    notes = _heatmap(axes[0, 0], value, rows, cols, text, cmap=cmap, label=f"{label}, {summary} layer pair", **flags)
    if compact:
        axes[0, 0].set_title(f"{metric}: score of the {summary} layer pair", fontsize=9)
        notes.append("null means and winning layer pairs: the alignment CSV table")
    else:
        axes[0, 0].set_title(f"{metric}" + (" — score (null mean)" if has_null else "") + f"\n{_layer_note(summary)}",
                             fontsize=8)
    if has_null:
        ztext = np.vectorize(lambda v: _fmt(v, 1), otypes=[object])(z)
        _heatmap(axes[0, 1], z, rows, cols, ztext, cmap="magma", label="z vs permutation null", **flags)
        axes[0, 1].set_title(f"z-score ({scores.attrs.get('n_permutations', '?')} permutations)", fontsize=9)
    if has_calibrated:
        calibrated_panel(axes[0, -1], sub, rows, cols, scores.attrs, **flags)
    for ax in axes[0]:
        ax.set_xlabel("model_b")
        ax.set_ylabel("model_a")
    fig.suptitle(title or figure_title(f"{summary} layer pair, n={scores.attrs.get('n_stimuli', '?')} stimuli",
                                       dataset=scores.attrs.get("dataset"), metric=metric), fontsize=10)
    fig.tight_layout()
    footnote(fig, "; ".join(dict.fromkeys(notes)))
    save_figure(fig, paths)
    return fig


def plot_crossmodal_heatmap(scores: xr.Dataset, paths: Sequence[str | Path], *, summary: str = "best",
                            title: str | None = None, row_label: str = "vision model",
                            col_label: str = "language model"):
    """Vision (rows, ``model_a``) x language (columns, ``model_b``) heatmap of the summary score; cells
    annotated with the score, its jackknife interval, the null mean and the winning layer pair (the score
    only from ``COMPACT_FROM`` models on a side); cells without a score hatched; random-weight controls last,
    behind a separator; beside it the calibrated score (:func:`calibrated_panel`) when the scores have one.
    Returns the (closed) figure."""
    sub = _controls_last(_summary(scores, summary))
    value = np.asarray(sub["summary_score"].values, dtype=np.float64)
    null = np.asarray(sub["null_mean"].values, dtype=np.float64)
    low = np.asarray(sub["ci_low"].values, dtype=np.float64)
    high = np.asarray(sub["ci_high"].values, dtype=np.float64)
    pairs = winning_layers(sub)
    rows, cols = _labels(sub["model_a"].values), _labels(sub["model_b"].values)
    compact = max(len(rows), len(cols)) >= COMPACT_FROM

    def cell(v, lo, hi, nu, lp):
        out = _fmt(v, 3)
        if compact:
            return out
        if np.isfinite(lo) and np.isfinite(hi):
            out += f"\n[{_fmt(lo, 3)}, {_fmt(hi, 3)}]" + (EXCLUDES_MARK if not lo <= v <= hi else "")
        if np.isfinite(nu):
            out += f"\nnull {_fmt(nu, 3)}"
        if lp and np.isfinite(v):
            out += f"\n{lp}"
        return out

    text = np.vectorize(cell, otypes=[object])(value, low, high, null, pairs)
    width = 0.8 if compact else 1.1
    height = (0.5 if compact else 0.9) * len(rows) + 2.0
    panels = 1 + has_calibration(sub)
    fig, axes = plt.subplots(1, panels, figsize=(panels * max(4.0, width * len(cols) + 2.5), max(3.0, height)),
                             squeeze=False)
    ax = axes[0, 0]
    metric = scores.attrs.get("metric", "score")
    label, cmap = metric_style(metric)
    flags = {"control_rows": _control_flags(sub, "a"), "control_cols": _control_flags(sub, "b")}
    notes = _heatmap(ax, value, rows, cols, text, cmap=cmap, label=f"{label}, {summary} layer pair", **flags)
    if panels == 2:
        calibrated_panel(axes[0, 1], sub, rows, cols, scores.attrs, **flags)
    if compact:
        notes.append("intervals, null means and winning layer pairs: the crossmodal CSV table")
    elif any(EXCLUDES_MARK in str(t) for t in text.ravel()):
        notes.append(f"{EXCLUDES_MARK.strip()}: the interval does not contain the score")
    for a in axes[0]:
        a.set_xlabel(col_label)
        a.set_ylabel(row_label)
    what = f"cross-modal {summary} layer pair, n={scores.attrs.get('n_stimuli', '?')}"
    ax.set_title((title or figure_title(what, dataset=scores.attrs.get("dataset"), metric=metric))
                 + ("" if compact else f"\n{_layer_note(summary)}"), fontsize=9)
    fig.tight_layout()
    footnote(fig, "; ".join(dict.fromkeys(notes)))
    save_figure(fig, paths)
    return fig


def plot_prh(table: pd.DataFrame, paths: Sequence[str | Path], *, fit: Mapping | None = None,
             fit_trained: Mapping | None = None, reference: str = "", metric: str = "alignment",
             x_label: str = "competence (1 - bits per byte)", dataset: str | None = None,
             fit_calibrated: Mapping | None = None, fit_calibrated_trained: Mapping | None = None,
             alpha: float | None = None):
    """The PRH plot: each model's alignment to a reference model against its competence.

    ``table`` has columns model, competence, alignment and optionally ci_low, ci_high, null_mean,
    calibrated, q_value and objective (``convergence.analyses.prh.alignment_vs_competence``). Each interval
    is drawn exactly as stored, from ci_low to ci_high (red where it excludes the score). Random-weight
    controls (objective ``random``) are hollow. With controls in the table the line is ``fit_trained`` (the
    fit over the trained models, controls left out; none is drawn without it), else ``fit``; either over the
    data's range. The mean null level is a dashed line. With a ``calibrated`` column a second panel shows
    the calibrated alignment against the same competence (:func:`prh_calibrated_panel`, line
    ``fit_calibrated_trained`` or ``fit_calibrated`` by the same rule). Returns the (closed) figure.
    """
    from .common import palette

    missing = [c for c in ("model", "competence", "alignment") if c not in table.columns]
    if missing:
        raise ValueError(f"table lacks column(s) {missing}")
    calibrated = "calibrated" in table.columns and bool(np.isfinite(table["calibrated"].to_numpy(float)).any())
    fig, axes = plt.subplots(1, 1 + calibrated, figsize=(6.4 * (1 + calibrated), 4.8), squeeze=False)
    ax = axes[0, 0]
    x = table["competence"].to_numpy(dtype=np.float64)
    y = table["alignment"].to_numpy(dtype=np.float64)
    names = [str(m) for m in table["model"]]
    control = np.array([is_control(o) for o in table["objective"]], dtype=bool) if "objective" in table.columns \
        else np.zeros(len(table), dtype=bool)
    if {"ci_low", "ci_high"} <= set(table.columns):
        draw_intervals(ax, x, y, table["ci_low"], table["ci_high"], label="interval (jackknife, as stored)")
    colours = palette(names)
    for k, name in enumerate(names):
        ax.scatter([x[k]], [y[k]], s=34, zorder=3, **marker_style(colours[name], bool(control[k])))
    if control.any():
        ax.scatter([], [], s=34, facecolors="none", edgecolors="0.3", label=f"{CONTROL_LABEL} (hollow)")
    if "null_mean" in table.columns and np.isfinite(table["null_mean"]).any():
        ax.axhline(float(np.nanmean(table["null_mean"])), color="0.4", ls="--", lw=1, label="permutation null (mean)")
    _fit_line(ax, x, y, control, fit, fit_trained)
    ax.set_xlabel(x_label)
    label = metric_style(metric)[0]
    ax.set_ylabel(f"{label} to {reference}" if reference else label)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=6.5, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncols=2, frameon=False)
    what = f"alignment to {reference} vs competence" if reference else "alignment vs competence"
    ax.set_title(figure_title(what, dataset=dataset, metric=metric), fontsize=10)
    ax.margins(x=0.12, y=0.1)
    if calibrated:
        prh_calibrated_panel(axes[0, 1], table, fit_calibrated, fit_trained=fit_calibrated_trained,
                             reference=reference, metric=metric, x_label=x_label, alpha=alpha)
    fig.tight_layout()
    label_points(ax, x, y, names)
    if calibrated:
        label_points(axes[0, 1], x, table["calibrated"].to_numpy(float), names)
    unscored = [name for name, yi in zip(names, y) if not np.isfinite(yi)]
    if unscored:  # a NaN score (constant layers) is missing, not zero: say which models have none
        footnote(fig, f"no score: {', '.join(unscored)}")
    save_figure(fig, paths)
    return fig


def _fit_line(ax, x, y, control, fit: Mapping | None, fit_trained: Mapping | None) -> None:
    """Draw the stored least-squares line over the models it was fitted to: ``fit_trained`` over the trained
    models when the random-weight controls (``control``) are among the points (none without it), else
    ``fit`` over all of them."""
    line, who = (fit_trained, "trained models") if control.any() else (fit, "all models")
    trained = ~control & np.isfinite(x) & np.isfinite(y)
    if line is not None and trained.sum() >= 2:
        xs = np.linspace(np.nanmin(x[trained]), np.nanmax(x[trained]), 50)
        label = f"fit over {line.get('n', int(trained.sum()))} {who}: slope {line['slope']:.3f}"
        if np.isfinite(line.get("r", np.nan)):
            label += f", r = {line['r']:.2f}"
        ax.plot(xs, line["slope"] * xs + line["intercept"], color="C3", lw=1.5, label=label)


def plot_layer_pairs(scores: xr.Dataset, model_a: str, model_b: str, paths: Sequence[str | Path]) -> None:
    """Heatmap of the score over every (layer of model_a, layer of model_b) with the best pair marked."""
    sub = scores.sel(model_a=model_a, model_b=model_b)
    n_a, n_b = int(sub["n_layers_a"]), int(sub["n_layers_b"])
    value = np.asarray(sub["score"].values, dtype=np.float64)[:n_a, :n_b]
    fig, ax = plt.subplots(figsize=(max(4.0, 0.35 * n_b + 2.5), max(3.5, 0.35 * n_a + 1.5)))
    label, cmap = metric_style(scores.attrs.get("metric", "score"))
    image = ax.imshow(np.ma.masked_invalid(value), cmap=cmap, aspect="auto", origin="lower")
    ax.set_xticks(range(n_b), _labels(sub["layer_name_b"].values[:n_b]), rotation=60, ha="right", fontsize=6)
    ax.set_yticks(range(n_a), _labels(sub["layer_name_a"].values[:n_a]), fontsize=6)
    if "best" in [str(s) for s in scores["summary"].values]:
        best = sub.sel(summary="best")
        i, j = int(best["summary_layer_a"]), int(best["summary_layer_b"])
        if i >= 0:
            ax.scatter([j], [i], marker="*", s=120, color="red", label="best")
            ax.legend(fontsize=7, loc="upper left")
    fig.colorbar(image, ax=ax, label=label)
    ax.set_xlabel(model_b)
    ax.set_ylabel(model_a)
    fig.tight_layout()
    save_figure(fig, paths)


# ------------------------------------------------------------------------------------ calibrated scores


def has_calibration(sub: xr.Dataset) -> bool:
    """Whether a summary's scores carry a calibrated score with at least one finite value."""
    return "calibrated" in sub and bool(np.isfinite(np.asarray(sub["calibrated"].values, dtype=np.float64)).any())


def above_null(sub: xr.Dataset, alpha: float) -> np.ndarray:
    """Cells above their null: Benjamini-Hochberg q-value at most ``alpha`` (False where there is none)."""
    if "q_value" not in sub:
        return np.zeros(sub["summary_score"].shape, dtype=bool)
    q = np.asarray(sub["q_value"].values, dtype=np.float64)
    return np.isfinite(q) & (q <= alpha)


def _alpha(attrs: Mapping) -> float:
    value = float(attrs.get("alpha", 0.05))
    return value if np.isfinite(value) else 0.05


def calibrated_panel(ax, sub: xr.Dataset, rows: Sequence[str], cols: Sequence[str], attrs: Mapping, *,
                     control_rows=None, control_cols=None) -> list[str]:
    """One heatmap panel of the calibrated score (0 at or below the null's (1 - alpha) threshold tau, else the
    excess over tau as a share of the room to the metric's maximum; colour scale 0 to 1), each cell marked
    ``*`` when its q-value is at most alpha (Benjamini-Hochberg over the model pairs); random-weight controls
    set apart as in :func:`_heatmap`. Returns the panel's notes."""
    value = np.asarray(sub["calibrated"].values, dtype=np.float64)
    alpha = _alpha(attrs)
    marks = above_null(sub, alpha)
    text = np.vectorize(lambda v, m: _fmt(v) + ("*" if m and np.isfinite(v) else ""), otypes=[object])(value, marks)
    notes = _heatmap(ax, value, rows, cols, text, cmap="viridis", label="calibrated score", vmin=0.0, vmax=1.0,
                     control_rows=control_rows, control_cols=control_cols)
    ax.set_title(f"calibrated (alpha {alpha:g}: 0 at or below the null's threshold)\n"
                 f"*: above its null, q <= {alpha:g} (Benjamini-Hochberg over model pairs)", fontsize=8)
    return notes


def prh_calibrated_panel(ax, table: pd.DataFrame, fit: Mapping | None, *, fit_trained: Mapping | None = None,
                         reference: str = "", metric: str = "alignment", x_label: str = "competence",
                         alpha: float | None = None) -> None:
    """The PRH panel on calibrated alignment: each model's calibrated alignment to the reference against its
    competence, in its palette colour, a circle where its q-value is at most alpha (above its null) and a
    cross where not; random-weight controls hollow and left out of the line (``fit_trained``, else ``fit``
    when there are no controls). The caller names the points."""
    from .common import palette

    alpha = 0.05 if alpha is None or not np.isfinite(alpha) else float(alpha)
    x = table["competence"].to_numpy(dtype=np.float64)
    y = table["calibrated"].to_numpy(dtype=np.float64)
    q = table["q_value"].to_numpy(dtype=np.float64) if "q_value" in table.columns else np.full(y.shape, np.nan)
    above = np.isfinite(q) & (q <= alpha)
    names = [str(m) for m in table["model"]]
    control = np.array([is_control(o) for o in table["objective"]], dtype=bool) if "objective" in table.columns \
        else np.zeros(len(table), dtype=bool)
    colours = palette(names)
    for k, name in enumerate(names):
        style = marker_style(colours[name], bool(control[k]))
        if not above[k]:  # a cross has no face: a control's is drawn thinner
            style = {"color": colours[name], "linewidths": 0.8 if control[k] else 1.4}
        ax.scatter([x[k]], [y[k]], s=34, zorder=3, marker="o" if above[k] else "x", **style)
    ax.scatter([], [], s=34, marker="o", color="0.3", label=f"above its null (q <= {alpha:g})")
    ax.scatter([], [], s=34, marker="x", color="0.3", label="not above its null")
    if control.any():
        ax.scatter([], [], s=34, facecolors="none", edgecolors="0.3", label=f"{CONTROL_LABEL} (hollow)")
    _fit_line(ax, x, y, control, fit, fit_trained)
    ax.axhline(0.0, color="0.4", ls="--", lw=1)
    ax.set_xlabel(x_label)
    label = metric_style(metric)[0]
    ax.set_ylabel(f"calibrated {label} to {reference}" if reference else f"calibrated {label}")
    ax.legend(fontsize=6.5, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncols=2, frameon=False)
    ax.margins(x=0.12, y=0.1)
    ax.set_title(f"calibrated (0 = not above the null's 1 - {alpha:g} threshold)", fontsize=10)
