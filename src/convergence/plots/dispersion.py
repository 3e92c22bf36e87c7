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

from .common import (
    CONTROL_LABEL,
    EXCLUDES_COLOUR,
    control_order,
    draw_intervals,
    footnote,
    is_control,
    mark_controls,
    marker_style,
    palette,
    save_figure,
)


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
    """(vision index, language index, "vision x language") of every pair, trained vision models first and the
    random-weight controls last (``objective_vision``)."""
    vision = [str(v) for v in result["vision"].values]
    objectives = list(result["objective_vision"].values) if "objective_vision" in result.coords else None
    return [(i, j, f"{vision[i]} x {lang}") for i in control_order(vision, objectives)
            for j, lang in enumerate(result["language"].values)]


def _vision_controls(result: xr.Dataset) -> list[bool]:
    if "objective_vision" not in result.coords:
        return [False] * result.sizes["vision"]
    return [is_control(o) for o in result["objective_vision"].values]


def plot_subset_alignment(result: xr.Dataset, paths: Sequence[str | Path], *, title: str | None = None) -> None:
    """One panel per (metric: rows, criterion: columns), every vision x language pair on the y axis (shared by
    the panels of a row): the random subsets' central interval (grey bar) and mean (dash), the
    low-dispersion subset (green) and the high-dispersion subset (red). Pairs with a random-weight vision
    model come last, below a separator, their names grey."""
    metrics, criteria = list(result["metric"].values), list(result["criterion"].values)
    pairs = _pairs(result)
    controls = _vision_controls(result)
    flags = [controls[i] for i, _, _ in pairs]
    height = 0.14 * len(pairs) + 1.1
    fig, axes = plt.subplots(len(metrics), len(criteria), figsize=(2.3 * len(criteria) + 2.2, height * len(metrics)),
                             squeeze=False, sharey=True)
    y = np.arange(len(pairs))
    for r, metric in enumerate(metrics):
        for c, crit in enumerate(criteria):
            ax = axes[r, c]
            sub = result.sel(metric=metric, criterion=crit)
            get = lambda name: np.array([float(sub[name].values[i, j]) for i, j, _ in pairs])  # noqa: E731
            lo, hi = get("random_ci_low"), get("random_ci_high")
            ax.barh(y, hi - lo, left=lo, color="0.85", height=0.7,
                    label=f"random subsets ({result.attrs.get('ci', 0.95):.0%})")
            ax.scatter(get("random_mean"), y, marker="|", color="0.3", s=60, label="random subsets, mean")
            ax.scatter(get("low"), y, marker="<", color="tab:green", s=16, label="low dispersion", zorder=3)
            ax.scatter(get("high"), y, marker=">", color="tab:red", s=16, label="high dispersion", zorder=3)
            ax.set_yticks(y, [p for _, _, p in pairs], fontsize=6.5)
            mark_controls(ax, "y", flags)
            ax.set_ylim(len(pairs) - 0.5, -0.5)
            k = int(sub["k"].values) if "k" in sub.coords else None
            extra = f", k={k}" if "knn" in str(metric) and k else ""
            ax.set_title(f"{metric}\n{crit} ({int(sub['size'].values)} stimuli{extra})", fontsize=8)
            ax.tick_params(axis="x", labelsize=7)
            ax.grid(axis="x", alpha=0.3)
            if r == len(metrics) - 1:
                ax.set_xlabel("cross-modal alignment", fontsize=8)
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.suptitle(f"{title or ''}: cross-modal alignment on low- vs high-dispersion stimuli vs "
                 f"{result.attrs.get('n_random', '?')} random subsets\n(neighbours recomputed within each subset)",
                 fontsize=9)
    fig.tight_layout()
    fig.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, 0.0), ncols=4, fontsize=7, frameon=False)
    if any(flags):
        footnote(fig, f"grey names below the black line: pairs with a {CONTROL_LABEL} vision model", fontsize=7)
    save_figure(fig, paths)


def plot_ratio(result: xr.Dataset, paths: Sequence[str | Path], *, title: str | None = None) -> None:
    """One panel per metric: the low/high ratio with its jackknife interval, drawn exactly as stored (red
    where it excludes the ratio), for every pair (colour = vision model from the shared palette, marker =
    language model; random-weight vision models hollow) across selection criteria; the mean over the pairs
    of trained vision models in black (controls left out), 1 and 2 marked."""
    metrics, criteria = list(result["metric"].values), list(result["criterion"].values)
    vision, language = [str(v) for v in result["vision"].values], [str(lang) for lang in result["language"].values]
    controls = _vision_controls(result)
    colours = palette(vision)
    markers = "osD^vP*X<>"
    fig, axes = plt.subplots(1, len(metrics), figsize=(max(4.5, 1.3 * len(criteria) + 2.5) * len(metrics), 4.4),
                             squeeze=False)
    x = np.arange(len(criteria), dtype=np.float64)
    n_pairs = len(vision) * len(language)
    offsets = np.linspace(-0.3, 0.3, n_pairs) if n_pairs > 1 else np.zeros(1)
    trained = [i for i, control in enumerate(controls) if not control]
    handles = {}
    for c, metric in enumerate(metrics):
        ax = axes[0, c]
        sub = result.sel(metric=metric)
        p = 0
        for i in control_order(vision, ["random" if k else "" for k in controls]):
            for j, lang in enumerate(language):
                ratio = np.asarray(sub["ratio"].values[:, i, j], dtype=np.float64)
                lo = np.asarray(sub["ratio_ci_low"].values[:, i, j], dtype=np.float64)
                hi = np.asarray(sub["ratio_ci_high"].values[:, i, j], dtype=np.float64)
                excl = draw_intervals(ax, x + offsets[p], ratio, lo, hi, colour=colours[vision[i]], lw=0.7)
                if excl.any():
                    handles["excl"] = plt.Line2D([], [], color=EXCLUDES_COLOUR, lw=1.2,
                                                 label="interval that excludes its ratio")
                ax.scatter(x + offsets[p], ratio, marker=markers[j % len(markers)], s=14, zorder=3,
                           **marker_style(colours[vision[i]], controls[i]))
                p += 1
        if trained:
            values = np.asarray(sub["ratio"].values, dtype=np.float64)[:, trained, :].reshape(len(criteria), -1)
            mean = np.nanmean(values, axis=1)
            ax.plot(x, mean, "k-", lw=1.5, zorder=4)
            label = "mean over trained pairs" + (" (controls left out)" if any(controls) else "")
            handles["mean"] = plt.Line2D([], [], color="black", lw=1.5, label=label)
        ax.axhline(1.0, color="0.5", lw=0.8, ls="--")
        ax.axhline(2.0, color="0.7", lw=0.8, ls=":")
        ax.set_xticks(x, [f"{cr}\n(n={int(s)})" for cr, s in zip(criteria, result["size"].values)], fontsize=7)
        ax.set_ylabel("alignment ratio low / high dispersion")
        ax.set_title(str(metric), fontsize=9)
    legend = [plt.Line2D([], [], ls="", marker="o", ms=5, markerfacecolor="none" if controls[i] else colours[v],
                         markeredgecolor=colours[v], label=v + (f" ({CONTROL_LABEL})" if controls[i] else ""))
              for i, v in enumerate(vision)]
    legend += [plt.Line2D([], [], color="0.3", marker=markers[j % len(markers)], ls="", label=lang)
               for j, lang in enumerate(language)]
    legend += list(handles.values())
    fig.suptitle(f"{title or ''}: low/high ratio with {result.attrs.get('ci', 0.95):.0%} jackknife intervals "
                 f"(up to {result.attrs.get('n_bootstrap', '?')} groups)", fontsize=9)
    fig.tight_layout()
    fig.legend(handles=legend, loc="upper center", bbox_to_anchor=(0.5, 0.0), ncols=4, fontsize=7, frameon=False)
    save_figure(fig, paths)
