"""Figure of the ``sample_size`` analysis: score and null against the number of stimuli."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from .common import metric_style, save_figure

_KIND_COLOURS = {"vision x vision": "tab:blue", "language x vision": "tab:orange", "language x language": "tab:green"}


def plot_sample_size(table: pd.DataFrame, trend: pd.DataFrame, paths: Sequence[str | Path], *, metric: str,
                     dataset: str = "", summary: str = "last") -> None:
    """Left: every model pair's score (thin) and the mean per pair kind (bold) against n, with the mean
    permutation null (dashed) and its +-2 sd band. Right: the mean excess over the null per pair kind."""
    label, _ = metric_style(metric)
    fig, (ax, ax_excess) = plt.subplots(1, 2, figsize=(11, 4.2), constrained_layout=True)
    kinds = [k for k in trend["pair_kind"].unique() if k != "all"]
    for kind in kinds:
        colour = _KIND_COLOURS.get(kind, "tab:purple")
        for _, pair in table[table["pair_kind"] == kind].groupby(["model_a", "model_b"]):
            ax.plot(pair["n_stimuli"], pair["score"], color=colour, alpha=0.2, lw=0.8)
        mean = trend[trend["pair_kind"] == kind]
        n_pairs = int(mean["n_pairs"].max())
        ax.plot(mean["n_stimuli"], mean["score"], "o-", color=colour, lw=2.2,
                label=f"{kind} ({n_pairs} pairs), mean")
        ax_excess.plot(mean["n_stimuli"], mean["excess"], "o-", color=colour, lw=2,
                       label=f"{kind}: rho(n, score) {mean['rho_n_score'].iloc[0]:+.2f}, "
                       f"rho(n, excess) {mean['rho_n_excess'].iloc[0]:+.2f}")
    null = table.groupby("n_stimuli")[["null_mean", "null_std"]].mean()
    ax.plot(null.index, null["null_mean"], "k--", lw=1.5, label="permutation null, mean")
    ax.fill_between(null.index, null["null_mean"] - 2 * null["null_std"], null["null_mean"] + 2 * null["null_std"],
                    color="grey", alpha=0.25, lw=0, label="null +- 2 sd")
    for a in (ax, ax_excess):
        a.set_xscale("log", base=2)
        sizes = np.sort(table["n_stimuli"].unique())
        a.set_xticks(sizes, [str(s) for s in sizes])
        a.set_xlabel("number of stimuli (nested random subsets)")
        a.grid(alpha=0.3)
    ax_excess.axhline(0, color="k", lw=0.8)
    ax.set_ylabel(f"{label} ({summary} layers)")
    ax_excess.set_ylabel("score minus null mean")
    ax.set_title(f"{dataset}: {metric} against n")
    ax_excess.set_title("above chance, against n")
    ax.legend(fontsize=7, loc="best")
    ax_excess.legend(fontsize=7, loc="best")
    save_figure(fig, paths)
