"""Shared figure plumbing: saving one figure to several formats atomically, the one palette every figure
uses (a fixed colour per model, per training objective and per model-set pair, keyed by name), the style
that sets random-weight controls apart, and titles that name their dataset and metric."""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import Iterable, Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

# ------------------------------------------------------------------------------------------------- saving


def save_figure(fig, paths: Sequence[str | Path]) -> None:
    """Save ``fig`` to every path (format from the suffix), each written to a temporary name then renamed."""
    for path in paths:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.stem}.tmp-{uuid.uuid4().hex[:8]}{path.suffix}")
        fig.savefig(tmp, dpi=150, bbox_inches="tight")
        os.replace(tmp, path)
    plt.close(fig)


def metric_style(name: str) -> tuple[str, str]:
    """(axis label, colour map) of a registry metric: its description and direction, a colour map whose
    bright end is "more similar" (reversed for distances). Unknown names get a neutral style."""
    from ..metrics.registry import METRICS

    spec = METRICS.get(str(name))
    if spec is None:
        return str(name), "viridis"
    direction = "higher" if spec.higher_is_better else "lower"
    return f"{spec.label} ({direction} = more similar)", "viridis" if spec.higher_is_better else "viridis_r"


# --------------------------------------------------------------------------------------------- intervals

EXCLUDES_COLOUR = "tab:red"


def draw_intervals(ax, x, estimate, low, high, *, colour="0.55", horizontal: bool = False, lw: float = 1.2,
                   label: str | None = None) -> np.ndarray:
    """Draw each stored interval exactly from ``low`` to ``high`` (never a distance from the estimate, so
    an interval that lies wholly above or below its estimate is drawn where it lies); intervals that exclude
    their estimate are drawn in ``EXCLUDES_COLOUR``. Returns the boolean mask of those. Vertical lines at ``x``
    (horizontal ones at ``x`` as y positions with ``horizontal``); NaN bounds draw nothing."""
    x, estimate = np.asarray(x, float), np.asarray(estimate, float)
    low, high = np.asarray(low, float), np.asarray(high, float)
    ok = np.isfinite(x) & np.isfinite(low) & np.isfinite(high)
    excludes = ok & np.isfinite(estimate) & ((estimate < np.minimum(low, high)) | (estimate > np.maximum(low, high)))
    draw = ax.hlines if horizontal else ax.vlines
    for mask, c, name in ((ok & ~excludes, colour, label),
                          (excludes, EXCLUDES_COLOUR, "interval that excludes its estimate")):
        if mask.any():
            draw(x[mask], low[mask], high[mask], colors=c, lw=lw, label=name, zorder=2)
    return excludes


# ------------------------------------------------------------------------------------------------ titles


def figure_title(what: str, *, dataset: str | None = None, metric: str | None = None, extra: str = "") -> str:
    """``"<dataset>, <metric>: <what>"`` (the parts that are given), then ``extra`` in brackets: every figure
    title names the dataset and the metric it shows."""
    head = ", ".join(str(p) for p in (dataset, metric) if p)
    text = f"{head}: {what}" if head else what
    return f"{text} ({extra})" if extra else text


# ------------------------------------------------------------------------------------- random controls

CONTROL_OBJECTIVE = "random"  # the objective label of random-weight controls
CONTROL_COLOUR = "0.55"
CONTROL_LABEL = "random-weight control"
DIVERGING = "RdBu_r"  # colour map of signed values (a correlation): centred at 0, white there


def is_control(objective) -> bool:
    """Whether a model with this objective label is a random-weight control (objective ``random``)."""
    return str(objective).strip().lower() == CONTROL_OBJECTIVE


def is_control_pair(set_pair: str) -> bool:
    """Whether a model-set pair (``"random x supervised"``) involves the random-weight controls."""
    return any(is_control(part) for part in str(set_pair).split(" x "))


def marker_style(colour, control: bool) -> dict:
    """Scatter keywords of one point: filled in ``colour`` for a trained model, hollow (edge only) for a
    random-weight control."""
    if control:
        return {"facecolors": "none", "edgecolors": colour, "linewidths": 1.2}
    return {"color": colour}


def control_order(names: Sequence[str], objectives: Sequence[str] | None) -> list[int]:
    """Positions of ``names`` with every random-weight control moved to the end (order kept otherwise)."""
    if objectives is None:
        return list(range(len(names)))
    trained = [i for i, o in enumerate(objectives) if not is_control(o)]
    return trained + [i for i, o in enumerate(objectives) if is_control(o)]


# ----------------------------------------------------------------------------------------------- palette

# Objectives have fixed colours (the controls grey); models and model-set pairs get a colour from their name.
OBJECTIVE_COLOURS = {
    "supervised": "#1f77b4", "self-supervised": "#2ca02c", "language": "#ff7f0e", "edges": "#9467bd",
    "contrastive": "#17becf", "captioning": "#8c564b", CONTROL_OBJECTIVE: CONTROL_COLOUR,
}
ALL_PAIRS_COLOUR = "black"
# tab20 without its greys (grey means "control") and reds (red marks an interval that excludes its estimate),
# strong shades first
_PALETTE = [c for i, c in enumerate(plt.get_cmap("tab20").colors) if i not in (6, 7, 14, 15)]
PALETTE = [_PALETTE[i] for i in range(0, len(_PALETTE), 2)] + [_PALETTE[i] for i in range(1, len(_PALETTE), 2)]
KINDS = ("model", "objective", "set_pair")


def _slot(name: str, kind: str) -> int:
    digest = hashlib.sha256(f"{kind}:{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % len(PALETTE)


def palette(names: Iterable[str], kind: str = "model") -> dict[str, object]:
    """The colour of each name of ``kind`` (``model``, ``objective`` or ``set_pair``), the same in every
    figure: fixed colours for known objectives (random-weight controls grey) and for the set pair ``all``
    (black); any other name gets the palette slot of a hash of its name (SHA-256, so the same in every
    process). Two names of one figure that hash to the same slot are told apart by giving the later one (in
    sorted order) the next free slot, so within a figure colours are distinct up to 16 names."""
    if kind not in KINDS:
        raise ValueError(f"palette kind {kind!r} is not allowed; allowed: {list(KINDS)}")
    names = list(dict.fromkeys(str(n) for n in names))
    out: dict[str, object] = {}
    taken: set[int] = set()
    for name in sorted(names):
        if kind == "objective" and name in OBJECTIVE_COLOURS:
            out[name] = OBJECTIVE_COLOURS[name]
        elif kind == "set_pair" and name == "all":
            out[name] = ALL_PAIRS_COLOUR
        elif kind == "set_pair" and all(is_control(p) for p in name.split(" x ")):
            out[name] = CONTROL_COLOUR
    for name in sorted(n for n in names if n not in out):
        slot = _slot(name, kind)
        for step in range(len(PALETTE)):
            if (slot + step) % len(PALETTE) not in taken or len(taken) >= len(PALETTE):
                slot = (slot + step) % len(PALETTE)
                break
        taken.add(slot)
        out[name] = PALETTE[slot]
    return {n: out[n] for n in names}


def colour(name: str, kind: str = "model"):
    """The colour of one name (:func:`palette` of that name alone)."""
    return palette([name], kind)[str(name)]


def mark_controls(ax, axis: str, controls: Sequence[bool], *, separator: bool = True) -> None:
    """Set the random-weight controls apart on a heatmap axis: their tick labels grey and italic and, when
    they come after the trained models (:func:`control_order`), a separator line between the two blocks
    (black edged with white, seen on any colour)."""
    controls = [bool(c) for c in controls]
    labels = ax.get_xticklabels() if axis == "x" else ax.get_yticklabels()
    for label, control in zip(labels, controls):
        if control:
            label.set_color(CONTROL_COLOUR)
            label.set_fontstyle("italic")
    if separator and any(controls) and not all(controls):
        edge = controls.index(True) - 0.5
        line = ax.axvline if axis == "x" else ax.axhline
        from matplotlib import patheffects

        line(edge, color="black", lw=1.6, path_effects=[patheffects.withStroke(linewidth=3.6, foreground="white")])


def footnote(fig, text: str, *, fontsize: float = 6.5) -> None:
    """Print ``text`` under everything drawn on ``fig`` so far (call it after the layout and the legends):
    saved with ``bbox_inches="tight"`` the figure grows to hold it, so it never covers an axis label."""
    if not text:
        return
    renderer = fig.canvas.get_renderer()
    bottom = fig.get_tightbbox(renderer).y0 / fig.get_size_inches()[1]  # inches -> figure fraction
    fig.text(0.01, min(0.0, bottom) - 0.01, text, ha="left", va="top", fontsize=fontsize, color="0.3")


# Offsets (points) tried in turn for a point's label: right-above, right-below, left-above, left-below, further
_LABEL_OFFSETS = [(4, 3), (4, -9), (-4, 3), (-4, -9), (4, 12), (4, -18), (-4, 12), (-4, -18), (10, 22), (10, -28),
                  (-10, 22), (-10, -28)]


def label_points(ax, x, y, names, *, fontsize: float = 6.5, colours=None) -> list:
    """Name each point (x, y) beside it without two names overlapping each other or a point where that can
    be avoided: each label takes the first of a fixed list of offsets whose box is free (deterministic, in
    the order given); a label with no free place takes the first offset and a thin leader line. Returns the
    text artists."""
    fig = ax.figure
    renderer = fig.canvas.get_renderer()
    pts = ax.transData.transform(np.column_stack([np.asarray(x, float), np.asarray(y, float)]))
    placed, texts = [], []
    scale = fig.dpi / 72.0
    dots = [(px - 3 * scale, py - 3 * scale, px + 3 * scale, py + 3 * scale) for px, py in pts
            if np.all(np.isfinite([px, py]))]

    def free(box):
        return not any(box[0] < b[2] and b[0] < box[2] and box[1] < b[3] and b[1] < box[3] for b in placed + dots)

    for k, (xi, yi, name) in enumerate(zip(x, y, names)):
        if not (np.isfinite(xi) and np.isfinite(yi)):
            continue
        colour = "black" if colours is None else colours[k]
        chosen = None
        for dx, dy in _LABEL_OFFSETS:
            t = ax.annotate(str(name), (xi, yi), xytext=(dx, dy), textcoords="offset points", fontsize=fontsize,
                            ha="left" if dx >= 0 else "right", va="bottom", color=colour)
            e = t.get_window_extent(renderer)
            box = (e.x0, e.y0, e.x1, e.y1)
            if free(box):
                chosen = (t, box)
                break
            t.remove()
        if chosen is None:
            dx, dy = _LABEL_OFFSETS[-1]
            t = ax.annotate(str(name), (xi, yi), xytext=(dx, dy), textcoords="offset points", fontsize=fontsize,
                            ha="left" if dx >= 0 else "right", va="bottom", color=colour,
                            arrowprops={"arrowstyle": "-", "color": "0.6", "lw": 0.5})
            e = t.get_window_extent(renderer)
            chosen = (t, (e.x0, e.y0, e.x1, e.y1))
        placed.append(chosen[1])
        texts.append(chosen[0])
    return texts
