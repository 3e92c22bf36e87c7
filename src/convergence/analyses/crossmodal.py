"""The ``crossmodal`` analysis: vision models against language models on captioned stimuli.

Images and their captions are two views of the same stimuli, so the image-caption alignment is the
vision (rows) x language (columns) block of the all-pairs ``alignment`` result: :func:`crossmodal`
selects it (with its nulls, calibrated scores and intervals) instead of recomputing anything; only the
q-values are recomputed, over the vision x language pairs of the block (the family of tests it reports).
"""

from __future__ import annotations

import xarray as xr

from ..pairwise import pair_q_values


def crossmodal(scores: xr.Dataset) -> xr.Dataset:
    """The vision (rows) x language (columns) block of a labelled all-pairs result, padding trimmed."""
    vision = [str(m) for m, mod in zip(scores["model_a"].values, scores["modality_a"].values) if mod == "vision"]
    language = [str(m) for m, mod in zip(scores["model_b"].values, scores["modality_b"].values) if mod == "language"]
    if not vision or not language:
        raise ValueError(f"cross-modal alignment needs vision and language models; got vision={vision}, language={language}")
    block = scores.sel(model_a=vision, model_b=language)
    block = block.isel(
        layer_a=slice(0, int(block["n_layers_a"].max())), layer_b=slice(0, int(block["n_layers_b"].max()))
    )
    if "p_value" in block:
        q = pair_q_values(block["p_value"].values, vision, language, bool(block.attrs.get("symmetric", 1)))
        block["q_value"] = (block["p_value"].dims, q)
        block.attrs["q_value_rule"] = "Benjamini-Hochberg q-values over the vision x language pairs of this block, per summary"
    return block
