"""The ``crossmodal`` analysis: vision models against language models on captioned stimuli.

Images and their captions are two views of the same stimuli, so the image-caption alignment is the
vision (rows) x language (columns) block of the all-pairs ``alignment`` result: :func:`crossmodal`
selects it (with its nulls and intervals) instead of recomputing anything.
"""

from __future__ import annotations

import xarray as xr


def crossmodal(scores: xr.Dataset) -> xr.Dataset:
    """The vision (rows) x language (columns) block of a labelled all-pairs result, padding trimmed."""
    vision = [str(m) for m, mod in zip(scores["model_a"].values, scores["modality_a"].values) if mod == "vision"]
    language = [str(m) for m, mod in zip(scores["model_b"].values, scores["modality_b"].values) if mod == "language"]
    if not vision or not language:
        raise ValueError(f"cross-modal alignment needs vision and language models; got vision={vision}, language={language}")
    block = scores.sel(model_a=vision, model_b=language)
    return block.isel(
        layer_a=slice(0, int(block["n_layers_a"].max())), layer_b=slice(0, int(block["n_layers_b"].max()))
    )
