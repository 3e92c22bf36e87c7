"""What decides stored numbers: the extraction settings Snakemake sees, fixed thread counts, and the
analysis steps whose numbers must not depend on how many threads compute them."""
import numpy as np
import pytest
import torch
import xarray as xr

from convergence.reproducibility import extraction_device, extraction_settings


# ----------------------------------------------------------------------------- extraction settings


@pytest.fixture
def no_gpu(monkeypatch, tmp_path):
    import convergence.reproducibility as rep

    monkeypatch.setattr(rep, "NVIDIA_DRIVER", tmp_path / "absent")


def test_cpu_extraction_is_float32_with_the_configured_threads(no_gpu):
    for device in ("cpu", "auto"):
        for precision in ("float32", "bfloat16", "float16"):
            cfg = {"device": device, "precision": precision, "embed_threads": 3, "embed_gpus": 0}
            assert extraction_settings(cfg) == {"device": "cpu", "precision": "float32", "threads": 3}


def test_cuda_extraction_keeps_the_precision_and_no_thread_count(no_gpu):
    cfg = {"device": "cuda:1", "precision": "bfloat16", "embed_threads": 3, "embed_gpus": 0}
    assert extraction_settings(cfg) == {"device": "cuda:1", "precision": "bfloat16"}
    # auto: a GPU per job from the scheduler, or one this machine shows
    assert extraction_device({"device": "auto", "embed_gpus": 1}) == "cuda"


def test_auto_resolves_to_cuda_only_where_a_gpu_is_visible(monkeypatch, tmp_path):
    import convergence.reproducibility as rep

    driver = tmp_path / "version"
    driver.write_text("NVRM version: 1\n")
    monkeypatch.setattr(rep, "NVIDIA_DRIVER", driver)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    assert extraction_device({"device": "auto", "embed_gpus": 0}) == "cuda"
    for hidden in ("", "-1"):
        monkeypatch.setenv("CUDA_VISIBLE_DEVICES", hidden)
        assert extraction_device({"device": "auto", "embed_gpus": 0}) == "cpu"


# ------------------------------------------------------------------------------- fixed thread counts


def test_logged_fixes_torch_and_onnxruntime_threads_and_deterministic_algorithms():
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    from convergence.models.onnx_source import make_session
    from convergence.runtime import logged

    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "id",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    before = torch.get_num_threads()
    deterministic = torch.are_deterministic_algorithms_enabled()
    try:
        for threads in (1, 2):
            with logged(None, threads=threads):
                assert torch.get_num_threads() == threads
                assert torch.are_deterministic_algorithms_enabled()
                assert make_session(onnx.ModelProto.FromString(model.SerializeToString())).get_session_options(
                    ).intra_op_num_threads == threads
            assert torch.are_deterministic_algorithms_enabled() == deterministic  # restored on leaving
    finally:
        torch.set_num_threads(before)


def with_threads(n: int, fn):
    """``fn()`` with torch and every BLAS/OpenMP pool limited to ``n`` threads."""
    from threadpoolctl import threadpool_limits

    before = torch.get_num_threads()
    try:
        with threadpool_limits(limits=n):
            torch.set_num_threads(n)
            return fn()
    finally:
        torch.set_num_threads(before)


def stores(n=200, dim=96, models=3, layers=2, seed=0):
    rng = np.random.default_rng(seed)
    latent = rng.normal(size=(n, 16))
    ids = np.array([f"s{i:04d}" for i in range(n)], dtype=object)
    out = {}
    for m in range(models):
        names = [f"l{i}" for i in range(layers)]
        data = {layer: (("stimulus", f"feature_{layer}"),
                        (latent @ rng.normal(size=(16, dim)) + 0.3 * rng.normal(size=(n, dim))).astype(np.float32))
                for layer in names}
        out[f"m{m}"] = xr.Dataset(data, coords={"stimulus": ids}, attrs={
            "model": f"m{m}", "modality": "vision", "layers": names, "depths": [0.5, 1.0]})
    return out


def test_analysis_numbers_are_the_same_on_one_and_two_threads():
    """Kernel products, every-pair alignment with its null and interval, competence (k-NN and the
    logistic-regression probe) and the GPA dispersion: bit-identical under 1 and 2 threads, so the thread
    count Snakemake grants these jobs (capped by --cores) decides none of their numbers."""
    from convergence.analyses.competence import knn_accuracy, linear_probe_accuracy
    from convergence.dispersion import stimulus_dispersion
    from convergence.kernels import build_kernel
    from convergence.pairwise import pairwise

    emb = stores()
    labels = np.repeat(np.arange(4), 50).astype(str)

    def run():
        kernels = {m: build_kernel(e, k=10) for m, e in emb.items()}
        scores = {metric: pairwise(kernels, metric, params={"k": 10} if "knn" in metric else None,
                                   n_permutations=20, n_bootstrap=20, seed=3)
                  for metric in ("mutual_knn", "cka_linear", "cknna")}
        x = emb["m0"]["l1"].values
        probes = (knn_accuracy(x, labels, k=10), linear_probe_accuracy(x, labels, seed=0, n_splits=3))
        dispersion = stimulus_dispersion([e["l1"].values[:, :24] for e in emb.values()])
        return kernels, scores, probes, dispersion

    one, two = with_threads(1, run), with_threads(2, run)
    for m in emb:
        xr.testing.assert_identical(one[0][m], two[0][m])
    for metric in one[1]:
        xr.testing.assert_identical(one[1][metric], two[1][metric])
    assert one[2] == two[2]
    assert np.array_equal(one[3], two[3])


# ------------------------------------------------------------------------- two runs, store by store


def fake_run(root, embedding_shift=0.0, reverse_models=False):
    """A results/ folder as a run writes it: a stimulus store, two embedding stores, a kernel-free table."""
    import pandas as pd

    from convergence.store import write_store

    emb = stores(n=12, dim=4, models=2, layers=1)
    ids = emb["m0"]["stimulus"].values
    write_store(xr.Dataset({"label": ("stimulus", np.arange(12))}, coords={"stimulus": ids}),
                root / "results/stimuli/d.zarr")
    for name, ds in emb.items():
        if name == "m1":
            ds = ds.copy(deep=True)
            ds["l0"].values[3, 1] += embedding_shift
        write_store(ds, root / f"results/embeddings/d/{name}.zarr")
    models = ["m1", "m0"] if reverse_models else ["m0", "m1"]
    scores = xr.Dataset({"score": (("model_a",), np.array([0.5, 0.25]) if not reverse_models else
                                   np.array([0.25, 0.5]))}, coords={"model_a": np.array(models, dtype=object)})
    write_store(scores, root / "results/alignment/d/cka.zarr")
    table = pd.DataFrame({"model": models, "accuracy": [0.5, 0.75] if not reverse_models else [0.75, 0.5]})
    table.to_csv(root / "results/competence_d.csv", index=False)
    (root / "results/figures").mkdir(parents=True)
    return root


def test_compare_runs_names_the_first_store_that_differs_in_dag_order(tmp_path):
    from convergence.compare import compare_runs, results

    a = fake_run(tmp_path / "a")
    assert results(a)[:3] == ["results/stimuli/d.zarr", "results/embeddings/d/m0.zarr",
                              "results/embeddings/d/m1.zarr"]
    # the same numbers with the models listed in the other order: every result the same
    assert all(not diff for _, diff in compare_runs(a, fake_run(tmp_path / "b", reverse_models=True),
                                                    stop_at_first=False))
    rows = compare_runs(a, fake_run(tmp_path / "c", embedding_shift=2.0**-10))
    assert [rel for rel, _ in rows] == ["results/stimuli/d.zarr", "results/embeddings/d/m0.zarr",
                                        "results/embeddings/d/m1.zarr"]
    assert rows[-1][1] == pytest.approx({"l0": 2.0**-10}, rel=1e-3)
