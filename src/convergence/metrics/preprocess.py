"""Feature preprocessing before a metric: the PRH outlier clamp and per-stimulus L2 normalisation."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from ._checks import as_features, check_choice, check_fraction, rows_all_equal

PREPROCESSING = ("prh", "l2", "none")


def _layer_items(layers) -> list[tuple[str, np.ndarray]]:
    if isinstance(layers, Mapping):
        items = [(str(name), value) for name, value in layers.items()]
    elif isinstance(layers, Sequence) and not isinstance(layers, (str, bytes)):
        items = [(f"layer {i}", value) for i, value in enumerate(layers)]
    else:
        raise ValueError(f"layers must be a list or a dict of (n, d) arrays; got {type(layers).__name__}")
    if not items:
        raise ValueError("layers is empty; give at least one (n, d) array")
    out = [(name, as_features(value, name)) for name, value in items]
    n = out[0][1].shape[0]
    for name, value in out:
        if value.shape[0] != n:
            raise ValueError(f"every layer must have the same stimuli: {out[0][0]} has {n} rows, "
                             f"{name} has {value.shape[0]}")
    return out


def _rebuild(layers, arrays: list[np.ndarray]):
    if isinstance(layers, Mapping):
        return dict(zip(layers.keys(), arrays))
    return arrays


def outlier_clip_value(layers, q: float = 0.95, *, block_rows: int = 256) -> float:
    """The PRH outlier threshold: ONE scalar per model.

    For every stimulus i, ``t_i`` is the ``q``-quantile (linear interpolation) of ``|x|`` over all values
    of all layers of that stimulus (the layers concatenated); the threshold is ``mean_i t_i``.

    Parameters
    ----------
    layers : list or dict of arrays, each (n, d_l)
        All layers of one model on the same n stimuli.
    q : float in (0, 1]
        Quantile; 0.95 in the PRH paper.
    block_rows : int
        Stimuli processed at once (bounds memory to ``block_rows * sum_l d_l`` values).

    Returns
    -------
    float
        The clip value ``c >= 0``.
    """
    q = check_fraction(q, "q")
    items = _layer_items(layers)
    n = items[0][1].shape[0]
    per_stimulus = np.empty(n)
    for start in range(0, n, block_rows):
        stop = min(start + block_rows, n)
        block = np.abs(np.concatenate([value[start:stop] for _, value in items], axis=1))
        per_stimulus[start:stop] = np.quantile(block, q, axis=1)
    return float(per_stimulus.mean())


ZERO_ROWS = ("raise", "keep")


def is_constant(x: np.ndarray) -> bool:
    """Whether the rows of ``x`` (n, d) are all equal up to round-off (relative 1e-12 of its largest value,
    whatever its scale: ``_checks.rows_all_equal``): such a layer carries no information about the stimuli
    and cannot be compared (an all-zero layer is one)."""
    return rows_all_equal(x)


def l2_normalise(x, name: str = "X", *, zero_rows: str = "raise") -> np.ndarray:
    """Each row of ``x`` (n, d) divided by its Euclidean norm.

    A zero row has no direction: ``zero_rows="raise"`` (default) raises ``ValueError``; ``"keep"`` leaves
    it zero (every inner product with it is 0, nothing becomes NaN).
    """
    x = as_features(x, name)
    check_choice(zero_rows, ZERO_ROWS, "zero_rows")
    # each row scaled by the power of two of its largest value first (exact), so that squaring neither
    # overflows (rows of 1e200) nor underflows (rows of 1e-200); the quotient is the same to the last bit
    x = np.ldexp(x, -np.frexp(np.abs(x).max(axis=1, keepdims=True))[1])
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    zero = norms[:, 0] == 0
    if zero.any() and zero_rows == "raise":
        first = int(np.flatnonzero(zero)[0])
        raise ValueError(f"{name}: {int(zero.sum())} stimulus vectors have zero norm (first: row {first}); "
                         "cannot L2-normalise")
    return x / np.where(zero[:, None], 1.0, norms)


def prh_preprocess(layers, q: float = 0.95):
    """PRH preprocessing of one model: outlier clamp, then L2 normalisation per layer.

    ``c = outlier_clip_value(layers, q)``; every value of every layer is clipped to ``[-c, c]``; then each
    stimulus vector of each layer is divided by its L2 norm.

    Parameters
    ----------
    layers : list or dict of arrays, each (n, d_l)
    q : float
        Quantile of the clamp (0.95).

    Returns
    -------
    list or dict (same container as ``layers``) of float64 arrays (n, d_l)
        Rows have unit norm.
    """
    out, _ = preprocess_layers(layers, "prh", q=q)
    return out


def preprocess_layers(layers, mode: str = "prh", *, q: float = 0.95):
    """Preprocess all layers of one model.

    Parameters
    ----------
    layers : list or dict of arrays, each (n, d_l)
    mode : {"prh", "l2", "none"}
        ``"prh"``: clamp to +/- ``outlier_clip_value`` then L2-normalise rows; ``"l2"``: L2-normalise rows;
        ``"none"``: the float64 features unchanged.
    q : float
        Quantile of the PRH clamp.

    Returns
    -------
    (layers, clip_value)
        Preprocessed layers in the container of the input; ``clip_value`` is the scalar used by ``"prh"``
        and ``None`` otherwise.

    Degenerate input does not stop the model: a layer constant across stimuli (``is_constant``, e.g. an
    all-zero dead ReLU stage) does not enter the clamp value (which comes from the other layers, so they
    are preprocessed exactly as without it; 0.0 when every layer is constant), and a zero stimulus vector
    stays zero under the normalisation. Callers decide what such layers mean (``kernels.build_kernel``
    lists the layers that end up constant).
    """
    check_choice(mode, PREPROCESSING, "preprocess")
    items = _layer_items(layers)
    clip = None
    arrays = [value for _, value in items]
    if mode == "prh":
        informative = [(name, value) for name, value in items if not is_constant(value)]
        if informative:
            clip = outlier_clip_value(dict(informative), q)
            if clip == 0:
                raise ValueError(f"every feature value is 0 at the clamp quantile q={q} in the non-constant layers "
                                 f"{[name for name, _ in informative]}; the PRH clamp would zero them all")
        else:
            clip = 0.0  # every layer is constant: nothing to compare, nothing to clamp for
        arrays = [np.clip(value, -clip, clip) for value in arrays]
    if mode in ("prh", "l2"):
        arrays = [l2_normalise(value, name, zero_rows="keep") for (name, _), value in zip(items, arrays)]
    return _rebuild(layers, arrays), clip
