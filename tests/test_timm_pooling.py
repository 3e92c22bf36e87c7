"""timm ViTs with 0, 1 and 5 prefix tokens: pooling at every batch size, and the class-token rule the config
checks before any job."""
import numpy as np
import pytest
import timm
import torch

from convergence.config import ConfigError, validate_config
from convergence.models.architectures import timm_class_token
from convergence.models.base import ImagePreprocessing, ModelLoadError
from convergence.models.timm_source import TimmEncoder, has_class_token

PRE = ImagePreprocessing(size=32, crop_pct=1.0)
#: (class_token, reg_tokens) -> number of prefix tokens: 0 (SigLIP-like), 1 (CLS), 5 (CLS + 4 registers)
VARIANTS = {"no_prefix": dict(class_token=False, global_pool="avg", reg_tokens=0), "cls": dict(class_token=True),
            "cls_reg4": dict(class_token=True, reg_tokens=4), "reg4_only": dict(class_token=False, global_pool="avg",
                                                                             reg_tokens=4)}
PREFIX = {"no_prefix": 0, "cls": 1, "cls_reg4": 5, "reg4_only": 4}


def tiny_vit(variant: str) -> torch.nn.Module:
    torch.manual_seed(0)
    return timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=0, img_size=32, depth=3,
                             **VARIANTS[variant]).eval()


def images(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)


def reference(model, x: torch.Tensor, pooling: str) -> list[torch.Tensor]:
    """Each block's output from a plain forward with hooks: token 0 (cls) or the mean of the patch tokens."""
    outs = []
    handles = [b.register_forward_hook(lambda _m, _i, o: outs.append(o)) for b in model.blocks]
    with torch.inference_mode():
        model.forward_features(x)
    for h in handles:
        h.remove()
    n = model.num_prefix_tokens
    return [o[:, 0] if pooling == "cls" else o[:, n:].mean(dim=1) for o in outs]


@pytest.mark.parametrize("variant", list(VARIANTS))
@pytest.mark.parametrize("pooling", ["cls", "mean"])
def test_pooling_at_every_batch_size(variant, pooling):
    model = tiny_vit(variant)
    assert model.num_prefix_tokens == PREFIX[variant]
    if pooling == "cls" and not has_class_token(model):
        with pytest.raises(ModelLoadError, match="pooling 'cls' needs a class token"):
            TimmEncoder("v", model, PRE, pooling="cls")
        return
    enc = TimmEncoder("v", model, PRE, pooling=pooling)
    assert enc.layer_names == ["block_00", "block_01", "block_02"]
    for batch in (1, 2, 3, 4):
        x = images(batch, seed=batch)
        out = enc.encode(x)
        ref = reference(model, PRE(x), pooling)
        for name, r in zip(enc.layer_names, ref, strict=True):
            assert out[name].shape == (batch, 192)
            np.testing.assert_allclose(out[name], r.numpy(), rtol=1e-5, atol=1e-5)


def test_auto_pooling_is_the_class_token_where_there_is_one_else_the_mean():
    assert TimmEncoder("v", tiny_vit("cls_reg4"), PRE).pooling == "cls"
    assert TimmEncoder("v", tiny_vit("no_prefix"), PRE).pooling == "mean"
    assert TimmEncoder("v", tiny_vit("reg4_only"), PRE).pooling == "mean"  # register tokens are no class token


#: timm ViT families on both sides of the name rule (built on the meta device: no weights, no memory)
RULE_CASES = ["vit_base_patch16_siglip_224", "vit_so400m_patch14_siglip_384", "vit_medium_patch16_reg4_gap_256",
              "vit_base_patch16_gap_224", "vit_so150m_patch16_reg4_map_256", "vit_base_patch16_rpn_224",
              "vit_relpos_base_patch16_224", "vit_relpos_base_patch16_cls_224", "vit_relpos_base_patch16_clsgap_224",
              "vit_base_patch16_224", "vit_small_patch14_dinov2", "vit_small_patch14_reg4_dinov2",
              "vit_base_patch16_clip_224", "deit_small_patch16_224", "vit_huge_patch14_224"]


@pytest.mark.parametrize("arch", RULE_CASES)
def test_the_config_rule_agrees_with_timm(arch):
    with torch.device("meta"):
        model = timm.create_model(arch, pretrained=False)
    known = timm_class_token(f"{arch}.sometag")
    assert known is None or known == has_class_token(model)
    if not has_class_token(model):
        assert known is False, f"{arch} has no class token but the config rule does not know it"


def test_cls_pooling_without_a_class_token_fails_before_jobs():
    spec = {"source": "timm", "modality": "vision", "objective": "image-text", "family": "transformer",
            "pooling": "cls"}
    base = {"datasets": {"d": {"source": "digits"}}}
    with pytest.raises(ConfigError, match=r"config.models.s.pooling: 'cls' needs a class token"):
        validate_config({**base, "models": {"s": {**spec, "name": "vit_base_patch16_siglip_224.webli"}}})
    with pytest.raises(ConfigError, match="needs a class token"):
        validate_config({**base, "models": {"s": {**spec, "name": "vit_tiny_patch16_224",
                                                  "model_kwargs": {"class_token": False}}}})
    validate_config({**base, "models": {"s": {**spec, "name": "vit_base_patch16_siglip_224.webli", "pooling": "mean"}}})
    validate_config({**base, "models": {"s": {**spec, "name": "vit_base_patch16_224.augreg_in21k"}}})
