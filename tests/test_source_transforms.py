"""Each source's own image pipeline, end to end on scikit-image's photos: the encoder's features equal those of
the source library's pipeline applied to the same PIL image by hand (timm, open_clip, a transformers processor);
random-init timm models keep the on-device pipeline (the default run's stored numbers)."""
import numpy as np
import pytest
import skimage.data
import timm
import torch
from PIL import Image

from convergence.models.base import ImagePreprocessing, SourceTransform
from convergence.models.timm_source import TimmEncoder, load, timm_transform
from convergence.stimuli import fit_square


@pytest.fixture(scope="module")
def photos() -> np.ndarray:
    """Three photos as the stimulus step stores them (shorter side to 256, centre crop, uint8 RGB)."""
    return np.stack([np.asarray(fit_square(Image.fromarray(f()), 256)) for f in
                     (skimage.data.astronaut, skimage.data.coffee, skimage.data.chelsea)])


def test_timm_features_equal_timms_own_pipeline(photos):
    torch.manual_seed(0)
    model = timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=0, depth=2).eval()
    model.pretrained_cfg = {**model.pretrained_cfg, "crop_pct": 0.9, "mean": (0.5,) * 3, "std": (0.5,) * 3}
    enc = TimmEncoder("v", model, timm_transform(model), pooling="cls")
    out = enc.encode(photos)
    cfg = timm.data.resolve_data_config(model=model)
    transform = timm.data.create_transform(**cfg)  # timm's eval transform, as the PRH code uses it
    x = torch.stack([transform(Image.fromarray(p)) for p in photos])
    assert x.shape[-1] == 224 and cfg["crop_pct"] == 0.9  # resized to 248 with PIL, then cropped
    with torch.inference_mode():
        ref = model.forward_intermediates(x, return_prefix_tokens=True, norm=False, output_fmt="NLC",
                                          intermediates_only=True)
    for name, (_patches, prefix) in zip(enc.layer_names, ref, strict=True):
        np.testing.assert_allclose(out[name], prefix[:, 0].numpy(), rtol=0, atol=1e-6)
    assert enc.provenance["preprocessing"]["pipeline"].startswith("timm.data.create_transform")
    # the project's on-device pipeline differs (PIL vs torch resize, 248 vs 249 px): this test can fail
    old = TimmEncoder("v", model, ImagePreprocessing(size=224, crop_pct=0.9, mean=(0.5,) * 3, std=(0.5,) * 3)).encode(photos)
    assert not np.allclose(old[enc.layer_names[-1]], out[enc.layer_names[-1]], atol=1e-4)


def test_random_init_keeps_the_on_device_pipeline():
    enc = load("r", {"name": "resnet18", "pretrained": False}, torch.device("cpu"))
    assert isinstance(enc.preprocessing, ImagePreprocessing)
    assert enc.provenance["preprocessing"]["pipeline"].startswith("convergence")
    enc = load("r", {"name": "resnet18", "pretrained": False, "image_transform": "source"}, torch.device("cpu"))
    assert isinstance(enc.preprocessing, SourceTransform)


def test_open_clip_features_equal_open_clips_own_pipeline(photos, tmp_path):
    open_clip = pytest.importorskip("open_clip")
    from convergence.models.open_clip_source import load as load_clip

    tiny = {"embed_dim": 16, "vision_cfg": {"image_size": 224, "layers": 2, "width": 32, "patch_size": 32,
                                            "head_width": 16},
            "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 16, "heads": 1, "layers": 1}}
    spec = {"name": "TinyClipTest", "tower": "image", "modality": "vision", "model_config": tiny}
    load_clip("c", {**spec, "pretrained": False}, torch.device("cpu"))  # registers the config
    torch.manual_seed(0)
    ckpt = tmp_path / "clip.pt"
    model = open_clip.create_model("TinyClipTest", pretrained=None)
    torch.save(model.state_dict(), ckpt)
    spec["pretrained"] = str(ckpt)
    enc = load_clip("c", spec, torch.device("cpu"))
    enc.select_layers(["embedding"])
    out = enc.encode(photos)["embedding"]
    _, _, preprocess = open_clip.create_model_and_transforms("TinyClipTest", pretrained=str(ckpt))
    x = torch.stack([preprocess(Image.fromarray(p)) for p in photos])
    with torch.inference_mode():
        ref = model.eval().encode_image(x)
    np.testing.assert_allclose(out, ref.numpy(), rtol=0, atol=1e-5)
    assert enc.provenance["preprocessing"]["pipeline"].startswith("open_clip.transform.image_transform_v2")


def test_transformers_vision_features_equal_its_image_processors_pipeline(photos, tmp_path):
    import transformers

    from convergence.models.hf_source import load as load_hf

    cfg = transformers.ViTConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                                 image_size=64, patch_size=16)
    torch.manual_seed(0)
    transformers.ViTModel(cfg).save_pretrained(tmp_path)
    proc = transformers.ViTImageProcessor(size={"height": 64, "width": 64}, image_mean=[0.5] * 3, image_std=[0.5] * 3)
    proc.save_pretrained(tmp_path)
    enc = load_hf("h", {"name": str(tmp_path), "modality": "vision", "kind": "vision", "pooling": "cls"},
                  torch.device("cpu"))
    out = enc.encode(photos)
    model = transformers.ViTModel.from_pretrained(tmp_path).eval()
    x = proc(images=[Image.fromarray(p) for p in photos], return_tensors="pt")["pixel_values"]
    with torch.inference_mode():
        hidden = model(pixel_values=x, output_hidden_states=True).hidden_states
    for name, h in zip(enc.layer_names, hidden, strict=True):
        np.testing.assert_allclose(out[name], h[:, 0].numpy(), rtol=0, atol=1e-5)
    assert enc.provenance["preprocessing"]["pipeline"].startswith("transformers ViTImageProcessor")
