"""The generic ONNX source on tiny graphs built here with onnx.helper (no weight packages needed)."""

from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from convergence.models import ModelLoadError, load_encoder  # noqa: E402
from convergence.models.onnx_source import OnnxEncoder, layer_map, pool, resolve_layout, sanitize_name  # noqa: E402

RNG = np.random.default_rng(0)
W = RNG.normal(size=(4, 3, 3, 3)).astype(np.float32)
B = RNG.normal(size=(4,)).astype(np.float32)
IDENTITY_PRE = {"size": 8, "crop_pct": 1.0, "mean": [0, 0, 0], "std": [1, 1, 1]}


def _conv_model(path, *, batch: int | str = "batch", nhwc_input: bool = False) -> None:
    """x -> Conv(3->4, 3x3, pad 1) -> /stem/Conv_output_0 -> Relu -> relu_out -> GlobalAveragePool -> gap_out
    -> Flatten -> feat; also relu_out transposed to NHWC (relu_nhwc)."""
    nodes = []
    x_shape = [batch, 8, 8, 3] if nhwc_input else [batch, 3, 8, 8]
    first = "x"
    if nhwc_input:
        nodes.append(helper.make_node("Transpose", ["x"], ["x_nchw"], perm=[0, 3, 1, 2]))
        first = "x_nchw"
    nodes += [
        helper.make_node("Conv", [first, "W", "B"], ["/stem/Conv_output_0"], pads=[1, 1, 1, 1], name="/stem/Conv"),
        helper.make_node("Relu", ["/stem/Conv_output_0"], ["relu_out"]),
        helper.make_node("Transpose", ["relu_out"], ["relu_nhwc"], perm=[0, 2, 3, 1]),
        helper.make_node("GlobalAveragePool", ["relu_out"], ["gap_out"]),
        helper.make_node("Flatten", ["gap_out"], ["feat"], axis=1),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, x_shape)],
        [helper.make_tensor_value_info("feat", TensorProto.FLOAT, [batch, 4])],
        initializer=[numpy_helper.from_array(W, "W"), numpy_helper.from_array(B, "B")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def _numpy_conv(x: np.ndarray) -> np.ndarray:
    """Reference 3x3 convolution with padding 1, NCHW."""
    xp = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    out = np.zeros((x.shape[0], 4, x.shape[2], x.shape[3]), dtype=np.float64)
    for i in range(3):
        for j in range(3):
            patch = xp[:, :, i : i + x.shape[2], j : j + x.shape[3]]
            out += np.einsum("bchw,oc->bohw", patch, W[:, :, i, j])
    return out + B[None, :, None, None]


@pytest.fixture(scope="module")
def images():
    return RNG.integers(0, 256, size=(5, 8, 8, 3), dtype=np.uint8)


@pytest.fixture()
def tiny_path(tmp_path):
    path = tmp_path / "tiny.onnx"
    _conv_model(path)
    return path


def test_sanitize_names():
    assert sanitize_name("/ReduceMean_output_0") == "ReduceMean_output_0"
    long = "/model/layer.0/output/LayerNorm/Add_output_0"
    assert sanitize_name(long) == "model_layer_0_output_LayerNorm_Add_output_0"
    assert sanitize_name("4195") == "t_4195"
    assert sanitize_name("onnx::Shape_422") == "onnx_Shape_422"
    for raw in ("/a/b", "x.y", "::", "0"):
        assert sanitize_name(raw).isidentifier()
    assert layer_map(["/a/b", {"c": "/c:0"}]) == {"a_b": "/a/b", "c": "/c:0"}


def test_intermediate_tensors_pooled_against_numpy(tiny_path, images):
    spec = {
        "source": "onnx", "path": str(tiny_path), "modality": "vision", "preprocessing": IDENTITY_PRE,
        "layers": ["/stem/Conv_output_0", "relu_nhwc", {"pooled": "gap_out"}, "feat", "relu_out"],
    }
    enc = load_encoder("tiny", spec, "cpu")
    # graph order (shallow to deep), sanitised names, original tensor names kept in provenance
    assert enc.layer_names == ["stem_Conv_output_0", "relu_out", "relu_nhwc", "pooled", "feat"]
    assert enc.provenance["tensors"]["stem_Conv_output_0"] == "/stem/Conv_output_0"
    assert enc.provenance["feature_layouts"]["relu_nhwc"] == "NHWC"
    assert enc.provenance["feature_layouts"]["relu_out"] == "NCHW"
    assert enc.provenance["source"] == "onnx" and len(enc.provenance["weights_sha256"]) == 64
    assert enc.depths == sorted(enc.depths) and enc.depths[-1] == 1.0

    feats = enc.encode(images)
    x = enc.preprocessing(images).numpy().astype(np.float64)
    np.testing.assert_allclose(x, images.transpose(0, 3, 1, 2) / 255.0, atol=1e-6)  # identity preprocessing
    conv = _numpy_conv(x)
    relu = np.maximum(conv, 0)
    expected = {
        "stem_Conv_output_0": conv.mean(axis=(2, 3)),
        "relu_out": relu.mean(axis=(2, 3)),
        "relu_nhwc": relu.mean(axis=(2, 3)),
        "pooled": relu.mean(axis=(2, 3)),
        "feat": relu.mean(axis=(2, 3)),
    }
    assert set(feats) == set(expected)
    for name, ref in expected.items():
        assert feats[name].shape == (5, 4) and feats[name].dtype == np.float32
        np.testing.assert_allclose(feats[name], ref, rtol=1e-4, atol=1e-5, err_msg=name)


def test_select_layers_by_stored_or_tensor_name(tiny_path, images):
    spec = {"source": "onnx", "path": str(tiny_path), "preprocessing": IDENTITY_PRE,
            "layers": ["/stem/Conv_output_0", "relu_out", "feat"]}
    enc = load_encoder("tiny", spec, "cpu")
    assert enc.layer_names == ["stem_Conv_output_0", "relu_out", "feat"]  # load_encoder's own selection is a no-op
    enc.select_layers(["/stem/Conv_output_0", "feat"])
    assert list(enc.encode(images)) == ["stem_Conv_output_0", "feat"]
    enc.select_layers("last")
    assert list(enc.encode(images)) == ["feat"]


def test_default_layers_are_graph_outputs(tiny_path, images):
    enc = load_encoder("tiny", {"source": "onnx", "path": str(tiny_path), "preprocessing": IDENTITY_PRE}, "cpu")
    assert enc.layer_names == ["feat"]
    assert enc.encode(images)["feat"].shape == (5, 4)


def test_nhwc_input_and_fixed_batch(tmp_path, tiny_path, images):
    ref = load_encoder("a", {"source": "onnx", "path": str(tiny_path), "preprocessing": IDENTITY_PRE,
                             "layers": ["relu_out"]}, "cpu").encode(images)["relu_out"]
    nhwc = tmp_path / "nhwc.onnx"
    _conv_model(nhwc, batch=1, nhwc_input=True)
    enc = load_encoder("b", {"source": "onnx", "path": str(nhwc), "layers": ["relu_out"],
                             "preprocessing": {**IDENTITY_PRE, "layout": "NHWC"}}, "cpu")
    out = enc.encode(images)["relu_out"]  # the graph takes one image at a time: run image by image
    np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-6)


def test_input_size_is_read_from_a_static_graph(tmp_path, tiny_path, images):
    """The tiny graph's input is 3x8x8: without `size` the images are cropped to 8 px (read from the graph)."""
    pre = {k: v for k, v in IDENTITY_PRE.items() if k != "size"}
    enc = load_encoder("a", {"source": "onnx", "path": str(tiny_path), "preprocessing": pre, "layers": ["relu_out"]},
                       "cpu")
    assert enc.preprocessing.size == 8 and enc.provenance["input_size_from"] == "graph"
    ref = load_encoder("b", {"source": "onnx", "path": str(tiny_path), "preprocessing": IDENTITY_PRE,
                             "layers": ["relu_out"]}, "cpu")
    assert ref.provenance["input_size_from"] == "config"
    np.testing.assert_allclose(enc.encode(images)["relu_out"], ref.encode(images)["relu_out"], rtol=1e-6)
    nhwc = tmp_path / "nhwc.onnx"
    _conv_model(nhwc, nhwc_input=True)
    assert load_encoder("c", {"source": "onnx", "path": str(nhwc), "preprocessing": {**pre, "layout": "NHWC"}},
                        "cpu").preprocessing.size == 8
    with pytest.raises(ModelLoadError, match="size is 16 but the graph's input is fixed at 8x8"):
        load_encoder("d", {"source": "onnx", "path": str(tiny_path), "preprocessing": {**pre, "size": 16}}, "cpu")


def test_input_size_of_dynamic_or_odd_graphs():
    from convergence.models.onnx_source import static_input_size

    def graph(shape):
        x = helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)
        y = helper.make_tensor_value_info("y", TensorProto.FLOAT, shape)
        return helper.make_model(helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g", [x], [y]))

    assert static_input_size(graph(["b", 3, "h", "w"])) is None
    assert static_input_size(graph([1, 3, 224, 224])) == 224
    assert static_input_size(graph([1, 256, 256, 3]), "NHWC") == 256
    with pytest.raises(ValueError, match="fixed at 224x160"):
        static_input_size(graph([1, 3, 224, 160]))
    with pytest.raises(ValueError, match="has 3 axes"):
        static_input_size(graph([1, 3, 224]))


def test_preprocessing_bgr_scale_mean():
    from convergence.models.onnx_source import preprocessing_from_spec

    pre, layout = preprocessing_from_spec(
        {"size": 4, "crop_pct": 1.0, "mean": [104, 117, 123], "std": [1, 1, 1], "channel_order": "BGR",
         "scale": 255.0, "layout": "NHWC"}
    )
    img = np.zeros((1, 4, 4, 3), dtype=np.uint8)
    img[..., 0] = 200  # red
    x = pre(img).numpy()
    assert layout == "NHWC"
    np.testing.assert_allclose(x[0, :, 0, 0], [0 - 104, 0 - 117, 200 - 123], atol=1e-3)  # B, G, R
    with pytest.raises(ValueError, match="unknown preprocessing keys"):
        preprocessing_from_spec({"sise": 3})


def test_errors(tiny_path, tmp_path):
    with pytest.raises(ModelLoadError, match="does not exist"):
        load_encoder("x", {"source": "onnx", "path": str(tmp_path / "nope.onnx")}, "cpu")
    with pytest.raises(ModelLoadError, match="relu_out"):  # a close match is suggested
        load_encoder("x", {"source": "onnx", "path": str(tiny_path), "layers": ["relu_ou"],
                           "preprocessing": IDENTITY_PRE}, "cpu")


def test_pool_and_layout_rules():
    x = np.arange(2 * 3 * 4 * 4, dtype=np.float32).reshape(2, 3, 4, 4)
    np.testing.assert_allclose(pool(x, layout="NCHW"), x.mean(axis=(2, 3)))
    np.testing.assert_allclose(pool(x.transpose(0, 2, 3, 1), layout="NHWC"), x.mean(axis=(2, 3)))
    assert resolve_layout((2, 64, 7, 7), "auto", "NHWC") == "NCHW"
    assert resolve_layout((2, 7, 7, 64), "auto", "NCHW") == "NHWC"
    assert resolve_layout((2, 7, 7, 7), "auto", "NHWC") == "NHWC"  # ambiguous: the input's layout
    seq = np.ones((2, 3, 5), dtype=np.float32)
    seq[0, 2] = 10.0
    mask = np.array([[1, 1, 0], [1, 1, 1]])
    np.testing.assert_allclose(pool(seq, mask=mask)[0], np.ones(5))  # the padded token is ignored
    np.testing.assert_allclose(pool(seq, token_pooling="first")[0], np.ones(5))
    assert pool(np.ones(3)).shape == (3, 1)
    with pytest.raises(ValueError):
        pool(np.ones((1, 2, 3, 4, 5)))


class _WordTokenizer:
    """A whitespace tokenizer with the call signature the encoder uses (numpy tensors, padding)."""

    vocab = {"[PAD]": 0, "a": 1, "dog": 2, "puppy": 3, "runs": 4, "probe": 5, "sentence": 6}

    def __call__(self, texts, return_tensors="np", padding=True, truncation=True, max_length=128):
        ids = [[self.vocab.get(w, 1) for w in t.split()][:max_length] for t in texts]
        width = max(len(i) for i in ids)
        input_ids = np.array([i + [0] * (width - len(i)) for i in ids], dtype=np.int64)
        mask = np.array([[1] * len(i) + [0] * (width - len(i)) for i in ids], dtype=np.int64)
        return {"input_ids": input_ids, "attention_mask": mask}


def test_text_graph_mean_pooled_over_mask(tmp_path):
    table = RNG.normal(size=(7, 6)).astype(np.float32)
    graph = helper.make_graph(
        [
            helper.make_node("Gather", ["table", "input_ids"], ["/emb/Gather_output_0"], axis=0),
            helper.make_node("Tanh", ["/emb/Gather_output_0"], ["hidden"]),
            helper.make_node("Cast", ["attention_mask"], ["mask_f"], to=TensorProto.FLOAT),
            helper.make_node("ReduceSum", ["mask_f"], ["n_tokens"], keepdims=0),
        ],
        "tiny_text",
        [helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["b", "t"]),
         helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["b", "t"])],
        [helper.make_tensor_value_info("n_tokens", TensorProto.FLOAT, [])],
        initializer=[numpy_helper.from_array(table, "table")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    enc = OnnxEncoder("text", model, {"hidden_00": "/emb/Gather_output_0", "hidden_01": "hidden"},
                      modality="language", tokenizer=_WordTokenizer(), includes_input=True)
    assert enc.depths == [0.0, 1.0]
    out = enc.encode(["a dog runs", "puppy"])
    np.testing.assert_allclose(out["hidden_00"][0], table[[1, 2, 4]].mean(axis=0), rtol=1e-5)
    np.testing.assert_allclose(out["hidden_00"][1], table[3], rtol=1e-5)  # padding excluded
    np.testing.assert_allclose(out["hidden_01"][1], np.tanh(table[3]), rtol=1e-5)
    with pytest.raises(ValueError):
        enc.encode([])


def test_uint8_image_input_is_rounded_not_truncated(tmp_path):
    """A graph that takes uint8 pixels (NHWC) gets the preprocessed values rounded to the nearest integer: a
    resize that leaves 254.99998 must feed 255, not 254."""
    x = helper.make_tensor_value_info("image", TensorProto.UINT8, ["batch", "h", "w", 3])
    y = helper.make_tensor_value_info("out", TensorProto.FLOAT, ["batch", "h", "w", 3])
    graph = helper.make_graph([helper.make_node("Cast", ["image"], ["out"], to=TensorProto.FLOAT)], "g", [x], [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    from convergence.models.base import ImagePreprocessing

    pre = ImagePreprocessing(size=8, crop_pct=1.0, mean=(0, 0, 0), std=(1, 1, 1), scale=255.0)
    enc = OnnxEncoder("u8", model, {"out": "out"}, preprocessing=pre, input_layout="NHWC", feature_layout="NHWC")
    img = RNG.integers(0, 256, size=(2, 8, 8, 3), dtype=np.uint8)
    np.testing.assert_array_equal(enc.encode(img)["out"], img.reshape(2, -1, 3).mean(axis=1, dtype=np.float64)
                                  .astype(np.float32))
    feeds, _ = enc._feeds(img)
    np.testing.assert_array_equal(feeds[0]["image"], img)  # the exact pixels, every one
