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
- intervals over stimuli are delete-a-group jackknife intervals (:func:`jackknife_weights`,
  :func:`jackknife_interval`, :data:`INTERVAL_RULE`): the stimuli are split at random into G groups, the
  statistic is recomputed with each group left out, and the interval is ``estimate +/- z se_J``. No stimulus
  is ever duplicated: a resample with replacement puts copies of a stimulus into the Gram matrices
  (identical rows and columns) and into the neighbour graphs (copies are each other's nearest neighbours),
  which biases every kernel and neighbour statistic, so the percentile bootstrap interval of linear CKA
  excluded its own estimate in most cells of the default run. Subsampling m < n stimuli without
  replacement avoids duplicates too, but a spectral measure's small-sample bias grows like d / m (the width
  confound), so the subsample distribution drifts away from the estimate; the jackknife interval is
  centred on the estimate and its variance estimate is consistent for smooth functions of means and
  U/V-statistics (CKA, CKNNA, RSA correlations, kNN overlaps averaged over a fixed graph; Efron & Stein
  1981, Shao & Wu 1989 for deleting groups);
- a calibrated score (Groger, Wen & Brbic 2026) sits beside every score with a null:
  :func:`null_threshold` (``tau``, the null's (1 - alpha) order statistic with the observed value among
  the draws) and :func:`calibrated_score` (:data:`THRESHOLD_RULE`); q-values across the tests of one
  result are Benjamini-Hochberg's (:func:`bh_qvalues`).

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
#: Significance level of the calibration threshold and of the "above its null" marks (q <= ALPHA).
ALPHA = 0.05
THRESHOLD_RULE = (
    "tau = the ceil((1 - alpha) (B + 1))-th smallest of the B finite null scores together with the observed score "
    "(on the oriented scale, larger = more similar; reported on the metric's own scale); calibrated = 0 if the "
    "score is at most tau (within 1e-9 relative), else (score - tau) / (s_max - tau) on the oriented scale, s_max "
    "the metric's most similar value (registry range), or score - tau for an unbounded measure "
    "(Groger, Wen & Brbic 2026)"
)
Q_VALUE_RULE = ("Benjamini-Hochberg q-values over the distinct model pairs of one result and summary (self pairs "
                "and, for a symmetric metric, the mirrored pair left out); compare with alpha")
INTERVAL_RULE = (
    "delete-a-group jackknife: the stimuli split at random into G = min(n_bootstrap, n) groups, the statistic "
    "recomputed with each group left out (no stimulus ever duplicated); interval = estimate +/- z_((1+ci)/2) se, "
    "se^2 = (G - 1) / G * sum_g (T_(g) - mean T_(.))^2"
)


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


def jackknife_weights(rng: np.random.Generator, n: int, n_groups: int) -> np.ndarray | None:
    """Delete-a-group jackknife replicates as 0/1 stimulus weights, shape (G, n), float64: the stimuli are
    split at random into ``G = min(n_groups, n)`` groups of near-equal size and row g leaves group g out
    (``n_groups >= n``: delete-one). ``None`` when ``n_groups`` is 0. Every measure's ``bootstrap`` method
    accepts such rows (weights are multiplicities; these sum to n minus the group's size)."""
    n = check_count(n, "n")
    n_groups = check_count(n_groups, "n_groups")
    if not n_groups or n < 2:
        return None
    groups = min(n_groups, n)
    label = np.empty(n, dtype=np.int64)
    label[rng.permutation(n)] = np.arange(n) % groups
    return (label[None, :] != np.arange(groups)[:, None]).astype(np.float64)


def jackknife_se(draws: np.ndarray) -> float:
    """The grouped jackknife standard error ``sqrt((G - 1) / G * sum (T_(g) - mean)^2)`` of the finite
    leave-a-group-out values ``draws`` (NaN with fewer than 2)."""
    draws = np.asarray(draws, dtype=np.float64)
    draws = draws[np.isfinite(draws)]
    g = draws.size
    if g < 2:
        return np.nan
    return float(np.sqrt((g - 1) / g * np.sum((draws - draws.mean()) ** 2)))


def jackknife_interval(estimate: float, *draws: np.ndarray, ci: float = 0.95) -> tuple[float, float]:
    """``estimate +/- z se`` with ``z`` the standard normal ``(1 + ci) / 2`` quantile and ``se^2`` the sum of
    the jackknife variances of each set of leave-a-group-out values in ``draws`` (one set per independent
    sample the statistic depends on, e.g. the low and the high subset of a ratio). Contains ``estimate``
    whenever it is defined; (NaN, NaN) when the estimate or a variance is not finite."""
    from scipy.stats import norm

    if not 0 < float(ci) < 1:
        raise ValueError(f"ci={ci!r} is out of range; allowed: 0 < ci < 1")
    if not draws:
        raise ValueError("jackknife_interval needs at least one set of leave-a-group-out values")
    var = sum(jackknife_se(d) ** 2 for d in draws)
    if not (np.isfinite(estimate) and np.isfinite(var)):
        return np.nan, np.nan
    half = float(norm.ppf(0.5 + float(ci) / 2)) * float(np.sqrt(var))
    return float(estimate - half), float(estimate + half)


def count_excluding(estimates, lows, highs, tol: float = 1e-12) -> tuple[int, int]:
    """How many intervals ``[low, high]`` exclude their estimate (beyond ``tol`` relative), among those with
    a finite estimate and interval: (excluding, total). The check of issue 23 on stored results."""
    e, lo, hi = (np.asarray(v, dtype=np.float64).ravel() for v in (estimates, lows, highs))
    ok = np.isfinite(e) & np.isfinite(lo) & np.isfinite(hi)
    e, lo, hi = e[ok], lo[ok], hi[ok]
    slack = tol * np.maximum(1.0, np.abs(e))
    return int(np.sum((e < lo - slack) | (e > hi + slack))), int(ok.sum())


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


def null_threshold(null: np.ndarray, observed: float, alpha: float = ALPHA, higher_is_better: bool = True) -> float:
    """``tau``: the ``ceil((1 - alpha)(B + 1))``-th smallest of the B finite ``null`` draws together with
    ``observed`` (on the oriented scale, larger = more similar; returned on the measure's own scale); NaN
    when there is no finite draw or ``observed`` is not finite."""
    alpha = _check_alpha(alpha)
    null = np.asarray(null, dtype=np.float64)
    null = null[np.isfinite(null)]
    if not null.size or not np.isfinite(observed):
        return np.nan
    sign = 1.0 if higher_is_better else -1.0
    values = np.sort(sign * np.append(null, observed))
    rank = int(np.ceil((1.0 - alpha) * values.size - 1e-9))  # 1-based; the 1e-9 absorbs round-off in (1-a)(B+1)
    return float(sign * values[max(rank, 1) - 1])


def calibrated_score(observed: float, tau: float, most_similar: float, higher_is_better: bool = True) -> float:
    """0 if ``observed`` is at most ``tau`` (within 1e-9 relative; oriented scale), else
    ``(observed - tau) / (most_similar - tau)`` on the oriented scale (``most_similar``: the measure's
    maximum, its minimum for a distance), or the plain excess ``observed - tau`` (oriented) when
    ``most_similar`` is infinite; NaN when ``observed`` or ``tau`` is not finite."""
    if not (np.isfinite(observed) and np.isfinite(tau)):
        return np.nan
    sign = 1.0 if higher_is_better else -1.0
    excess = sign * (observed - tau)
    if excess <= TIE_TOLERANCE * max(1.0, abs(observed)):
        return 0.0
    if not np.isfinite(most_similar):
        return float(excess)
    room = sign * (most_similar - tau)
    return float(min(1.0, excess / room)) if room > 0 else np.nan


def calibrate(null: np.ndarray, observed: float, most_similar: float, alpha: float = ALPHA,
              higher_is_better: bool = True) -> dict:
    """``tau`` (:func:`null_threshold`) and ``calibrated`` (:func:`calibrated_score`) of ``observed``."""
    tau = null_threshold(null, observed, alpha, higher_is_better)
    return {"tau": tau, "calibrated": calibrated_score(observed, tau, most_similar, higher_is_better)}


def bh_qvalues(p_values) -> np.ndarray:
    """Benjamini-Hochberg adjusted p-values (q-values) of the finite entries of ``p_values`` (NaN stays NaN
    and does not count as a test): ``q_(i) = min_{j >= i} m p_(j) / j``, capped at 1."""
    p = np.asarray(p_values, dtype=np.float64)
    out = np.full(p.shape, np.nan)
    ok = np.isfinite(p)
    m = int(ok.sum())
    if not m:
        return out
    values = p[ok]
    order = np.argsort(values, kind="stable")
    scaled = values[order] * m / np.arange(1, m + 1)
    q = np.minimum(1.0, np.minimum.accumulate(scaled[::-1])[::-1])
    adjusted = np.empty(m)
    adjusted[order] = q
    out[ok] = adjusted
    return out


def _check_alpha(alpha) -> float:
    try:
        value = float(alpha)
    except (TypeError, ValueError):
        value = np.nan
    if not 0 < value < 1:
        raise ValueError(f"alpha={alpha!r} is out of range; allowed: 0 < alpha < 1")
    return value


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
    replacement (``statistic`` receives the resampled stimulus indices). For statistics of independent
    units (e.g. models); statistics over stimuli use :func:`stimulus_interval` (no duplicates)."""
    rng = rng or np.random.default_rng(0)
    weights = bootstrap_weights(rng, n, check_count(n_bootstrap, "n_bootstrap"))
    if weights is None:
        return np.nan, np.nan
    return percentile_interval(np.array([statistic(resample_indices(w)) for w in weights]), ci)


def stimulus_interval(statistic: Callable[[np.ndarray], float], n: int, *, n_groups: int = 100,
                      ci: float = 0.95, rng: np.random.Generator | None = None) -> tuple[float, float]:
    """The delete-a-group jackknife interval (:data:`INTERVAL_RULE`) of ``statistic(indices)`` over
    ``range(n)``: ``statistic`` receives the sorted indices of the stimuli kept (all of them for the
    estimate)."""
    rng = rng or np.random.default_rng(0)
    weights = jackknife_weights(rng, n, n_groups)
    estimate = float(statistic(np.arange(n)))
    if weights is None:
        return np.nan, np.nan
    return jackknife_interval(estimate, np.array([statistic(np.flatnonzero(w)) for w in weights]), ci=ci)


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
