"""Subspace comparisons: SVCCA and the angular orthogonal-Procrustes distance."""

from __future__ import annotations

import warnings

import numpy as np

from ._checks import as_pair, as_scaled_features, check_fraction


def _centred(x, name: str, measure: str = "the subspace comparison") -> np.ndarray:
    """``x`` column-centred, scaled by a power of two (both measures ignore the scale); a representation
    constant across stimuli raises the measures' common ``ValueError``."""
    x = as_scaled_features(x, name, measure)
    return x - x.mean(axis=0)


def principal_axes(xc: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Left singular vectors (n, r) and singular values (r,) of ``xc`` (n, d), directions whose singular
    value is numerically zero (``<= 1e-10`` of the largest) dropped."""
    u, s, _ = np.linalg.svd(xc, full_matrices=False)
    r = int(np.sum(s > (s[0] if s.size else 0) * 1e-10))
    return u[:, :r], s[:r]


def leading_components(s: np.ndarray, variance: float) -> int:
    """The fewest leading components whose share of the total variance (singular values ``s``, descending)
    reaches ``variance``."""
    energy = np.cumsum(s**2) / np.sum(s**2)
    return min(int(np.searchsorted(energy, variance - 1e-12) + 1), len(s))


def svcca_basis(x, variance: float = 0.99, name: str = "X") -> np.ndarray:
    """Orthonormal basis of the leading principal subspace of ``x`` (the SV step of SVCCA).

    Parameters
    ----------
    x : array (n, d)
    variance : float in (0, 1]
        Keep the fewest principal components whose share of the total variance reaches ``variance``.

    Returns
    -------
    array (n, r)
        ``U_r``: left singular vectors of the column-centred ``x``; columns orthonormal and centred.
    """
    variance = check_fraction(variance, "variance")
    u, s = principal_axes(_centred(x, name, "SVCCA"))
    return u[:, : leading_components(s, variance)]


def svcca_from_bases(ua: np.ndarray, ub: np.ndarray, *, warn: bool = True) -> float:
    """Mean canonical correlation of two reduced representations given orthonormal bases (n, r_a), (n, r_b).

    The canonical correlations are the singular values of ``U_a^T U_b`` (all ``min(r_a, r_b)`` of them).
    With ``warn``, too many components for the number of stimuli give a warning.
    """
    n = ua.shape[0]
    if warn and ua.shape[1] + ub.shape[1] > n - 1:
        warnings.warn(
            f"SVCCA keeps {ua.shape[1]} + {ub.shape[1]} components for n={n} stimuli; the subspaces must intersect "
            "and some canonical correlations are 1 by construction. Use more stimuli.",
            stacklevel=2,
        )
    s = np.linalg.svd(ua.T @ ub, compute_uv=False)
    return float(np.mean(np.clip(s, 0.0, 1.0)))


def svcca(x, y, variance: float = 0.99) -> float:
    """Singular vector canonical correlation analysis (Raghu et al. 2017).

    Each representation is centred and reduced to its leading principal components explaining
    ``variance`` of its variance (SVD); the score is the mean of the canonical correlations between the two
    reduced representations, ``mean(svd(U_x^T U_y))`` with ``U`` the orthonormal bases of ``svcca_basis``.

    Parameters
    ----------
    x : array (n, d_x)
    y : array (n, d_y)
    variance : float in (0, 1]
        0.99 by default.

    Returns
    -------
    float in [0, 1]
        1 when one representation is an invertible linear map of the other.
    """
    x, y = as_pair(x, y)
    return svcca_from_bases(svcca_basis(x, variance, "X"), svcca_basis(y, variance, "Y"))


def procrustes_basis(x, name: str = "X") -> np.ndarray:
    """``x`` centred, scaled to unit Frobenius norm and expressed in its principal axes.

    Returns ``U S`` (n, r), r = rank: inner products between stimuli and all Procrustes quantities are
    unchanged (``X = U S V^T`` and ``V`` drops out of every nuclear norm), while the width is at most
    ``min(n, d)``.
    """
    xc = _centred(x, name, "the Procrustes distance")
    u, s = principal_axes(xc / np.linalg.norm(xc))
    return u * s


def procrustes_from_bases(a: np.ndarray, b: np.ndarray) -> float:
    """``arccos(||A^T B||_*)`` for centred unit-Frobenius representations (``procrustes_basis``)."""
    nuc = np.sum(np.linalg.svd(a.T @ b, compute_uv=False))
    return float(np.arccos(np.clip(nuc, -1.0, 1.0)))


def procrustes_distance(x, y) -> float:
    """Angular orthogonal-Procrustes distance (Williams et al. 2021).

    With ``X``, ``Y`` centred and scaled to ``||X||_F = ||Y||_F = 1`` (zero-padded to a common width),
    ``min_Q ||X - Y Q||_F`` over orthogonal ``Q`` is attained at the nuclear norm of ``X^T Y``; the angular
    distance is ``arccos(||X^T Y||_*)``, in radians in ``[0, pi/2]``.

    Parameters
    ----------
    x : array (n, d_x)
    y : array (n, d_y)

    Returns
    -------
    float
        0 when ``y`` is a rotation (and isotropic scaling, translation) of ``x``.
    """
    x, y = as_pair(x, y)
    return procrustes_from_bases(procrustes_basis(x, "X"), procrustes_basis(y, "Y"))
