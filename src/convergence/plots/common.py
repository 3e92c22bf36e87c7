"""Shared figure plumbing: saving one figure to several formats atomically."""

from __future__ import annotations

import os
import uuid
from collections.abc import Sequence
from pathlib import Path

import matplotlib.pyplot as plt


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
