"""Stimulus sets: every source gives unique ids, uint8 RGB images, and captions/labels where it has them."""
from pathlib import Path

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


# ------------------------------------------------------------------------------- images as people have them


def _one(tmp_path, image, name="img.png", **spec):
    """Build a one-image flat image_folder from ``image`` (saved with Pillow) at its own size."""
    folder = tmp_path / "imgs"
    folder.mkdir(exist_ok=True)
    image.save(folder / name)
    ds = build_stimuli("f", {"source": "image_folder", "path": str(folder), "image_size": image.size[0], **spec})
    check_common(ds)
    return ds["image"].values[0]


def _half_transparent_rgba(size=8):
    """Left half opaque blue, right half fully transparent red (a colour that must never show)."""
    rgba = np.zeros((size, size, 4), np.uint8)
    rgba[:, : size // 2] = (0, 0, 255, 255)
    rgba[:, size // 2 :] = (255, 0, 0, 0)
    return rgba


@pytest.mark.parametrize(("background", "expected"), [(None, (255, 255, 255)), ("black", (0, 0, 0)),
                                                      ("#808080", (128, 128, 128)), ([10, 20, 30], (10, 20, 30))])
def test_rgba_is_composited_on_the_background(tmp_path, background, expected):
    from PIL import Image

    spec = {} if background is None else {"background": background}
    out = _one(tmp_path, Image.fromarray(_half_transparent_rgba(), "RGBA"), **spec)
    assert (out[:, :4] == (0, 0, 255)).all()
    assert (out[:, 4:] == expected).all()


def test_half_transparent_pixels_blend_with_the_background(tmp_path):
    from PIL import Image

    rgba = np.zeros((8, 8, 4), np.uint8)
    rgba[...] = (0, 0, 0, 128)  # half-transparent black on white -> mid grey
    out = _one(tmp_path, Image.fromarray(rgba, "RGBA"))
    assert np.all(np.abs(out.astype(int) - 127) <= 1)


def test_la_and_palette_transparency_are_composited(tmp_path):
    from PIL import Image

    la = np.zeros((8, 8, 2), np.uint8)
    la[:, :4] = (40, 255)
    la[:, 4:] = (0, 0)  # transparent black
    out = _one(tmp_path, Image.fromarray(la, "LA"), name="la.png")
    assert (out[:, :4] == 40).all() and (out[:, 4:] == 255).all()

    pal = Image.fromarray(np.repeat(np.array([[0, 0, 0, 0, 1, 1, 1, 1]], np.uint8), 8, axis=0), "P")
    pal.putpalette([255, 0, 0, 0, 200, 0] + [0] * 762)
    pal.info["transparency"] = 0  # palette entry 0 (red) is transparent
    (tmp_path / "imgs" / "la.png").unlink()
    out = _one(tmp_path, pal, name="p.png", background="black")
    assert (out[:, :4] == 0).all() and (out[:, 4:] == (0, 200, 0)).all()


def test_16_bit_greyscale_is_scaled_not_saturated(tmp_path):
    from PIL import Image

    values = np.linspace(0, 65535, 64).astype(np.uint16).reshape(8, 8)
    img = Image.fromarray(values)
    assert img.mode.startswith("I;16")
    out = _one(tmp_path, img)
    expected = np.round(values / 257.0).astype(np.uint8)
    np.testing.assert_array_equal(out[..., 0], expected)
    assert (out[..., 0] == out[..., 1]).all() and (out[..., 1] == out[..., 2]).all()
    assert len(np.unique(out)) > 32  # a gradient, not a block of 255


def test_32_bit_integer_mode_is_read_as_16_bit_range():
    from PIL import Image

    from convergence.stimuli import fit_square

    values = np.array([[0, 257, 32896, 65535]] * 4, dtype=np.int32)
    img = Image.fromarray(values, "I")
    out = np.asarray(fit_square(img, 4))
    np.testing.assert_array_equal(out[0, :, 0], [0, 1, 128, 255])


def test_greyscale_and_bilevel_images_become_equal_channels(tmp_path):
    from PIL import Image

    grey = np.arange(64, dtype=np.uint8).reshape(8, 8) * 4
    out = _one(tmp_path, Image.fromarray(grey, "L"), name="g.png")
    for c in range(3):
        np.testing.assert_array_equal(out[..., c], grey)
    (tmp_path / "imgs" / "g.png").unlink()
    out = _one(tmp_path, Image.fromarray(grey > 100).convert("1"), name="b.png")
    assert set(np.unique(out)) == {0, 255}


def test_bad_background_is_one_clear_error(tmp_path):
    from PIL import Image

    with pytest.raises(StimulusError, match=r"background.*'bluish'.*#rrggbb"):
        _one(tmp_path, Image.fromarray(_half_transparent_rgba(), "RGBA"), background="bluish")
    with pytest.raises(StimulusError, match=r"background.*\[1, 2\]"):
        _one(tmp_path, Image.fromarray(_half_transparent_rgba(), "RGBA"), background=[1, 2])


def test_decompression_bomb_names_the_file(tmp_path, monkeypatch):
    from PIL import Image

    _write_images(tmp_path, ["ok.png", "huge.png"])
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # 20 x 30 = 600 pixels > 2 x 100: a "bomb"
    with pytest.raises(StimulusError, match=r"huge\.png|ok\.png") as err:
        build_stimuli("f", {"source": "image_folder", "path": str(tmp_path), "image_size": 16})
    assert "pixel" in str(err.value)


def test_corrupt_image_names_the_file(tmp_path):
    _write_images(tmp_path, ["a.png", "b.png"])
    data = bytearray((tmp_path / "b.png").read_bytes())
    data[40:60] = b"\x00" * 20  # inside the first chunk: a CRC error (Pillow raises SyntaxError)
    (tmp_path / "b.png").write_bytes(bytes(data))
    with pytest.raises(StimulusError, match=r"b\.png"):
        build_stimuli("f", {"source": "image_folder", "path": str(tmp_path), "image_size": 16})


def test_emoji_background_is_configurable(emoji_stimuli):
    spec = {"source": "emoji", "limit": 24, "seed": 3, "image_size": 32}
    black = build_stimuli("emoji", {**spec, "background": "black"})
    corner = (slice(None), 0, 0)
    assert (emoji_stimuli["image"].values[corner] == 255).all()  # default white, as before
    assert (black["image"].values[corner] == 0).all()


# ------------------------------------------------------------------------------------------- manifests


def test_content_manifest_changes_only_with_the_files_read(tmp_path):
    import os

    from convergence.stimuli import content_manifest

    _write_images(tmp_path / "pics", ["cat/a.png", "dog/b.png"])
    spec = {"source": "image_folder", "path": "pics"}
    first = content_manifest(spec, base_dir=tmp_path)
    assert first == content_manifest(spec, base_dir=tmp_path) and first["n_files"] == 2
    (tmp_path / "pics" / "notes.txt").write_text("not an image")  # not read by the source
    assert content_manifest(spec, base_dir=tmp_path) == first
    target = tmp_path / "pics" / "cat" / "a.png"
    stat = target.stat()
    os.utime(target, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1))  # saved again
    touched = content_manifest(spec, base_dir=tmp_path)
    assert touched["sha256"] != first["sha256"] and touched["n_files"] == 2
    target.write_bytes(target.read_bytes() + b"\0")  # edited
    os.utime(target, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1))
    assert content_manifest(spec, base_dir=tmp_path)["sha256"] not in (first["sha256"], touched["sha256"])
    _write_images(tmp_path / "pics", ["dog/c.png"])  # added
    assert content_manifest(spec, base_dir=tmp_path)["n_files"] == 3


def test_csv_manifest_covers_the_images_it_names(tmp_path):
    import os

    from convergence.stimuli import content_files, content_manifest

    _write_images(tmp_path / "img", ["x.png", "y.png", "unused.png"])
    (tmp_path / "s.csv").write_text("path,caption\nimg/x.png,a\nimg/y.png,b\n")
    spec = {"source": "csv", "path": str(tmp_path / "s.csv")}
    assert [name for name, _ in content_files(spec)] == ["s.csv", "img/x.png", "img/y.png"]
    before = content_manifest(spec)
    os.utime(tmp_path / "img" / "unused.png", ns=(1, 1))
    assert content_manifest(spec) == before
    os.utime(tmp_path / "img" / "y.png", ns=(1, 1))
    assert content_manifest(spec) != before


def test_write_manifest_keeps_an_unchanged_file_untouched(tmp_path):
    import os

    from convergence.stimuli import write_manifest

    path = tmp_path / "m" / "d.json"
    assert write_manifest({"sha256": "a"}, path)
    os.utime(path, ns=(10**9, 10**9))
    assert not write_manifest({"sha256": "a"}, path)
    assert path.stat().st_mtime_ns == 10**9
    assert write_manifest({"sha256": "b"}, path) and path.stat().st_mtime_ns > 10**9
    assert [p.name for p in path.parent.iterdir()] == ["d.json"]
# -- tuxpaint (Debian tuxpaint-stamps-default) -----------------------------------------------------------------
def _stamp(root, rel, caption=None, mode="RGBA"):
    from PIL import Image

    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    if mode == "RGBA":  # a red square on a fully transparent (black-coloured) background
        im = np.zeros((40, 40, 4), np.uint8)
        im[10:30, 10:30] = (255, 0, 0, 255)
        Image.fromarray(im, "RGBA").save(path)
    else:  # a palette image whose index 0 is transparent
        im = Image.new("P", (40, 40), 0)
        im.putpalette([0, 0, 0, 0, 0, 255] + [0] * 762)
        im.paste(1, (10, 10, 30, 30))
        im.save(path, transparency=0)
    if caption is not None:
        path.with_suffix(".txt").write_text(f"{caption}\nfr.utf8=Traduction.\n")


def test_tuxpaint_captions_labels_and_white_background(tmp_path):
    _stamp(tmp_path, "animals/mammals/kangaroo.png", "A red kangaroo.")
    _stamp(tmp_path, "animals/birds/owl.png", "An owl.", mode="P")
    _stamp(tmp_path, "food/bread.png", "A loaf of bread.")
    _stamp(tmp_path, "food/mute.png")  # no caption file: left out
    _stamp(tmp_path, "symbols/letters/a.png", "The letter A.")  # symbols: left out
    ds = build_stimuli("t", {"source": "tuxpaint", "path": str(tmp_path), "image_size": 20})
    check_common(ds)
    assert ds["stimulus"].values.tolist() == ["animals/birds/owl", "animals/mammals/kangaroo", "food/bread"]
    assert ds["caption"].values.tolist() == ["An owl.", "A red kangaroo.", "A loaf of bread."]
    assert ds["label"].values.tolist() == ["animals", "animals", "food"]
    assert ds["subcategory"].values.tolist() == ["animals/birds", "animals/mammals", "food"]
    img = ds["image"].values
    assert (img[:, 0, 0] == 255).all()  # transparent corners composite to white, not black
    assert tuple(img[1, 10, 10]) == (255, 0, 0) and tuple(img[0, 10, 10]) == (0, 0, 255)
    assert ds.attrs["has_captions"] and ds.attrs["classes"] == ["animals", "food"]


def test_tuxpaint_missing_package_names_it(tmp_path):
    with pytest.raises(StimulusError, match="apt-get install tuxpaint-stamps-default"):
        build_stimuli("t", {"source": "tuxpaint", "path": str(tmp_path / "nowhere")})
    _stamp(tmp_path, "symbols/a.png", "A.")
    with pytest.raises(StimulusError, match="no captioned stamps"):
        build_stimuli("t", {"source": "tuxpaint", "path": str(tmp_path)})


def test_tuxpaint_real_package_smallest_case():
    from convergence.stimuli import TUXPAINT_DIR, tuxpaint_index

    if not TUXPAINT_DIR.is_dir():
        pytest.skip("Debian tuxpaint-stamps-default is not installed")
    rows = tuxpaint_index()
    assert 500 <= len(rows) <= 560 and not any(r["category"] == "symbols" for r in rows)
    kangaroo = [r for r in rows if r["id"].endswith("/kangaroo")]
    assert kangaroo and kangaroo[0]["caption"] == "A red kangaroo." and kangaroo[0]["subcategory"].startswith("animals/")
    ds = build_stimuli("t", {"source": "tuxpaint", "limit": 6, "seed": 0, "image_size": 32})
    check_common(ds)
    assert ds.sizes["stimulus"] == 6 and set(ds["label"].values) <= {r["category"] for r in rows}
    assert (ds["image"].values[:, 0, 0] == 255).all()  # stamps have transparent corners


# -- openclipart (Debian openclipart-png + openclipart-svg) ----------------------------------------------------
def _svg(root, rel, title):
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        '<svg xmlns:dc="http://purl.org/dc/elements/1.1/" xmlns:cc="http://creativecommons.org/ns#"><metadata>'
        f"<cc:Work><dc:format>image/svg+xml</dc:format><dc:publisher><cc:Agent><dc:title>Open Clip Art Library"
        f"</dc:title></cc:Agent></dc:publisher><dc:title>{title}</dc:title></cc:Work></metadata></svg>"
    )


def test_openclipart_caption_filter():
    from convergence.stimuli import openclipart_caption

    assert openclipart_caption("Labrador Retriever (Black)") == "Labrador Retriever (Black)"
    for noise in ("apple", "crawfish1 bw", "my_drawing", "icon.svg", "L&Atilde;&copy;zard", "Löwe im Gras", "",
                  None, " ".join(["word"] * 13)):
        assert openclipart_caption(noise) is None, noise
    assert openclipart_caption("Golf flag in hole", shared_by=4) is None  # a collection's name


def _bomb_png(path, side=20_000):
    """A PNG whose header declares side x side pixels (over twice Pillow's limit); its data is never read."""
    import struct
    import zlib

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b""))


def test_openclipart_symlinks_labels_captions_and_bombs(tmp_path):
    png, svg = tmp_path / "png", tmp_path / "svg"
    _stamp(png, "animals/mammals/dog_a.png", mode="P")
    _stamp(png, "food/fruit/apple_b.png")
    _bomb_png(png / "food/fruit/huge_c.png")
    (png / "animals/pet").mkdir()
    (png / "animals/pet/dog_link.png").symlink_to(png / "animals/mammals/dog_a.png")  # the same image twice
    _svg(svg, "animals/mammals/dog_a.svg", "A sleeping dog")
    _svg(svg, "food/fruit/apple_b.svg", "apple")  # one word: no caption
    spec = {"source": "openclipart", "path": str(png), "svg_path": str(svg), "image_size": 16}
    with pytest.warns(UserWarning, match=r"skipped 1 image.*huge_c\.png"):
        ds = build_stimuli("o", spec)
    check_common(ds)
    assert ds["stimulus"].values.tolist() == ["animals/mammals/dog_a", "food/fruit/apple_b"]
    assert ds["label"].values.tolist() == ["animals", "food"]
    assert ds["subcategory"].values.tolist() == ["animals/mammals", "food/fruit"]
    assert "caption" not in ds and ds.attrs["with_caption"] == 1 and ds.attrs["distinct_images"] == 2
    assert (ds["image"].values[:, 0, 0] == 255).all()
    with pytest.warns(UserWarning, match="huge_c"):
        only = build_stimuli("o", {**spec, "captioned_only": True})
    assert only["caption"].values.tolist() == ["A sleeping dog"] and only.attrs["has_captions"]


def test_openclipart_real_package_smallest_case():
    from convergence.stimuli import OPENCLIPART_PNG, OPENCLIPART_SVG

    if not (OPENCLIPART_PNG.is_dir() and OPENCLIPART_SVG.is_dir()):
        pytest.skip("Debian openclipart-png / openclipart-svg are not installed")
    spec = {"source": "openclipart", "limit": 8, "seed": 0, "image_size": 32, "captioned_only": True}
    with pytest.warns(UserWarning, match=r"skipped 3 image\(s\).*stop_sign_miguel"):
        ds = build_stimuli("o", spec)
    check_common(ds)
    assert ds.sizes["stimulus"] == 8 and ds.attrs["distinct_images"] == 6897
    assert 1000 < ds.attrs["with_caption"] < 3000 and all(len(c.split()) >= 2 for c in ds["caption"].values)
    with pytest.warns(UserWarning):
        again = build_stimuli("o", spec)
    assert again["stimulus"].values.tolist() == ds["stimulus"].values.tolist()  # seeded


def test_clip_art_manifests_follow_their_files(tmp_path):
    """The stimuli rule reruns when a stamp or its caption changes (content manifest), not otherwise."""
    from convergence.stimuli import content_manifest

    _stamp(tmp_path, "animals/mammals/kangaroo.png", "A red kangaroo.")
    _stamp(tmp_path, "symbols/a.png", "The letter A.")
    spec = {"source": "tuxpaint", "path": str(tmp_path)}
    first = content_manifest(spec)
    assert first["n_files"] == 2  # the png and its txt; symbols are not read
    assert content_manifest(spec) == first
    (tmp_path / "animals/mammals/kangaroo.txt").write_text("A grey kangaroo.\n")
    assert content_manifest(spec)["sha256"] != first["sha256"]
    oc = {"source": "openclipart", "path": str(tmp_path / "png"), "svg_path": str(tmp_path / "svg")}
    _stamp(tmp_path / "png", "food/apple.png")
    _svg(tmp_path / "svg", "food/apple.svg", "A green apple")
    assert content_manifest(oc)["n_files"] == 2
    assert content_manifest({**oc, "captions": False})["n_files"] == 1


# ------------------------------------------------------------------------------- index first, decode the kept


def _hf_saved(tmp_path, n=12):
    datasets = pytest.importorskip("datasets")
    from PIL import Image

    rng = np.random.default_rng(0)
    data = datasets.Dataset.from_dict(
        {"image": [Image.fromarray(rng.integers(0, 255, (12, 12, 3), dtype=np.uint8)) for _ in range(n)],
         "label": [f"c{i % 3}" for i in range(n)], "caption": [f"image {i}" for i in range(n)]},
        features=datasets.Features({"image": datasets.Image(), "label": datasets.Value("string"),
                                    "caption": datasets.Value("string")}),
    )
    data.save_to_disk(str(tmp_path / "hf"))
    return {"source": "huggingface", "path": str(tmp_path / "hf"), "label_column": "label", "caption_column": "caption",
            "image_size": 8}


def _source_spec(source, tmp_path):
    if source == "image_folder":
        _write_images(tmp_path / "f", [f"{c}/{i}.png" for c in "abc" for i in range(4)])
        return {"source": "image_folder", "path": str(tmp_path / "f"), "image_size": 8}
    if source == "csv":
        _write_images(tmp_path / "img", [f"{i}.png" for i in range(12)])
        (tmp_path / "s.csv").write_text("path,label\n" + "".join(f"img/{i}.png,c{i % 3}\n" for i in range(12)))
        return {"source": "csv", "path": str(tmp_path / "s.csv"), "image_size": 8}
    if source == "huggingface":
        return _hf_saved(tmp_path)
    if source == "tuxpaint":
        for c in ("animals", "food", "town"):
            for i in range(4):
                _stamp(tmp_path / "tux", f"{c}/sub/s{i}.png", f"Stamp {i}.")
        return {"source": "tuxpaint", "path": str(tmp_path / "tux"), "image_size": 8}
    if source == "openclipart":
        for c in ("animals", "food", "town"):
            for i in range(4):
                _stamp(tmp_path / "png", f"{c}/s{i}.png")
        return {"source": "openclipart", "path": str(tmp_path / "png"), "captions": False, "image_size": 8}
    if source == "fashion_mnist":
        from convergence.stimuli import FASHION_MNIST_DIR

        if not FASHION_MNIST_DIR.is_dir():
            pytest.skip("Debian dataset-fashion-mnist is not installed")
        return {"source": "fashion_mnist", "split": "test"}
    return {"source": source, "image_size": 16}


@pytest.mark.parametrize("source", ["emoji", "fashion_mnist", "digits", "image_folder", "csv", "huggingface",
                                    "tuxpaint", "openclipart"])
def test_subsampling_decodes_only_the_kept_images(source, tmp_path, monkeypatch):
    """Every source lists first and decodes only what the subsample keeps: count the rows its decoder is given
    and, one level down, the images actually decoded (files opened for pixels, glyphs drawn, IDX rows read,
    Arrow rows decoded)."""
    from convergence.stimuli import SOURCES, build_stimuli, plan
    from convergence.stimuli import emoji as emoji_mod
    from convergence.stimuli import fashion_mnist as fm_mod
    from convergence.stimuli import images as images_mod

    spec = {**_source_spec(source, tmp_path), "per_class": 2, "seed": 1}
    if source == "emoji":  # unlabelled: limit
        spec = {**_source_spec(source, tmp_path), "limit": 5, "seed": 1}
    given, decoded = [], []
    real_decoder = SOURCES[source].decoder

    def counting_decoder(self, s):
        decode = real_decoder(s)
        return lambda refs: (given.extend(refs), decode(refs))[1]

    monkeypatch.setattr(type(SOURCES[source]), "decoder", counting_decoder)
    real_file, real_render, real_read = images_mod.decode_file, emoji_mod._render, fm_mod._IdxRows.read
    monkeypatch.setattr(images_mod, "decode_file", lambda p, *a: (decoded.append(p), real_file(p, *a))[1])
    monkeypatch.setattr(emoji_mod, "_render", lambda cp, *a: (decoded.append(cp), real_render(cp, *a))[1])
    monkeypatch.setattr(fm_mod._IdxRows, "read", lambda self, row: (decoded.append(row), real_read(self, row))[1])
    if source == "huggingface":
        import datasets

        real_hf = datasets.Image.decode_example
        monkeypatch.setattr(datasets.Image, "decode_example",
                            lambda self, value, **kw: (decoded.append(1), real_hf(self, value, **kw))[1])
    p = plan("s", spec)
    assert given == [] and decoded == []  # listing decoded nothing
    n_listed = len(p.listing.ids)
    ds = build_stimuli("s", spec)
    n = ds.sizes["stimulus"]
    assert n < n_listed and n == (5 if source == "emoji" else 2 * len(set(p.listing.labels)))
    assert len(given) == n
    assert len(decoded) == (0 if source == "digits" else n)  # digits: 1,797 x 64 values in scikit-learn's array
    assert [str(p.listing.ids[p.listing.refs.index(r)]) for r in given] == ds["stimulus"].values.tolist()


def test_variations_render_only_the_kept_stamps(tmp_path, monkeypatch):
    from convergence.stimuli import build_stimuli
    from convergence.stimuli import variations as var_mod

    spec = {**_source_spec("tuxpaint", tmp_path), "limit": 3, "seed": 0, "variations": {"n": 2}}
    opened = []
    real = var_mod.render_variation
    monkeypatch.setattr(var_mod, "render_variation", lambda im, *a: (opened.append(im.filename), real(im, *a))[1])
    ds = build_stimuli("t", spec)
    assert ds.sizes["stimulus"] == 6 and len(opened) == 6 and len(set(opened)) == 3


@pytest.mark.parametrize("chunk", [1, 2, 5, 1024])
def test_store_written_in_chunks_equals_the_one_shot_set(tmp_path, chunk):
    """write_stimuli appends chunk after chunk: the store holds exactly build_stimuli's Dataset (ids, order,
    pixels, labels, attrs), variations included (rows of one stamp split over two chunks)."""
    from convergence.stimuli import build_stimuli, write_stimuli
    from convergence.store import open_store

    spec = {**_source_spec("tuxpaint", tmp_path), "limit": 5, "seed": 0, "variations": {"n": 3}}
    whole = build_stimuli("t", spec)
    write_stimuli("t", spec, tmp_path / "s.zarr", chunk=chunk)
    back = open_store(tmp_path / "s.zarr", load=True)
    assert sorted(back.variables) == sorted(whole.variables)
    for v in whole.variables:
        assert back[v].dims == whole[v].dims and back[v].dtype == whole[v].dtype, v
        np.testing.assert_array_equal(back[v].values, whole[v].values)
    assert back.attrs == whole.attrs
    assert back["image"].encoding["chunks"][0] == min(chunk, 15)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no work directory left


@pytest.mark.parametrize("repair", ["fixed", "excluded"])
def test_a_corrupt_image_deep_in_the_set_fails_named_and_the_rerun_resumes(tmp_path, monkeypatch, repair):
    """The job fails at the unreadable file with its name, no store appears, and after the file is fixed
    (or removed) the rerun keeps the complete chunks before it and decodes only from there on."""
    from convergence.stimuli import build_stimuli, write_stimuli
    from convergence.stimuli import images as images_mod
    from convergence.store import open_store

    spec = _source_spec("image_folder", tmp_path)  # 12 files a/0 ... c/3, chunks of 4
    bad = tmp_path / "f" / "c" / "1.png"  # row 9: in the third chunk
    good = bad.read_bytes()
    data = bytearray(good)
    data[40:60] = b"\x00" * 20
    bad.write_bytes(bytes(data))
    target = tmp_path / "s.zarr"
    with pytest.raises(StimulusError, match=r"c/1\.png"):
        write_stimuli("f", spec, target, chunk=4)
    assert not target.exists()
    assert len([d for d in tmp_path.iterdir() if d.name.startswith(".s.zarr.partial-")]) == 1
    if repair == "fixed":
        bad.write_bytes(good)
    else:
        bad.unlink()
    decoded = []
    real = images_mod.decode_file
    monkeypatch.setattr(images_mod, "decode_file", lambda path, *a: (decoded.append(path), real(path, *a))[1])
    write_stimuli("f", spec, target, chunk=4)
    assert len(decoded) == (4 if repair == "fixed" else 3)  # the third chunk only
    monkeypatch.undo()
    whole = build_stimuli("f", spec)
    back = open_store(target, load=True)
    for v in whole.variables:
        np.testing.assert_array_equal(back[v].values, whole[v].values)
    assert back.attrs == whole.attrs
    assert [d.name for d in tmp_path.iterdir() if d.name.startswith(".")] == []  # the partial work is gone


def test_a_changed_entry_never_resumes_stale_chunks(tmp_path, monkeypatch):
    from convergence.stimuli import build_stimuli, write_stimuli
    from convergence.stimuli.build import Plan
    from convergence.store import open_store

    spec = _source_spec("image_folder", tmp_path)
    real = Plan.images

    def fail_late(self, start, stop):
        if start >= 8:
            raise RuntimeError("killed")
        return real(self, start, stop)

    monkeypatch.setattr(Plan, "images", fail_late)
    with pytest.raises(RuntimeError):
        write_stimuli("f", spec, tmp_path / "s.zarr", chunk=4)
    monkeypatch.undo()
    assert not (tmp_path / "s.zarr").exists()
    other = {**spec, "image_size": 6}  # another entry: the partial work of the first is not resumed, but removed
    write_stimuli("f", other, tmp_path / "s.zarr", chunk=4)
    np.testing.assert_array_equal(open_store(tmp_path / "s.zarr", load=True)["image"].values,
                                  build_stimuli("f", other)["image"].values)
    assert [d.name for d in tmp_path.iterdir() if d.name.startswith(".")] == []


def test_the_schema_and_the_source_registry_agree():
    """Every source the schema allows is registered, and every dataset field belongs to some source (or all)."""
    from convergence.config import load_schema
    from convergence.stimuli.registry import COMMON_OPTIONS, SOURCES

    dataset = load_schema()["$defs"]["dataset"]["properties"]
    assert dataset["source"]["enum"] == list(SOURCES)
    fields = set(COMMON_OPTIONS).union(*(s.options for s in SOURCES.values()))
    assert set(dataset) == fields
