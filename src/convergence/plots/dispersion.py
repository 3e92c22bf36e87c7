"""Dispersion figures: the distribution with the stimuli at both ends, alignment on low / high / random
subsets, and the low/high ratio across selection criteria.

Every function draws stored numbers (the stores of ``convergence.analyses.dispersion``) to the given
paths (format from each suffix); none computes science.
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import xarray as xr

from .common import save_figure


def _caption(stimuli: xr.Dataset, sid: str) -> str:
    if "caption" not in stimuli:
        return sid
    text = str(stimuli["caption"].sel(stimulus=sid).values)
    return "\n".join(textwrap.wrap(text, 18)[:3])


def plot_dispersion(disp: xr.Dataset, stimuli: xr.Dataset, paths: Sequence[str | Path], *, examples: int = 6,
                    title: str | None = None) -> None:
    """Histogram of the per-stimulus dispersion (with each model's share: its mean squared distance to the
    mean), then the ``examples`` lowest- and highest-dispersion stimuli with their captions (or ids)."""
    values = np.asarray(disp["dispersion"].values, dtype=np.float64)
    ids = np.asarray([str(s) for s in disp["stimulus"].values], dtype=object)
    order = np.lexsort((np.arange(ids.size), values))
    examples = max(1, min(int(examples), ids.size // 2))
    ends = {"lowest": order[:examples], "highest": order[::-1][:examples]}
    has_images = "image" in stimuli
    fig = plt.figure(figsize=(max(10.0, 1.7 * examples), 8.5 if has_images else 4.0))
    grid = fig.add_gridspec(3 if has_images else 1, max(examples, 2), height_ratios=[1.4, 1, 1] if has_images else [1])
    ax = fig.add_subplot(grid[0, : max(examples, 2) // 2 + 1])
    ax.hist(values, bins=min(50, max(10, ids.size // 8)), color="0.55")
    for name, pos in ends.items():
        ax.axvspan(values[pos].min(), values[pos].max(), color="tab:green" if name == "lowest" else "tab:red", alpha=0.2,
                   label=f"{examples} {name}")
    ax.set_xlabel("dispersion (mean squared distance to the GPA mean)")
    ax.set_ylabel("stimuli")
    ax.legend(fontsize=7)
    side = fig.add_subplot(grid[0, max(examples, 2) // 2 + 1:])
    share = np.asarray(disp["distance"].values, dtype=np.float64).mean(axis=1)
    models = [f"{m}\n({layer})" for m, layer in zip(disp["model"].values, disp["layer"].values)]
    side.barh(range(len(models)), share, color="0.4")
    side.set_yticks(range(len(models)), models, fontsize=6)
    side.invert_yaxis()
    side.set_xlabel("mean squared distance to the mean", fontsize=7)
    side.set_title("each model's distance", fontsize=8)
    if has_images:
        for r, (name, pos) in enumerate(ends.items(), start=1):
            for c, i in enumerate(pos):
                a = fig.add_subplot(grid[r, c])
                image = np.asarray(stimuli["image"].sel(stimulus=ids[i]).values)
                a.imshow(image.squeeze(), cmap="gray" if image.ndim == 2 or image.shape[-1] == 1 else None)
                a.set_xticks([])
                a.set_yticks([])
                a.set_title(f"{_caption(stimuli, ids[i])}\n{values[i]:.2e}", fontsize=6)
                if c == 0:
                    a.set_ylabel(name, fontsize=8)
    converged = "converged" if disp.attrs.get("converged") else "NOT converged"
    fig.suptitle(f"{title or disp.attrs.get('group', '')}: dispersion of {disp.sizes['model']} vision models on "
                 f"{ids.size} stimuli (GPA {converged} in {disp.attrs.get('n_iter', '?')} iterations, "
                 f"width {disp.attrs.get('width_dims', '?')})", fontsize=9)
    fig.tight_layout()
    save_figure(fig, paths)


def _pairs(result: xr.Dataset) -> list[tuple[int, int, str]]:
    return [(i, j, f"{v} x {l}") for i, v in enumerate(result["vision"].values) for j, l in enumerate(result["language"].values)]


def plot_subset_alignment(result: xr.Dataset, paths: Sequence[str | Path], *, title: str | None = None) -> None:
    """One panel per (criterion, metric): for every vision x language pair, the random subsets' central
    interval (bar) and mean (dash), the low-dispersion subset (green) and the high-dispersion subset (red)."""
    metrics, criteria = list(result["metric"].values), list(result["criterion"].values)
    pairs = _pairs(result)
    fig, axes = plt.subplots(len(criteria), len(metrics), figsize=(max(5.0, 0.32 * len(pairs) + 1.5) * len(metrics),
                                                                   3.6 * len(criteria)), squeeze=False)
    x = np.arange(len(pairs))
    for c, metric in enumerate(metrics):
        for r, crit in enumerate(criteria):
            ax = axes[r, c]
            sub = result.sel(metric=metric, criterion=crit)
            get = lambda name: np.array([float(sub[name].values[i, j]) for i, j, _ in pairs])  # noqa: E731
            lo, hi = get("random_ci_low"), get("random_ci_high")
            ax.bar(x, hi - lo, bottom=lo, color="0.85", width=0.7, label=f"random ({result.attrs.get('ci', 0.95):.0%})")
            ax.scatter(x, get("random_mean"), marker="_", color="0.3", s=80, label="random mean")
            ax.scatter(x, get("low"), marker="v", color="tab:green", s=22, label="low dispersion", zorder=3)
            ax.scatter(x, get("high"), marker="^", color="tab:red", s=22, label="high dispersion", zorder=3)
            ax.set_xticks(x, [p for _, _, p in pairs], rotation=75, ha="right", fontsize=5)
            k = int(sub["k"].values) if "k" in sub.coords else None
            extra = f", k={k}" if "knn" in str(metric) and k else ""
            ax.set_title(f"{metric}: {crit} ({int(sub['size'].values)} stimuli{extra})", fontsize=8)
            if c == 0:
                ax.set_ylabel(f"alignment, {crit}", fontsize=8)
            if r == 0 and c == 0:
                ax.legend(fontsize=6)
    fig.suptitle(f"{title or ''}: cross-modal alignment on low- vs high-dispersion stimuli vs "
                 f"{result.attrs.get('n_random', '?')} random subsets (neighbours recomputed within each subset)",
                 fontsize=9)
    fig.tight_layout()
    save_figure(fig, paths)


def plot_ratio(result: xr.Dataset, paths: Sequence[str | Path], *, title: str | None = None) -> None:
    """One panel per metric: the low/high ratio with its jackknife interval for every pair (colour = vision
    model, marker = language model) across selection criteria, the mean over pairs in black, 1 and 2 marked."""
    metrics, criteria = list(result["metric"].values), list(result["criterion"].values)
    vision, language = list(result["vision"].values), list(result["language"].values)
    colours = plt.get_cmap("tab10")
    markers = "osD^vP*X<>"
    fig, axes = plt.subplots(1, len(metrics), figsize=(max(4.5, 1.3 * len(criteria) + 2.5) * len(metrics), 4.2),
                             squeeze=False)
    x = np.arange(len(criteria), dtype=np.float64)
    n_pairs = len(vision) * len(language)
    offsets = np.linspace(-0.3, 0.3, n_pairs) if n_pairs > 1 else np.zeros(1)
    for c, metric in enumerate(metrics):
        ax = axes[0, c]
        sub = result.sel(metric=metric)
        p = 0
        for i, v in enumerate(vision):
            for j, lang in enumerate(language):
                ratio = np.asarray(sub["ratio"].values[:, i, j], dtype=np.float64)
                lo = np.asarray(sub["ratio_ci_low"].values[:, i, j], dtype=np.float64)
                hi = np.asarray(sub["ratio_ci_high"].values[:, i, j], dtype=np.float64)
                err = np.vstack([np.clip(ratio - lo, 0, None), np.clip(hi - ratio, 0, None)])
                ax.errorbar(x + offsets[p], ratio, yerr=np.nan_to_num(err), fmt=markers[j % len(markers)], ms=3.5,
                            color=colours(i % 10), elinewidth=0.6, capsize=1.5,
                            label=v if j == 0 else None)
                p += 1
        mean = np.nanmean(np.asarray(sub["ratio"].values, dtype=np.float64).reshape(len(criteria), -1), axis=1)
        ax.plot(x, mean, "k-", lw=1.5, label="mean over pairs")
        ax.axhline(1.0, color="0.5", lw=0.8, ls="--")
        ax.axhline(2.0, color="0.7", lw=0.8, ls=":")
        ax.set_xticks(x, [f"{cr}\n(n={int(s)})" for cr, s in zip(criteria, result["size"].values)], fontsize=7)
        ax.set_ylabel("alignment ratio low / high dispersion")
        ax.set_title(str(metric), fontsize=9)
        if c == 0:
            handles, labels = ax.get_legend_handles_labels()
            handles += [plt.Line2D([], [], color="0.3", marker=markers[j % len(markers)], ls="") for j in range(len(language))]
            labels += list(language)
            ax.legend(handles, labels, fontsize=6, ncol=2)
    fig.suptitle(f"{title or ''}: low/high ratio with {result.attrs.get('ci', 0.95):.0%} jackknife intervals "
                 f"(up to {result.attrs.get('n_bootstrap', '?')} groups)", fontsize=9)
    fig.tight_layout()
    save_figure(fig, paths)
