"""Consistency figures (Ciernik et al.): dataset x dataset consistency per model-set pair, the distribution
of consistency by model-set pair, and pairwise similarity against the difference in probe accuracy.

Every function takes the stored tables of rule ``consistency`` (``consistency.csv``, ``behaviour.csv``,
``behaviour_pairs.csv``) and output paths; none computes science.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from .common import save_figure


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


def plot_consistency_matrices(table: pd.DataFrame, paths: Sequence[str | Path], *, statistic: str = "spearman",
                              title: str | None = None) -> None:
    """One dataset x dataset heatmap of ``statistic`` per model-set pair (diagonal blank: a dataset is not
    compared with itself), each cell annotated with its value and the number of model pairs."""
    pairs = _set_pairs(table)
    if not pairs:
        _empty(paths, "no model-set pair has enough model pairs on two datasets")
        return
    datasets = list(dict.fromkeys([*table["dataset_a"], *table["dataset_b"]]))
    fig, axes = _grid(len(pairs), 3, (3.6, 3.2))
    for ax, name in zip(axes, pairs):
        sub = table[table["set_pair"] == name]
        matrix = np.full((len(datasets), len(datasets)), np.nan)
        counts = np.zeros_like(matrix, dtype=int)
        for row in sub.itertuples():
            i, j = datasets.index(row.dataset_a), datasets.index(row.dataset_b)
            matrix[i, j] = matrix[j, i] = getattr(row, statistic)
            counts[i, j] = counts[j, i] = row.n_pairs
        image = ax.imshow(np.ma.masked_invalid(matrix), cmap="viridis", vmin=-1, vmax=1)
        for i in range(len(datasets)):
            for j in range(len(datasets)):
                if i != j and np.isfinite(matrix[i, j]):
                    ax.text(j, i, f"{matrix[i, j]:.2f}\n({counts[i, j]})", ha="center", va="center", fontsize=6,
                            color="white" if matrix[i, j] < 0.3 else "black")
        ax.set_xticks(range(len(datasets)), datasets, rotation=45, ha="right", fontsize=7)
        ax.set_yticks(range(len(datasets)), datasets, fontsize=7)
        ax.set_title(name, fontsize=8)
        fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    fig.suptitle(title or f"{statistic} correlation of pairwise similarities between datasets (model pairs)",
                 fontsize=9)
    fig.tight_layout()
    save_figure(fig, paths)


def plot_consistency_distributions(table: pd.DataFrame, paths: Sequence[str | Path], *,
                                   statistic: str = "spearman", title: str | None = None) -> None:
    """Consistency over dataset pairs, one box and its points per model-set pair (sorted by median, highest
    first); the number of dataset pairs and the typical number of model pairs under each label."""
    pairs = _set_pairs(table)
    if not pairs:
        _empty(paths, "no model-set pair has enough model pairs on two datasets")
        return
    values = [table[(table["set_pair"] == p)][statistic].dropna().to_numpy() for p in pairs]
    order = sorted(range(len(pairs)), key=lambda k: -np.median(values[k]))
    fig, ax = plt.subplots(figsize=(max(4.0, 1.1 * len(pairs) + 1.5), 3.8))
    ax.boxplot([values[k] for k in order], widths=0.5, showfliers=False)
    rng = np.random.default_rng(0)  # horizontal jitter of the points only
    for pos, k in enumerate(order, start=1):
        ax.scatter(pos + rng.uniform(-0.12, 0.12, values[k].size), values[k], s=14, alpha=0.8, zorder=3)
    labels = []
    for k in order:
        sub = table[(table["set_pair"] == pairs[k]) & table[statistic].notna()]
        labels.append(f"{pairs[k]}\n{len(sub)} dataset pairs\n~{int(sub['n_pairs'].median())} model pairs")
    ax.set_xticks(range(1, len(pairs) + 1), labels, rotation=30, ha="right", fontsize=7)
    ax.axhline(0, color="grey", lw=0.8, ls=":")
    ax.set_ylim(-1.05, 1.05)
    ax.set_ylabel(f"consistency ({statistic} r between datasets)")
    ax.set_title(title or "consistency of pairwise similarity across datasets, by model-set pair", fontsize=9)
    fig.tight_layout()
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
