"""The per-dataset overview: what every model's embedding store holds, at a glance."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import xarray as xr

from .common import CONTROL_COLOUR, is_control, palette, save_figure


def _objective(store: xr.Dataset) -> str:
    from ..analyses import labels_of

    return labels_of(store).get("objective", "")


def pca_2d(x: np.ndarray) -> np.ndarray:
    """First two principal-component scores of ``x`` (n, d) (centred; SVD)."""
    return pca_2d_explained(x)[0]


def pca_2d_explained(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """First two principal-component scores of ``x`` (n, d) (centred; SVD) and the fraction of the total
    variance each explains (``s_i^2 / sum s^2``; NaN for a constant ``x``, which has no variance)."""
    x = np.asarray(x, dtype=np.float64)
    x = x - x.mean(axis=0, keepdims=True)
    u, s, _ = np.linalg.svd(x, full_matrices=False)
    scores = u[:, :2] * s[:2]
    total = float(np.sum(s**2))
    ratios = np.full(2, np.nan)
    if total > 0:
        ratios[: min(2, s.size)] = s[:2] ** 2 / total
        ratios[np.isnan(ratios)] = 0.0  # a 1-D layer: PC 2 explains nothing
    if scores.shape[1] < 2:
        scores = np.pad(scores, ((0, 0), (0, 2 - scores.shape[1])))
    return scores, ratios


def pc_label(i: int, ratio: float) -> str:
    """Axis label ``PC1 (34 %)``: the component and its share of the variance."""
    return f"PC{i} ({ratio * 100:.0f} %)" if np.isfinite(ratio) else f"PC{i} (no variance)"


def plot_overview(stimuli: xr.Dataset, stores: Mapping[str, xr.Dataset], paths: Sequence[str | Path], *,
                  objectives: Mapping[str, str] | None = None):
    """One panel of feature size vs relative depth for all models, then one PCA panel per model
    (last stored layer; axes labelled with the variance each component explains), points coloured by label
    where the dataset has labels; each model in its palette colour, random-weight controls (objective
    ``random``, from ``objectives`` or the store's provenance) dashed and named grey. Returns the (closed)
    figure."""
    names = list(stores)
    n_panels = len(names) + 1
    ncols = min(4, n_panels)
    nrows = math.ceil(n_panels / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.2 * ncols, 3.8 * nrows), squeeze=False)
    axes = axes.ravel()
    dataset = stimuli.attrs.get("dataset", "")
    fig.suptitle(f"{dataset}: {stimuli.sizes['stimulus']} stimuli, {len(names)} models", fontsize=13)

    ax = axes[0]
    colours = palette(names)
    controls = {name: is_control((objectives or {}).get(name) or _objective(stores[name])) for name in names}
    for name in names:
        ds = stores[name]
        dims = [ds.attrs["feature_dims"][layer] for layer in ds.attrs["layers"]]
        ax.plot(ds.attrs["depths"], dims, marker="o", ms=3, color=colours[name], ls="--" if controls[name] else "-",
                mfc="none" if controls[name] else colours[name],
                label=f"{name} ({len(dims)} layers)" + (", random weights" if controls[name] else ""))
    ax.set_xlabel("relative depth (0 = input, 1 = last layer)")
    ax.set_ylabel("feature dimension")
    ax.set_yscale("log")
    ax.set_title("stored layers")
    legends = [("stored layers", *ax.get_legend_handles_labels())]

    labels = stimuli["label"].values.astype(str) if "label" in stimuli else None
    classes = sorted(set(labels)) if labels is not None else []
    cmap = plt.get_cmap("tab10" if len(classes) <= 10 else "tab20")
    for ax, name in zip(axes[1:], names, strict=False):
        ds = stores[name]
        last = ds.attrs["layers"][-1]
        feats = ds[last]
        if labels is not None:
            feats = feats.sel(stimulus=stimuli["stimulus"].values)
        xy, explained = pca_2d_explained(feats.values)
        if labels is not None:
            for i, cls in enumerate(classes):
                m = labels == cls
                ax.scatter(xy[m, 0], xy[m, 1], s=6, color=cmap(i % cmap.N), label=cls, alpha=0.8)
        else:
            ax.scatter(xy[:, 0], xy[:, 1], s=6, color="tab:blue", alpha=0.6)
        n, d = feats.shape
        ax.set_title(f"{name} [{ds.attrs['modality']}" + (", random weights" if controls[name] else "") + "]\n"
                     f"{len(ds.attrs['layers'])} layers; last: {last}\nd={d}, {n} stimuli", fontsize=8.5,
                     color=CONTROL_COLOUR if controls[name] else "black")
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_xlabel(pc_label(1, explained[0]))
        ax.set_ylabel(pc_label(2, explained[1]))
    if classes and len(classes) <= 20 and names:
        legends.append(("labels", *axes[1].get_legend_handles_labels()))
    for ax in axes[n_panels:]:
        ax.axis("off")
    fig.tight_layout()
    # legends never over the data: in the empty panels, else under the figure
    spare = list(axes[n_panels:])
    for k, (name, handles, texts) in enumerate(legends):
        if spare:
            spare.pop(0).legend(handles, texts, fontsize=7, loc="upper left", title=name, title_fontsize=8,
                                ncols=1 if len(texts) <= 12 else 2, markerscale=1.5)
        else:
            fig.legend(handles, texts, fontsize=7, title=name, title_fontsize=8, loc="upper left" if k == 0 else
                       "upper right", bbox_to_anchor=(0.0 if k == 0 else 1.0, 0.0), ncols=min(4, len(texts)),
                       markerscale=1.5, frameon=False)
    save_figure(fig, paths)
    return fig
