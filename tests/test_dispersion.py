"""Claims of convergence.dispersion: GPA recovers planted rotations, finds planted disagreement exactly
where it was put, does not depend on model order, and reduces to ordinary Procrustes for two matrices."""
import numpy as np
import pytest
import scipy.linalg
from scipy.stats import special_ortho_group

from convergence.dispersion import GPAConvergenceWarning, generalized_procrustes, prepare_matrices


def _rotation(d, seed, proper=False):
    q = special_ortho_group.rvs(d, random_state=seed)
    if not proper and seed % 2:
        q[:, 0] *= -1  # a reflection
    return q


def _base(n=60, d=8, seed=0):
    return np.random.default_rng(seed).normal(size=(n, d))


@pytest.mark.parametrize("n, d", [(60, 8), (12, 30)])  # D <= n (direct SVD) and D > n (thin SVD)
def test_rotated_copies_have_zero_dispersion_and_recover_the_rotations(n, d):
    x = _base(n, d)
    rots = [np.eye(d)] + [_rotation(d, s) for s in (1, 2, 3)]
    res = generalized_procrustes([x @ r for r in rots], tol=1e-12)
    assert res.converged
    assert np.abs(res.dispersion).max() < 1e-20 and res.dispersion.shape == (n,)
    prepared = prepare_matrices([x])[0]
    for r, q, rotated in zip(rots, res.rotations, res.rotated):
        np.testing.assert_allclose(q @ q.T, np.eye(d), atol=1e-10)  # orthogonal
        np.testing.assert_allclose(rotated, res.mean, atol=1e-10)
        if n > d:  # full column rank: each rotation is unique, the inverse of the planted one (model 0 starts)
            np.testing.assert_allclose(q, r.T, atol=1e-8)
        else:
            np.testing.assert_allclose(prepared @ r @ q, prepared, atol=1e-10)
    np.testing.assert_allclose(res.mean, prepared, atol=1e-10)


def test_noise_planted_on_chosen_stimuli_is_found_exactly_there():
    rng = np.random.default_rng(5)
    n, d = 80, 10
    x = _base(n, d, seed=1)
    chosen = np.array([3, 17, 42, 66, 71])
    mats = []
    for m in range(5):
        y = x.copy()
        y[chosen] += rng.normal(scale=1.5, size=(chosen.size, d))
        mats.append(y @ _rotation(d, 10 + m))
    res = generalized_procrustes(mats)
    top = np.sort(np.argsort(res.dispersion)[-chosen.size:])
    np.testing.assert_array_equal(top, chosen)
    others = np.setdiff1d(np.arange(n), chosen)
    assert res.dispersion[others].max() < 0.2 * res.dispersion[chosen].min()
    np.testing.assert_allclose(res.distances.mean(axis=0), res.dispersion)


@pytest.mark.parametrize("n", [50, 7])  # D = 9 <= n (direct) and > n (coordinates in the start's row space)
def test_result_does_not_depend_on_model_order(n):
    rng = np.random.default_rng(2)
    x = _base(n, 6, seed=3)
    mats = [x @ _rotation(6, s) + rng.normal(scale=0.4, size=x.shape) for s in range(4)]
    mats.append(rng.normal(size=(n, 9)))  # a wider, unrelated model: padding in play
    a = generalized_procrustes(mats, tol=1e-12)
    order = [3, 0, 4, 2, 1]
    b = generalized_procrustes([mats[i] for i in order], tol=1e-12)
    np.testing.assert_allclose(a.dispersion, b.dispersion, rtol=1e-7, atol=1e-12)
    np.testing.assert_allclose(a.distances[order], b.distances, rtol=1e-7, atol=1e-12)
    np.testing.assert_allclose(a.mean @ a.mean.T, b.mean @ b.mean.T, atol=1e-10)  # same mean up to rotation
    c = generalized_procrustes(mats, tol=1e-12, start=4)
    np.testing.assert_allclose(a.dispersion, c.dispersion, rtol=1e-7, atol=1e-12)


def test_two_matrices_reduce_to_ordinary_orthogonal_procrustes():
    rng = np.random.default_rng(4)
    x0, x1 = rng.normal(size=(40, 5)), rng.normal(size=(40, 7))
    res = generalized_procrustes([x0, x1], tol=1e-13)
    # independent computation: the same preparation by hand, scipy's Procrustes of x1 onto x0
    p0 = x0 - x0.mean(0)
    p0 = np.pad(p0 / np.linalg.norm(p0), ((0, 0), (0, 2)))
    p1 = x1 - x1.mean(0)
    p1 /= np.linalg.norm(p1)
    r, _ = scipy.linalg.orthogonal_procrustes(p1, p0)
    diff = p1 @ r - p0
    np.testing.assert_allclose(res.dispersion, (diff**2).sum(axis=1) / 4, atol=1e-10)
    # the relative rotation acts on x1 as scipy's in the 5 dims x0 occupies; in its 2 zero-padded dims only
    # the norm of each row is determined (any rotation within them is as good)
    moved = p1 @ res.rotations[1] @ res.rotations[0].T
    np.testing.assert_allclose(moved[:, :5], (p1 @ r)[:, :5], atol=1e-8)
    np.testing.assert_allclose(np.linalg.norm(moved[:, 5:], axis=1), np.linalg.norm((p1 @ r)[:, 5:], axis=1), atol=1e-8)


def test_residual_never_rises_and_trace_ends_below_tol():
    rng = np.random.default_rng(7)
    mats = [rng.normal(size=(30, d)) for d in (4, 6, 8)]
    res = generalized_procrustes(mats, tol=1e-9)
    assert res.converged and res.mean_change[-1] < 1e-9 and res.n_iter == res.residual.size
    assert np.all(np.diff(res.residual) <= 1e-12)
    np.testing.assert_allclose(res.mean, np.mean(res.rotated, axis=0))
    np.testing.assert_allclose(res.dispersion.sum(), res.residual[-1], rtol=1e-10)


def test_max_iter_warns():
    rng = np.random.default_rng(8)
    mats = [rng.normal(size=(30, 5)) for _ in range(3)]
    with pytest.warns(GPAConvergenceWarning, match="max_iter=1"):
        res = generalized_procrustes(mats, max_iter=1, tol=1e-15)
    assert not res.converged and res.n_iter == 1


@pytest.mark.parametrize("n, d", [(40, 6), (10, 20)])
def test_no_reflection_keeps_proper_rotations(n, d):
    x = _base(n, d, seed=9)
    reflect = np.eye(d)
    reflect[0, 0] = -1
    res = generalized_procrustes([x, x @ reflect], allow_reflection=False)
    assert all(np.linalg.det(q) > 0 for q in res.rotations)
    free = generalized_procrustes([x, x @ reflect])
    assert free.dispersion.max() < 1e-20
    if n > d:  # a reflection cannot be undone by a rotation when X fills the space
        assert res.dispersion.sum() > 1e-3
    else:  # a spare dimension absorbs it
        assert res.dispersion.max() < 1e-20


def test_pca_width_and_preparation():
    rng = np.random.default_rng(10)
    x = rng.normal(size=(25, 12)) * np.arange(1, 13)
    p = prepare_matrices([x, x[:, :3]], width=5)
    assert [m.shape for m in p] == [(25, 5), (25, 5)]
    np.testing.assert_allclose(p[1][:, 3:], 0)
    np.testing.assert_allclose(p[0].mean(0), 0, atol=1e-12)
    # the kept components are the top-5 PCA scores: their Gram is the rank-5 truncation
    xc = (x - x.mean(0)) / np.linalg.norm(x - x.mean(0))
    u, s, _ = np.linalg.svd(xc, full_matrices=False)
    np.testing.assert_allclose(p[0] @ p[0].T, (u[:, :5] * s[:5] ** 2) @ u[:, :5].T, atol=1e-12)
    q = prepare_matrices([x, x[:, :3]], centre=False, scale=False)
    np.testing.assert_allclose(q[0], x)
    assert q[1].shape == (25, 12)


@pytest.mark.parametrize("matrices, options, match", [
    ([np.ones((5, 3))], {}, "at least 2 matrices"),
    ([np.ones((5, 3)), np.ones((6, 3))], {}, "same stimuli"),
    ([np.zeros((5, 3)) + [1, 2, 3], np.eye(5)], {}, "constant across stimuli"),
    ([np.array([[np.nan, 1], [0, 1]]), np.eye(2)], {}, "NaN"),
    ([np.ones(5), np.ones(5)], {}, "2-D"),
    ([np.eye(4), np.eye(4)], {"width": "pca"}, "width"),
    ([np.eye(4), np.eye(4)], {"width": 0}, "width"),
    ([np.eye(4), np.eye(4)], {"tol": 0}, "tol"),
    ([np.eye(4), np.eye(4)], {"max_iter": 0}, "max_iter"),
    ([np.eye(4), np.eye(4)], {"start": 2}, "start"),
    ("abc", {}, "sequence"),
])
def test_bad_input_is_refused(matrices, options, match):
    with pytest.raises(ValueError, match=match):
        generalized_procrustes(matrices, **options)
