"""Figures of the ``layers`` analysis, drawn from its stored numbers only (``convergence.analyses.layers``).

- :func:`plot_layer_grid`: layer x layer matrices of chosen model pairs, on relative-depth axes, with each
  row's best match marked and the diagonal drawn;
- :func:`plot_depth_profile`: dissimilarity between models along relative depth (mean and spread over pairs);
- :func:`plot_smoothness`: consecutive-layer similarity along depth, per family with its bootstrap band;
- :func:`plot_readout`: ridge read-out R^2 of each low-level statistic along depth, per training objective.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import xarray as xr

from .common import save_figure

COLOURS = plt.rcParams["axes.prop_cycle"].by_key()["color"]


def _edges(depths: np.ndarray) -> np.ndarray:
    """Cell edges on the relative-depth axis: layer i spans from the previous layer's depth to its own."""
    d = np.asarray(depths, dtype=float)
    return np.concatenate([[0.0 if d[0] > 0 else -0.5 / max(1, d.size)], d]) if d.size else d


def plot_layer_grid(scores: xr.Dataset, pairs: Sequence[tuple[str, str]], paths: Sequence[str | Path], *,
                    title: str | None = None) -> None:
    """One panel per (model_a, model_b) of ``pairs``: the score over every layer pair, drawn at the layers'
    relative depths (rows: model_a, columns: model_b), the best match of each row marked and the diagonal
    of relative depth dashed."""
    from ..analyses.layers import _best, _higher, pair_matrix

    if not pairs:
        raise ValueError("no model pairs to draw")
    higher = _higher(scores)
    cols = min(len(pairs), 5)
    rows = int(np.ceil(len(pairs) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(2.6 * cols + 1.0, 2.5 * rows + 0.6), squeeze=False)
    finite = np.asarray(scores["score"].values, dtype=float)
    finite = finite[np.isfinite(finite)]
    vmin, vmax = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    image = None
    for ax, (a, b) in zip(axes.ravel(), pairs):
        s, da, db = pair_matrix(scores, a, b)
        image = ax.pcolormesh(_edges(db), _edges(da), np.ma.masked_invalid(s), cmap="viridis", vmin=vmin, vmax=vmax)
        best = [(i, _best(s[i], higher)) for i in range(s.shape[0])]
        ax.scatter([db[j] - (db[j] - _edges(db)[j]) / 2 for i, j in best if j >= 0],
                   [da[i] - (da[i] - _edges(da)[i]) / 2 for i, j in best if j >= 0], s=6, color="red")
        ax.plot([0, 1], [0, 1], ls="--", lw=0.8, color="white")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.set_title(f"{a} x {b}", fontsize=7)
        ax.set_xlabel(f"{b} depth", fontsize=6)
        ax.set_ylabel(f"{a} depth", fontsize=6)
        ax.tick_params(labelsize=6)
    for ax in axes.ravel()[len(pairs):]:
        ax.axis("off")
    if image is not None:
        fig.colorbar(image, ax=axes.ravel().tolist(), shrink=0.8, label=str(scores.attrs.get("metric", "score")))
    fig.suptitle(title or "layer x layer similarity (red: best match of each row layer)", fontsize=9)
    save_figure(fig, paths)


def plot_depth_profile(summary: pd.DataFrame, paths: Sequence[str | Path], *, title: str | None = None) -> None:
    """Mean dissimilarity over model pairs along relative depth (at matched depth, and to the best-matching
    layer), with the interquartile range and min-max over pairs; one line per pair kind beside."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.8))
    allpairs = summary[summary["kind"] == "all"].sort_values("depth")
    for col, colour, label in (("dissimilarity_matched", COLOURS[0], "at matched depth"),
                               ("dissimilarity_best", COLOURS[1], "to the best-matching layer")):
        d = allpairs["depth"]
        left.plot(d, allpairs[f"{col}_mean"], color=colour, marker="o", label=label)
        left.fill_between(d, allpairs[f"{col}_q25"], allpairs[f"{col}_q75"], color=colour, alpha=0.25)
        left.fill_between(d, allpairs[f"{col}_min"], allpairs[f"{col}_max"], color=colour, alpha=0.08)
    left.set_xlabel("relative depth")
    left.set_ylabel("dissimilarity between models")
    left.set_title("all pairs: mean, quartiles, range", fontsize=9)
    left.legend(fontsize=7)
    for k, (kind, g) in enumerate((k, g) for k, g in summary.groupby("kind") if k != "all"):
        g = g.sort_values("depth")
        right.plot(g["depth"], g["dissimilarity_matched_mean"], marker="o", color=COLOURS[k % len(COLOURS)],
                   label=f"{kind} (n={int(g['n_pairs'].max())})")
    right.set_xlabel("relative depth")
    right.set_title("at matched depth, by family pair", fontsize=9)
    right.legend(fontsize=7)
    fig.suptitle(title or "where models differ along depth", fontsize=10)
    fig.tight_layout()
    save_figure(fig, paths)


def plot_smoothness(curves: pd.DataFrame, paths: Sequence[str | Path], *, metric: str = "score",
                    title: str | None = None) -> None:
    """Consecutive-layer similarity along relative depth: thin lines per model, thick per family with its
    bootstrap band."""
    fig, ax = plt.subplots(figsize=(6.5, 4))
    families = sorted(curves.loc[curves["kind"] == "family", "name"].unique())
    colour = {f: COLOURS[k % len(COLOURS)] for k, f in enumerate(families)}
    for name, g in curves[curves["kind"] == "model"].groupby("name"):
        ax.plot(g["depth"], g["score"], lw=0.8, alpha=0.5, color=colour.get(g["family"].iloc[0], "grey"))
    for fam in families:
        g = curves[(curves["kind"] == "family") & (curves["name"] == fam)].sort_values("depth")
        ax.plot(g["depth"], g["score"], lw=2.5, color=colour[fam], label=f"{fam} (n={int(g['n_models'].iloc[0])})")
        ax.fill_between(g["depth"], g["ci_low"], g["ci_high"], color=colour[fam], alpha=0.2)
    ax.set_xlabel("relative depth")
    ax.set_ylabel(f"{metric} between consecutive layers")
    ax.legend(fontsize=8)
    ax.set_title(title or "smoothness by family", fontsize=10)
    fig.tight_layout()
    save_figure(fig, paths)


def plot_readout(table: pd.DataFrame, paths: Sequence[str | Path], *, title: str | None = None) -> None:
    """Cross-validated R^2 of each low-level statistic along relative depth: one panel per statistic, one
    colour per training objective, one line per model."""
    stats = list(dict.fromkeys(table["statistic"]))
    objectives = sorted(table["objective"].unique())
    colour = {o: COLOURS[k % len(COLOURS)] for k, o in enumerate(objectives)}
    fig, axes = plt.subplots(1, len(stats), figsize=(3.2 * len(stats), 3.4), squeeze=False, sharey=True)
    for ax, stat in zip(axes[0], stats):
        sub = table[table["statistic"] == stat]
        for model, g in sub.groupby("model", sort=False):
            g = g.sort_values("depth")
            ax.plot(g["depth"], g["r2"], marker=".", lw=1.2, color=colour[g["objective"].iloc[0]], label=model)
        ax.axhline(0, color="black", lw=0.6)
        ax.set_title(stat, fontsize=9)
        ax.set_xlabel("relative depth")
    axes[0][0].set_ylabel("cross-validated R^2 (ridge)")
    handles = [plt.Line2D([], [], color=colour[o], label=o) for o in objectives]
    fig.legend(handles=handles, loc="upper right", fontsize=7)
    fig.suptitle(title or "low-level statistics read out per layer", fontsize=10)
    fig.tight_layout()
    save_figure(fig, paths)
