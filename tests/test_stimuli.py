"""Stimulus sets: every source gives unique ids, uint8 RGB images, and captions/labels where it has them."""
import numpy as np
import pytest

from convergence.stimuli import StimulusError, build_stimuli, subsample_indices


def check_common(ds):
    ids = ds["stimulus"].values.tolist()
    assert len(ids) == len(set(ids)) == ds.sizes["stimulus"]
    assert ds["image"].dtype == np.uint8 and ds["image"].dims == ("stimulus", "height", "width", "channel")
    assert ds.sizes["channel"] == 3


def test_emoji_has_captions_and_codepoint_ids(emoji_stimuli):
    ds = emoji_stimuli
    check_common(ds)
    assert ds.sizes["stimulus"] == 24 and ds.attrs["has_captions"]
    for sid, caption in zip(ds["stimulus"].values, ds["caption"].values):
        assert sid.startswith("U+")
        ch = chr(int(sid[2:], 16))
        import unicodedata

        assert caption == unicodedata.name(ch).lower()
    # glyphs were drawn: not every image is blank white
    assert (ds["image"].values < 250).any(axis=(1, 2, 3)).all()


def test_emoji_full_set_is_large():
    from convergence.stimuli import emoji_codepoints

    assert len(emoji_codepoints()) > 1000


def test_fashion_mnist_per_class_subsample_is_seeded():
    a = build_stimuli("fm", {"source": "fashion_mnist", "per_class": 4, "seed": 1})
    b = build_stimuli("fm", {"source": "fashion_mnist", "per_class": 4, "seed": 1})
    c = build_stimuli("fm", {"source": "fashion_mnist", "per_class": 4, "seed": 2})
    check_common(a)
    assert a.sizes["stimulus"] == 40 and len(a.attrs["classes"]) == 10
    assert "ankle boot" in a.attrs["classes"]
    assert (a["stimulus"].values == b["stimulus"].values).all()
    assert (a["stimulus"].values != c["stimulus"].values).any()
    labels, counts = np.unique(a["label"].values.astype(str), return_counts=True)
    assert (counts == 4).all()


def test_digits(digits_stimuli):
    check_common(digits_stimuli)
    assert digits_stimuli.sizes["stimulus"] == 30
    assert sorted(digits_stimuli.attrs["classes"]) == [str(i) for i in range(10)]
    assert "caption" not in digits_stimuli


def _write_images(folder, names, seed=0):
    from PIL import Image

    rng = np.random.default_rng(seed)
    for name in names:
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 255, (20, 30, 3), dtype=np.uint8)).save(path)


def test_image_folder_with_classes(tmp_path):
    _write_images(tmp_path, ["cat/a.png", "cat/b.png", "dog/c.jpg"])
    ds = build_stimuli("f", {"source": "image_folder", "path": str(tmp_path), "image_size": 16})
    check_common(ds)
    assert ds["stimulus"].values.tolist() == ["cat/a", "cat/b", "dog/c"]
    assert ds["label"].values.tolist() == ["cat", "cat", "dog"]
    assert ds.sizes["height"] == ds.sizes["width"] == 16


def test_image_folder_flat_has_no_labels(tmp_path):
    _write_images(tmp_path, ["a.png", "b.png"])
    ds = build_stimuli("f", {"source": "image_folder", "path": str(tmp_path), "image_size": 16})
    assert "label" not in ds and ds.sizes["stimulus"] == 2


def test_image_folder_mixed_layout_rejected(tmp_path):
    _write_images(tmp_path, ["a.png", "cls/b.png"])
    with pytest.raises(StimulusError, match="mixes"):
        build_stimuli("f", {"source": "image_folder", "path": str(tmp_path)})


def test_csv_source(tmp_path):
    _write_images(tmp_path / "img", ["x.png", "y.png"])
    (tmp_path / "s.csv").write_text("path,caption,label\nimg/x.png,a red thing,red\nimg/y.png,a blue thing,blue\n")
    ds = build_stimuli("c", {"source": "csv", "path": str(tmp_path / "s.csv"), "image_size": 16})
    check_common(ds)
    assert ds["caption"].values.tolist() == ["a red thing", "a blue thing"]
    assert ds["label"].values.tolist() == ["red", "blue"]


def test_csv_missing_image_is_one_clear_error(tmp_path):
    (tmp_path / "s.csv").write_text("path,caption\nnope.png,x\n")
    with pytest.raises(StimulusError, match="do not exist"):
        build_stimuli("c", {"source": "csv", "path": str(tmp_path / "s.csv")})


def test_huggingface_saved_to_disk(tmp_path):
    datasets = pytest.importorskip("datasets")
    from PIL import Image

    rng = np.random.default_rng(0)
    imgs = [Image.fromarray(rng.integers(0, 255, (12, 12, 3), dtype=np.uint8)) for _ in range(3)]
    data = datasets.Dataset.from_dict(
        {"image": imgs, "caption": [["first", "alt"], ["second"], ["third"]], "key": ["k1", "k2", "k3"]},
        features=datasets.Features(
            {"image": datasets.Image(), "caption": datasets.Sequence(datasets.Value("string")), "key": datasets.Value("string")}
        ),
    )
    data.save_to_disk(str(tmp_path / "hf"))
    ds = build_stimuli(
        "h",
        {"source": "huggingface", "path": str(tmp_path / "hf"), "caption_column": "caption", "id_column": "key", "image_size": 8},
    )
    check_common(ds)
    assert ds["stimulus"].values.tolist() == ["k1", "k2", "k3"]
    assert ds["caption"].values.tolist() == ["first", "second", "third"]  # first caption per image


def test_limit_subsample():
    idx = subsample_indices(100, None, per_class=None, limit=10, seed=0)
    assert len(idx) == 10 and (np.diff(idx) > 0).all()
    with pytest.raises(StimulusError, match="labelled"):
        subsample_indices(10, None, per_class=2, limit=None, seed=0)


def test_unknown_source():
    with pytest.raises(StimulusError, match="allowed sources"):
        build_stimuli("x", {"source": "mnist"})
