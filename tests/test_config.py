"""A bad config fails at once with one message naming the entry and the allowed values."""
import copy

import pytest
import yaml

from convergence.config import ConfigError, models_for, validate_config

from conftest import ROOT, TINY_BERT, TINY_CNN

GOOD = {
    "datasets": {"emo": {"source": "emoji", "limit": 10}, "dig": {"source": "digits"}},
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
    assert cfg["alignment"]["k"] == 10
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
