"""Inputs that used to give a silently wrong stimulus set: empty label or caption cells, EXIF-rotated JPEGs,
symbolic links in an image folder; and the competence table on one class or with k above n."""

import os
import warnings

import numpy as np
import pytest
import xarray as xr
from PIL import Image

from convergence.stimuli import StimulusError, build_stimuli, content_files


def _png(path, colour="red", size=(8, 8)):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, colour).save(path)
    return path


def _csv(tmp_path, text):
    for name in ("a.png", "b.png", "c.png"):
        _png(tmp_path / name)
    (tmp_path / "s.csv").write_text(text)
    return {"source": "csv", "path": str(tmp_path / "s.csv"), "image_size": 8}


def test_an_empty_label_cell_is_an_error_not_a_class_named_empty(tmp_path):
    spec = _csv(tmp_path, "path,label\na.png,cat\nb.png,\nc.png,  \n")
    with pytest.raises(StimulusError, match=r"^dataset 'd': 2 of 3 stimuli have an empty label \(column 'label'\) "
                                            r"\(first: 'b'\); fill them in"):
        build_stimuli("d", spec)
    (tmp_path / "s.csv").write_text("path,label\na.png,cat\nb.png,dog\nc.png,cat\n")
    assert sorted(build_stimuli("d", spec).attrs["classes"]) == ["cat", "dog"]


def test_a_csv_that_is_a_folder_or_has_no_rows_says_so(tmp_path):
    with pytest.raises(StimulusError, match="is a directory, not a CSV file"):
        build_stimuli("d", {"source": "csv", "path": str(tmp_path)})
    (tmp_path / "s.csv").write_text("path,label\n")
    with pytest.raises(StimulusError, match="has a header but no rows"):
        build_stimuli("d", {"source": "csv", "path": str(tmp_path / "s.csv")})


def test_all_empty_captions_are_an_error_naming_the_dataset_and_column(tmp_path):
    spec = _csv(tmp_path, "path,caption\na.png,\nb.png,\nc.png,\n")
    with pytest.raises(StimulusError, match=r"^dataset 'd': every stimulus has an empty caption \(column 'caption'\)"):
        build_stimuli("d", spec)
    (tmp_path / "s.csv").write_text("path,caption\na.png,a red square\nb.png, \nc.png,red\n")
    with pytest.raises(StimulusError, match=r"1 of 3 stimuli have an empty caption .*first: 'b'"):
        build_stimuli("d", spec)


def test_an_exif_rotated_jpeg_is_stored_the_way_it_is_shown(tmp_path):
    """Stored 16 x 8 with red on top and blue below, tagged 'rotate 90 degrees clockwise on display'
    (orientation 6): shown 8 x 16 with blue on the left and red on the right."""
    stored = np.zeros((8, 16, 3), np.uint8)
    stored[:4] = (255, 0, 0)
    stored[4:] = (0, 0, 255)
    exif = Image.Exif()
    exif[0x0112] = 6
    path = tmp_path / "folder" / "photo.jpg"
    path.parent.mkdir()
    Image.fromarray(stored).save(path, quality=95, exif=exif)
    image = build_stimuli("d", {"source": "image_folder", "path": str(path.parent), "image_size": 8})["image"].values[0]
    left, right = image[:, :3].reshape(-1, 3).mean(axis=0), image[:, -3:].reshape(-1, 3).mean(axis=0)
    assert left[2] > 200 > 50 > left[0] and right[0] > 200 > 50 > right[2]  # blue left, red right
    # an image without the tag is read as stored (no change for every other image)
    Image.fromarray(stored).save(path, quality=95)
    plain = build_stimuli("d", {"source": "image_folder", "path": str(path.parent), "image_size": 8})["image"].values[0]
    assert plain[0].mean(axis=0)[0] > 200 and plain[-1].mean(axis=0)[2] > 200  # red top, blue bottom


def test_variations_render_the_upright_image_too(tmp_path):
    stored = np.zeros((8, 16, 3), np.uint8)
    stored[:, :8] = 255
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(stored).save(tmp_path / "a.jpg", quality=95, exif=exif)
    Image.fromarray(stored).transpose(Image.Transpose.ROTATE_270).save(tmp_path / "b.jpg", quality=95)
    from convergence.stimuli import render_variations, variation_params

    params = variation_params({"n": 1, "rotate": 0, "flip": 0, "scale": [1.0, 1.0], "background": [128, 128]})
    tagged, upright = render_variations([tmp_path / "a.jpg", tmp_path / "b.jpg"], ["x", "x"], 1, 16, 0, params)
    assert np.abs(tagged.astype(int) - upright.astype(int)).mean() < 6  # the same picture, up to JPEG noise


def test_image_folder_follows_folder_and_file_links_and_refuses_cycles(tmp_path):
    root, outside = tmp_path / "images", tmp_path / "elsewhere"
    _png(root / "cats" / "1.png")
    _png(outside / "dogs" / "2.png", "blue")
    _png(outside / "loose.png", "green")
    os.symlink(outside / "dogs", root / "dogs")  # a class folder linked in: followed
    os.symlink(outside / "loose.png", root / "cats" / "3.png")  # a file link pointing outside: followed
    ds = build_stimuli("d", {"source": "image_folder", "path": str(root), "image_size": 8})
    assert ds["stimulus"].values.tolist() == ["cats/1", "cats/3", "dogs/2"]
    assert ds["label"].values.tolist() == ["cats", "cats", "dogs"]
    assert [name for name, _ in content_files({"source": "image_folder", "path": str(root)})] == [
        "cats/1.png", "cats/3.png", "dogs/2.png"]  # the manifest sees the linked files too
    os.symlink(root, root / "cats" / "loop")  # a link back to a folder above it
    with pytest.raises(StimulusError, match=r"the folder link .*cats/loop leads back to .*images, a folder above it"):
        build_stimuli("d", {"source": "image_folder", "path": str(root), "image_size": 8})
    os.unlink(root / "cats" / "loop")
    os.symlink(tmp_path / "gone.png", root / "cats" / "4.png")
    with pytest.raises(StimulusError, match=r"cats/4.png is a link to .*gone.png', which does not exist"):
        build_stimuli("d", {"source": "image_folder", "path": str(root), "image_size": 8})


def _vision_store(name, ids, x):
    return xr.Dataset({"l": (("stimulus", "feature_l"), x)}, coords={"stimulus": np.array(ids, dtype=object)},
                      attrs={"model": name, "modality": "vision", "objective": "random", "family": "cnn",
                             "layers": ["l"]})


def test_competence_on_one_class_says_so_and_k_above_n_is_an_error():
    from convergence.analyses.competence import competence_table

    ids = [f"s{i}" for i in range(24)]
    x = np.random.default_rng(0).normal(size=(24, 5))
    one = xr.Dataset({"label": ("stimulus", np.array(["cat"] * 24, dtype=object))},
                     coords={"stimulus": np.array(ids, dtype=object)}, attrs={"dataset": "cats"})
    with pytest.warns(UserWarning, match=r"competence: dataset 'cats' has one class \(\['cat'\]\), so no k-NN or "
                                         r"probe accuracy is computed for its vision models \['m'\]"):
        table = competence_table(one, {"m": _vision_store("m", ids, x)})
    assert table.empty
    two = one.assign(label=("stimulus", np.array(["cat", "dog"] * 12, dtype=object)))
    with pytest.raises(ValueError, match=r"competence k=100: .* dataset 'cats' has 24; allowed: 1 <= k <= 23"):
        competence_table(two, {"m": _vision_store("m", ids, x)}, k=100)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        table = competence_table(two, {"m": _vision_store("m", ids, x)}, k=5)
    assert set(table["measure"]) == {"knn_accuracy", "linear_probe_accuracy"}
