"""Figures of the taxonomy analysis (study 002), drawn from its aggregate tables."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from .common import save_figure  # noqa: E402

KINDS = ("removal", "shuffle", "coherence")
_LM_STYLE = {"pretrained": ("tab:blue", "o", "pretrained LM"), "random": ("tab:red", "s", "random-init LM")}


def _mean_sd(df: pd.DataFrame, by: list[str], value: str) -> pd.DataFrame:
    g = df.groupby(by, dropna=False)[value]
    return g.agg(["mean", "std", "count"]).reset_index()


def plot_removal(summary: pd.DataFrame, paths: Sequence[str | Path], oracle: pd.DataFrame | None = None) -> None:
    """Unseen (solid) and seen (dashed) macro-F1 against the fraction removed, one line per LM weights,
    unshuffled runs without dropped categories; means over seeds with their standard deviation. With
    ``oracle`` (rows lm, f1, auc), the LM's language-only ceiling as a horizontal band label."""
    df = summary[(summary["shuffle"] == "none") & (summary["drop"].fillna("") == "")]
    groups = list(df.groupby(["vision", "lm"], sort=True))
    fig, axes = plt.subplots(1, max(1, len(groups)), figsize=(4.6 * max(1, len(groups)), 3.8), squeeze=False)
    for ax, ((vision, lm), part) in zip(axes[0], groups):
        for weights, (colour, marker, label) in _LM_STYLE.items():
            sub = part[part["lm_weights"] == weights]
            if sub.empty:
                continue
            for value, style, suffix in (("f1_unseen", "-", "unseen"), ("f1_seen", "--", "seen")):
                s = _mean_sd(sub, ["remove"], value).sort_values("remove")
                ax.errorbar(100 * s["remove"], s["mean"], yerr=s["std"].fillna(0), color=colour, marker=marker,
                            linestyle=style, capsize=3, label=f"{label}, {suffix} concepts")
        ax.axhline(0.5, color="grey", lw=0.8, ls=":")
        ceiling = oracle[oracle["lm"] == lm] if oracle is not None and len(oracle) else pd.DataFrame()
        if len(ceiling):
            row = ceiling.iloc[0]
            ax.axhline(row["f1"], color="black", lw=1.2, ls="-.",
                       label=f"pretrained LM, concept named in text (AUC {row['auc']:.2f})")
        ax.set(xlabel="hypernym questions removed (% of each hypernym's concepts)", ylabel="yes/no macro-F1",
               title=f"{vision} -> {lm}", ylim=(0, 1.02))
        ax.legend(fontsize=7, loc="lower left")
    if not groups:
        axes[0, 0].text(0.5, 0.5, "no unshuffled runs", ha="center", va="center")
    save_figure(fig, paths)


def plot_shuffle(summary: pd.DataFrame, paths: Sequence[str | Path]) -> None:
    """Unseen-concept macro-F1 of every pretrained-LM run at the shuffled runs' removal fraction: unshuffled,
    within-category derangement, across-category permutation, with the mean visual coherence above each bar."""
    df = summary[summary["lm_weights"] == "pretrained"]
    shuffled = df[df["shuffle"] != "none"]
    fractions = sorted(shuffled["remove"].unique()) if len(shuffled) else sorted(df["remove"].unique())[:1]
    df = df[df["remove"].isin(fractions) & (df["drop"].fillna("") == "")]
    order = [s for s in ("none", "within", "across") if s in set(df["shuffle"])]
    fig, ax = plt.subplots(figsize=(5.2, 3.8))
    s = _mean_sd(df, ["shuffle"], "f1_unseen").set_index("shuffle").reindex(order)
    c = _mean_sd(df, ["shuffle"], "coherence_mean").set_index("shuffle").reindex(order)
    x = np.arange(len(order))
    ax.bar(x, s["mean"], yerr=s["std"].fillna(0), color=["tab:blue", "tab:green", "tab:orange"][:len(order)], capsize=4)
    for xi, (f1, coh) in enumerate(zip(s["mean"], c["mean"])):
        ax.text(xi, min(1.0, f1 + 0.03), f"coh. {coh:.2f}", ha="center", fontsize=8)
    ax.axhline(0.5, color="grey", lw=0.8, ls=":")
    ax.set_xticks(x, [{"none": "unshuffled", "within": "within-category\nderangement",
                       "across": "across-category\npermutation"}[o] for o in order])
    removed = ", ".join(f"{100 * f:g}" for f in fractions)
    ax.set(ylabel="unseen-concept yes/no macro-F1", ylim=(0, 1.05),
           title=f"counterfactual label maps ({removed} % removed, pretrained LM)")
    save_figure(fig, paths)


def plot_coherence(hypernyms: pd.DataFrame, paths: Sequence[str | Path]) -> None:
    """One point per hypernym and run with removed concepts: its unseen-concept macro-F1 against the visual
    coherence of its images under the run's label map, coloured by shuffle, pretrained-LM runs."""
    df = hypernyms[(hypernyms["lm_weights"] == "pretrained")].dropna(subset=["f1_unseen", "coherence"])
    fig, ax = plt.subplots(figsize=(5.2, 4.0))
    colours = {"none": "tab:blue", "within": "tab:green", "across": "tab:orange"}
    for shuffle, part in df.groupby("shuffle"):
        ax.scatter(part["coherence"], part["f1_unseen"], s=18, alpha=0.7, color=colours.get(shuffle, "k"),
                   label=f"{shuffle} (n={len(part)})")
    if len(df) > 2 and df["coherence"].nunique() > 1:
        slope, icpt = np.polyfit(df["coherence"], df["f1_unseen"], 1)
        xs = np.linspace(df["coherence"].min(), df["coherence"].max(), 10)
        ax.plot(xs, icpt + slope * xs, color="k", lw=1, label=f"fit, slope {slope:.2f}")
    ax.axhline(0.5, color="grey", lw=0.8, ls=":")
    ax.set(xlabel="visual coherence (mean pairwise cosine of image features)",
           ylabel="unseen-concept macro-F1 (per hypernym)", ylim=(-0.02, 1.02), title="F1 vs visual coherence")
    ax.legend(fontsize=7)
    save_figure(fig, paths)


def plot_taxonomy(kind: str, tables: Mapping[str, pd.DataFrame], paths: Sequence[str | Path]) -> None:
    if kind == "removal":
        plot_removal(tables["summary"], paths, tables.get("oracle"))
    elif kind == "shuffle":
        plot_shuffle(tables["summary"], paths)
    elif kind == "coherence":
        plot_coherence(tables["hypernyms"], paths)
    else:
        raise ValueError(f"taxonomy figure {kind!r} is not allowed; allowed: {list(KINDS)}")
