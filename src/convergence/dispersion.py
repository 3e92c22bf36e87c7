"""Generalised Procrustes analysis (GPA) and single-stimulus dispersion (science.md, section C).

Several models describe the same ``n`` stimuli by feature matrices ``X_m`` (n x d_m). After a common
preparation, GPA rotates every matrix orthogonally onto a common mean configuration; how far a stimulus's
rotated rows stay from the mean row measures how much the models disagree about that stimulus:

1. preparation (each step an option): centre every matrix's columns (``centre``); scale every matrix to
   unit Frobenius norm (``scale``); bring all to one width ``D`` (``width``): ``"pad"`` appends zero
   columns up to the largest d_m (rotations of a zero-padded matrix are rotations in the larger space, so
   nothing is lost), an integer ``d`` keeps each matrix's first ``d`` principal-component scores (its
   coordinates on its own top-``d`` right singular vectors; a matrix with fewer than ``d`` columns is
   zero-padded). The steps run in this order, so with PCA the Frobenius norm is that of the kept
   components.
2. start: the mean ``M`` is the matrix of model ``start`` (default the first).
3. iterate: rotate every matrix onto the current mean, ``Q_m = U V^T`` from the SVD ``X_m^T M = U S V^T``
   (orthogonal Procrustes: no scaling; reflections allowed unless ``allow_reflection=False``, which keeps
   ``det Q_m = +1``); the new mean is the plain average of the rotated matrices ``X_m Q_m``; stop when the
   mean moved less than ``tol`` (Frobenius norm of the change) or after ``max_iter`` iterations (with a
   :class:`GPAConvergenceWarning`).
4. per-stimulus dispersion ``D_i = mean_m || (X_m Q_m)_i - M_i ||^2`` with ``M`` the average of the
   returned rotated matrices.

The result is defined up to one global rotation (which model starts); the dispersion, the residual and
the mean's Gram matrix ``M M^T`` are not affected by it.

When ``D`` exceeds ``n`` the iteration runs in coordinates: every rotated matrix ``X Q = A P R^T`` (thin
SVD ``X = A B^T``, SVD ``A^T M = P S R^T``) has its rows in the row space of ``M``, so all means stay in
the n-dimensional row space of the starting matrix; with an orthonormal basis of it (one QR) each step
is an n x n SVD per model instead of a D x D one, and ``Q`` itself is completed on the orthogonal
complements once, on demand. It is the same rotation (the complement directions do not move ``X``).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import scipy.linalg

WIDTHS = ("pad",)


class GPAConvergenceWarning(RuntimeWarning):
    """GPA stopped at ``max_iter`` before the mean moved less than ``tol``."""


@dataclass(frozen=True)
class GPAResult:
    """The outcome of :func:`generalized_procrustes` (arrays in the order of the input models).

    Attributes
    ----------
    prepared : list of (n, D) arrays
        The matrices after centring, scaling and the common width: what was rotated.
    rotated : list of (n, D) arrays
        ``X_m Q_m`` from the last iteration.
    mean : (n, D) array
        The plain average of ``rotated``.
    dispersion : (n,) array
        Per stimulus, the mean over models of the squared distance of its rotated row to the mean row.
    distances : (n_models, n) array
        The squared distances themselves (``dispersion = distances.mean(axis=0)``).
    mean_change : (n_iter,) array
        Convergence trace: Frobenius norm of the change of the mean at each iteration.
    residual : (n_iter,) array
        Mean over models of ``||X_m Q_m - M||_F^2`` after each iteration (the GPA objective; it never rises).
    converged : bool
        Whether the last change was below ``tol``.
    width : int
        The common width D.
    rotations : list of (D, D) arrays (a property, computed on first use)
        Orthogonal ``Q_m`` with ``rotated[m] = prepared[m] @ Q_m``.
    """

    prepared: list
    rotated: list
    mean: np.ndarray
    dispersion: np.ndarray
    distances: np.ndarray
    mean_change: np.ndarray
    residual: np.ndarray
    converged: bool
    width: int
    _aligners: list = field(repr=False, compare=False)

    @cached_property
    def rotations(self) -> list[np.ndarray]:
        return [a.rotation() for a in self._aligners]

    @property
    def n_iter(self) -> int:
        return int(self.mean_change.size)


def _check_matrices(matrices, minimum: int = 1) -> list[np.ndarray]:
    if isinstance(matrices, np.ndarray) and matrices.ndim == 3:
        matrices = list(matrices)
    if not isinstance(matrices, Sequence) or isinstance(matrices, (str, bytes)):
        raise ValueError(f"matrices must be a sequence of (n_stimuli, d) arrays; got {type(matrices).__name__}")
    if len(matrices) < minimum:
        raise ValueError(f"generalised Procrustes needs at least {minimum} matrices; got {len(matrices)}")
    out = []
    for m, x in enumerate(matrices):
        arr = np.asarray(x, dtype=np.float64)
        if arr.ndim != 2 or arr.shape[0] < 2 or arr.shape[1] < 1:
            raise ValueError(f"matrix {m} must be 2-D with at least 2 stimuli and 1 feature; got shape {arr.shape}")
        if not np.isfinite(arr).all():
            raise ValueError(f"matrix {m} holds {int((~np.isfinite(arr)).sum())} NaN/Inf values; features must be finite")
        if out and arr.shape[0] != out[0].shape[0]:
            raise ValueError(f"all matrices must describe the same stimuli: matrix 0 has {out[0].shape[0]} rows, "
                             f"matrix {m} has {arr.shape[0]}")
        out.append(arr)
    return out


def _check_width(width) -> str | int:
    if isinstance(width, str):
        if width not in WIDTHS:
            raise ValueError(f"width={width!r} is not known; allowed: 'pad' or a positive integer (PCA to that many dims)")
        return width
    if isinstance(width, (bool, np.bool_)) or not isinstance(width, (int, np.integer)) or width < 1:
        raise ValueError(f"width={width!r} is not allowed; allowed: 'pad' or a positive integer (PCA to that many dims)")
    return int(width)


def prepare_matrices(matrices, *, centre: bool = True, scale: bool = True, width="pad") -> list[np.ndarray]:
    """The preparation of :func:`generalized_procrustes` (module docstring, step 1), on its own."""
    mats = _check_matrices(matrices)
    width = _check_width(width)
    out = []
    for m, x in enumerate(mats):
        if centre:
            x = x - x.mean(axis=0)
        norm = np.linalg.norm(x)
        if norm <= 1e-12 * max(1.0, float(np.abs(mats[m]).max())):
            raise ValueError(f"matrix {m} is {'constant across stimuli' if centre else 'zero'}: it carries no "
                             "information about the stimuli (and cannot be scaled to unit norm)")
        if scale:
            x = x / norm
        if width != "pad" and x.shape[1] > width:
            _, s, vt = np.linalg.svd(x, full_matrices=False)
            x = x @ vt[:width].T
        out.append(x)
    target = max(x.shape[1] for x in out) if width == "pad" else width
    return [np.pad(x, ((0, 0), (0, target - x.shape[1]))) if x.shape[1] < target else x for x in out]


class _Aligner:
    """Rotates one prepared matrix onto a target (orthogonal Procrustes).

    Direct (D <= n): ``Q = U V^T`` from the SVD of ``X^T M`` (D x D). Thin (D > n): every target lies in
    one fixed n-dimensional subspace with orthonormal basis ``basis`` (D x n) and is given by its
    coordinates ``T`` (n x n, ``M = T basis^T``); with ``X = A B^T`` (thin SVD, B orthonormal), ``X^T M =
    B (A^T T) basis^T``, so the SVD ``A^T T = P S W^T`` (r x n) gives ``X Q = A P W^T basis^T``: the rotated
    matrix in the same coordinates is ``A P W^T``.
    """

    def __init__(self, x: np.ndarray, allow_reflection: bool, basis: np.ndarray | None = None):
        self.x = x
        self.allow_reflection = allow_reflection
        self.basis = basis
        if basis is not None:
            u, s, vt = np.linalg.svd(x, full_matrices=False)
            r = int(np.sum(s > s[0] * 1e-12)) if s.size and s[0] > 0 else 0
            self.a = u[:, :r] * s[:r]  # x = a @ b.T with orthonormal b
            self.b = vt[:r].T
        self._last = None

    def rotate(self, target: np.ndarray) -> np.ndarray:
        """``X Q`` (direct) or its coordinates ``A P W^T`` (thin) for the target (coordinates, when thin)."""
        if self.basis is not None:
            p, _, wt = np.linalg.svd(self.a.T @ target, full_matrices=False)
            self._last = (p, wt)
            return (self.a @ p) @ wt
        u, _, vt = np.linalg.svd(self.x.T @ target)
        if not self.allow_reflection and np.linalg.det(u) * np.linalg.det(vt) < 0:
            u[:, -1] *= -1  # the direction of the smallest singular value
        q = u @ vt
        self._last = q
        return self.x @ q

    def rotation(self) -> np.ndarray:
        """The full (D, D) rotation of the last :meth:`rotate` call."""
        if self.basis is None:
            return self._last
        p, wt = self._last
        d = self.x.shape[1]
        left, right = self.b @ p, self.basis @ wt.T  # (D, r) each, orthonormal columns: X^T M = left S right^T
        n1 = scipy.linalg.null_space(left.T) if left.shape[1] < d else np.zeros((d, 0))
        n2 = scipy.linalg.null_space(right.T) if right.shape[1] < d else np.zeros((d, 0))
        q = left @ right.T + n1 @ n2.T
        if not self.allow_reflection and np.linalg.det(q) < 0 and n1.shape[1]:
            n1[:, 0] *= -1  # a direction X does not occupy: X Q is unchanged
            q = left @ right.T + n1 @ n2.T
        return q


def generalized_procrustes(
    matrices,
    *,
    tol: float = 1e-10,
    max_iter: int = 1000,
    centre: bool = True,
    scale: bool = True,
    width="pad",
    allow_reflection: bool = True,
    start: int = 0,
) -> GPAResult:
    """Generalised Procrustes analysis of feature matrices on the same stimuli, with per-stimulus dispersion.

    Parameters
    ----------
    matrices : sequence of (n, d_m) arrays
        One per model, rows = the same stimuli in the same order (join on stimulus ids first); at least 2.
    tol : float
        Stop when the mean moves less than this (Frobenius norm of the change; the prepared matrices have
        unit norm when ``scale``).
    max_iter : int
        At most this many iterations; reaching it without convergence warns (:class:`GPAConvergenceWarning`).
    centre, scale : bool
        Centre each matrix's columns; scale each to unit Frobenius norm.
    width : "pad" or int
        Common width: zero-pad to the largest d_m, or PCA to this many dimensions.
    allow_reflection : bool
        Whether rotations may be reflections (det -1); ``False`` restricts them to proper rotations.
    start : int
        Which matrix is the initial mean.

    Returns
    -------
    GPAResult
        See the module docstring for the definitions.
    """
    tol = float(tol)
    if not np.isfinite(tol) or tol <= 0:
        raise ValueError(f"tol={tol!r} is out of range; allowed: tol > 0")
    if isinstance(max_iter, (bool, np.bool_)) or not isinstance(max_iter, (int, np.integer)) or max_iter < 1:
        raise ValueError(f"max_iter={max_iter!r} is not allowed; allowed: an integer >= 1")
    prepared = prepare_matrices(_check_matrices(matrices, minimum=2), centre=centre, scale=scale, width=width)
    if isinstance(start, (bool, np.bool_)) or not isinstance(start, (int, np.integer)) or not 0 <= start < len(prepared):
        raise ValueError(f"start={start!r} is out of range; allowed: 0 <= start < {len(prepared)}")
    n, width_dims = prepared[0].shape
    basis = None
    mean = prepared[start].copy()
    if width_dims > n:
        # every rotated matrix and every mean lies in the n-dim row space of the first mean: work in its
        # coordinates (an orthonormal basis from one QR), map back at the end
        basis, coords = np.linalg.qr(mean.T)
        mean = coords.T
    aligners = [_Aligner(x, bool(allow_reflection), basis) for x in prepared]
    changes, residuals = [], []
    converged = False
    rotated = prepared
    for _ in range(int(max_iter)):
        rotated = [a.rotate(mean) for a in aligners]
        new = np.mean(rotated, axis=0)
        changes.append(float(np.linalg.norm(new - mean)))
        residuals.append(float(np.mean([np.sum((r - new) ** 2) for r in rotated])))
        mean = new
        if changes[-1] < tol:
            converged = True
            break
    if not converged:
        warnings.warn(f"generalised Procrustes did not converge in max_iter={max_iter} iterations: the mean still "
                      f"moved by {changes[-1]:.3g} (tol={tol:g}); raise max_iter or tol",
                      GPAConvergenceWarning, stacklevel=2)
    if basis is not None:
        rotated = [r @ basis.T for r in rotated]
        mean = np.mean(rotated, axis=0)
    distances = np.stack([np.sum((r - mean) ** 2, axis=1) for r in rotated])
    return GPAResult(
        prepared=prepared,
        rotated=rotated,
        mean=mean,
        dispersion=distances.mean(axis=0),
        distances=distances,
        mean_change=np.asarray(changes),
        residual=np.asarray(residuals),
        converged=converged,
        width=int(prepared[0].shape[1]),
        _aligners=aligners,
    )


def stimulus_dispersion(matrices, **options) -> np.ndarray:
    """Only the per-stimulus dispersion of :func:`generalized_procrustes` (same options)."""
    return generalized_procrustes(matrices, **options).dispersion


__all__ = ["GPAConvergenceWarning", "GPAResult", "generalized_procrustes", "prepare_matrices", "stimulus_dispersion"]
