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
