"""Argument validation shared by the metrics: one clear ``ValueError`` per bad input.

Two conventions every measure of :mod:`convergence.metrics` follows (and the registry documents):

- **Degenerate input raises.** A representation that is constant across stimuli (every stimulus the same
  features, up to round-off: :func:`check_varies`) carries nothing to compare, and every measure raises the
  same ``ValueError`` for it (``"X is constant across stimuli ...; <measure> is undefined"``) rather than
  returning a number made of ties or of 0/0 round-off. The all-pairs engines (:mod:`convergence.pairwise`)
  score such a layer NaN instead, with a warning when its kernel store is built, so that one dead layer does
  not stop the comparison of the others.
- **Scale is handled safely.** Features are multiplied by a power of two (exact in floating point, so
  results for ordinary inputs are unchanged to the last bit) that brings their largest value near 1 before
  anything is squared (:func:`power_of_two_scaled`), so features scaled by 1e200 or 1e-200 neither overflow
  nor underflow and a scale-invariant measure gives the unscaled value.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np


def as_features(x, name: str = "X") -> np.ndarray:
    """``x`` as a finite float64 array of shape (n, d); anything else raises ``ValueError``."""
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array (n_stimuli, n_features); got shape {arr.shape}")
    if arr.shape[0] < 2 or arr.shape[1] < 1:
        raise ValueError(f"{name} must have at least 2 stimuli and 1 feature; got shape {arr.shape}")
    finite = np.isfinite(arr)
    if not finite.all():
        rows = np.flatnonzero(~finite.all(axis=1))
        raise ValueError(
            f"{name} holds {int((~finite).sum())} NaN/Inf values (first in row {int(rows[0])}); "
            "features must be finite"
        )
    return arr


def power_of_two_scaled(x: np.ndarray) -> tuple[np.ndarray, int]:
    """``(x * 2**-e, e)`` with ``e`` the binary exponent of ``max |x|`` (so the largest value lies in
    [0.5, 1)). Multiplying by a power of two is exact, so nothing but the exponent changes; an all-zero ``x``
    comes back as it is with ``e = 0``."""
    top = float(np.max(np.abs(x))) if x.size else 0.0
    if top == 0.0 or not np.isfinite(top):
        return x, 0
    e = int(np.frexp(top)[1])
    return np.ldexp(x, -e), e


def rows_all_equal(x) -> bool:
    """Whether the rows of ``x`` (n, d) are all equal up to round-off: no entry differs from its column mean
    by more than 1e-12 of the largest value (after a power-of-two scaling, so whatever the scale of ``x``).
    An all-zero array is constant."""
    scaled, _ = power_of_two_scaled(np.asarray(x, dtype=np.float64))
    return not np.any(np.abs(scaled - scaled.mean(axis=0)) > 1e-12)


def check_varies(x: np.ndarray, name: str, measure: str) -> np.ndarray:
    """``x`` (n, d) unchanged, unless its rows are all equal up to round-off (:func:`rows_all_equal`): then
    the one ``ValueError`` every measure raises for degenerate input."""
    if rows_all_equal(x):
        raise ValueError(f"{name} is constant across stimuli (every stimulus has the same features, up to "
                         f"round-off); {measure} is undefined for it")
    return x


def as_scaled_features(x, name: str, measure: str) -> np.ndarray:
    """:func:`as_features`, checked to vary across stimuli (:func:`check_varies`) and scaled by a power of
    two (:func:`power_of_two_scaled`): what a scale-invariant measure computes on."""
    arr = check_varies(as_features(x, name), name, measure)
    return power_of_two_scaled(arr)[0]


def as_pair(x, y, names: tuple[str, str] = ("X", "Y")) -> tuple[np.ndarray, np.ndarray]:
    """Two feature matrices over the same stimuli (same number of rows)."""
    a = as_features(x, names[0])
    b = as_features(y, names[1])
    if a.shape[0] != b.shape[0]:
        raise ValueError(
            f"{names[0]} and {names[1]} must describe the same stimuli: got {a.shape[0]} and {b.shape[0]} rows"
        )
    return a, b


def as_square(k, name: str = "K") -> np.ndarray:
    """A finite float64 square matrix (n, n)."""
    arr = np.asarray(k, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[0] != arr.shape[1]:
        raise ValueError(f"{name} must be a square (n, n) matrix; got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} holds NaN/Inf values")
    return arr


def check_int(value, what: str, *, minimum: int = 0, maximum: int | None = None) -> int:
    """An integer (not a bool) in ``[minimum, maximum]``; anything else raises one ``ValueError``."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{what} must be an integer; got {value!r}")
    value = int(value)
    if value < minimum or (maximum is not None and value > maximum):
        allowed = f"{minimum} <= {what}" + (f" <= {maximum}" if maximum is not None else "")
        raise ValueError(f"{what}={value} is out of range; allowed: {allowed}")
    return value


def check_k(k, n: int, *, minimum: int = 1, what: str = "k") -> int:
    """A neighbour count with ``minimum <= k <= n - 1`` (a point is never its own neighbour)."""
    try:
        return check_int(k, what, minimum=minimum, maximum=n - 1)
    except ValueError as err:
        if isinstance(k, (bool, np.bool_)) or not isinstance(k, (int, np.integer)):
            raise
        raise ValueError(f"{what}={int(k)} is not allowed for n={n} stimuli; allowed: {minimum} <= {what} <= {n - 1}") from err


def check_choice(value, allowed: Iterable[str], what: str) -> str:
    """``value`` if it is one of ``allowed``."""
    allowed = tuple(allowed)
    if value not in allowed:
        raise ValueError(f"{what}={value!r} is not known; allowed: {', '.join(map(repr, allowed))}")
    return value


def check_positive(value, what: str) -> float:
    """A finite float > 0."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{what} must be a positive number; got {value!r}") from None
    if not np.isfinite(v) or v <= 0:
        raise ValueError(f"{what} must be a positive finite number; got {value!r}")
    return v


def check_fraction(value, what: str, *, closed_low: bool = False) -> float:
    """A float in (0, 1] (or [0, 1] with ``closed_low``)."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{what} must be a number in (0, 1]; got {value!r}") from None
    low_ok = v >= 0 if closed_low else v > 0
    if not (low_ok and v <= 1):
        lo = "[0" if closed_low else "(0"
        raise ValueError(f"{what}={value!r} is out of range; allowed: {lo}, 1]")
    return v
