"""Kernel alignment: HSIC, CKA (linear, RBF, feature space) and CKNNA.

Notation: ``n`` stimuli, ``H = I - 11^T / n`` the centring matrix, ``K``, ``L`` (n, n) kernel matrices of
the two representations, ``Kc = H K H`` the centred kernel.
"""

from __future__ import annotations

import numpy as np

from ._checks import (
    as_features,
    as_pair,
    as_scaled_features,
    as_square,
    check_choice,
    check_k,
    check_positive,
    check_varies,
    power_of_two_scaled,
)
from .knn import knn_indices, reciprocal_neighbors

KERNELS = ("linear", "rbf")


def linear_kernel(x) -> np.ndarray:
    """``K = X X^T`` (n, n) for features ``x`` (n, d)."""
    x = as_features(x)
    return x @ x.T


def _scaled_squared_distances(x) -> tuple[np.ndarray, int]:
    """``(D', e)`` with ``D = D' * 4**e`` the squared distances: computed on ``x`` scaled by a power of two
    (``power_of_two_scaled``), so that nothing overflows or underflows whatever the scale of ``x``."""
    x, e = power_of_two_scaled(as_features(x))
    gram = x @ x.T
    sq = np.diag(gram)
    d = sq[:, None] + sq[None, :] - 2 * gram
    np.fill_diagonal(d, 0.0)
    return np.maximum(d, 0.0), e


def squared_distances(x) -> np.ndarray:
    """``D_ij = ||x_i - x_j||^2`` (n, n), computed from the Gram matrix and clipped at 0 (on ``x`` scaled by
    a power of two, exact, then scaled back: an entry above the float64 range is ``inf``, never NaN)."""
    d, e = _scaled_squared_distances(x)
    return np.ldexp(d, 2 * e)


def median_sigma(x, factor: float = 1.0) -> float:
    """RBF bandwidth by the median rule: ``sigma = factor * median_{i<j} ||x_i - x_j||``.

    Raises ``ValueError`` when the median distance is 0 (more than half of the pairs coincide).
    """
    factor = check_positive(factor, "sigma_factor")
    d, e = _scaled_squared_distances(x)
    iu = np.triu_indices(d.shape[0], k=1)
    med = float(np.sqrt(np.median(d[iu])))
    if med == 0:
        raise ValueError("the median pairwise distance is 0; the median rule gives no bandwidth "
                         "(give an absolute sigma)")
    return factor * float(np.ldexp(med, e))


def rbf_sigma(x, *, sigma: float | None = None, sigma_factor: float | None = None) -> float:
    """The RBF bandwidth: exactly one of an absolute ``sigma`` or ``sigma_factor`` (median rule)."""
    if (sigma is None) == (sigma_factor is None):
        raise ValueError(
            f"give exactly one of sigma (absolute bandwidth) or sigma_factor (times the median distance); "
            f"got sigma={sigma!r}, sigma_factor={sigma_factor!r}"
        )
    if sigma is not None:
        return check_positive(sigma, "sigma")
    return median_sigma(x, sigma_factor)


def rbf_kernel(x, sigma: float) -> np.ndarray:
    """``K_ij = exp(-||x_i - x_j||^2 / (2 sigma^2))`` (n, n) with an absolute bandwidth ``sigma > 0``."""
    sigma = check_positive(sigma, "sigma")
    d, e = _scaled_squared_distances(x)
    denom = 2.0 * sigma**2
    with np.errstate(over="ignore", under="ignore", invalid="ignore"):
        if np.isfinite(denom) and denom >= np.finfo(np.float64).tiny:
            exponent = np.ldexp(d, 2 * e) / denom  # a distance beyond float64 is inf: kernel value 0
        else:  # sigma^2 itself leaves the float64 range: d * 4**e / (2 sigma^2) in scaled pieces
            _, es = power_of_two_scaled(np.array([sigma]))
            scale = float(np.ldexp(1.0, 2 * (e - es))) / (2.0 * float(np.ldexp(sigma, -es)) ** 2)
            exponent = np.where(d > 0, d * scale, 0.0)
    return np.exp(-exponent)


def centre_gram(k) -> np.ndarray:
    """``H K H``: the kernel with row and column means removed (n, n)."""
    k = as_square(k)
    k = k - k.mean(axis=0, keepdims=True)
    return k - k.mean(axis=1, keepdims=True)


def hsic_from_products(inner, diag_dot, trace_k, trace_l, n: int, unbiased: bool = False):
    """HSIC from summaries of two CENTRED kernels ``Kc``, ``Lc``; works elementwise on arrays.

    Parameters
    ----------
    inner : float or array
        ``<Kc, Lc>_F = tr(Kc Lc)``.
    diag_dot : float or array
        ``sum_i Kc_ii Lc_ii``.
    trace_k, trace_l : float or array
        ``tr Kc``, ``tr Lc``.
    n : int
        Number of stimuli.
    unbiased : bool
        Biased: ``inner / (n-1)^2``. Unbiased (Song et al. 2012, eq. 5) applied to ``Kc`` and ``Lc`` with
        zeroed diagonals, which equals the estimator on the uncentred kernels because it ignores additive
        row and column effects; since the rows of ``Kc`` sum to 0 it reduces to
        ``[inner - diag_dot + trace_k trace_l / ((n-1)(n-2)) - 2 diag_dot / (n-2)] / (n (n-3))``.
    """
    if not unbiased:
        return inner / (n - 1) ** 2
    return (inner - diag_dot + trace_k * trace_l / ((n - 1) * (n - 2)) - 2.0 * diag_dot / (n - 2)) / (n * (n - 3))


def hsic(k, l, unbiased: bool = False) -> float:
    """Hilbert-Schmidt independence criterion of two kernel matrices.

    Biased: ``tr(K H L H) / (n-1)^2``. Unbiased (Song et al. 2012, eq. 5), with ``K~``, ``L~`` the kernels
    with zeroed diagonals:
    ``[tr(K~ L~) + 1^T K~ 1 1^T L~ 1 / ((n-1)(n-2)) - 2 / (n-2) 1^T K~ L~ 1] / (n (n-3))``.

    Parameters
    ----------
    k, l : arrays (n, n)
        Kernel matrices on the same stimuli (n >= 4 for the unbiased estimator).
    unbiased : bool

    Returns
    -------
    float
    """
    k = as_square(k, "K")
    l = as_square(l, "L")
    n = k.shape[0]
    if l.shape[0] != n:
        raise ValueError(f"K and L must describe the same stimuli: got {n} and {l.shape[0]} rows")
    if not unbiased:
        return float(np.sum(centre_gram(k) * l) / (n - 1) ** 2)
    if n < 4:
        raise ValueError(f"the unbiased HSIC needs n >= 4 stimuli; got n={n}")
    kt = k.copy()
    lt = l.copy()
    np.fill_diagonal(kt, 0.0)
    np.fill_diagonal(lt, 0.0)
    value = (
        np.sum(kt * lt.T)
        + kt.sum() * lt.sum() / ((n - 1) * (n - 2))
        - 2.0 * (kt.sum(axis=0) @ lt.sum(axis=1)) / (n - 2)
    )
    return float(value / (n * (n - 3)))


def _ratio(kl: float, kk: float, ll: float, what: str) -> float:
    for value, side in ((kk, "X"), (ll, "Y")):
        if not value > 0:
            raise ValueError(
                f"{what} is undefined: the self-HSIC of {side} is {value:.3g} (a representation that is constant "
                "across stimuli, or too few stimuli for the unbiased estimator)"
            )
    return float(kl / np.sqrt(kk * ll))


def _check_kernel_varies(k: np.ndarray, name: str) -> np.ndarray:
    """A kernel scaled by a power of two (CKA does not change when a kernel is multiplied by a positive
    number), unless centring leaves nothing of it (relative 1e-12): then the representation it comes from
    is constant across stimuli and CKA is undefined (the same error as every measure's)."""
    k, _ = power_of_two_scaled(k)
    if not np.any(np.abs(centre_gram(k)) > 1e-12):
        raise ValueError(f"{name} is constant across stimuli (its centred kernel is 0 up to round-off: the "
                         "features do not vary, or an absolute RBF bandwidth is far wider than their distances); "
                         "CKA is undefined for it")
    return k


def cka_from_grams(k, l, unbiased: bool = False) -> float:
    """``CKA = HSIC(K, L) / sqrt(HSIC(K, K) HSIC(L, L))`` for kernel matrices (n, n)."""
    k = _check_kernel_varies(as_square(k, "K"), "K")
    l = _check_kernel_varies(as_square(l, "L"), "L")
    return _ratio(hsic(k, l, unbiased), hsic(k, k, unbiased), hsic(l, l, unbiased), "CKA")


def cka(x, y, *, kernel: str = "linear", sigma: float | None = None, sigma_factor: float | None = None,
        unbiased: bool = False) -> float:
    """Centred kernel alignment (Kornblith et al. 2019) of two representations of the same stimuli.

    ``CKA = HSIC(K, L) / sqrt(HSIC(K, K) HSIC(L, L))`` with ``K`` from ``x`` and ``L`` from ``y``.

    Parameters
    ----------
    x : array (n, d_x)
    y : array (n, d_y)
    kernel : {"linear", "rbf"}
        ``linear``: ``K = X X^T``. ``rbf``: ``K_ij = exp(-||x_i - x_j||^2 / (2 sigma^2))``.
    sigma, sigma_factor : float, optional
        RBF only, exactly one: an ABSOLUTE bandwidth (the same for both representations), or a factor of
        each representation's median pairwise distance.
    unbiased : bool
        Use the unbiased HSIC (Song et al. 2012) instead of the biased ``tr(KHLH)/(n-1)^2``.

    Returns
    -------
    float
        1 for representations equal up to rotation and isotropic scaling (linear kernel).

    Scale: linear CKA and RBF CKA with ``sigma_factor`` (the median rule) do not change when a representation
    is multiplied by a positive number, and are computed on power-of-two-scaled features; RBF CKA with an
    absolute ``sigma`` does change (the bandwidth is absolute, meant for L2-normalised features), and is
    computed without overflow (distances beyond the float64 range give kernel values 0, the limit).
    A representation constant across stimuli raises ``ValueError``.
    """
    check_choice(kernel, KERNELS, "kernel")
    x, y = as_pair(x, y)
    what = "linear CKA" if kernel == "linear" else "RBF CKA"
    if kernel == "linear" or sigma is None:  # scale-invariant: computed on power-of-two-scaled features
        x, y = as_scaled_features(x, "X", what), as_scaled_features(y, "Y", what)
    else:  # an absolute bandwidth: the scale of the features matters (rbf_kernel never overflows)
        check_varies(x, "X", what)
        check_varies(y, "Y", what)
    if kernel == "linear":
        if sigma is not None or sigma_factor is not None:
            raise ValueError("sigma and sigma_factor apply to kernel='rbf' only")
        k, l = linear_kernel(x), linear_kernel(y)
    else:
        k = rbf_kernel(x, rbf_sigma(x, sigma=sigma, sigma_factor=sigma_factor))
        l = rbf_kernel(y, rbf_sigma(y, sigma=sigma, sigma_factor=sigma_factor))
    return cka_from_grams(k, l, unbiased)


def cka_linear_features(x, y, unbiased: bool = False) -> float:
    """Linear CKA computed in feature space, never forming an n x n matrix.

    With ``Xc``, ``Yc`` the column-centred features:
    ``CKA = ||Yc^T Xc||_F^2 / (||Xc^T Xc||_F ||Yc^T Yc||_F)``; memory O(d_x d_y), time O(n d_x d_y).
    With ``unbiased`` the same inner products feed ``hsic_from_products`` (the diagonal of ``Kc`` is the
    squared norms of the rows of ``Xc``).

    Parameters
    ----------
    x : array (n, d_x)
    y : array (n, d_y)
    unbiased : bool
    """
    x, y = as_pair(x, y)
    x, y = as_scaled_features(x, "X", "linear CKA"), as_scaled_features(y, "Y", "linear CKA")
    n = x.shape[0]
    if unbiased and n < 4:
        raise ValueError(f"the unbiased HSIC needs n >= 4 stimuli; got n={n}")
    xc = x - x.mean(axis=0)
    yc = y - y.mean(axis=0)
    dk = np.einsum("ij,ij->i", xc, xc)
    dl = np.einsum("ij,ij->i", yc, yc)
    kl = np.sum((yc.T @ xc) ** 2)
    kk = np.sum((xc.T @ xc) ** 2)
    ll = np.sum((yc.T @ yc) ** 2)
    h = lambda inner, da, db: hsic_from_products(inner, da @ db, da.sum(), db.sum(), n, unbiased)  # noqa: E731
    return _ratio(h(kl, dk, dl), h(kk, dk, dk), h(ll, dl, dl), "linear CKA")


def cknna(x, y, k: int = 10) -> float:
    """Centred kernel nearest-neighbour alignment, CKNNA (Huh et al. 2024, ``metrics.py`` of the PRH code).

    With linear kernels ``K = X X^T``, ``L = Y Y^T`` (uncentred; callers pass L2-normalised features) and
    ``M_X[i, j] = 1`` iff ``j`` is among the k nearest neighbours of ``i`` in ``x`` (inner product, self
    excluded; one row at a time, so ``M_X`` need not be symmetric):

    ``CKNNA = HSIC_u(K ∘ M, L ∘ M) / sqrt(HSIC_u(K ∘ M_X, K ∘ M_X) HSIC_u(L ∘ M_Y, L ∘ M_Y))``,
    ``M = M_X ∘ M_Y`` (pairs that are neighbours in BOTH), ``HSIC_u`` the unbiased HSIC (see ``hsic``).

    Computed from the neighbour lists in O(n k^2) time and memory, never an n x n matrix.

    Parameters
    ----------
    x : array (n, d_x)
    y : array (n, d_y)
    k : int
        ``2 <= k <= n - 1`` (the PRH code refuses k < 2); n >= 4.

    Returns
    -------
    float
        1 when both representations are equal.
    """
    x, y = as_pair(x, y)
    x, y = as_scaled_features(x, "X", "CKNNA"), as_scaled_features(y, "Y", "CKNNA")
    n = x.shape[0]
    if n < 4:
        raise ValueError(f"CKNNA uses the unbiased HSIC, which needs n >= 4 stimuli; got n={n}")
    k = check_k(k, n, minimum=2)
    na, nb = knn_indices(x, k), knn_indices(y, k)
    va = np.einsum("id,ipd->ip", x, x[na])
    vb = np.einsum("id,ipd->ip", y, y[nb])
    ra = reciprocal_neighbors(na)
    rb = reciprocal_neighbors(nb)
    kl = cknna_hsic(na, va, ra, nb, vb, rb)
    kk = cknna_hsic(na, va, ra, na, va, ra)
    ll = cknna_hsic(nb, vb, rb, nb, vb, rb)
    return _ratio(kl, kk, ll, "CKNNA")


def cknna_hsic(na, va, ra, nb, vb, rb, weights=None) -> float:
    """Unbiased HSIC of the kernels masked to the pairs that are neighbours in both representations.

    Parameters
    ----------
    na, nb : arrays (n, k) of int
        Neighbour lists of the two representations.
    va, vb : arrays (n, k)
        Kernel values at those neighbours, ``va[i, p] = K[i, na[i, p]]`` (kernels must be symmetric).
    ra, rb : arrays (n, k) of bool
        Reciprocity, ``ra[i, p] = i in na[na[i, p]]``.
    weights : array (n,), optional
        Stimulus multiplicities (0/1 for a jackknife replicate that leaves stimuli out, or a resample); the
        HSIC's n is their sum. The masked pair relation is held fixed; a pair (r, s) of copies of (i, j)
        carries ``K[i, j]`` and copies of one stimulus are never each other's neighbours.

    Returns
    -------
    float
        ``HSIC_u(P, Q)`` with ``P = K ∘ M``, ``Q = L ∘ M``, ``M[i, j] = 1`` iff ``j`` in both lists of ``i``.
    """
    n = na.shape[0]
    eq = na[:, :, None] == nb[:, None, :]  # (n, k_a, k_b)
    in_both = eq.any(axis=2)
    p = np.where(in_both, va, 0.0)  # P[i, na[i, p]]
    q = eq.astype(np.float64) @ vb[:, :, None]  # Q[i, na[i, p]] aligned to A's positions
    q = q[:, :, 0]
    rba = (eq & rb[:, None, :]).any(axis=2)  # i in nb[j] for j = na[i, p] matched in B
    back = in_both & ra & rba  # (j, i) is in M as well, so Q[j, i] = L[i, j] = q
    m = np.ones(n) if weights is None else np.asarray(weights, dtype=np.float64)
    mj = m[na]  # weight of the column stimulus j
    w = m[:, None] * mj
    tr_pq = np.sum(w * p * q * back)
    sum_p = np.sum(w * p)
    sum_q = np.sum(w * q)
    col_p = np.bincount(na.ravel(), weights=(m[:, None] * p).ravel(), minlength=n)  # sum_i m_i P_ij
    row_q = np.sum(mj * q, axis=1)  # sum_l m_l Q_jl for row j
    pq = np.sum(m * col_p * row_q)
    n = float(m.sum())
    return float((tr_pq + sum_p * sum_q / ((n - 1) * (n - 2)) - 2.0 * pq / (n - 2)) / (n * (n - 3)))
