"""Statistical inference shared by every analysis: permutation nulls, bootstrap intervals over stimuli,
and comparisons against random subsets of equal size (:func:`random_subsets`, :func:`percentile_of`,
:func:`random_subset_test`).

Conventions (stored in every result's attrs, see :data:`P_VALUE_RULE` and :data:`Z_RULE`):

- p-values are one-sided and never 0: ``p = (1 + #null draws at least as extreme) / (1 + #draws)``
  (Phipson & Smyth 2010); a draw within ``1e-9`` (relative) of the observed value counts as a tie, i.e.
  as at least as extreme, so discrete statistics (kNN overlaps) do not depend on summation order;
- ``z = (observed - null mean) / null std`` with the sample standard deviation (ddof = 1), and NaN when
  the null is degenerate (its standard deviation is round-off: ``<= 1e-12 * max(1, |null mean|)``), since
  a z-score against a constant null is meaningless;
- bootstrap intervals are percentile intervals of the statistic over stimulus resamples, drawn as
  multiplicities (how often each stimulus was drawn; each resample's counts sum to n).

Random draws come from :func:`rng_for`, seeded by a seed and the names of what is compared, so a result
never depends on which other models or datasets take part in a call.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Sequence

import numpy as np

from .metrics._checks import check_int

P_VALUE_RULE = ("(1 + number of null scores at least as similar as the observed) / (1 + n_permutations); one-sided; "
                "a null score within 1e-9 (relative) of the observed counts as a tie, i.e. as at least as similar")
Z_RULE = ("(observed - null mean) / null std (ddof 1); NaN when the null is degenerate "
          "(std <= 1e-12 * max(1, |null mean|), i.e. round-off)")
TIE_TOLERANCE = 1e-9
DEGENERATE_STD = 1e-12
NULL_FIELDS = ("null_mean", "null_std", "z_score", "p_value")


def rng_for(seed: int, *names: str) -> np.random.Generator:
    """A generator that depends only on ``seed`` and ``names`` (e.g. the two models of a pair)."""
    return np.random.default_rng(np.random.SeedSequence([int(seed), *(zlib.crc32(str(n).encode("utf-8")) for n in names)]))


def check_count(value, what: str) -> int:
    """A non-negative integer (a number of draws); anything else raises ``ValueError``."""
    return check_int(value, what, minimum=0)


def permutations(rng: np.random.Generator, n: int, n_permutations: int) -> np.ndarray | None:
    """``n_permutations`` independent permutations of ``range(n)``, shape (P, n); ``None`` when P is 0."""
    if not n_permutations:
        return None
    return rng.permuted(np.tile(np.arange(n), (n_permutations, 1)), axis=1)


def bootstrap_weights(rng: np.random.Generator, n: int, n_bootstrap: int) -> np.ndarray | None:
    """Stimulus resamples with replacement as multiplicities, shape (B, n), float64, rows summing to n;
    ``None`` when B is 0."""
    if not n_bootstrap:
        return None
    draws = rng.integers(0, n, size=(n_bootstrap, n))
    counts = np.bincount((draws + n * np.arange(n_bootstrap)[:, None]).ravel(), minlength=n_bootstrap * n)
    return counts.reshape(n_bootstrap, n).astype(np.float64)


def resample_indices(weights_row: np.ndarray) -> np.ndarray:
    """The stimulus indices of one resample given as multiplicities (each index repeated its count)."""
    return np.repeat(np.arange(weights_row.size), np.asarray(weights_row).astype(np.int64))


def p_value(null: np.ndarray, observed: float, higher_is_better: bool = True) -> float:
    """One-sided permutation p-value of ``observed`` against the finite ``null`` draws (see module docstring)."""
    null = np.asarray(null, dtype=np.float64)
    null = null[np.isfinite(null)]
    if not null.size or not np.isfinite(observed):
        return np.nan
    tol = TIE_TOLERANCE * max(1.0, abs(observed))
    extreme = null >= observed - tol if higher_is_better else null <= observed + tol
    return float((1.0 + extreme.sum()) / (1.0 + null.size))


def null_summary(null: np.ndarray, observed: float, higher_is_better: bool = True) -> dict:
    """``null_mean``, ``null_std``, ``z_score`` and ``p_value`` of ``observed`` against the finite draws of
    ``null`` (NaN fields where undefined; z NaN for a degenerate null)."""
    entry = dict.fromkeys(NULL_FIELDS, np.nan)
    null = np.asarray(null, dtype=np.float64)
    null = null[np.isfinite(null)]
    if null.size and np.isfinite(observed):
        entry["null_mean"] = float(null.mean())
        entry["null_std"] = float(null.std(ddof=1)) if null.size > 1 else np.nan
        if entry["null_std"] > DEGENERATE_STD * max(1.0, abs(entry["null_mean"])):
            entry["z_score"] = (observed - entry["null_mean"]) / entry["null_std"]
        entry["p_value"] = p_value(null, observed, higher_is_better)
    return entry


def percentile_interval(draws: np.ndarray, ci: float = 0.95) -> tuple[float, float]:
    """The central ``ci`` percentile interval of the finite ``draws``; (NaN, NaN) when there are none."""
    if not 0 < float(ci) < 1:
        raise ValueError(f"ci={ci!r} is out of range; allowed: 0 < ci < 1")
    draws = np.asarray(draws, dtype=np.float64)
    draws = draws[np.isfinite(draws)]
    if not draws.size:
        return np.nan, np.nan
    lo, hi = 100 * (1 - ci) / 2, 100 * (1 + ci) / 2
    low, high = np.percentile(draws, [lo, hi])
    return float(low), float(high)


def bootstrap_interval(statistic: Callable[[np.ndarray], float], n: int, *, n_bootstrap: int = 1000,
                       ci: float = 0.95, rng: np.random.Generator | None = None) -> tuple[float, float]:
    """Percentile interval of ``statistic(indices)`` over ``n_bootstrap`` resamples of ``range(n)`` with
    replacement (``statistic`` receives the resampled stimulus indices)."""
    rng = rng or np.random.default_rng(0)
    weights = bootstrap_weights(rng, n, check_count(n_bootstrap, "n_bootstrap"))
    if weights is None:
        return np.nan, np.nan
    return percentile_interval(np.array([statistic(resample_indices(w)) for w in weights]), ci)


def random_subsets(rng: np.random.Generator, n_total: int, size: int, n_draws: int) -> np.ndarray:
    """``n_draws`` random subsets of ``size`` distinct indices of ``range(n_total)`` (each drawn without
    replacement, independently of the others), shape (n_draws, size), int64."""
    n_total = check_count(n_total, "n_total")
    size = check_count(size, "size")
    if not 1 <= size <= n_total:
        raise ValueError(f"size={size} is out of range; allowed: 1 <= size <= n_total={n_total}")
    n_draws = check_count(n_draws, "n_draws")
    return np.array([rng.choice(n_total, size=size, replace=False) for _ in range(n_draws)],
                    dtype=np.int64).reshape(n_draws, size)


def percentile_of(draws: np.ndarray, observed: float) -> float:
    """Where ``observed`` falls among the finite ``draws``, in percent: ``100 * (#below + #tied / 2) / #draws``
    (ties within the module's tie tolerance count half, so a value equal to every draw sits at 50); NaN
    when there are no finite draws or ``observed`` is not finite."""
    draws = np.asarray(draws, dtype=np.float64)
    draws = draws[np.isfinite(draws)]
    if not draws.size or not np.isfinite(observed):
        return np.nan
    tol = TIE_TOLERANCE * max(1.0, abs(observed))
    tied = np.abs(draws - observed) <= tol
    below = (draws < observed) & ~tied
    return float(100.0 * (below.sum() + 0.5 * tied.sum()) / draws.size)


def random_subset_test(statistic: Callable[[np.ndarray], float], subset: Sequence[int], n_total: int, *,
                       n_draws: int = 1000, higher_is_better: bool = True,
                       rng: np.random.Generator | None = None) -> dict:
    """Compare ``statistic`` on a chosen subset of stimuli with its value on random subsets of equal size.

    Parameters
    ----------
    statistic : callable (indices -> float)
        The statistic on a set of stimulus indices (e.g. cross-modal alignment on those stimuli).
    subset : sequence of int
        The chosen stimuli (e.g. the most dispersed), indices into ``range(n_total)``.
    n_total : int
        Stimuli to draw random subsets from (without replacement).
    n_draws : int
        Random subsets.
    higher_is_better : bool
        Direction of the one-sided p-value (is the chosen subset higher than random ones?).

    Returns
    -------
    dict
        ``observed``, ``null_mean``, ``null_std``, ``z_score``, ``p_value`` (conventions of this module),
        ``null`` (the draws) and ``size``.
    """
    subset = np.asarray(subset, dtype=np.int64).ravel()
    size = subset.size
    if size < 1 or size > n_total or np.unique(subset).size != size or subset.min() < 0 or subset.max() >= n_total:
        raise ValueError(f"subset must hold 1 to {n_total} distinct indices in [0, {n_total - 1}]; got {size} indices")
    rng = rng or np.random.default_rng(0)
    n_draws = check_count(n_draws, "n_draws")
    observed = float(statistic(subset))
    null = np.array([statistic(draw) for draw in random_subsets(rng, n_total, size, n_draws)], dtype=np.float64)
    return {"observed": observed, **null_summary(null, observed, higher_is_better), "null": null, "size": size}


ALTERNATIVES = ("greater", "less", "two-sided")


def permutation_test(statistic: Callable[[np.ndarray], float], n: int, *, n_permutations: int = 1000,
                     alternative: str = "greater", rng: np.random.Generator | None = None) -> dict:
    """Compare ``statistic`` on the identity order of ``n`` items with its value on random permutations.

    The generic permutation test (e.g. a Mantel test: permute which model carries which behaviour score
    while the similarity matrix stays fixed, so the dependence between model pairs is kept).

    Parameters
    ----------
    statistic : callable (permutation -> float)
        The statistic when item ``i`` takes the role of item ``perm[i]``; called once with the identity
        (the observed value) and once per permutation.
    n : int
        Items permuted (at least 2).
    n_permutations : int
        Random permutations (0: no null, NaN fields).
    alternative : {"greater", "less", "two-sided"}
        ``greater``/``less``: the one-sided p-value of this module (null draws at least as high / as low
        as the observed value count); ``two-sided``: null draws at least as far from 0 as the observed
        value (``|null| >= |observed|``), for statistics centred on 0 under the null such as correlations.

    Returns
    -------
    dict
        ``observed``, ``null_mean``, ``null_std``, ``z_score``, ``p_value`` (conventions of this module),
        ``null`` (the draws), ``n_permutations`` and ``alternative``.
    """
    if alternative not in ALTERNATIVES:
        raise ValueError(f"alternative={alternative!r} is not known; allowed: {ALTERNATIVES}")
    n = check_int(n, "n", minimum=2)
    n_permutations = check_count(n_permutations, "n_permutations")
    rng = rng or np.random.default_rng(0)
    observed = float(statistic(np.arange(n)))
    perms = permutations(rng, n, n_permutations)
    null = np.array([] if perms is None else [statistic(p) for p in perms], dtype=np.float64)
    if alternative == "two-sided":
        entry = null_summary(null, observed)
        entry["p_value"] = p_value(np.abs(null), abs(observed)) if null.size else np.nan
    else:
        entry = null_summary(null, observed, higher_is_better=alternative == "greater")
    return {"observed": observed, **entry, "null": null, "n_permutations": n_permutations, "alternative": alternative}
