"""Extraction: every layer stored with the right shapes, order and provenance; deterministic; honest errors."""
import numpy as np
import pytest
import torch

from convergence.embed import ExtractionError, extract
from convergence.models import ImagePreprocessing, ModelLoadError, load_encoder, relative_depths
from convergence.models.hf_source import mean_pool


def test_cnn_stages_are_average_pooled(tiny_specs, emoji_stimuli):
    enc = load_encoder("cnn", tiny_specs["cnn"], "cpu")
    assert enc.layer_names == ["act1", "layer1", "layer2", "layer3", "layer4"]
    ds = extract(enc, emoji_stimuli, batch_size=10, progress=False)
    assert ds.attrs["layers"] == enc.layer_names
    assert ds.attrs["depths"] == pytest.approx([0.2, 0.4, 0.6, 0.8, 1.0])
    assert ds["layer4"].dims == ("stimulus", "feature_layer4") and ds["layer4"].shape == (24, 512)
    assert ds["stimulus"].values.tolist() == emoji_stimuli["stimulus"].values.tolist()
    assert ds.attrs["provenance"]["weights"] == "random-init" and ds.attrs["provenance"]["source"] == "timm"
    # stage outputs follow ReLUs, so their global average pool is non-negative
    assert (ds["layer2"].values >= 0).all()


def test_extraction_is_deterministic_and_batch_independent(tiny_specs, emoji_stimuli):
    a = extract(load_encoder("vit", tiny_specs["vit"], "cpu"), emoji_stimuli, batch_size=24, progress=False)
    b = extract(load_encoder("vit", tiny_specs["vit"], "cpu"), emoji_stimuli, batch_size=5, progress=False)
    for layer in a.attrs["layers"]:
        np.testing.assert_allclose(a[layer].values, b[layer].values, rtol=1e-4, atol=1e-5)


def test_vit_blocks_cls_and_mean_pooling(tiny_specs, emoji_stimuli):
    spec = dict(tiny_specs["vit"])
    enc = load_encoder("vit", spec, "cpu")
    assert enc.layer_names == [f"block_{i:02d}" for i in range(12)] and enc.pooling == "cls"
    x = enc.preprocessing(emoji_stimuli["image"].values[:3])
    _, inter = enc.model.forward_intermediates(x, indices=[11], return_prefix_tokens=True, output_fmt="NLC", norm=False)
    patches, prefix = inter[0]
    out = enc.encode(emoji_stimuli["image"].values[:3])
    np.testing.assert_allclose(out["block_11"], prefix[:, 0].detach().numpy(), rtol=1e-5, atol=1e-6)
    enc_mean = load_encoder("vit", {**spec, "pooling": "mean", "layers": ["block_11"]}, "cpu")
    out_mean = enc_mean.encode(emoji_stimuli["image"].values[:3])
    assert list(out_mean) == ["block_11"]
    np.testing.assert_allclose(out_mean["block_11"], patches.mean(1).detach().numpy(), rtol=1e-5, atol=1e-6)


def test_layer_selection(tiny_specs):
    enc = load_encoder("cnn", {**tiny_specs["cnn"], "layers": ["layer2", -1]}, "cpu")
    assert enc.layer_names == ["layer2", "layer4"] and enc.depths == pytest.approx([0.6, 1.0])
    assert load_encoder("cnn", {**tiny_specs["cnn"], "layers": "last"}, "cpu").layer_names == ["layer4"]
    with pytest.raises(ValueError, match="has no layer 'layer9'"):
        load_encoder("cnn", {**tiny_specs["cnn"], "layers": ["layer9"]}, "cpu")


def test_text_features_ignore_padding(tiny_specs):
    enc = load_encoder("bert", tiny_specs["bert"], "cpu")
    assert enc.layer_names == ["hidden_00", "hidden_01", "hidden_02"]
    assert enc.depths == [0.0, 0.5, 1.0]
    alone = enc.encode(["dog face"])
    padded = enc.encode(["dog face", "a much longer caption that forces padding of the first one"])
    for layer in enc.layer_names:
        np.testing.assert_allclose(alone[layer][0], padded[layer][0], rtol=1e-4, atol=1e-5)


def test_mean_pool_uses_mask_only():
    h = torch.arange(12, dtype=torch.float32).view(1, 4, 3)
    m = torch.tensor([[1, 1, 0, 0]])
    np.testing.assert_allclose(mean_pool(h, m).numpy(), [[1.5, 2.5, 3.5]])


def test_causal_lm_records_bits_per_byte(tiny_specs, emoji_stimuli):
    enc = load_encoder("gpt", tiny_specs["gpt"], "cpu")
    ds = extract(enc, emoji_stimuli, batch_size=8, progress=False)
    bpb = ds["bits_per_byte"].values
    assert bpb.shape == (24,) and np.isfinite(bpb).all() and (bpb > 0).all()
    # an untrained byte-level LM is near-uniform over its 384-token vocabulary: about log2(384) bits a byte
    assert np.median(bpb) == pytest.approx(np.log2(384), rel=0.25)
    np.testing.assert_allclose(enc.bits_per_byte(["dog face"]), enc.bits_per_byte(["dog face", "x y z w v"])[:1], rtol=1e-4)


def test_language_model_needs_captions(tiny_specs, digits_stimuli):
    enc = load_encoder("bert", tiny_specs["bert"], "cpu")
    with pytest.raises(ExtractionError, match="no captions"):
        extract(enc, digits_stimuli, progress=False)


def test_non_finite_features_are_an_error(tiny_specs, emoji_stimuli):
    enc = load_encoder("cnn", {**tiny_specs["cnn"], "layers": "last"}, "cpu")
    real = enc.encode

    def broken(batch):
        out = real(batch)
        out["layer4"][0, 0] = np.nan
        return out

    enc.encode = broken
    with pytest.raises(ExtractionError, match="non-finite"):
        extract(enc, emoji_stimuli, progress=False)


def test_unknown_timm_architecture_and_missing_weights():
    with pytest.raises(ModelLoadError, match="no architecture"):
        load_encoder("x", {"source": "timm", "name": "resnet5000", "modality": "vision"}, "cpu")
    with pytest.raises(ModelLoadError, match="does not exist"):
        load_encoder("x", {"source": "timm", "name": "resnet18", "weights": "/no/file.safetensors", "modality": "vision"}, "cpu")


def test_hub_failure_says_what_to_do(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelLoadError, match="pretrained: false"):
        load_encoder("x", {"source": "timm", "name": "resnet18", "pretrained": True, "modality": "vision"}, "cpu")


def test_local_weights_file_is_loaded_and_hashed(tmp_path, emoji_stimuli):
    import timm
    from safetensors.torch import save_file

    torch.manual_seed(7)
    ref = timm.create_model("resnet18", pretrained=False, num_classes=0)
    save_file(ref.state_dict(), tmp_path / "w.safetensors")
    enc = load_encoder("r", {"source": "timm", "name": "resnet18", "weights": str(tmp_path / "w.safetensors"), "modality": "vision", "layers": "last"}, "cpu")
    assert len(enc.provenance["weights_sha256"]) == 64
    x = enc.preprocessing(emoji_stimuli["image"].values[:2])
    with torch.inference_mode():
        expected = ref.eval()(x).numpy()
    np.testing.assert_allclose(enc.encode(emoji_stimuli["image"].values[:2])["layer4"], expected, rtol=1e-4, atol=1e-5)


def test_preprocessing_resizes_crops_and_normalises():
    pre = ImagePreprocessing(size=4, crop_pct=1.0, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
    img = np.full((2, 8, 12, 3), 255, np.uint8)
    x = pre(img)
    assert x.shape == (2, 3, 4, 4)
    np.testing.assert_allclose(x.numpy(), 1.0, atol=1e-5)
    with pytest.raises(ValueError, match="uint8"):
        pre(img.astype(np.float32))


def test_relative_depths():
    assert relative_depths(4) == [0.25, 0.5, 0.75, 1.0]
    assert relative_depths(3, includes_input=True) == [0.0, 0.5, 1.0]


def test_cnn_with_head_conv_exposes_pre_logits():
    """EfficientNets widen their last stage (320 -> 1280 channels); the pooled classifier input is a layer."""
    import timm

    enc = load_encoder("e", {"source": "timm", "name": "tf_efficientnet_lite0", "pretrained": False, "modality": "vision", "input_size": 64}, "cpu")
    assert enc.layer_names[-1] == "pre_logits" and enc.depths[-1] == 1.0
    x = np.random.default_rng(0).integers(0, 255, (2, 64, 64, 3), dtype=np.uint8)
    out = enc.encode(x)
    assert out["pre_logits"].shape == (2, 1280) and out["blocks_6"].shape == (2, 320)
    with torch.inference_mode():
        expected = enc.model(enc.preprocessing(x)).numpy()  # num_classes=0: the model returns pre-logits
    np.testing.assert_allclose(out["pre_logits"], expected, rtol=1e-5, atol=1e-6)
    # a ResNet's last stage already is the pooled feature: no duplicate layer
    assert "pre_logits" not in load_encoder("r", {"source": "timm", "name": "resnet18", "pretrained": False, "modality": "vision"}, "cpu").layer_names


def test_bits_per_byte_of_truncated_captions_counts_kept_bytes(tiny_specs):
    """A caption cut at max_length is scored on the bytes the model saw, not on the whole text."""
    short = load_encoder("gpt", {**tiny_specs["gpt"], "max_length": 8}, "cpu")
    text = "a long caption about a dog face that goes on and on"
    b_trunc = short.bits_per_byte([text])[0]
    b_prefix = short.bits_per_byte([text[:7]])[0]  # byte tokenizer: 7 bytes + EOS = 8 tokens, nothing cut
    assert b_trunc == pytest.approx(b_prefix, rel=1e-4)


# -- token pooling of text models (mean, last) ---------------------------------------------------------------
def test_last_pool_picks_the_last_unpadded_token():
    from convergence.models.hf_source import last_pool

    h = torch.arange(24, dtype=torch.float32).view(2, 4, 3)
    right = torch.tensor([[1, 1, 0, 0], [1, 1, 1, 1]])
    np.testing.assert_allclose(last_pool(h, right).numpy(), [[3, 4, 5], [21, 22, 23]])
    left = torch.tensor([[0, 0, 1, 1], [0, 1, 1, 1]])  # left padding: still the last real token
    np.testing.assert_allclose(last_pool(h, left).numpy(), [[9, 10, 11], [21, 22, 23]])
    with pytest.raises(ValueError, match="no token"):
        last_pool(h, torch.zeros((2, 4), dtype=torch.long))


def test_causal_lm_last_token_pooling(tiny_specs):
    """pooling: last stores the hidden state at each caption's last token, independent of padding; mean is
    the masked mean (the default, also for `auto`)."""
    texts = ["a dog", "two cats on a mat"]
    mean_enc = load_encoder("gpt", tiny_specs["gpt"], "cpu")
    last_enc = load_encoder("gpt", {**tiny_specs["gpt"], "pooling": "last"}, "cpu")
    assert mean_enc.pooling == "mean" and last_enc.pooling == "last"
    assert last_enc.provenance["pooling"] == "last non-padding token"
    batch = last_enc.encode(texts)
    alone = last_enc.encode(texts[:1])  # no padding for the short text when alone
    enc = last_enc._tokens(texts)
    hidden = last_enc.model(**enc, output_hidden_states=True).hidden_states
    n_short = int(enc["attention_mask"][0].sum())
    for i, layer in enumerate(last_enc.layer_names):
        np.testing.assert_allclose(batch[layer][:1], alone[layer], rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(batch[layer][0], hidden[i][0, n_short - 1].detach().numpy(), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(batch[layer][1], hidden[i][1, -1].detach().numpy(), rtol=1e-5, atol=1e-6)
    means = mean_enc.encode(texts)
    assert not np.allclose(means["hidden_02"], batch["hidden_02"])


@pytest.mark.parametrize("pooling, modality, source", [("cls", "language", "hf"), ("last", "vision", "timm")])
def test_pooling_that_does_not_fit_the_modality_is_refused(tiny_specs, pooling, modality, source):
    spec = {**(tiny_specs["gpt"] if modality == "language" else tiny_specs["cnn"]), "pooling": pooling}
    with pytest.raises(ValueError, match=f"pooling .*{pooling}"):
        load_encoder("m", spec, "cpu")


# -- bits per byte on one fixed text (the competence measure) -------------------------------------------------
def test_text_bits_per_byte_scores_every_token_of_the_text(tiny_specs):
    enc = load_encoder("gpt", tiny_specs["gpt"], "cpu")
    text = "The quick brown fox jumps over the lazy dog. " * 20  # 900 bytes, 900 byte tokens
    whole = enc.text_bits_per_byte(text, window=1024)
    assert whole["tokens"] == 900 and whole["bytes"] == 900 and whole["windows"] == 1
    assert whole["start_token"].startswith("eos_token")  # ByT5 has no BOS: its EOS starts every window
    # the same sum by hand: log-softmax of one forward pass over [start] + text
    ids = torch.tensor([[enc.start_token()[0], *enc.tokenizer(text, add_special_tokens=False)["input_ids"]]])
    logp = torch.log_softmax(enc.model(input_ids=ids).logits[0, :-1].double(), dim=-1)
    bits = -logp.gather(-1, ids[0, 1:, None]).sum().item() / np.log(2)
    assert whole["bits_per_byte"] == pytest.approx(bits / 900, rel=1e-4)
    # shorter windows cut the context but still score all 900 tokens; random weights give ~log2(384)
    cut = enc.text_bits_per_byte(text, window=100)
    assert cut["windows"] == 10 and cut["tokens"] == 900
    assert cut["bits_per_byte"] == pytest.approx(np.log2(384), rel=0.25)
    for bad, match in ((dict(window=1), "window"), (dict(window=2.5), "window")):
        with pytest.raises(ValueError, match=match):
            enc.text_bits_per_byte(text, **bad)
    with pytest.raises(ValueError, match="non-empty"):
        enc.text_bits_per_byte("   ")


def test_extract_records_text_bits_per_byte_for_causal_lms_only(tiny_specs, emoji_stimuli, tmp_path):
    text = tmp_path / "t.txt"
    text.write_text("A small fixed text for the test. " * 10)
    gpt = extract(load_encoder("gpt", tiny_specs["gpt"], "cpu"), emoji_stimuli, progress=False, text=text)
    info = gpt.attrs["text_bits_per_byte"]
    assert info["text"] == "t.txt" and len(info["text_sha256"]) == 64 and info["bytes"] == 330
    assert 0 < info["bits_per_byte"] < 20 and "bits_per_byte" in gpt
    bert = extract(load_encoder("bert", tiny_specs["bert"], "cpu"), emoji_stimuli, progress=False, text=text)
    assert "text_bits_per_byte" not in bert.attrs
    with pytest.raises(ExtractionError, match="does not exist"):
        extract(load_encoder("gpt", tiny_specs["gpt"], "cpu"), emoji_stimuli, progress=False, text=tmp_path / "no.txt")


def test_precision_is_float32_on_the_cpu_and_recorded(tiny_specs, emoji_stimuli):
    from convergence.embed import effective_precision

    enc = load_encoder("cnn", tiny_specs["cnn"], device="cpu")
    exact = extract(enc, emoji_stimuli, batch_size=16, progress=False)
    asked = extract(enc, emoji_stimuli, batch_size=16, progress=False, precision="bfloat16")
    assert exact.attrs["precision"] == asked.attrs["precision"] == "float32"  # autocast runs on CUDA only
    for layer in exact.attrs["layers"]:
        np.testing.assert_array_equal(exact[layer].values, asked[layer].values)
    assert effective_precision("float16", "cuda:0") == "float16" and effective_precision("float16", "cpu") == "float32"
    with pytest.raises(ValueError, match=r"precision must be one of \['float32', 'bfloat16', 'float16'\], got 'half'"):
        extract(enc, emoji_stimuli, progress=False, precision="half")


def test_to_device_keeps_cpu_tensors_and_pins_for_cuda():
    from convergence.models.base import to_device

    x = torch.arange(6, dtype=torch.uint8)
    assert to_device(x, "cpu") is x
    if torch.cuda.is_available():  # the pinned, non-blocking path; on a CPU-only machine only the above runs
        y = to_device(x, "cuda")
        assert y.device.type == "cuda" and torch.equal(y.cpu(), x)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="autocast in reduced precision runs on CUDA only")
@pytest.mark.parametrize("precision", ["bfloat16", "float16"])
def test_reduced_precision_on_cuda_is_close_to_float32(tiny_specs, emoji_stimuli, precision):
    enc = load_encoder("cnn", tiny_specs["cnn"], device="cuda")
    exact = extract(enc, emoji_stimuli, batch_size=16, progress=False)
    half = extract(enc, emoji_stimuli, batch_size=16, progress=False, precision=precision)
    assert half.attrs["precision"] == precision
    for layer in exact.attrs["layers"]:
        a, b = exact[layer].values, half[layer].values
        assert b.dtype == np.float32 and np.isfinite(b).all()
        cos = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
        assert cos.min() > 0.99, (layer, cos.min())


def test_onnx_graphs_record_float32_whatever_the_precision(monkeypatch, tiny_specs, emoji_stimuli):
    """ONNX Runtime is not touched by torch.autocast: even on a CUDA device the store must say float32."""
    import contextlib

    from convergence import embed
    from convergence.models.onnx_source import OnnxEncoder

    assert OnnxEncoder.autocast_capable is False
    enc = load_encoder("cnn", tiny_specs["cnn"], device="cpu")
    # pretend to be on CUDA: the asked precision is used, autocast itself is a no-op here
    monkeypatch.setattr(embed, "effective_precision", lambda precision, device: precision)
    monkeypatch.setattr(embed, "autocast", lambda precision, device: contextlib.nullcontext())
    assert extract(enc, emoji_stimuli, progress=False, precision="float16").attrs["precision"] == "float16"
    monkeypatch.setattr(type(enc), "autocast_capable", False)
    assert extract(enc, emoji_stimuli, progress=False, precision="float16").attrs["precision"] == "float32"


# ------------------------------------------------------------------------------- chunked, resumable extraction


@pytest.fixture
def emoji_store(tmp_path, emoji_stimuli):
    from convergence.store import write_store

    return write_store(emoji_stimuli, tmp_path / "stimuli" / "emoji.zarr", chunk=10)


def test_store_written_chunk_by_chunk_equals_the_one_shot_extraction(tiny_specs, emoji_stimuli, emoji_store, tmp_path):
    """24 stimuli in chunks of 8 (batches of 4 never straddle a chunk): the same bits as one in-memory pass."""
    from convergence.embed import extract_to_store

    spec = {**tiny_specs["cnn"], "layers": ["layer1", "layer4"]}
    whole = extract(load_encoder("cnn", spec, "cpu"), emoji_stimuli, batch_size=4, progress=False)
    ds = extract_to_store(load_encoder("cnn", spec, "cpu"), emoji_store, tmp_path / "e.zarr", params=spec,
                          batch_size=4, chunk=8, progress=False).load()
    assert ds["stimulus"].values.tolist() == whole["stimulus"].values.tolist()
    for layer in ("layer1", "layer4"):
        assert ds[layer].encoding["chunks"][0] == 8
        np.testing.assert_array_equal(ds[layer].values, whole[layer].values)
    same = {k: v for k, v in ds.attrs.items() if k != "seconds"}
    assert same == {k: v for k, v in whole.attrs.items() if k != "seconds"}


_KILLED_RUN = """
import sys
from convergence.embed import extract_to_store
from convergence.models import load_encoder
spec = {spec!r}
extract_to_store(load_encoder("cnn", spec, "cpu"), {stimuli!r}, {out!r}, params=spec, batch_size=4, chunk=8,
                 progress=False)
"""


def test_a_killed_extraction_resumes_and_stores_the_same_bits(tiny_specs, emoji_store, tmp_path):
    """SIGKILL after the first of three chunks (a time limit, a preemption): no store appears, the partial work
    keeps one chunk, the rerun computes the other two, and the store equals an uninterrupted run's bit for bit."""
    import os
    import subprocess
    import sys

    from convergence.embed import KILL_AFTER_CHUNKS, extract_to_store
    from convergence.store import open_store

    spec = {**tiny_specs["cnn"], "layers": ["layer2", "layer4"]}
    target = tmp_path / "emb" / "cnn.zarr"
    code = _KILLED_RUN.format(spec=spec, stimuli=str(emoji_store), out=str(target))
    env = {**os.environ, KILL_AFTER_CHUNKS: "1"}
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == -9, proc.stderr[-2000:]
    assert not target.exists()
    partial = [d for d in target.parent.iterdir() if d.name.startswith(".cnn.zarr.partial-")]
    assert len(partial) == 1 and '"rows": 8' in (partial[0] / "progress.json").read_text()

    encoder = load_encoder("cnn", spec, "cpu")
    calls = []
    real = encoder.encode
    encoder.encode = lambda batch: (calls.append(len(batch)), real(batch))[1]
    resumed = extract_to_store(encoder, emoji_store, target, params=spec, batch_size=4, chunk=8, progress=False)
    assert sum(calls) == 16 and resumed.attrs["resumed_after"] == 8
    assert not [d for d in target.parent.iterdir() if d.name.startswith(".")]
    fresh = extract_to_store(load_encoder("cnn", spec, "cpu"), emoji_store, tmp_path / "fresh.zarr", params=spec,
                             batch_size=4, chunk=8, progress=False)
    resumed, fresh = open_store(target, load=True), fresh.load()
    for layer in ("layer2", "layer4"):
        assert resumed[layer].values.tobytes() == fresh[layer].values.tobytes()
    assert resumed["stimulus"].values.tolist() == fresh["stimulus"].values.tolist()


def test_changed_parameters_never_resume_stale_work(tiny_specs, emoji_store, tmp_path, monkeypatch):
    import convergence.embed as embed_mod
    from convergence.embed import extract_to_store
    from convergence.store import ChunkedStore

    spec = {**tiny_specs["cnn"], "layers": "last"}
    target = tmp_path / "cnn.zarr"
    real_append = ChunkedStore.append

    def die_on_second(self, ds, digest="", **info):
        if self.rows >= 8:
            raise KeyboardInterrupt  # killed after one chunk
        return real_append(self, ds, digest, **info)

    monkeypatch.setattr(ChunkedStore, "append", die_on_second)
    with pytest.raises(KeyboardInterrupt):
        extract_to_store(load_encoder("cnn", spec, "cpu"), emoji_store, target, params=spec, batch_size=4, chunk=8,
                         progress=False)
    monkeypatch.undo()
    other = {**spec, "batch_size": 8}  # a changed model entry: a new key
    ds = extract_to_store(load_encoder("cnn", other, "cpu"), emoji_store, target, params=other, batch_size=8,
                          chunk=8, progress=False)
    assert "resumed_after" not in ds.attrs and ds.sizes["stimulus"] == 24
    assert not [d for d in tmp_path.iterdir() if d.name.startswith(".cnn.zarr")]  # the stale partial is gone
    assert embed_mod.stimuli_fingerprint(emoji_store) == embed_mod.stimuli_fingerprint(emoji_store)
