"""Alignment figures: model x model heatmaps (with the null level), cross-modal heatmaps, the PRH plot.

Every function takes stored numbers (the ``convergence.alignment.pairwise`` dataset, or the table of
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

from .common import save_figure


def _labels(values) -> list[str]:
    return [str(v) for v in values]


def _heatmap(ax, matrix: np.ndarray, rows: Sequence[str], cols: Sequence[str], text: np.ndarray, *, cmap: str,
             label: str, vmin=None, vmax=None) -> None:
    masked = np.ma.masked_invalid(matrix)
    image = ax.imshow(masked, cmap=cmap, vmin=vmin, vmax=vmax, aspect="auto")
    ax.set_xticks(range(len(cols)), cols, rotation=60, ha="right", fontsize=7)
    ax.set_yticks(range(len(rows)), rows, fontsize=7)
    finite = matrix[np.isfinite(matrix)]
    middle = (np.nanmin(finite) + np.nanmax(finite)) / 2 if finite.size else 0.0
    if len(rows) * len(cols) <= 400:
        size = 7 if len(rows) * len(cols) <= 100 else 5
        for i in range(len(rows)):
            for j in range(len(cols)):
                if text[i, j]:
                    colour = "white" if np.isfinite(matrix[i, j]) and matrix[i, j] < middle else "black"
                    ax.text(j, i, text[i, j], ha="center", va="center", fontsize=size, color=colour)
    ax.figure.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label=label)


def _fmt(value, digits: int = 2) -> str:
    return "" if not np.isfinite(value) else f"{value:.{digits}f}"


def _summary(scores: xr.Dataset, summary: str) -> xr.Dataset:
    if summary not in [str(s) for s in scores["summary"].values]:
        raise ValueError(f"summary {summary!r} is not in these scores; present: {list(scores['summary'].values)}")
    return scores.sel(summary=summary)


def plot_alignment_heatmap(scores: xr.Dataset, paths: Sequence[str | Path], *, summary: str = "best",
                           title: str | None = None) -> None:
    """Model x model heatmap of the summary score, each cell annotated ``score`` over ``(null mean)``; a
    second panel shows the z-score against the permutation null (when the scores have one)."""
    sub = _summary(scores, summary)
    value = np.asarray(sub["summary_score"].values, dtype=np.float64)
    null = np.asarray(sub["null_mean"].values, dtype=np.float64)
    z = np.asarray(sub["z_score"].values, dtype=np.float64)
    rows, cols = _labels(sub["model_a"].values), _labels(sub["model_b"].values)
    has_null = np.isfinite(null).any()
    panels = 2 if has_null else 1
    side = max(4.0, 0.45 * max(len(rows), len(cols)) + 2)
    fig, axes = plt.subplots(1, panels, figsize=(side * panels + 1, side), squeeze=False)
    text = np.vectorize(lambda v, n: _fmt(v) + (f"\n({_fmt(n)})" if np.isfinite(n) else ""),
                        otypes=[object])(value, null)
    metric = scores.attrs.get("metric", "score")
    _heatmap(axes[0, 0], value, rows, cols, text, cmap="viridis", label=f"{metric} ({summary} layer pair)")
    axes[0, 0].set_title(f"{metric}" + (" — score (null mean)" if has_null else ""), fontsize=9)
    if has_null:
        ztext = np.vectorize(lambda v: _fmt(v, 1), otypes=[object])(z)
        _heatmap(axes[0, 1], z, rows, cols, ztext, cmap="magma", label="z vs permutation null")
        axes[0, 1].set_title(f"z-score ({scores.attrs.get('n_permutations', '?')} permutations)", fontsize=9)
    for ax in axes[0]:
        ax.set_xlabel("model_b")
        ax.set_ylabel("model_a")
    fig.suptitle(title or f"{metric}, n={scores.attrs.get('n_stimuli', '?')} stimuli", fontsize=10)
    fig.tight_layout()
    save_figure(fig, paths)


def plot_crossmodal_heatmap(scores: xr.Dataset, paths: Sequence[str | Path], *, summary: str = "best",
                            title: str | None = None, row_label: str = "vision model",
                            col_label: str = "language model") -> None:
    """Vision (rows, ``model_a``) x language (columns, ``model_b``) heatmap of the summary score; cells
    annotated with the score, its bootstrap interval and the null mean."""
    sub = _summary(scores, summary)
    value = np.asarray(sub["summary_score"].values, dtype=np.float64)
    null = np.asarray(sub["null_mean"].values, dtype=np.float64)
    low = np.asarray(sub["ci_low"].values, dtype=np.float64)
    high = np.asarray(sub["ci_high"].values, dtype=np.float64)
    rows, cols = _labels(sub["model_a"].values), _labels(sub["model_b"].values)

    def cell(v, lo, hi, nu):
        out = _fmt(v, 3)
        if np.isfinite(lo) and np.isfinite(hi):
            out += f"\n[{_fmt(lo, 3)}, {_fmt(hi, 3)}]"
        if np.isfinite(nu):
            out += f"\nnull {_fmt(nu, 3)}"
        return out

    text = np.vectorize(cell, otypes=[object])(value, low, high, null)
    fig, ax = plt.subplots(figsize=(max(4.0, 1.1 * len(cols) + 2.5), max(3.0, 0.8 * len(rows) + 1.5)))
    metric = scores.attrs.get("metric", "score")
    _heatmap(ax, value, rows, cols, text, cmap="viridis", label=f"{metric} ({summary} layer pair)")
    ax.set_xlabel(col_label)
    ax.set_ylabel(row_label)
    ax.set_title(title or f"cross-modal {metric}, n={scores.attrs.get('n_stimuli', '?')}", fontsize=10)
    fig.tight_layout()
    save_figure(fig, paths)


def plot_prh(table: pd.DataFrame, paths: Sequence[str | Path], *, fit: Mapping | None = None, reference: str = "",
             metric: str = "alignment", x_label: str = "competence (1 - bits per byte)") -> None:
    """The PRH plot: each model's alignment to a reference model against its competence.

    ``table`` has columns model, competence, alignment and optionally ci_low, ci_high, null_mean
    (``convergence.alignment.alignment_vs_competence``); ``fit`` is ``linear_fit(competence, alignment)``
    (slope, intercept, r) and is drawn as a line over the data's range; the mean null level is a dashed line.
    """
    missing = [c for c in ("model", "competence", "alignment") if c not in table.columns]
    if missing:
        raise ValueError(f"table lacks column(s) {missing}")
    fig, ax = plt.subplots(figsize=(5.5, 4.2))
    x = table["competence"].to_numpy(dtype=np.float64)
    y = table["alignment"].to_numpy(dtype=np.float64)
    if {"ci_low", "ci_high"} <= set(table.columns):
        low = y - table["ci_low"].to_numpy(dtype=np.float64)
        high = table["ci_high"].to_numpy(dtype=np.float64) - y
        err = np.where(np.isfinite([low, high]), np.abs([low, high]), 0.0)
        ax.errorbar(x, y, yerr=err, fmt="none", ecolor="0.6", elinewidth=1, capsize=2)
    ax.scatter(x, y, s=28, zorder=3)
    for xi, yi, name in zip(x, y, table["model"]):
        ax.annotate(str(name), (xi, yi), fontsize=6, xytext=(3, 3), textcoords="offset points")
    if "null_mean" in table.columns and np.isfinite(table["null_mean"]).any():
        ax.axhline(float(np.nanmean(table["null_mean"])), color="0.4", ls="--", lw=1, label="permutation null")
    if fit is not None and np.isfinite(x).sum() >= 2:
        xs = np.linspace(np.nanmin(x), np.nanmax(x), 50)
        label = f"fit: slope {fit['slope']:.3f}"
        if np.isfinite(fit.get("r", np.nan)):
            label += f", r = {fit['r']:.2f}"
        ax.plot(xs, fit["slope"] * xs + fit["intercept"], color="C3", lw=1.5, label=label)
    ax.set_xlabel(x_label)
    ax.set_ylabel(f"{metric} to {reference}" if reference else metric)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7, loc="best")
    ax.set_title(f"alignment vs competence{f' (reference: {reference})' if reference else ''}", fontsize=10)
    fig.tight_layout()
    save_figure(fig, paths)


def plot_layer_pairs(scores: xr.Dataset, model_a: str, model_b: str, paths: Sequence[str | Path]) -> None:
    """Heatmap of the score over every (layer of model_a, layer of model_b) with the best pair marked."""
    sub = scores.sel(model_a=model_a, model_b=model_b)
    n_a, n_b = int(sub["n_layers_a"]), int(sub["n_layers_b"])
    value = np.asarray(sub["score"].values, dtype=np.float64)[:n_a, :n_b]
    fig, ax = plt.subplots(figsize=(max(4.0, 0.35 * n_b + 2.5), max(3.5, 0.35 * n_a + 1.5)))
    image = ax.imshow(np.ma.masked_invalid(value), cmap="viridis", aspect="auto", origin="lower")
    ax.set_xticks(range(n_b), _labels(sub["layer_name_b"].values[:n_b]), rotation=60, ha="right", fontsize=6)
    ax.set_yticks(range(n_a), _labels(sub["layer_name_a"].values[:n_a]), fontsize=6)
    if "best" in [str(s) for s in scores["summary"].values]:
        best = sub.sel(summary="best")
        i, j = int(best["summary_layer_a"]), int(best["summary_layer_b"])
        if i >= 0:
            ax.scatter([j], [i], marker="*", s=120, color="red", label="best")
            ax.legend(fontsize=7, loc="upper left")
    fig.colorbar(image, ax=ax, label=scores.attrs.get("metric", "score"))
    ax.set_xlabel(model_b)
    ax.set_ylabel(model_a)
    fig.tight_layout()
    save_figure(fig, paths)
