"""Claims of convergence.metrics, each checked against an independent computation."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy.stats import ortho_group, pearsonr, spearmanr

from convergence import metrics as M


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def correlated(rng, n=60, d_x=12, d_y=9, noise=0.5):
    latent = rng.normal(size=(n, 5))
    x = latent @ rng.normal(size=(5, d_x)) + noise * rng.normal(size=(n, d_x))
    y = latent @ rng.normal(size=(5, d_y)) + noise * rng.normal(size=(n, d_y))
    return x, y


def unit_circle(degrees):
    rad = np.deg2rad(np.asarray(degrees, dtype=float))
    return np.stack([np.cos(rad), np.sin(rad)], axis=1)


# ------------------------------------------------------------------------------------------- HSIC / CKA


def test_cka_of_x_and_a_rotation_of_x_is_1(rng):
    x = rng.normal(size=(40, 8))
    q = ortho_group.rvs(8, random_state=1)
    for unbiased in (False, True):
        assert M.cka(x, x @ q, unbiased=unbiased) == pytest.approx(1.0, abs=1e-12)
        assert M.cka(x, 3.0 * x @ q + 2.0, unbiased=unbiased) == pytest.approx(1.0, abs=1e-12)
    assert M.cka(x, x @ q, kernel="rbf", sigma_factor=1.0) == pytest.approx(1.0, abs=1e-12)


def test_biased_hsic_is_the_trace_with_explicit_centring_matrices(rng):
    x, y = correlated(rng, n=15)
    k, l = x @ x.T, y @ y.T
    h = np.eye(15) - np.ones((15, 15)) / 15
    assert M.hsic(k, l) == pytest.approx(np.trace(k @ h @ l @ h) / 14**2, rel=1e-12)


def unbiased_hsic_by_u_statistic(k, l):
    """Song et al. (2012): the unbiased HSIC is the U-statistic over distinct 4-tuples of
    h = 1/4! sum over orderings (t, u, v, w) of k_tu l_tu + k_tu l_vw - 2 k_tu l_tv."""
    n = k.shape[0]
    total = 0.0
    for quad in itertools.permutations(range(n), 4):
        h = 0.0
        for t, u, v, w in itertools.permutations(quad):
            h += k[t, u] * l[t, u] + k[t, u] * l[v, w] - 2 * k[t, u] * l[t, v]
        total += h / 24
    return total / (n * (n - 1) * (n - 2) * (n - 3))


def test_unbiased_hsic_matches_its_u_statistic_definition(rng):
    x, y = correlated(rng, n=6, d_x=3, d_y=4)
    k, l = x @ x.T, np.exp(-M.squared_distances(y))
    assert M.hsic(k, l, unbiased=True) == pytest.approx(unbiased_hsic_by_u_statistic(k, l), rel=1e-10)


def test_hsic_from_centred_products_equals_song_estimator(rng):
    x, y = correlated(rng, n=20)
    kc, lc = M.centre_gram(x @ x.T), M.centre_gram(y @ y.T)
    dk, dl = np.diag(kc), np.diag(lc)
    for unbiased in (False, True):
        got = M.hsic_from_products(np.sum(kc * lc), dk @ dl, dk.sum(), dl.sum(), 20, unbiased)
        assert got == pytest.approx(M.hsic(x @ x.T, y @ y.T, unbiased=unbiased), rel=1e-10)


def test_linear_cka_from_grams_equals_the_feature_space_formula(rng):
    x, y = correlated(rng)
    xc, yc = x - x.mean(0), y - y.mean(0)
    direct = np.sum((yc.T @ xc) ** 2) / (np.linalg.norm(xc.T @ xc) * np.linalg.norm(yc.T @ yc))
    assert M.cka(x, y) == pytest.approx(direct, rel=1e-12)
    assert M.cka_linear_features(x, y) == pytest.approx(direct, rel=1e-12)
    assert M.cka_linear_features(x, y, unbiased=True) == pytest.approx(M.cka(x, y, unbiased=True), rel=1e-10)


def test_rbf_kernel_follows_its_formula_with_an_absolute_sigma():
    x = np.array([[0.0, 0.0], [3.0, 4.0], [1.0, 0.0]])
    k = M.rbf_kernel(x, sigma=2.0)
    assert k[0, 1] == pytest.approx(np.exp(-25 / 8))
    assert k[0, 2] == pytest.approx(np.exp(-1 / 8))
    assert np.allclose(np.diag(k), 1.0)


def test_median_rule_scales_with_the_data(rng):
    x = rng.normal(size=(30, 4))
    d = np.sqrt([np.sum((a - b) ** 2) for a, b in itertools.combinations(x, 2)])
    assert M.median_sigma(x, 0.5) == pytest.approx(0.5 * np.median(d))
    # with the median rule, RBF CKA ignores a global rescaling of one representation
    y = x @ rng.normal(size=(4, 4))
    assert M.cka(x, y, kernel="rbf", sigma_factor=1.0) == pytest.approx(
        M.cka(10 * x, y, kernel="rbf", sigma_factor=1.0), rel=1e-10)


def test_cka_of_independent_noise_is_small(rng):
    x, y = rng.normal(size=(500, 5)), rng.normal(size=(500, 5))
    assert abs(M.cka(x, y, unbiased=True)) < 0.02


# ------------------------------------------------------------------------------------------------- kNN


def test_neighbours_exclude_self_and_break_ties_to_the_lower_index():
    x = unit_circle([0, 0, 0, 90, 180])  # rows 0-2 coincide
    nbrs = M.knn_indices(x, 2)
    assert nbrs.tolist()[:3] == [[1, 2], [0, 2], [0, 1]]
    assert not np.any(nbrs == np.arange(5)[:, None])


def test_mutual_knn_of_a_model_with_itself_is_1(rng):
    x = M.l2_normalise(rng.normal(size=(50, 8)))
    assert M.mutual_knn(x, x, k=5) == 1.0
    assert M.jaccard_knn(x, x, k=5) == 1.0


def test_mutual_knn_of_independent_noise_is_near_chance(rng):
    n, k = 400, 10
    x, y = (M.l2_normalise(rng.normal(size=(n, 16))) for _ in range(2))
    assert 0.6 * k / (n - 1) < M.mutual_knn(x, y, k) < 1.6 * k / (n - 1)


def test_hand_computed_five_point_case():
    # A: angles 0, 10, 20, 90, 100 degrees; B: 0, 50, 20, 95, 120. With k = 2 (cosine neighbours):
    # N_A = {1,2} {0,2} {0,1} {2,4} {2,3};  N_B = {1,2} {2,3} {0,1} {1,4} {1,3}
    # overlaps 2, 1, 2, 1, 1 -> mutual = 7 / 10; Jaccard terms 1, 1/3, 1, 1/3, 1/3 -> 3 / 5
    a = unit_circle([0, 10, 20, 90, 100])
    b = unit_circle([0, 50, 20, 95, 120])
    assert [sorted(r) for r in M.knn_indices(a, 2).tolist()] == [[1, 2], [0, 2], [0, 1], [2, 4], [2, 3]]
    assert [sorted(r) for r in M.knn_indices(b, 2).tolist()] == [[1, 2], [2, 3], [0, 1], [1, 4], [1, 3]]
    assert M.mutual_knn(a, b, k=2) == pytest.approx(0.7)
    assert M.jaccard_knn(a, b, k=2) == pytest.approx(0.6)


def test_cycle_knn_follows_b_then_returns_through_a():
    # stimulus i succeeds iff some j in N_B(i) has i in N_A(j)
    na = np.array([[1, 2], [0, 2], [0, 1], [0, 1], [0, 1]])
    nb = np.array([[1, 3], [3, 4], [3, 4], [0, 1], [2, 3]])
    # i=0: j=1 has 0 in N_A(1) -> 1.  i=1: j=3 -> N_A(3)={0,1} -> 1.  i=2: j=3,4 -> {0,1} -> 0.
    # i=3: j=0 -> {1,2}, j=1 -> {0,2} -> 0.  i=4: j=2 -> {0,1}, j=3 -> {0,1} -> 0.
    assert M.knn_terms(na, nb, "cycle").tolist() == [1.0, 1.0, 0.0, 0.0, 0.0]


def test_cycle_knn_of_a_model_with_itself(rng):
    x = M.l2_normalise(rng.normal(size=(30, 4)))
    expected = M.reciprocal_neighbors(M.knn_indices(x, 3)).any(axis=1).mean()  # some neighbour lists i back
    assert M.cycle_knn(x, x, k=3) == pytest.approx(expected)
    assert M.cycle_knn(x, x, k=3) > 0.9


# ----------------------------------------------------------------------------------------------- CKNNA


def cknna_dense(x, y, k):
    """CKNNA from full n x n masks and the unbiased HSIC (the PRH definition written out densely)."""
    n = x.shape[0]

    def mask(z):
        s = z @ z.T
        np.fill_diagonal(s, -np.inf)
        m = np.zeros((n, n))
        np.put_along_axis(m, np.argsort(-s, axis=1, kind="stable")[:, :k], 1.0, axis=1)
        return m

    kx, ly = x @ x.T, y @ y.T
    mx, my = mask(x), mask(y)
    both = mx * my
    kl = M.hsic(kx * both, ly * both, unbiased=True)
    return kl / np.sqrt(M.hsic(kx * mx, kx * mx, unbiased=True) * M.hsic(ly * my, ly * my, unbiased=True))


def test_cknna_of_a_model_with_itself_is_1(rng):
    x = M.l2_normalise(rng.normal(size=(40, 6)))
    assert M.cknna(x, x, k=5) == pytest.approx(1.0, abs=1e-12)


def test_cknna_equals_the_dense_definition(rng):
    x, y = correlated(rng, n=50)
    x, y = M.l2_normalise(x), M.l2_normalise(y)
    for k in (2, 5, 12):
        assert M.cknna(x, y, k) == pytest.approx(cknna_dense(x, y, k), rel=1e-10)


def test_weighted_cknna_hsic_equals_the_dense_resample(rng):
    x, y = correlated(rng, n=30)
    x, y = M.l2_normalise(x), M.l2_normalise(y)
    k, n = 4, 30
    na, nb = M.knn_indices(x, k), M.knn_indices(y, k)
    va, vb = np.einsum("id,ipd->ip", x, x[na]), np.einsum("id,ipd->ip", y, y[nb])
    ra, rb = M.reciprocal_neighbors(na), M.reciprocal_neighbors(nb)
    idx = rng.integers(0, n, n)
    m = np.bincount(idx, minlength=n).astype(float)
    mask = np.zeros((n, n))
    for i in range(n):
        mask[i, np.intersect1d(na[i], nb[i])] = 1.0
    kb = (x @ x.T * mask)[np.ix_(idx, idx)]
    lb = (y @ y.T * mask)[np.ix_(idx, idx)]
    expected = M.hsic(kb, lb, unbiased=True)
    assert M.cknna_hsic(na, va, ra, nb, vb, rb, weights=m) == pytest.approx(expected, rel=1e-10)


# ------------------------------------------------------------------------------ SVCCA, Procrustes, RSA


def test_procrustes_distance_of_x_and_a_rotation_of_x_is_0(rng):
    x = rng.normal(size=(50, 6))
    q = ortho_group.rvs(6, random_state=2)
    assert M.procrustes_distance(x, 2.0 * x @ q + 1.0) == pytest.approx(0.0, abs=1e-6)
    padded = np.hstack([x @ q, np.zeros((50, 3))])  # different widths: zero padding changes nothing
    assert M.procrustes_distance(x, padded) == pytest.approx(0.0, abs=1e-6)


def test_procrustes_distance_matches_the_orthogonal_procrustes_solution(rng):
    from scipy.linalg import orthogonal_procrustes

    x, y = correlated(rng, d_x=7, d_y=7)
    xc, yc = x - x.mean(0), y - y.mean(0)
    xc, yc = xc / np.linalg.norm(xc), yc / np.linalg.norm(yc)
    q, _ = orthogonal_procrustes(yc, xc)
    residual = np.linalg.norm(xc - yc @ q) ** 2  # = 2 - 2 cos(theta)
    assert M.procrustes_distance(x, y) == pytest.approx(np.arccos(1 - residual / 2), rel=1e-8)


def test_svcca_of_x_and_an_invertible_map_of_x_is_1(rng):
    x = rng.normal(size=(200, 5))
    a = rng.normal(size=(5, 5)) + 3 * np.eye(5)
    assert M.svcca(x, x @ a) == pytest.approx(1.0, abs=1e-6)


def test_svcca_keeps_the_components_explaining_the_variance(rng):
    x = rng.normal(size=(100, 4)) * np.array([10.0, 5.0, 1.0, 0.01])
    s = np.linalg.svd(x - x.mean(0), compute_uv=False)
    r = int(np.argmax(np.cumsum(s**2) / np.sum(s**2) >= 0.99) + 1)
    assert M.svcca_basis(x, 0.99).shape[1] == r


def test_svcca_equals_mean_canonical_correlation_on_reduced_data(rng):
    x, y = correlated(rng, n=300, d_x=4, d_y=3, noise=1.0)
    # with variance=1 nothing is dropped: the mean of the canonical correlations of x and y
    from sklearn.cross_decomposition import CCA

    u, v = CCA(n_components=3, max_iter=5000, tol=1e-12).fit_transform(x, y)
    expected = np.mean([np.corrcoef(u[:, i], v[:, i])[0, 1] for i in range(3)])
    assert M.svcca(x, y, variance=1.0) == pytest.approx(expected, abs=1e-4)


def test_rsa_of_x_with_itself_is_1(rng):
    x = rng.normal(size=(30, 6))
    for distance in ("correlation", "euclidean"):
        for compare in ("spearman", "pearson"):
            assert M.rsa(x, x, distance=distance, compare=compare) == pytest.approx(1.0, abs=1e-12)


def test_rsa_correlates_the_upper_triangles(rng):
    x, y = correlated(rng, n=25)
    iu = np.triu_indices(25, 1)
    dx = np.array([[1 - np.corrcoef(a, b)[0, 1] for b in x] for a in x])[iu]
    dy = np.array([[np.linalg.norm(a - b) for b in y] for a in y])[iu]
    ex = np.array([[np.linalg.norm(a - b) for b in x] for a in x])[iu]
    assert M.rsa(x, y, distance="correlation", compare="spearman") == pytest.approx(
        spearmanr(dx, np.array([[1 - np.corrcoef(a, b)[0, 1] for b in y] for a in y])[iu])[0], rel=1e-10)
    assert M.rsa(x, y, distance="euclidean", compare="pearson") == pytest.approx(pearsonr(ex, dy)[0], rel=1e-10)


# ------------------------------------------------------------------------------------------ preprocess


def test_prh_clamp_is_one_scalar_per_model_from_per_stimulus_quantiles(rng):
    layers = {"block_00": rng.normal(size=(20, 5)), "block_01": 3 * rng.standard_t(2, size=(20, 7))}
    stacked = np.abs(np.hstack(list(layers.values())))
    expected = np.mean([np.quantile(row, 0.95) for row in stacked])
    assert M.outlier_clip_value(layers) == pytest.approx(expected)
    out = M.prh_preprocess(layers)
    assert list(out) == ["block_00", "block_01"]
    for name, value in out.items():
        assert np.allclose(np.linalg.norm(value, axis=1), 1.0)
        clipped = np.clip(layers[name], -expected, expected)
        assert np.allclose(value, clipped / np.linalg.norm(clipped, axis=1, keepdims=True))


def test_preprocess_modes(rng):
    layers = [rng.normal(size=(10, 3)), rng.normal(size=(10, 4))]
    raw, clip = M.preprocess_layers(layers, "none")
    assert clip is None and np.array_equal(raw[1], layers[1])
    l2, _ = M.preprocess_layers(layers, "l2")
    assert np.allclose(l2[0], layers[0] / np.linalg.norm(layers[0], axis=1, keepdims=True))


# ----------------------------------------------------------------------------------------- bad inputs


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda x, y: M.mutual_knn(x, y, k=30), "k=30"),
        (lambda x, y: M.mutual_knn(x, y, k=0), "k=0"),
        (lambda x, y: M.mutual_knn(x, y, k=2.5), "integer"),
        (lambda x, y: M.cycle_knn(x, y[:20], k=3), "same stimuli"),
        (lambda x, y: M.jaccard_knn(x[:, 0], y, k=3), "2-D"),
        (lambda x, y: M.cka(x, y, kernel="poly"), "kernel='poly'"),
        (lambda x, y: M.cka(x, y, kernel="rbf"), "exactly one"),
        (lambda x, y: M.cka(x, y, kernel="rbf", sigma=1.0, sigma_factor=1.0), "exactly one"),
        (lambda x, y: M.cka(x, y, kernel="rbf", sigma=-1.0), "sigma"),
        (lambda x, y: M.cka(x, y, sigma=1.0), "apply to kernel=.rbf. only"),
        (lambda x, y: M.cka(x[:3], y[:3], unbiased=True), "n >= 4"),
        (lambda x, y: M.cka(np.ones_like(x), y), "constant"),
        (lambda x, y: M.hsic(x, x), "square"),
        (lambda x, y: M.cknna(x, y, k=1), "k=1"),
        (lambda x, y: M.svcca(x, y, variance=1.5), "variance"),
        (lambda x, y: M.procrustes_distance(np.zeros_like(x), y), "constant"),
        (lambda x, y: M.rsa(x, y, distance="cosine"), "distance='cosine'"),
        (lambda x, y: M.rsa(x, y, compare="kendall"), "compare='kendall'"),
        (lambda x, y: M.rsa(x[:, :1], y), "2 features"),
        (lambda x, y: M.l2_normalise(np.vstack([x[:-1], np.zeros(x.shape[1])])), "zero norm"),
        (lambda x, y: M.preprocess_layers([x, y], "zscore"), "preprocess='zscore'"),
        (lambda x, y: M.preprocess_layers([x, y[:10]], "prh"), "same stimuli"),
        (lambda x, y: M.preprocess_layers([], "prh"), "empty"),
        (lambda x, y: M.outlier_clip_value([x], q=0.0), "q="),
    ],
)
def test_bad_input_raises_a_clear_value_error(rng, call, message):
    x, y = correlated(rng, n=30)
    with pytest.raises(ValueError, match=message):
        call(x, y)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_features_are_refused(rng, bad):
    x, y = correlated(rng, n=20)
    x[3, 2] = bad
    for fn in (M.mutual_knn, M.cka, M.cknna, M.svcca, M.procrustes_distance, M.rsa):
        with pytest.raises(ValueError, match="NaN/Inf"):
            fn(x, y)


def test_sqeuclidean_rdm_is_rsatoolbox_euclidean_and_keeps_spearman_rsa():
    """rsatoolbox's 'euclidean' RDM is the squared distance divided by the number of channels."""
    rng = np.random.default_rng(7)
    x, y = rng.normal(size=(12, 5)), rng.normal(size=(12, 3))
    diff = x[:, None, :] - x[None, :, :]
    assert np.allclose(M.rdm(x, "sqeuclidean"), (diff**2).sum(axis=2) / 5)
    assert np.allclose(M.rdm(x, "sqeuclidean"), M.rdm(x, "euclidean") ** 2 / 5)
    spearman = [M.rsa(x, y, distance=d) for d in ("euclidean", "sqeuclidean")]
    assert spearman[0] == pytest.approx(spearman[1], abs=1e-12)
    pearson = [M.rsa(x, y, distance=d, compare="pearson") for d in ("euclidean", "sqeuclidean")]
    assert abs(pearson[0] - pearson[1]) > 1e-3


def _cuda_available() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


NO_CUDA = pytest.mark.skipif(not _cuda_available(), reason="no CUDA device")
TORCH_DEVICES = ["cpu", pytest.param("cuda", marks=NO_CUDA)]


@pytest.mark.parametrize(("backend", "tile", "device"),
                         [("faiss", None, "cpu"), ("numpy", 2048, "cpu"), ("numpy", 64, "cpu"), ("numpy", 20, "cpu")]
                         + [("torch", tile, "cpu") for tile in (None, 64, 20)]
                         + [pytest.param("torch", tile, "cuda", marks=NO_CUDA) for tile in (None, 64, 20)])
def test_large_n_neighbours_equal_the_exact_path_ties_included(backend, tile, device):
    """Above exact_max_n the float32 candidate search + float64 re-ranking gives the exact path's neighbours,
    also with duplicated stimuli (exact ties) and a grid of points (many equal inner products); with one
    tile, many tiles, and tiles narrower than the k + 17 candidates; for every backend (torch on the CPU,
    and on CUDA when present)."""
    from convergence.metrics.knn import knn_indices

    if backend == "faiss":
        pytest.importorskip("faiss")
    if backend == "torch":
        pytest.importorskip("torch")
    rng = np.random.default_rng(5)
    x = rng.normal(size=(600, 48))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    x[10] = x[20]
    x[30] = x[31] = x[32]
    grid = np.array([[i, j] for i in range(12) for j in range(12)], dtype=float)  # lattice: tied distances
    for feats, k in ((x, 10), (x, 1), (grid, 6), (np.repeat(x[:50], 3, axis=0), 4)):
        exact = knn_indices(feats, k)
        fast = knn_indices(feats, k, exact_max_n=16, backend=backend, tile=tile, device=device)
        assert np.array_equal(exact, fast)


@pytest.mark.parametrize("device", TORCH_DEVICES)
@pytest.mark.parametrize("tile", [500, 97, 30, 7])
def test_torch_tiles_keep_each_rows_m_best(tile, device):
    """The torch tile search returns, for every row, exactly the m largest inner products (self included) of
    a brute-force float64 matrix (random data: gaps far above float32 round-off), with their values."""
    pytest.importorskip("torch")
    from convergence.metrics.search import torch_tile_candidates

    rng = np.random.default_rng(11)
    x = rng.normal(size=(500, 16)).astype(np.float32)
    m = 27
    values, cand = torch_tile_candidates(x, m, tile, device)
    full = x.astype(np.float64) @ x.astype(np.float64).T
    truth = np.argsort(-full, axis=1)[:, :m]
    assert all(set(a) == set(b) for a, b in zip(cand, truth))
    assert np.allclose(values, np.take_along_axis(full, cand, axis=1), atol=1e-4)
    assert values.shape == (500, m) and cand.dtype == np.int64


def test_torch_backend_refuses_a_missing_cuda_device():
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present")
    from convergence.metrics.knn import knn_indices

    x = np.random.default_rng(0).normal(size=(60, 4))
    with pytest.raises(RuntimeError, match="no CUDA device"):
        knn_indices(x, 3, exact_max_n=16, backend="torch", device="cuda")


@pytest.mark.parametrize("tile", [500, 97, 30, 7])
def test_symmetric_tiles_keep_each_rows_m_best_and_nothing_better_left_out(tile):
    """The tile search returns, for every row, exactly the m largest inner products (self included) of a
    brute-force float64 matrix (random data: gaps far above float32 round-off), and the values it reports."""
    from convergence.metrics.knn import _symmetric_tile_candidates

    rng = np.random.default_rng(11)
    x = rng.normal(size=(500, 16)).astype(np.float32)
    m = 27
    values, cand = _symmetric_tile_candidates(x, m, tile)
    full = x.astype(np.float64) @ x.astype(np.float64).T
    truth = np.argsort(-full, axis=1)[:, :m]
    assert all(set(a) == set(b) for a, b in zip(cand, truth))
    assert np.allclose(values, np.take_along_axis(full, cand, axis=1), atol=1e-4)
    assert values.shape == (500, m) and cand.dtype == np.int64


@pytest.mark.parametrize("chunk", [16384, 37, 5])
def test_exact_rows_in_column_chunks_equal_the_exact_path_ties_included(chunk):
    """The recall's reference lists (float64 over column chunks, float32 input) are knn_indices' own."""
    from convergence.metrics.knn import knn_indices
    from convergence.metrics.search import exact_rows

    rng = np.random.default_rng(2)
    x = rng.normal(size=(300, 12)).astype(np.float32)
    x[5] = x[6] = x[200]  # exact ties
    grid = np.array([[i, j] for i in range(10) for j in range(10)], dtype=np.float32)
    for feats, k in ((x, 7), (grid, 5)):
        rows = np.array([0, 5, 6, 17, 99, feats.shape[0] - 1])
        assert np.array_equal(exact_rows(feats, rows, k, chunk=chunk), knn_indices(feats.astype(np.float64), k)[rows])


def test_recall_at_k_counts_shared_neighbours():
    from convergence.metrics.search import recall_at_k

    exact = np.array([[1, 2, 3], [0, 2, 3]])
    assert recall_at_k(np.array([[3, 2, 1], [0, 4, 5]]), exact) == pytest.approx(4 / 6)
    with pytest.raises(ValueError, match="equal shape"):
        recall_at_k(exact[:, :2], exact)
