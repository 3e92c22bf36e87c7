"""Sources for hub users, tested with random weights: open_clip (both towers) and any torch.nn.Module."""
import numpy as np
import pytest
import torch

from convergence.models import ModelLoadError, load_encoder

# a small CLIP in open_clip's own config format: builds in well under a second, no download
TINY_CLIP = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 32, "layers": 2, "width": 64, "patch_size": 16, "head_width": 32},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 3},
}


def clip_spec(tower, **extra):
    return {"source": "open_clip", "name": "tiny-clip-test", "model_config": TINY_CLIP, "pretrained": False,
            "tower": tower, "modality": "vision" if tower == "image" else "language", "objective": "image-text",
            **extra}


@pytest.fixture(scope="module")
def open_clip():
    return pytest.importorskip("open_clip")


def test_open_clip_image_tower_blocks_and_embedding(open_clip, emoji_stimuli):
    enc = load_encoder("clip_img", clip_spec("image"), "cpu")
    assert enc.layer_names == ["block_00", "block_01", "embedding"] and enc.depths[-1] == 1.0
    images = emoji_stimuli["image"].values[:4]
    out = enc.encode(images)
    assert out["block_00"].shape == (4, 64) and out["embedding"].shape == (4, 32)
    # the stored embedding is the model's own encode_image, the blocks its class token (before ln_post)
    x = enc.preprocessing(images)
    np.testing.assert_allclose(out["embedding"], enc.module.encode_image(x).detach().numpy(), rtol=1e-4, atol=1e-5)
    tokens = {}
    hook = enc.module.visual.transformer.resblocks[1].register_forward_hook(lambda m, i, o: tokens.update(x=o))
    enc.module.encode_image(x)
    hook.remove()
    np.testing.assert_allclose(out["block_01"], tokens["x"][:, 0].detach().numpy(), rtol=1e-4, atol=1e-5)
    mean = load_encoder("clip_img", clip_spec("image", pooling="mean"), "cpu").encode(images)
    np.testing.assert_allclose(mean["block_01"], tokens["x"].mean(1).detach().numpy(), rtol=1e-4, atol=1e-5)
    assert enc.provenance["weights"] == "random-init" and enc.provenance["tower"] == "image"


def test_open_clip_text_tower_same_model(open_clip):
    img = load_encoder("clip_img", clip_spec("image", seed=3), "cpu")
    txt = load_encoder("clip_txt", clip_spec("text", seed=3), "cpu")
    for (k, a), b in zip(img.module.state_dict().items(), txt.module.state_dict().values()):
        assert torch.equal(a, b), k  # one model, two towers
    texts = ["a dog", "a red kangaroo on the grass"]
    out = txt.encode(texts)
    assert txt.layer_names == ["block_00", "block_01", "block_02", "embedding"]
    ids = open_clip.get_tokenizer("tiny-clip-test")(texts)
    np.testing.assert_allclose(out["embedding"], txt.module.encode_text(ids).detach().numpy(), rtol=1e-4, atol=1e-5)
    # mean over the start token .. end token only: padding does not change a text's features
    alone = txt.encode(texts[:1])
    np.testing.assert_allclose(out["block_02"][:1], alone["block_02"], rtol=1e-4, atol=1e-5)
    last = load_encoder("clip_txt", clip_spec("text", seed=3, pooling="last"), "cpu").encode(texts)
    assert not np.allclose(last["block_02"], out["block_02"])


def test_open_clip_bad_entries(open_clip):
    with pytest.raises(ModelLoadError, match=r"`tower`: one of \['image', 'text'\]"):
        load_encoder("c", {**clip_spec("image"), "tower": "audio"}, "cpu")
    with pytest.raises(ModelLoadError, match="no model 'ViT-B-3'.*ViT-B-32"):
        load_encoder("c", {**clip_spec("image"), "name": "ViT-B-3", "model_config": None}, "cpu")
    with pytest.raises(ModelLoadError, match="tower 'text' is modality 'language'"):
        load_encoder("c", {**clip_spec("text"), "modality": "vision"}, "cpu")


# -- any torch.nn.Module --------------------------------------------------------------------------------------
def tiny_net(width: int = 4) -> torch.nn.Module:
    return torch.nn.Sequential(
        torch.nn.Conv2d(3, width, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(width, 2 * width, 3, stride=2),
        torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(2 * width, 5),
    )


def test_module_source_hooks_named_submodules(emoji_stimuli):
    spec = {"source": "module", "modality": "vision", "objective": "random",
            "factory": "test_open_clip_module:tiny_net", "factory_kwargs": {"width": 6},
            "layers": {"relu": "1", "conv2": "2", "logits": "5"},
            "preprocessing": {"size": 16, "crop_pct": 1.0}}
    enc = load_encoder("net", spec, "cpu")
    images = emoji_stimuli["image"].values[:3]
    out = enc.encode(images)
    assert enc.layer_names == ["relu", "conv2", "logits"]
    assert out["relu"].shape == (3, 6) and out["conv2"].shape == (3, 12) and out["logits"].shape == (3, 5)
    x = enc.preprocessing(images)
    np.testing.assert_allclose(out["logits"], enc.module(x).detach().numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(out["relu"], enc.module[:2](x).mean((2, 3)).detach().numpy(), rtol=1e-5, atol=1e-6)
    assert enc.provenance["factory"] == "test_open_clip_module:tiny_net"
    only = load_encoder("net", {**spec, "layers": {"relu": "1", "logits": "5"}}, "cpu")
    assert only.layer_names == ["relu", "logits"]


def test_module_source_errors():
    base = {"source": "module", "modality": "vision", "preprocessing": {"size": 16}}
    with pytest.raises(ModelLoadError, match="factory must be 'package.module:callable'"):
        load_encoder("n", {**base, "factory": "tiny_net", "layers": {"a": "1"}}, "cpu")
    with pytest.raises(ModelLoadError, match="has no attribute 'nope'"):
        load_encoder("n", {**base, "factory": "test_open_clip_module:nope", "layers": {"a": "1"}}, "cpu")
    with pytest.raises(ModelLoadError, match="needs `layers`"):
        load_encoder("n", {**base, "factory": "test_open_clip_module:tiny_net"}, "cpu")
    with pytest.raises(ValueError, match="no submodule '9'"):
        load_encoder("n", {**base, "factory": "test_open_clip_module:tiny_net", "layers": {"a": "9"}}, "cpu")
    with pytest.raises(ModelLoadError, match="returned dict, not a torch.nn.Module"):
        load_encoder("n", {**base, "factory": "builtins:dict", "layers": {"a": "1"}}, "cpu")
    with pytest.raises(ModelLoadError, match=r"factory 'builtins:abs' failed with factory_kwargs \{\}: TypeError"):
        load_encoder("n", {**base, "factory": "builtins:abs", "layers": {"a": "1"}}, "cpu")
