"""A bad config fails at once with one message naming the entry and the allowed values."""
import copy

import pytest
import yaml

from convergence.config import ConfigError, kernel_gpus, metric_params, metric_settings, models_for, validate_config

from conftest import ROOT, TINY_BERT, TINY_CNN

GOOD = {
    "datasets": {"emo": {"source": "emoji", "limit": 20}, "dig": {"source": "digits"}},
    "models": {"cnn": dict(TINY_CNN), "text": dict(TINY_BERT)},
}


def bad(mutate):
    cfg = copy.deepcopy(GOOD)
    mutate(cfg)
    with pytest.raises(ConfigError) as err:
        validate_config(cfg)
    return str(err.value)


def test_good_config_gets_defaults():
    cfg = validate_config(GOOD)
    assert cfg["models"]["cnn"]["layers"] == "all"
    assert cfg["models"]["text"]["pooling"] == "auto"
    assert cfg["kernels"]["k"] == 10
    assert cfg["kernels"]["neighbours"] == "exact"
    assert cfg["datasets"]["emo"]["seed"] == 0
    assert cfg["device"] == "auto"


def test_language_models_only_on_captioned_datasets():
    cfg = validate_config(GOOD)
    assert models_for(cfg, "emo") == ["cnn", "text"]
    assert models_for(cfg, "dig") == ["cnn"]


def test_unknown_model_source_names_allowed_values():
    msg = bad(lambda c: c["models"]["cnn"].update(source="timmm"))
    assert "config.models.cnn.source" in msg and "'timmm'" in msg
    assert "timm" in msg and "packaged" in msg and "did you mean 'timm'" in msg


def test_unknown_dataset_source():
    msg = bad(lambda c: c["datasets"]["emo"].update(source="emojis"))
    assert "config.datasets.emo.source" in msg and "fashion_mnist" in msg


def test_missing_required_field():
    msg = bad(lambda c: c["models"]["cnn"].pop("modality"))
    assert "config.models.cnn" in msg and "modality" in msg


def test_unknown_field_is_named():
    msg = bad(lambda c: c["models"]["cnn"].update(batchsize=3))
    assert "batchsize" in msg and "batch_size" in msg


def test_misspelled_model_in_dataset_list():
    msg = bad(lambda c: c["datasets"]["emo"].update(models=["cnm"]))
    assert "config.datasets.emo.models" in msg and "'cnm'" in msg and "did you mean 'cnn'" in msg


def test_bad_path():
    msg = bad(lambda c: c["datasets"].update(folder={"source": "image_folder", "path": "/no/such/dir"}))
    assert "config.datasets.folder.path" in msg and "does not exist" in msg


def test_image_folder_needs_path():
    msg = bad(lambda c: c["datasets"].update(folder={"source": "image_folder"}))
    assert "config.datasets.folder" in msg and "path" in msg


def test_language_model_on_uncaptioned_dataset_rejected():
    msg = bad(lambda c: c["datasets"]["dig"].update(models=["text"]))
    assert "config.datasets.dig" in msg and "captions" in msg


def test_unknown_metric():
    msg = bad(lambda c: c.update(alignment={"metrics": ["mutual_kn"]}))
    assert "mutual_knn" in msg and "'mutual_kn'" in msg


def test_default_config_is_valid():
    with open(ROOT / "config.yaml") as fh:
        cfg = validate_config(yaml.safe_load(fh), base_dir=ROOT)
    assert cfg["models"] and cfg["datasets"]


def test_named_layers_must_name_configured_models():
    msg = bad(lambda c: c.update(alignment={"named_layers": {"cnx": "layer2"}}))
    assert "config.alignment.named_layers" in msg and "'cnx'" in msg


def _csv_dataset(tmp_path, text: str, encoding: str = "utf-8") -> dict:
    from PIL import Image

    Image.new("RGB", (8, 8), "red").save(tmp_path / "a.png")
    (tmp_path / "s.csv").write_bytes(text.encode(encoding))
    return {"source": "csv", "path": str(tmp_path / "s.csv")}


def with_dataset(dataset: dict) -> dict:
    """GOOD plus ``dataset`` (one-row CSVs here: no k-NN measure, no competence, which need more stimuli)."""
    cfg = copy.deepcopy(GOOD)
    cfg["datasets"]["table"] = dataset
    cfg["alignment"] = {"metrics": ["cka_linear"]}
    cfg["competence"] = {"enabled": False}
    return cfg


def test_csv_with_a_byte_order_mark_keeps_its_caption_column(tmp_path):
    """Excel's 'CSV UTF-8' starts the file with a BOM; the caption column must still be found."""
    from convergence.stimuli import build_stimuli

    dataset = _csv_dataset(tmp_path, "caption,path\na red square,a.png\n", encoding="utf-8-sig")
    cfg = validate_config(with_dataset({**dataset, "models": ["cnn", "text"]}))
    assert models_for(cfg, "table") == ["cnn", "text"]
    ds = build_stimuli("table", {**dataset, "image_size": 8})
    assert ds["caption"].values.tolist() == ["a red square"]


def test_language_models_never_drop_out_of_a_csv_dataset_silently(tmp_path):
    dataset = _csv_dataset(tmp_path, "path,label\na.png,red\n")
    with pytest.raises(ConfigError) as err:
        validate_config(with_dataset(dataset))
    msg = str(err.value)
    assert "config.datasets.table" in msg and "'text'" in msg and "caption" in msg and "models" in msg
    # listing the dataset's (vision) models says what is meant: no error
    assert models_for(validate_config(with_dataset({**dataset, "models": ["cnn"]})), "table") == ["cnn"]


def test_a_near_miss_caption_header_is_named(tmp_path):
    dataset = _csv_dataset(tmp_path, "path, Caption\na.png,red\n")
    with pytest.raises(ConfigError, match=r"config\.datasets\.table.*'Caption'.*'caption'"):
        validate_config(with_dataset({**dataset, "models": ["cnn"]}))


def test_a_csv_that_is_not_utf8_is_one_clear_error(tmp_path):
    dataset = _csv_dataset(tmp_path, "path,caption\na.png,crème brûlée\n", encoding="cp1252")
    with pytest.raises(ConfigError, match=r"config\.datasets\.table.*UTF-8"):
        validate_config(with_dataset(dataset))


def test_k_above_a_datasets_size_fails_before_any_extraction():
    cfg = {"datasets": {"d": {"source": "digits", "per_class": 2}},
           "models": {"a": {"source": "timm", "name": "resnet18", "modality": "vision", "objective": "random"},
                      "b": {"source": "timm", "name": "resnet10t", "modality": "vision", "objective": "random"}},
           "kernels": {"k": 20}, "competence": {"k": 3}}
    with pytest.raises(ConfigError, match=r"config.kernels.k: k=20 .* 'd' has at most 20; allowed: 1 <= k <= 19"):
        validate_config(cfg)
    cfg["kernels"]["k"] = 19
    validate_config(cfg)
    cfg["datasets"]["d"]["limit"] = 5  # the smaller bound wins
    with pytest.raises(ConfigError, match="at most 5"):
        validate_config(cfg)
    cfg["alignment"] = {"metrics": ["cka_linear"]}  # no neighbour metric: no k needed
    validate_config(cfg)


def test_kernel_settings_under_alignment_say_where_they_moved():
    cfg = {**copy.deepcopy(GOOD), "alignment": {"k": 5, "preprocess": "l2", "n_permutations": 5}}
    with pytest.raises(ConfigError, match=r"config.alignment: \['k', 'preprocess'\] moved to the kernels section "
                                          r"\(alignment.k -> kernels.k, alignment.preprocess -> kernels.preprocess\)"):
        validate_config(cfg)
    cfg["kernels"] = {"k": 5, "preprocess": "l2"}
    del cfg["alignment"]["k"], cfg["alignment"]["preprocess"]
    good = validate_config(cfg)
    assert good["kernels"]["gram_max_n"] == 5000 and good["alignment"]["n_permutations"] == 5
    # metric parameters: k from kernels, the rest from alignment
    assert metric_params("mutual_knn", metric_settings(good)) == {"k": 5}
    assert metric_params("cka_rbf", metric_settings(good)) == {"sigma": 0.4}


@pytest.mark.parametrize(("kernels", "gpus"), [({}, 0), ({"backend": "torch"}, 0), ({"backend": "numpy", "device": "cuda"}, 0),
                                               ({"backend": "torch", "device": "cuda"}, 1),
                                               ({"backend": "torch", "device": "cuda:1"}, 1)])
def test_kernel_jobs_ask_for_a_gpu_only_for_torch_on_cuda(kernels, gpus):
    assert kernel_gpus(validate_config({**copy.deepcopy(GOOD), "kernels": kernels})) == gpus


def test_bad_kernel_search_options_name_the_allowed_values():
    assert "allowed values: ['exact', 'approximate', 'auto']" in bad(lambda c: c.update(kernels={"neighbours": "fast"}))
    assert "config.kernels.device" in bad(lambda c: c.update(kernels={"device": "gpu"}))


def test_an_empty_model_list_is_an_error_not_all_models():
    cfg = {"datasets": {"d": {"source": "digits", "models": []}},
           "models": {"a": {"source": "timm", "name": "resnet18", "modality": "vision", "objective": "random"}}}
    with pytest.raises(ConfigError, match=r"config.datasets.d.models"):
        validate_config(cfg)


def test_every_documented_onnx_option_is_accepted(tmp_path):
    """The example entry of convergence.models.onnx_source's docstring validates as written."""
    import re

    from convergence.models import onnx_source

    example = re.search(r"Config entry \(``source: onnx``\)::\n\n(.*?)\n\n", onnx_source.__doc__, re.S).group(1)
    entry = yaml.safe_load(example)["my_model"]
    (tmp_path / "net.onnx").write_bytes(b"")
    entry.update(path=str(tmp_path / "net.onnx"), objective="supervised")
    cfg = {"datasets": {"d": {"source": "digits"}}, "models": {"my_model": entry}}
    validate_config(cfg)
    for variant in ({"feature_layout": {"t": "NHWC"}}, {"layers": {"pool": "/ReduceMean_output_0"}},
                    {"token_pooling": "first"}):
        validate_config({**cfg, "models": {"my_model": {**entry, **variant}}})
    with pytest.raises(ConfigError, match="token_pooling"):
        validate_config({**cfg, "models": {"my_model": {**entry, "token_pooling": "max"}}})


def test_background_accepts_a_colour_name_or_rgb():
    base = {"models": {"a": {"source": "timm", "name": "resnet18", "modality": "vision", "objective": "random"}}}
    for bg in ("white", "#808080", [0, 0, 0]):
        validate_config({**base, "datasets": {"d": {"source": "digits", "background": bg}}})
    with pytest.raises(ConfigError, match="background"):
        validate_config({**base, "datasets": {"d": {"source": "digits", "background": [0, 0]}}})
def test_pooling_must_fit_the_modality():
    msg = bad(lambda c: c["models"]["cnn"].update(pooling="last"))
    assert "config.models.cnn.pooling" in msg and "text models only" in msg
    msg = bad(lambda c: c["models"]["text"].update(pooling="cls"))
    assert "config.models.text.pooling" in msg and "auto (= mean), mean, last" in msg
    msg = bad(lambda c: c["models"]["text"].update(pooling="first"))
    assert "'first' is not allowed" in msg and "'last'" in msg
    assert validate_config({**GOOD, "models": {**GOOD["models"], "text": {**TINY_BERT, "pooling": "last"}}})


def test_new_dataset_sources_and_their_captions():
    from convergence.config import dataset_has_captions, is_causal_lm

    assert dataset_has_captions({"source": "tuxpaint"})
    assert not dataset_has_captions({"source": "openclipart"})
    assert dataset_has_captions({"source": "openclipart", "captioned_only": True})
    msg = bad(lambda c: c["datasets"]["emo"].update(captioned_only=True))
    assert "config.datasets.emo" in msg and "'openclipart' only" in msg
    msg = bad(lambda c: c["datasets"].update(oc={"source": "openclipart", "captioned_only": True, "captions": False}))
    assert "captioned_only: true needs captions" in msg
    msg = bad(lambda c: c["datasets"].update(tp={"source": "tuxpaint", "models": ["text"]}) or c["datasets"].update(
        oc={"source": "openclipart", "models": ["text"]}))
    assert "config.datasets.oc" in msg and "no captions" in msg
    assert is_causal_lm({"source": "packaged", "name": "qwen25_coder_05b"})
    assert is_causal_lm({"source": "hf", "kind": "causal_lm"}) and not is_causal_lm({"source": "hf"})
    assert not is_causal_lm({"source": "packaged", "name": "all_minilm_l6"})


def test_competence_text_must_exist(tmp_path):
    from convergence.config import competence_text_path

    msg = bad(lambda c: c.update(competence={"text": "no/such/text.txt"}))
    assert "config.competence.text" in msg and "does not exist" in msg
    builtin = competence_text_path(validate_config(GOOD))
    assert builtin.endswith("texts/CC0-1.0.txt") and open(builtin).read().startswith("Creative Commons Legal Code")
    text = tmp_path / "t.txt"
    text.write_text("some text")
    assert competence_text_path(validate_config({**GOOD, "competence": {"text": str(text)}})) == str(text)


def test_open_clip_and_module_entries():
    clip = {"source": "open_clip", "name": "ViT-B-32", "pretrained": "openai", "tower": "image", "modality": "vision",
            "objective": "image-text"}
    assert validate_config({**GOOD, "models": {**GOOD["models"], "clip": clip}})
    msg = bad(lambda c: c["models"].update(clip={**clip, "tower": "text"}))
    assert "config.models.clip" in msg and "tower 'text' is modality 'language'" in msg
    msg = bad(lambda c: c["models"].update(clip={k: v for k, v in clip.items() if k != "tower"}))
    assert "'tower' is a required property" in msg
    msg = bad(lambda c: c["models"]["cnn"].update(pretrained="openai"))
    assert "config.models.cnn.pretrained" in msg and "'open_clip' only" in msg
    net = {"source": "module", "factory": "pkg.mod:build", "layers": {"a": "body.0"}, "modality": "vision",
           "objective": "random"}
    assert validate_config({**GOOD, "models": {**GOOD["models"], "net": net}})
    msg = bad(lambda c: c["models"].update(net={**net, "factory": "build"}))
    assert "config.models.net.factory" in msg


def test_single_layer_packaged_model_has_no_blocks_and_no_layer_by_layer_analysis():
    from convergence.granularity import layers_models

    sscd = {"source": "packaged", "name": "sscd", "modality": "vision", "objective": "self-supervised"}
    msg = bad(lambda c: c["models"].update(sscd={**sscd, "granularity": "blocks"}))
    assert "config.models.sscd.granularity" in msg and "one layer" in msg and "stages" in msg
    cfg = validate_config({**GOOD, "models": {**GOOD["models"], "sscd": sscd}})
    assert "sscd" in models_for(cfg, "dig")  # it is extracted and compared everywhere else
    assert layers_models(cfg, "dig") == ["cnn"]


# --------------------------------------------------- values that passed the schema and crashed inside a job


@pytest.mark.parametrize("where, value", [
    (("kernels", "k"), 3.0), (("models", "cnn", "batch_size"), 8.0), (("datasets", "emo", "limit"), 10.0),
    (("alignment", "n_permutations"), 5.0), (("consistency", "n_permutations"), 5.0), (("kernels", "k"), True),
])
def test_a_float_or_bool_where_an_integer_is_required_is_refused(where, value):
    def mutate(c):
        node = c
        for key in where[:-1]:
            node = node.setdefault(key, {})
        node[where[-1]] = value

    msg = bad(mutate)
    assert f"config.{'.'.join(where)}: {value!r} is not allowed; an integer is required" in msg
    if isinstance(value, float):
        assert f"write {int(value)}, not {value!r}" in msg


def test_negative_seeds_and_huge_draw_counts_are_refused_by_name():
    msg = bad(lambda c: c.update(alignment={"seed": -1}))
    assert msg == "config.alignment.seed: -1 is out of range; allowed: >= 0 (random seeds are non-negative)"
    msg = bad(lambda c: c["datasets"]["emo"].update(seed=-3))
    assert "config.datasets.emo.seed: -3 is out of range" in msg
    msg = bad(lambda c: c.update(taxonomy={"seeds": [0, -2]}))
    assert "config.taxonomy.seeds[1]: -2 is out of range" in msg
    msg = bad(lambda c: c.update(alignment={"n_permutations": 10**12}))
    assert "config.alignment.n_permutations: 1000000000000 is out of range; allowed: >= 0 and <= 100000" in msg
    assert "held in memory" in msg
    msg = bad(lambda c: c.update(layers={"n_bootstrap": 10**7}))
    assert "config.layers.n_bootstrap" in msg and "<= 100000" in msg
    validate_config({**GOOD, "alignment": {"seed": 0, "n_permutations": 100_000}})


def _images(root, names):
    from PIL import Image

    for name in names:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (8, 8), "red").save(root / name)


def test_k_above_a_counted_csv_or_image_folder_fails_before_any_extraction(tmp_path):
    _images(tmp_path / "folder", [f"c{i % 2}/{i}.png" for i in range(6)])
    _images(tmp_path, ["a.png"])
    (tmp_path / "s.csv").write_text("path\n" + "a.png\n" * 4 + "\n")  # a blank line is no row
    for name, spec, n in (("folder", {"source": "image_folder", "path": str(tmp_path / "folder")}, 6),
                          ("table", {"source": "csv", "path": str(tmp_path / "s.csv")}, 4)):
        cfg = {"datasets": {name: spec}, "models": {"cnn": dict(TINY_CNN), "cnn2": dict(TINY_CNN)},
               "competence": {"k": 1}}
        msg = bad(lambda c: c.update(cfg))
        assert f"config.kernels.k: k=10 neighbours need more than k stimuli, but dataset {name!r} has at most {n}" in msg
        validate_config({**cfg, "kernels": {"k": n - 1}})
        # variations render every image n times: the bound grows with them
        validate_config({**cfg, "datasets": {name: {**spec, "variations": {"n": 3}}}, "kernels": {"k": 3 * n - 1}})


def test_competence_k_above_a_labelled_datasets_size_fails_before_any_extraction(tmp_path):
    _images(tmp_path / "folder", [f"c{i % 2}/{i}.png" for i in range(6)])
    cfg = {"datasets": {"f": {"source": "image_folder", "path": str(tmp_path / "folder")}},
           "models": {"cnn": dict(TINY_CNN)}, "kernels": {"k": 3}}
    msg = bad(lambda c: c.update(cfg))
    assert "config.competence.k: the k-NN classifier's k=10 neighbours need more than k stimuli" in msg
    assert "'f' has at most 6; allowed: 1 <= k <= 5" in msg
    validate_config({**cfg, "competence": {"k": 5}})


def test_a_packaged_model_with_the_wrong_modality_is_named():
    msg = bad(lambda c: c["models"].update(
        lm={"source": "packaged", "name": "qwen25_coder_05b", "modality": "vision", "objective": "language"}))
    assert msg == ("config.models.lm.modality: packaged model 'qwen25_coder_05b' is a language model, not "
                   "'vision'; allowed: 'language'")


def test_unknown_layer_names_are_caught_where_the_config_tells_the_layers():
    nsfw = {"source": "packaged", "name": "open_nsfw", "modality": "vision", "objective": "supervised"}
    msg = bad(lambda c: c["models"].update(n={**nsfw, "layers": ["layer2", "layer9"]}))
    assert "config.models.n.layers: packaged model 'open_nsfw' has no layer 'layer9'; its layers:" in msg
    # a graph tensor name selects its layer, as the loader allows
    validate_config({**GOOD, "models": {**GOOD["models"], "n": {**nsfw, "layers": ["/Relu_21_output_0"]}},
                     "alignment": {"named_layers": {"n": "layer2"}}})
    msg = bad(lambda c: c["models"].update(n={**nsfw, "layers": [7]}))
    assert "config.models.n.layers: layer index 7 is out of range" in msg
    # a layer an analysis reads must be among the stored ones
    msg = bad(lambda c: (c["models"].update(n={**nsfw, "layers": ["layer2", "layer4"]}),
                         c.update(alignment={"named_layers": {"n": "layer3"}})))
    assert msg == ("config.alignment.named_layers: model 'n' stores no layer 'layer3'; its stored layers: "
                   "['layer2', 'layer4']")
    msg = bad(lambda c: (c["models"].update(n={**nsfw, "granularity": "blocks"}),
                         c.update(consistency={"layers": {"n": "layer1"}})))
    assert "config.consistency.layers: model 'n' stores no layer 'layer1'" in msg and "block_16" in msg
    msg = bad(lambda c: (c["models"]["cnn"].update(layers=["stage_1", "stage_3"]),
                         c.update(dispersion={"layers": {"cnn": "stage_2"}})))
    assert "config.dispersion.layers: model 'cnn' stores no layer 'stage_2'" in msg
    cfg = copy.deepcopy(GOOD)
    cfg["models"]["n"] = {**nsfw, "layers": ["layer2", "layer4"]}
    validate_config({**cfg, "alignment": {"named_layers": {"n": "layer4", "cnn": "anything"}}})  # cnn: not knowable
    # an ONNX list of tensor names is stored under sanitised names: not checked here; a mapping is
    onnx = {"source": "onnx", "path": str(ROOT / "config.yaml"), "modality": "vision", "objective": "supervised"}
    validate_config({**cfg, "models": {**cfg["models"], "o": {**onnx, "layers": ["/a/Relu:0"]}},
                     "alignment": {"named_layers": {"o": "a_Relu_0"}}})
    msg = bad(lambda c: (c["models"].update(o={**onnx, "layers": {"relu": "/a/Relu:0"}}),
                         c.update(alignment={"named_layers": {"o": "a_Relu_0"}})))
    assert "model 'o' stores no layer 'a_Relu_0'; its stored layers: ['relu']" in msg


def test_variations_and_per_class_only_where_the_source_can_have_them(tmp_path):
    msg = bad(lambda c: c["datasets"]["emo"].update(variations={"n": 2}))
    assert msg.startswith("config.datasets.emo.variations: source 'emoji' cannot be rendered with variations")
    assert "['tuxpaint', 'image_folder', 'csv']" in msg
    msg = bad(lambda c: c["datasets"]["emo"].update(per_class=2))
    assert "config.datasets.emo.per_class: a per-class subsample needs labels" in msg and "use limit" in msg
    _images(tmp_path / "flat", [f"{i}.png" for i in range(30)])
    msg = bad(lambda c: c["datasets"].update(f={"source": "image_folder", "path": str(tmp_path / "flat"), "per_class": 2}))
    assert "config.datasets.f.per_class" in msg and "class sub-folders" in msg
    _images(tmp_path, ["a.png"])
    (tmp_path / "s.csv").write_text("path\n" + "a.png\n" * 30)
    msg = bad(lambda c: c["datasets"].update(t={"source": "csv", "path": str(tmp_path / "s.csv"), "per_class": 2,
                                                    "models": ["cnn"]}))
    assert "config.datasets.t.per_class" in msg and "'label' column" in msg


def test_a_bad_background_is_caught_at_validation():
    msg = bad(lambda c: c["datasets"]["emo"].update(background="whte"))
    assert msg.startswith("config.datasets.emo.background: background 'whte' is not a colour; allowed:")
    validate_config({**GOOD, "datasets": {"emo": {"source": "emoji", "limit": 20, "background": "#102030"}}})


def test_a_csv_path_that_is_a_directory_or_has_no_rows(tmp_path):
    msg = bad(lambda c: c["datasets"].update(t={"source": "csv", "path": str(tmp_path)}))
    assert "is a directory, not a CSV file" in msg and "does not exist" not in msg
    (tmp_path / "s.csv").write_text("path,caption\n\n")
    msg = bad(lambda c: c["datasets"].update(t={"source": "csv", "path": str(tmp_path / "s.csv")}))
    assert msg.startswith("config.datasets.t.path:") and "has a header but no rows" in msg
    (tmp_path / "a.png").write_bytes(b"")
    msg = bad(lambda c: c["datasets"].update(t={"source": "image_folder", "path": str(tmp_path / "a.png")}))
    assert "is a file, not a folder of images" in msg


def test_sscd_layer_names_are_checked_before_jobs():
    sscd = {"source": "packaged", "name": "sscd", "modality": "vision", "objective": "self-supervised"}
    msg = bad(lambda c: c["models"].update(sscd={**sscd, "layers": ["layer4"]}))
    assert "config.models.sscd.layers" in msg and "['embedding']" in msg
    validate_config({**GOOD, "models": {**GOOD["models"], "sscd": {**sscd, "layers": ["embedding"]}}})
