"""A local Hugging Face hub: random-weight models and small datasets in a Hugging Face cache, for rehearsing
a study config offline and for the study tests.

:func:`populate` writes, into ``<home>/hub`` and ``<home>/datasets`` (the layout of ``HF_HOME``), what every
model and dataset entry of a config resolves to, under the exact repo ids, revisions and file names the real
loaders ask for, so that with ``HF_HOME=<home> HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1`` the workflow's own
loading code (timm, transformers, datasets; nothing patched) finds them:

* a timm entry ``arch.tag`` with pretrained weights: the file its ``pretrained_cfg`` names
  (``hf_hub_filename``, else ``model.safetensors``, which timm prefers to ``pytorch_model.bin``) in repo
  ``hf_hub_id``, plus timm's ``config.json``, holding a random state dict of the architecture built with the
  entry's ``model_kwargs`` (:func:`with_standins` gives large architectures reduced-width ``model_kwargs``);
* a transformers entry (``source: hf``): a tiny random model of the repo's architecture class
  (:data:`HF_ARCHITECTURES`: Bloom, Llama, Qwen3, BERT) saved with ``save_pretrained``, with a tokenizer of
  the kind that class rebuilds (byte-level BPE, Llama's byte-fallback BPE, BERT's WordPiece);
* a ``huggingface`` dataset: the prepared Arrow cache ``datasets/<org>___<name>/<config>/0.0.0/<commit>/``
  that ``datasets.load_dataset`` reads offline, in the dataset's column layout (:data:`HF_DATASETS`), and
  the hub's ``refs/<revision>`` naming that commit.

Each repo gets a fixed fake commit (sha1 of its kind, id and revision), written as
``refs/<revision>`` -> ``snapshots/<commit>/`` with the files stored as ``blobs/<sha256>``, as
``huggingface_hub`` lays a download out. Command line (writes the hub; ``--standins`` also writes a copy of
the config whose large timm models are the reduced-width stand-ins the hub holds)::

    python -m convergence.testing.hub --home /tmp/hub --config studies/prh.yaml --standins /tmp/prh.yaml
    HF_HOME=/tmp/hub HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 snakemake --cores 2 --configfile /tmp/prh.yaml

The column layouts and config names in :data:`HF_DATASETS` are the Hub's as their dataset cards state them;
the weights are random: this checks that a study runs, never what it finds.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import re
import shutil
import tempfile
from pathlib import Path

from ..hubcache import file_sha256

#: Reduced-width ``model_kwargs`` for timm architectures too large to run on a CPU in a test (the real
#: architecture is used for the small ones: ViT-S/DeiT-S, ResNet-50, EfficientNet-B0, ...).
TIMM_STANDINS: list[tuple[str, dict]] = [
    (r"^vit_(base|large|huge|giant|gigantic|so400m|so150m)_", {"embed_dim": 48, "depth": 2, "num_heads": 2}),
    (r"^convnext_(base|large|xlarge)", {"dims": [16, 32, 64, 128], "depths": [1, 1, 1, 1]}),
]

#: transformers repos by id prefix: (model_type, architecture class, tokenizer kind, tokenizer class).
HF_ARCHITECTURES: dict[str, tuple[str, str, str, str]] = {
    "bigscience/bloom": ("bloom", "BloomForCausalLM", "bytelevel", "BloomTokenizerFast"),
    "openlm-research/open_llama": ("llama", "LlamaForCausalLM", "llama", "LlamaTokenizer"),
    "huggyllama/llama": ("llama", "LlamaForCausalLM", "llama", "LlamaTokenizer"),
    "Qwen/Qwen3-": ("qwen3", "Qwen3ForCausalLM", "bytelevel", "Qwen2Tokenizer"),
    "sentence-transformers/all-MiniLM": ("bert", "BertModel", "wordpiece", "BertTokenizer"),
}
#: The tiny configs (same architecture class, two layers, width 32).
HF_TINY: dict[str, dict] = {
    "bloom": {"hidden_size": 32, "n_layer": 2, "n_head": 2},
    "llama": {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2,
              "num_key_value_heads": 2, "max_position_embeddings": 512},
    "qwen3": {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2,
              "num_key_value_heads": 1, "head_dim": 16, "max_position_embeddings": 512},
    "bert": {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2,
             "max_position_embeddings": 512},
}

_CIFAR10 = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
_STL10 = ["airplane", "bird", "car", "cat", "deer", "dog", "horse", "monkey", "ship", "truck"]
_FASHION = ["T - shirt / top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
            "Ankle boot"]
_EUROSAT = ["annual crop land", "forest", "brushland or shrubland", "highway or road", "industrial buildings",
            "pasture land", "permanent crop land", "residential buildings", "river", "sea or lake"]


def _names(n: int, stem: str = "class") -> list[str]:
    return [f"{stem}_{i:03d}" for i in range(n)]


#: Hub datasets: repo id -> (config name, {column: kind}, image (height, width, PIL mode)). Kinds: ``image``,
#: ``captions`` (a list of strings per row), ``int``, or a list of class names (a ``ClassLabel``).
HF_DATASETS: dict[str, tuple[str, dict, tuple[int, int, str]]] = {
    "minhuh/prh": ("default", {"image": "image", "text": "captions"}, (48, 64, "RGB")),
    "uoft-cs/cifar10": ("plain_text", {"img": "image", "label": _CIFAR10}, (32, 32, "RGB")),
    "uoft-cs/cifar100": ("cifar100", {"img": "image", "fine_label": _names(100), "coarse_label": _names(20)},
                         (32, 32, "RGB")),
    "tanganke/stl10": ("default", {"image": "image", "label": _STL10}, (96, 96, "RGB")),
    "tanganke/dtd": ("default", {"image": "image", "label": _names(47, "texture")}, (60, 80, "RGB")),
    "tanganke/eurosat": ("default", {"image": "image", "label": _EUROSAT}, (64, 64, "RGB")),
    "tanganke/gtsrb": ("default", {"image": "image", "label": _names(43, "sign")}, (40, 36, "RGB")),
    "timm/oxford-iiit-pet": ("default", {"image": "image", "label": _names(37, "breed"), "image_id": "string",
                                         "label_cat_dog": ["cat", "dog"]}, (60, 50, "RGB")),
    "nelorth/oxford-flowers": ("default", {"image": "image", "label": _names(102, "flower")}, (50, 70, "RGB")),
    "ylecun/mnist": ("mnist", {"image": "image", "label": [str(i) for i in range(10)]}, (28, 28, "L")),
    "zalando-datasets/fashion_mnist": ("fashion_mnist", {"image": "image", "label": _FASHION}, (28, 28, "L")),
}

_WORDS = ("a photo of a red kite over the sea; an old stone bridge in the rain; two dogs on a beach; a tram in "
          "a snowy city street; a bowl of green apples; the portrait of a painter; a map of an island").split()


class HubError(ValueError):
    """The local hub cannot hold what a config entry asks for (an unknown repo or architecture)."""


def fake_commit(kind: str, repo_id: str, revision: str | None) -> str:
    """The fixed commit a repo's revision resolves to in the local hub (40 hex digits)."""
    return hashlib.sha1(f"convergence-local-hub:{kind}:{repo_id}@{revision or 'main'}".encode()).hexdigest()


def write_repo(home: str | Path, kind: str, repo_id: str, files: dict[str, Path], revision: str | None = None) -> Path:
    """Store ``files`` ({name in repo: local file}) as repo ``repo_id`` (kind ``model`` or ``dataset``) at
    ``revision`` in ``<home>/hub``, laid out as huggingface_hub caches a download; returns the snapshot."""
    root = Path(home) / "hub" / f"{kind}s--{repo_id.replace('/', '--')}"
    commit = fake_commit(kind, repo_id, revision)
    snapshot = root / "snapshots" / commit
    for name, src in files.items():
        blob = root / "blobs" / file_sha256(Path(src))
        blob.parent.mkdir(parents=True, exist_ok=True)
        if not blob.exists():
            shutil.copyfile(src, blob)
        link = snapshot / name
        link.parent.mkdir(parents=True, exist_ok=True)
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(os.path.relpath(blob, link.parent))
    (root / "refs").mkdir(parents=True, exist_ok=True)
    (root / "refs" / (revision or "main")).write_text(commit)
    return snapshot


# ----------------------------------------------------------------------------------------------- timm


def timm_standin(name: str) -> dict | None:
    """Reduced-width ``model_kwargs`` for timm architecture ``name`` when it is too large for a test, else None."""
    arch = str(name).split(".")[0]
    for pattern, kwargs in TIMM_STANDINS:
        if re.search(pattern, arch):
            return copy.deepcopy(kwargs)
    return None


def write_timm(home: str | Path, spec: dict) -> str:
    """The weights file timm's pretrained tag ``spec['name']`` resolves to, random, in its hub repo; returns
    the repo id. The state dict is that of the architecture built with ``spec['model_kwargs']`` and the tag's
    own number of classes, as a real checkpoint would hold it."""
    import safetensors.torch
    import timm
    import torch

    name = spec["name"]
    cfg = timm.models.get_pretrained_cfg(name)
    if cfg is None or not cfg.hf_hub_id:
        raise HubError(f"timm has no hub weights for {name!r} (no pretrained_cfg with hf_hub_id)")
    repo, filename = cfg.hf_hub_id, cfg.hf_hub_filename or "model.safetensors"
    if (Path(home) / "hub" / f"models--{repo.replace('/', '--')}").is_dir():
        return repo
    kwargs = dict(spec.get("model_kwargs") or {})
    kwargs.pop("pretrained_cfg_overlay", None)
    torch.manual_seed(int(hashlib.sha1(name.encode()).hexdigest()[:8], 16))
    model = timm.create_model(name.split(".")[0], pretrained=False, num_classes=cfg.num_classes, **kwargs)
    with tempfile.TemporaryDirectory() as tmp:
        weights = Path(tmp) / filename
        state = {k: v.detach().contiguous().clone() for k, v in model.state_dict().items()}
        safetensors.torch.save_file(state, str(weights))
        config = Path(tmp) / "config.json"
        config.write_text(json.dumps({"architecture": cfg.architecture, "num_classes": cfg.num_classes,
                                      "model_args": kwargs, "pretrained_cfg": cfg.to_dict()}, default=list))
        write_repo(home, "model", repo, {filename: weights, "config.json": config})
    return repo


# ------------------------------------------------------------------------------------------ transformers


def _architecture(repo: str) -> tuple[str, str, str, str]:
    for prefix, arch in HF_ARCHITECTURES.items():
        if repo.startswith(prefix):
            return arch
    raise HubError(f"the local hub knows no architecture for transformers repo {repo!r}; known: "
                   f"{sorted(HF_ARCHITECTURES)} (add it to convergence.testing.hub.HF_ARCHITECTURES)")


def _tokenizer(kind: str, cls_name: str):
    """A small tokenizer of the kind ``cls_name`` rebuilds: byte-level BPE (every byte a token, a few merges),
    Llama's BPE with byte fallback, or BERT's WordPiece over letters."""
    import transformers
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers

    if kind == "bytelevel":
        alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
        vocab = {c: i for i, c in enumerate(alphabet)}
        # a few merges, among them the answer words " yes" / " no" as single tokens, as in the real vocabularies
        merges = [("Ġ", "a"), ("t", "h"), ("th", "e"), ("Ġ", "th"), ("i", "n"), ("Ġ", "y"), ("Ġy", "e"),
                  ("Ġye", "s"), ("Ġ", "n"), ("Ġn", "o"), ("Ġ", "Y"), ("ĠY", "e"), ("ĠYe", "s"), ("Ġ", "N"),
                  ("ĠN", "o")]
        for a, b in merges:
            vocab.setdefault(a + b, len(vocab))
        if cls_name == "Qwen2Tokenizer":
            vocab["<|endoftext|>"] = len(vocab)
            return transformers.Qwen2Tokenizer(vocab=vocab, merges=merges, unk_token=None, bos_token=None,
                                               eos_token="<|endoftext|>", pad_token="<|endoftext|>")
        for special in ("<unk>", "<s>", "</s>", "<pad>"):
            vocab[special] = len(vocab)
        tok = Tokenizer(models.BPE(vocab=vocab, merges=merges))
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = decoders.ByteLevel()
        return transformers.PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", bos_token="<s>",
                                                    eos_token="</s>", pad_token="<pad>")
    if kind == "llama":
        vocab = {"<unk>": 0, "<s>": 1, "</s>": 2, **{f"<0x{i:02X}>": 3 + i for i in range(256)}}
        merges = [("▁", "t"), ("h", "e"), ("▁t", "he"), ("▁", "y"), ("e", "s"), ("▁y", "es"), ("▁", "n"),
                  ("▁n", "o")]
        for a, b in merges:
            vocab.setdefault(a, len(vocab))
            vocab.setdefault(b, len(vocab))
            vocab.setdefault(a + b, len(vocab))
        return transformers.LlamaTokenizer(vocab=vocab, merges=merges, add_bos_token=True)
    if kind == "wordpiece":
        letters = "abcdefghijklmnopqrstuvwxyz0123456789.,;:!?'-"
        vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *letters, *(f"##{c}" for c in letters)]
        return transformers.BertTokenizer(vocab={t: i for i, t in enumerate(vocab)})
    raise HubError(f"unknown tokenizer kind {kind!r}")


def write_hf(home: str | Path, spec: dict) -> str:
    """A tiny random model of the architecture class of transformers repo ``spec['name']`` and a tokenizer of
    its kind, saved with ``save_pretrained`` into the repo at ``spec['revision']``; returns the repo id."""
    import torch
    import transformers

    repo = spec["name"]
    if (Path(home) / "hub" / f"models--{repo.replace('/', '--')}").is_dir():
        return repo
    model_type, arch, tok_kind, tok_class = _architecture(repo)
    tokenizer = _tokenizer(tok_kind, tok_class)
    fields = {**HF_TINY[model_type], "vocab_size": len(tokenizer), "architectures": [arch]}
    for attr in ("bos_token_id", "eos_token_id", "pad_token_id"):
        value = getattr(tokenizer, attr, None)
        if value is not None:
            fields[attr] = int(value)
    config = transformers.AutoConfig.for_model(model_type, **fields)
    torch.manual_seed(int(hashlib.sha1(repo.encode()).hexdigest()[:8], 16))
    model = getattr(transformers, arch)(config)
    with tempfile.TemporaryDirectory() as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        tok_cfg = Path(tmp) / "tokenizer_config.json"
        saved = json.loads(tok_cfg.read_text())
        saved["tokenizer_class"] = tok_class  # what the real repo names (Bloom's fast class maps to tokenizers)
        tok_cfg.write_text(json.dumps(saved, indent=1))
        files = {p.relative_to(tmp).as_posix(): p for p in sorted(Path(tmp).rglob("*")) if p.is_file()}
        write_repo(home, "model", repo, files, spec.get("revision"))
    return repo


# ---------------------------------------------------------------------------------------------- datasets


def _features(columns: dict):
    import datasets

    out = {}
    for col, kind in columns.items():
        if kind == "image":
            out[col] = datasets.Image()
        elif kind == "captions":
            out[col] = datasets.Sequence(datasets.Value("string"))
        elif kind == "string":
            out[col] = datasets.Value("string")
        elif isinstance(kind, list):
            out[col] = datasets.ClassLabel(names=kind)
        else:
            raise HubError(f"unknown column kind {kind!r}")
    return datasets.Features(out)


def write_dataset(home: str | Path, spec: dict, rows: int = 16) -> str:
    """Hub dataset ``spec['name']`` at ``spec['revision']`` as the prepared Arrow cache that
    ``datasets.load_dataset`` reads offline (split ``spec['split']``, ``rows`` seeded random rows in the
    dataset's column layout), and the hub ref of that revision; returns the cache directory."""
    import datasets
    import numpy as np
    from datasets.packaged_modules.parquet.parquet import Parquet
    from PIL import Image

    repo, revision, split = spec["name"], spec.get("revision"), spec.get("split", "train")
    if repo not in HF_DATASETS:
        raise HubError(f"the local hub knows no column layout for dataset {repo!r}; known: {sorted(HF_DATASETS)}")
    config_name, columns, (h, w, mode) = HF_DATASETS[repo]
    commit = fake_commit("dataset", repo, revision)
    org, name = repo.split("/")
    out = Path(home) / "datasets" / f"{org}___{name}" / config_name / "0.0.0" / commit
    if out.is_dir():
        return str(out)
    rng = np.random.default_rng(int(hashlib.sha1(repo.encode()).hexdigest()[:8], 16))
    data = {}
    for col, kind in columns.items():
        if kind == "image":
            shape = (h, w) if mode == "L" else (h, w, 3)
            data[col] = [Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode) for _ in range(rows)]
        elif kind == "captions":
            data[col] = [[" ".join(rng.choice(_WORDS, 6))] for _ in range(rows)]
        elif kind == "string":
            data[col] = [f"{col}_{i:05d}" for i in range(rows)]
        else:  # class labels: the first few classes in turn, so every kept class has several rows
            data[col] = [i % min(len(kind), 4) for i in range(rows)]
    features = _features(columns)
    table = datasets.Dataset.from_dict(data, features=features)
    with tempfile.TemporaryDirectory() as tmp:
        parquet = Path(tmp) / f"{split}.parquet"
        table.to_parquet(str(parquet))
        builder = Parquet(cache_dir=str(Path(home) / "datasets"), dataset_name=name, config_name=config_name,
                          config_id=config_name, hash=commit, data_files={split: [str(parquet)]}, features=features)
        builder.download_and_prepare(output_dir=str(out))
        readme = Path(tmp) / "README.md"
        readme.write_text(f"---\nconfigs:\n- config_name: {config_name}\n  data_files:\n  - split: {split}\n"
                          f"    path: data/{split}-*\n---\nA random stand-in for {repo}.\n")
        write_repo(home, "dataset", repo, {"README.md": readme}, revision)
    return str(out)


# --------------------------------------------------------------------------------------------- configs


def with_standins(config: dict) -> dict:
    """A copy of ``config`` whose large timm models (:data:`TIMM_STANDINS`) carry reduced-width
    ``model_kwargs``; the hub holds their weights in that width."""
    cfg = copy.deepcopy(config)
    for spec in cfg.get("models", {}).values():
        if spec.get("source") == "timm" and not spec.get("model_kwargs"):
            kwargs = timm_standin(spec["name"])
            if kwargs:
                spec["model_kwargs"] = kwargs
    return cfg


def populate(home: str | Path, config: dict, *, rows: int = 16) -> dict:
    """Write what every hub model and hub dataset of ``config`` resolves to into ``home`` (an ``HF_HOME``);
    returns {``models``: [repo ids], ``datasets``: [cache directories]}. Entries that read no hub (random
    init, local weights, packaged models, local datasets) are left alone."""
    written = {"models": [], "datasets": []}
    for spec in config.get("models", {}).values():
        pretrained = spec.get("pretrained", True)
        if spec.get("source") == "timm" and pretrained and not spec.get("weights"):
            written["models"].append(write_timm(home, spec))
        elif spec.get("source") == "hf" and pretrained and not Path(str(spec["name"])).exists():
            written["models"].append(write_hf(home, spec))
            if spec.get("tokenizer") not in (None, "bytes", spec["name"]):
                written["models"].append(write_hf(home, {**spec, "name": spec["tokenizer"]}))
    for spec in config.get("datasets", {}).values():
        if spec.get("source") == "huggingface" and not spec.get("path"):
            written["datasets"].append(write_dataset(home, spec, rows))
    return written


def main(argv=None) -> None:
    import argparse

    import yaml

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--home", required=True, help="the HF_HOME to write into")
    parser.add_argument("--config", required=True, help="a workflow config (e.g. studies/prh.yaml)")
    parser.add_argument("--rows", type=int, default=16, help="rows per dataset split (default 16)")
    parser.add_argument("--standins", help="also write the config with reduced-width timm stand-ins here")
    args = parser.parse_args(argv)
    config = yaml.safe_load(Path(args.config).read_text())
    if args.standins:
        config = with_standins(config)
        Path(args.standins).write_text(yaml.safe_dump(config, sort_keys=False))
    written = populate(args.home, config, rows=args.rows)
    print(f"{len(written['models'])} model repos and {len(written['datasets'])} datasets in {args.home}")


if __name__ == "__main__":
    main()
