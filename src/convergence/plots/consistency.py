"""Consistency figures (Ciernik et al.): dataset x dataset consistency per model-set pair, the distribution
of consistency by model-set pair, and pairwise similarity against the difference in probe accuracy.

Every function takes the stored tables of rule ``consistency`` (``consistency.csv``, ``behaviour.csv``,
``behaviour_pairs.csv``) and output paths; none computes science.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from .common import CONTROL_COLOUR, DIVERGING, footnote, is_control_pair, palette, save_figure


def _grid(n: int, ncols: int, size: tuple[float, float]):
    ncols = max(1, min(ncols, n))
    nrows = int(np.ceil(n / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(size[0] * ncols, size[1] * nrows), squeeze=False)
    for ax in axes.ravel()[n:]:
        ax.axis("off")
    return fig, axes.ravel()[:n]


def _set_pairs(table: pd.DataFrame) -> list[str]:
    """Model-set pairs that have at least one finite value, ``all`` first."""
    have = table.dropna(subset=["spearman"])["set_pair"].unique().tolist()
    return sorted(have, key=lambda s: (s != "all", s))


def _empty(paths, message: str) -> None:
    fig, ax = plt.subplots(figsize=(6, 2))
    ax.axis("off")
    ax.text(0.5, 0.5, message, ha="center", va="center", wrap=True)
    save_figure(fig, paths)


FEW_PAIRS = 5  # a consistency over fewer model pairs than this is drawn greyed out: too few to read as a box


def plot_consistency_matrices(table: pd.DataFrame, paths: Sequence[str | Path], *, statistic: str = "spearman",
                              title: str | None = None) -> None:
    """One dataset x dataset heatmap of ``statistic`` per model-set pair on a diverging colour map centred
    at 0 (a signed correlation; diagonal blank: a dataset is not compared with itself), each cell annotated
    with its value and the number of model pairs; a cell without a value (too few of the set's model pairs
    on both datasets) says ``n/a`` with that number; those and the diagonal are light grey (white is 0).
    Set pairs with the random-weight controls are titled in grey."""
    pairs = _set_pairs(table)
    if not pairs:
        _empty(paths, "no model-set pair has enough model pairs on two datasets")
        return
    datasets = list(dict.fromkeys([*table["dataset_a"], *table["dataset_b"]]))
    fig, axes = _grid(len(pairs), 3, (3.7, 3.3))
    blank = False
    for ax, name in zip(axes, pairs):
        sub = table[table["set_pair"] == name]
        matrix = np.full((len(datasets), len(datasets)), np.nan)
        counts = np.full_like(matrix, -1, dtype=int)
        for row in sub.itertuples():
            i, j = datasets.index(row.dataset_a), datasets.index(row.dataset_b)
            matrix[i, j] = matrix[j, i] = getattr(row, statistic)
            counts[i, j] = counts[j, i] = row.n_pairs
        image = ax.imshow(np.ma.masked_invalid(matrix), cmap=plt.get_cmap(DIVERGING).with_extremes(bad="0.88"),
                          vmin=-1, vmax=1)
        for i in range(len(datasets)):
            for j in range(len(datasets)):
                if i == j:
                    continue
                if np.isfinite(matrix[i, j]):
                    ax.text(j, i, f"{matrix[i, j]:.2f}\n({counts[i, j]})", ha="center", va="center", fontsize=6,
                            color="white" if abs(matrix[i, j]) > 0.6 else "black")
                else:
                    blank = True
                    ax.text(j, i, "n/a" + (f"\n({counts[i, j]})" if counts[i, j] >= 0 else ""), ha="center",
                            va="center", fontsize=6, color="0.45")
        ax.set_xticks(range(len(datasets)), datasets, rotation=45, ha="right", fontsize=7)
        ax.set_yticks(range(len(datasets)), datasets, fontsize=7)
        control = is_control_pair(name)
        ax.set_title(name + (" (controls)" if control else ""), fontsize=8,
                     color=CONTROL_COLOUR if control else "black", fontstyle="italic" if control else "normal")
        fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    fig.suptitle(title or f"{statistic} correlation of pairwise similarities between datasets (model pairs)",
                 fontsize=9)
    fig.tight_layout()
    notes = ["in brackets: the number of model pairs the correlation is over"]
    if blank:
        notes.append("n/a: too few of the set's model pairs on both datasets (consistency.min_pairs), e.g. when a "
                     "dataset runs only some of the models")
    footnote(fig, "; ".join(notes), fontsize=7)
    save_figure(fig, paths)


def plot_consistency_distributions(table: pd.DataFrame, paths: Sequence[str | Path], *,
                                   statistic: str = "spearman", title: str | None = None) -> None:
    """Consistency over dataset pairs, one box and its points per model-set pair (sorted by median, highest
    first; colours from the shared palette); the number of dataset pairs and the typical number of model
    pairs under each label. A set pair whose typical number of model pairs is under ``FEW_PAIRS`` is drawn
    grey (too few to read as a distribution); set pairs with the random-weight controls are hatched."""
    pairs = _set_pairs(table)
    if not pairs:
        _empty(paths, "no model-set pair has enough model pairs on two datasets")
        return
    values = [table[(table["set_pair"] == p)][statistic].dropna().to_numpy() for p in pairs]
    order = sorted(range(len(pairs)), key=lambda k: -np.median(values[k]))
    colours = palette(pairs, "set_pair")
    fig, ax = plt.subplots(figsize=(max(4.0, 1.15 * len(pairs) + 1.5), 4.0))
    boxes = ax.boxplot([values[k] for k in order], widths=0.5, showfliers=False, patch_artist=True)
    rng = np.random.default_rng(0)  # horizontal jitter of the points only
    labels, few_any = [], False
    for pos, k in enumerate(order, start=1):
        sub = table[(table["set_pair"] == pairs[k]) & table[statistic].notna()]
        typical = int(sub["n_pairs"].median())
        few = typical < FEW_PAIRS
        few_any |= few
        shade = "0.75" if few else colours[pairs[k]]
        box = boxes["boxes"][pos - 1]
        box.set(facecolor="none" if few else (*matplotlib.colors.to_rgb(shade), 0.25), edgecolor=shade,
                hatch="///" if is_control_pair(pairs[k]) else None)
        boxes["medians"][pos - 1].set(color="0.55" if few else "black")
        for line in (*boxes["whiskers"][2 * pos - 2: 2 * pos], *boxes["caps"][2 * pos - 2: 2 * pos]):
            line.set(color="0.6" if few else "black")
        ax.scatter(pos + rng.uniform(-0.12, 0.12, values[k].size), values[k], s=14, alpha=0.8, zorder=3,
                   color=shade)
        labels.append(f"{pairs[k]}\n{len(sub)} dataset pairs\n~{typical} model pairs" + ("\n(too few)" if few else ""))
    ax.set_xticks(range(1, len(pairs) + 1), labels, rotation=30, ha="right", fontsize=7)
    for tick, k in zip(ax.get_xticklabels(), order):
        if int(table[(table["set_pair"] == pairs[k]) & table[statistic].notna()]["n_pairs"].median()) < FEW_PAIRS:
            tick.set_color("0.5")
    ax.axhline(0, color="grey", lw=0.8, ls=":")
    ax.set_ylim(-1.05, 1.05)
    ax.set_ylabel(f"consistency ({statistic} r between datasets)")
    ax.set_title(title or "consistency of pairwise similarity across datasets, by model-set pair", fontsize=9)
    fig.tight_layout()
    notes = []
    if few_any:
        notes.append(f"grey: fewer than {FEW_PAIRS} model pairs, too few to read as a distribution")
    if any(is_control_pair(p) for p in pairs):
        notes.append("hatched: set pairs with the random-weight controls")
    footnote(fig, "; ".join(notes), fontsize=7)
    save_figure(fig, paths)


def plot_behaviour(links: pd.DataFrame, pairs: pd.DataFrame, paths: Sequence[str | Path], *,
                   title: str | None = None) -> None:
    """Per labelled dataset: pairwise similarity (x) against |difference in probe accuracy| (y), one point
    per model pair, with the Spearman rho and its permutation p-value in the panel title."""
    datasets = [d for d in links["dataset"] if (pairs["dataset"] == d).any()]
    if not datasets:
        _empty(paths, "no labelled dataset with probe accuracies: no behaviour link")
        return
    fig, axes = _grid(len(datasets), 3, (3.3, 3.0))
    for ax, dataset in zip(axes, datasets):
        sub = pairs[pairs["dataset"] == dataset]
        link = links[links["dataset"] == dataset].iloc[0]
        ax.scatter(sub["similarity"], sub["accuracy_difference"], s=16, alpha=0.8)
        rho = "n/a" if not np.isfinite(link["rho"]) else f"{link['rho']:.2f}"
        p = "" if not np.isfinite(link["p_value"]) else f", p={link['p_value']:.3f} ({link['alternative']})"
        ax.set_title(f"{dataset}: rho={rho}{p}\n{int(link['n_models'])} models, {int(link['n_pairs'])} pairs", fontsize=8)
        ax.set_xlabel("similarity", fontsize=8)
        ax.set_ylabel("|difference in probe accuracy|", fontsize=8)
        ax.tick_params(labelsize=7)
    fig.suptitle(title or "representational similarity vs behaviour difference", fontsize=9)
    fig.tight_layout()
    save_figure(fig, paths)
