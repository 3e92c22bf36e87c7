"""Figures of the ``layers`` analysis, drawn from its stored numbers only (``convergence.analyses.layers``).

- :func:`plot_layer_grid`: layer x layer matrices of chosen model pairs, on relative-depth axes, with each
  row's best match marked and the diagonal drawn;
- :func:`plot_depth_profile`: dissimilarity between models along relative depth (mean and spread over pairs);
- :func:`plot_smoothness`: consecutive-layer similarity along depth, per family with its bootstrap band;
- :func:`plot_readout`: ridge read-out R^2 of each low-level statistic along depth, per training objective;
- :func:`plot_depth_matches`: the best match of every layer against its relative depth, with the diagonal,
  the tolerance band and the shuffled-depth null (the claim "similar relative depths are most similar").
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import xarray as xr

from .common import (
    CONTROL_COLOUR,
    CONTROL_LABEL,
    EXCLUDES_COLOUR,
    draw_intervals,
    footnote,
    is_control,
    marker_style,
    palette,
    save_figure,
)

TRAINED_COLOUR = "#1f3f6e"  # points of pairs of trained models (controls: hollow grey)
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
    from ..analyses.layers import _best, _higher, _label, pair_matrix

    if not pairs:
        raise ValueError("no model pairs to draw")
    higher = _higher(scores)
    cols = min(len(pairs), 5)
    rows = int(np.ceil(len(pairs) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(2.7 * cols + 1.4, 3.0 * rows + 1.0), squeeze=False,
                             layout="constrained")
    fig.get_layout_engine().set(h_pad=0.08, hspace=0.06)
    finite = np.asarray(scores["score"].values, dtype=float)
    finite = finite[np.isfinite(finite)]
    vmin, vmax = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    image = None
    for ax, (a, b) in zip(axes.ravel(), pairs):
        s, da, db = pair_matrix(scores, a, b)
        image = ax.pcolormesh(_edges(db), _edges(da), np.ma.masked_invalid(s), cmap="viridis", vmin=vmin, vmax=vmax)
        best = [(i, _best(s[i], higher)) for i in range(s.shape[0])]
        ax.scatter([db[j] - (db[j] - _edges(db)[j]) / 2 for i, j in best if j >= 0],
                   [da[i] - (da[i] - _edges(da)[i]) / 2 for i, j in best if j >= 0], s=7, color="red")
        ax.plot([0, 1], [0, 1], ls="--", lw=0.8, color="white")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.set_title(f"{a} x {b}", fontsize=7.5, pad=3)
        for name, setter in ((b, ax.set_xlabel), (a, ax.set_ylabel)):
            setter(f"{name} depth", fontsize=6.5, color=CONTROL_COLOUR if _label(scores, name, "objective") == "random"
                   else "black")
        ax.tick_params(labelsize=6)
    for ax in axes.ravel()[len(pairs):]:
        ax.axis("off")
    if image is not None:
        fig.colorbar(image, ax=axes.ravel()[:len(pairs)].tolist(), shrink=0.8,
                     label=str(scores.attrs.get("metric", "score")))
    handles = [plt.Line2D([], [], ls="", marker="o", ms=4, color="red", label="best match of each row's layer"),
               plt.Line2D([], [], ls="--", color="0.3", lw=0.8, label="equal relative depth (white in the panels)")]
    fig.legend(handles=handles, loc="outside lower center", ncols=2, fontsize=7, frameon=False)
    fig.suptitle(title or "layer x layer similarity", fontsize=9)
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
    colour per training objective (the shared palette: random-weight controls grey and dashed), one line per
    model. A statistic with no finite R^2 (saturation on greyscale images: constant, so nothing to read out)
    gets no panel; a note names it."""
    stats = list(dict.fromkeys(table["statistic"]))
    drawn = [s for s in stats if np.isfinite(table.loc[table["statistic"] == s, "r2"].to_numpy(float)).any()]
    left_out = [s for s in stats if s not in drawn]
    objectives = sorted(table["objective"].unique())
    colour_of = palette(objectives, "objective")
    n = max(1, len(drawn))
    fig, axes = plt.subplots(1, n, figsize=(3.2 * n + 0.4, 3.6), squeeze=False, sharey=True)
    for ax, stat in zip(axes[0], drawn):
        sub = table[table["statistic"] == stat]
        for model, g in sub.groupby("model", sort=False):
            g = g.sort_values("depth")
            objective = g["objective"].iloc[0]
            ax.plot(g["depth"], g["r2"], marker=".", lw=1.2, color=colour_of[objective],
                    ls="--" if is_control(objective) else "-", label=model)
        ax.axhline(0, color="black", lw=0.6)
        ax.set_title(stat, fontsize=9)
        ax.set_xlabel("relative depth")
    if not drawn:
        axes[0][0].text(0.5, 0.5, "no statistic has a finite R^2", ha="center", va="center",
                        transform=axes[0][0].transAxes)
    axes[0][0].set_ylabel("cross-validated R^2 (ridge)")
    handles = [plt.Line2D([], [], color=colour_of[o], ls="--" if is_control(o) else "-",
                          label=o + (f" ({CONTROL_LABEL}s)" if is_control(o) else "")) for o in objectives]
    fig.suptitle(title or "low-level statistics read out per layer", fontsize=10)
    fig.tight_layout()
    fig.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, 0.0), ncols=min(5, len(handles)), fontsize=7,
               frameon=False)
    if left_out:
        footnote(fig, f"not drawn: {', '.join(left_out)} (not defined here: constant over the stimuli, e.g. "
                      "saturation on greyscale images)", fontsize=7)
    save_figure(fig, paths)


def plot_depth_matches(matches: pd.DataFrame, diagonal: dict, paths: Sequence[str | Path], *,
                       title: str | None = None) -> None:
    """The claim "similar relative depths are most similar", drawn from the stored numbers of rule layers.

    Left: for every ordered model pair (A != B) and layer of A (``best_matches.csv``), the relative depth of
    its best-matching layer in B (y) against its own relative depth (x); the diagonal of equal depth and the
    band within ``tolerance`` of it. Pairs with a random-weight control are hollow. Right: the fraction of
    layers whose best match lies in the band and the mean |offset| from the diagonal, each with its bootstrap
    interval over pairs, beside the shuffled-depth null (its mean +- 2 sd) and the one-sided p-value
    (``diagonal``: the ``diagonal`` entry of ``summary.json``).
    """
    tol = float(diagonal["tolerance"])
    fig, (ax, right) = plt.subplots(1, 2, figsize=(10.5, 4.6), gridspec_kw={"width_ratios": [1.15, 1]})
    control = np.zeros(len(matches), dtype=bool)
    for side in ("a", "b"):
        if f"objective_{side}" in matches.columns:
            control |= matches[f"objective_{side}"].map(is_control).to_numpy(dtype=bool)
    xs = np.array([-0.05, 1.05])
    ax.fill_between(xs, xs - tol, xs + tol, color="tab:green", alpha=0.15, lw=0,
                    label=f"within {tol:g} of the diagonal")
    ax.plot(xs, xs, color="tab:green", lw=1, ls="--", label="equal relative depth")
    da, db = matches["depth_a"].to_numpy(float), matches["depth_b"].to_numpy(float)
    trained_colour = TRAINED_COLOUR
    ax.scatter(da[~control], db[~control], s=14, alpha=0.55, zorder=3,
               **marker_style(trained_colour, False), label=f"trained pairs ({int((~control).sum())} layers)")
    if control.any():
        ax.scatter(da[control], db[control], s=14, alpha=0.7, zorder=3, **marker_style(CONTROL_COLOUR, True),
                   label=f"pairs with a {CONTROL_LABEL} ({int(control.sum())} layers)")
    ax.set(xlim=(-0.03, 1.03), ylim=(-0.03, 1.03), xlabel="relative depth of the layer in model A",
           ylabel="relative depth of its best match in model B")
    ax.set_aspect("equal")
    n_pairs = matches[["model_a", "model_b"]].drop_duplicates().shape[0] if len(matches) else 0
    ax.set_title(f"best match of every layer, {n_pairs} ordered model pairs", fontsize=9)
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.14), frameon=False, ncols=2)

    rows = [("fraction", "fraction", f"fraction of layers whose best\nmatch lies within {tol:g} (higher: closer)"),
            ("mean_abs_offset", "offset", "mean |depth offset| of the\nbest match (lower: closer)")]
    ci = float(diagonal.get("ci", 0.95))
    ticks, excluded = [], False
    for k, (key, prefix, label) in enumerate(rows):
        y_obs, y_null = k - 0.12, k + 0.12
        value = float(diagonal[key])
        excl = draw_intervals(right, [y_obs], [value], [diagonal[f"{prefix}_ci_low"]], [diagonal[f"{prefix}_ci_high"]],
                              colour="tab:blue", horizontal=True, lw=2.5)
        excluded |= bool(excl.any())
        right.scatter([value], [y_obs], color="tab:blue", s=36, zorder=3)
        mean, sd = float(diagonal[f"{prefix}_null_mean"]), float(diagonal[f"{prefix}_null_std"])
        if np.isfinite(mean):
            if np.isfinite(sd):
                right.hlines([y_null], [mean - 2 * sd], [mean + 2 * sd], colors="0.6", lw=2.5)
            right.scatter([mean], [y_null], color="0.45", marker="D", s=26, zorder=3)
        p = diagonal.get(f"{prefix}_p_value", np.nan)
        ptext = f"one-sided p = {p:.3f}" if np.isfinite(p) else "no null"
        ticks.append(f"{label}\n{value:.2f} vs {mean:.2f} shuffled\n({ptext})")
    right.set_yticks(range(len(rows)), ticks, fontsize=7.5)
    right.set_ylim(len(rows) - 0.5, -0.5)
    right.set_xlim(0, 1)
    right.set_xlabel("fraction of layers, or relative depth (offset)")
    handles = [plt.Line2D([], [], color="tab:blue", marker="o", lw=2.5,
                          label=f"measured, {ci:.0%} bootstrap over pairs"),
               plt.Line2D([], [], color="0.6", marker="D", markerfacecolor="0.45", lw=2.5,
                          label=f"shuffled-depth null ({diagonal.get('n_permutations', '?')} draws), mean +- 2 sd")]
    if excluded:
        handles.append(plt.Line2D([], [], color=EXCLUDES_COLOUR, lw=2.5, label="interval that excludes its estimate"))
    right.legend(handles=handles, fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.16), frameon=False)
    right.set_title("against depths shuffled within model B", fontsize=9)
    fig.suptitle(title or "similar relative depths are most similar?", fontsize=10)
    fig.tight_layout()
    save_figure(fig, paths)
