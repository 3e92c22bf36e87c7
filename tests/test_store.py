"""Stores round-trip with labels and attrs, and a failed write never leaves a store that looks complete."""
import numpy as np
import pytest
import xarray as xr

from convergence.store import open_store, write_store


def make_ds(n=5):
    return xr.Dataset(
        {"layer_a": (("stimulus", "feature_layer_a"), np.arange(n * 3, dtype=np.float32).reshape(n, 3))},
        coords={"stimulus": np.array([f"s{i}" for i in range(n)], dtype=object)},
        attrs={"layers": ["layer_a"], "depths": [np.float64(1.0)], "provenance": {"source": "test"}},
    )


def test_round_trip(tmp_path):
    path = write_store(make_ds(), tmp_path / "a.zarr")
    ds = open_store(path, load=True)
    assert ds["stimulus"].values.tolist() == [f"s{i}" for i in range(5)]
    assert ds["stimulus"].values.dtype == object
    assert ds.attrs["provenance"] == {"source": "test"} and ds.attrs["depths"] == [1.0]
    np.testing.assert_array_equal(ds["layer_a"].values, make_ds()["layer_a"].values)


def test_failed_write_leaves_old_store_intact(tmp_path, monkeypatch):
    path = write_store(make_ds(5), tmp_path / "a.zarr")

    def boom(self, *args, **kwargs):
        raise RuntimeError("killed mid-write")

    monkeypatch.setattr(xr.Dataset, "to_zarr", boom)
    with pytest.raises(RuntimeError):
        write_store(make_ds(7), path)
    monkeypatch.undo()
    assert open_store(path).sizes["stimulus"] == 5
    assert [p.name for p in tmp_path.iterdir()] == ["a.zarr"]  # no temporary left behind


def test_failed_first_write_leaves_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr(xr.Dataset, "to_zarr", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("x")))
    with pytest.raises(RuntimeError):
        write_store(make_ds(), tmp_path / "b.zarr")
    assert list(tmp_path.iterdir()) == []


def test_missing_store_is_clear(tmp_path):
    with pytest.raises(FileNotFoundError, match="no store"):
        open_store(tmp_path / "nope.zarr")


def test_leftover_temporaries_of_the_same_target_are_removed(tmp_path):
    """A killed write leaves .<name>.tmp-XXXXXXXX (or .old-XXXXXXXX) beside the target; the next write of
    that target removes them, and leaves other targets' temporaries and unrelated files alone."""
    stale = [tmp_path / ".a.zarr.tmp-0123abcd", tmp_path / ".a.zarr.old-89abcdef"]
    kept = [tmp_path / ".b.zarr.tmp-0123abcd", tmp_path / ".a.zarr.tmp-notmine", tmp_path / "a.zarr.tmp-0123abcd"]
    for d in stale + kept:
        (d / "layer_a").mkdir(parents=True)
        (d / "zarr.json").write_text("{}")
    write_store(make_ds(), tmp_path / "a.zarr")
    assert not any(d.exists() for d in stale)
    assert all(d.exists() for d in kept)
    assert open_store(tmp_path / "a.zarr").sizes["stimulus"] == 5


def test_plain_xarray_opens_a_store_without_warnings(tmp_path):
    """Users open stores by hand with xr.open_zarr(path): no consolidated-metadata warning, and Snakemake's
    .snakemake_timestamp inside a directory() output is not read as a broken Zarr member."""
    import warnings

    path = write_store(make_ds(), tmp_path / "a.zarr")
    (path / ".snakemake_timestamp").touch()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ds = xr.open_zarr(path)
        assert ds["layer_a"].values.shape == (5, 3)
        assert ds.attrs["layers"] == ["layer_a"]
        back = open_store(path, load=True)
    assert back["stimulus"].values.tolist() == [f"s{i}" for i in range(5)]


def test_chunked_store_equals_the_one_shot_store_and_resumes_after_a_torn_append(tmp_path):
    """Appends of 2 rows (the last 1) give write_store's values; a write killed half-way (rows past the last
    complete chunk, no marker) is cut back on resume, and a chunk whose inputs changed (digest) is redone."""
    from convergence.store import ChunkedStore, job_key

    full = make_ds(5).assign(name=("stimulus", np.array(list("abcde"), dtype=object)))
    key = job_key("test", 1)
    out = ChunkedStore(tmp_path / "c.zarr", chunk=2, key=key)
    out.append(full.isel(stimulus=slice(0, 2)), digest="d0")
    out.append(full.isel(stimulus=slice(2, 4)), digest="d1")
    # killed during the third append: xarray grew the arrays, the marker still says 4 rows
    full.isel(stimulus=slice(4, 5)).to_zarr(out.store, mode="a", append_dim="stimulus", zarr_format=3,
                                            consolidated=False)
    again = ChunkedStore(tmp_path / "c.zarr", chunk=2, key=key, digests=["d0", "d1", "d2"])
    assert again.resumed and again.rows == 4
    again.append(full.isel(stimulus=slice(4, 5)), digest="d2")
    again.finish(full.attrs)
    back = open_store(tmp_path / "c.zarr", load=True)
    np.testing.assert_array_equal(back["layer_a"].values, full["layer_a"].values)
    assert back["name"].values.tolist() == list("abcde") and back["stimulus"].values.tolist() == [f"s{i}" for i in range(5)]
    assert back.attrs["provenance"] == {"source": "test"}
    assert [p.name for p in tmp_path.iterdir()] == ["c.zarr"]

    out = ChunkedStore(tmp_path / "d.zarr", chunk=2, key=key)
    out.append(full.isel(stimulus=slice(0, 2)), digest="d0")
    out.append(full.isel(stimulus=slice(2, 4)), digest="d1")
    changed = ChunkedStore(tmp_path / "d.zarr", chunk=2, key=key, digests=["d0", "D1", "d2"])
    assert changed.rows == 2  # the second chunk's inputs changed: redone
    assert ChunkedStore(tmp_path / "d.zarr", chunk=2, key=job_key("test", 2)).rows == 0  # another job: afresh
    assert not (tmp_path / f".d.zarr.partial-{key}").exists()


def test_an_unwritable_output_folder_is_one_clear_error_before_the_work(tmp_path, monkeypatch):
    import os

    from convergence.runtime import logged
    from convergence.store import OutputNotWritable, check_writable

    blocker = tmp_path / "results"
    blocker.write_text("a file where the output folder should be")
    target = blocker / "embeddings" / "emo" / "m.zarr"
    ran = []
    with pytest.raises(OutputNotWritable, match=rf"cannot write {target}: its folder .*emo is not writable"):
        with logged(tmp_path / "job.log", outputs=[str(target)]):
            ran.append("the extraction")
    assert ran == []  # the check comes before the work
    assert "OutputNotWritable" in (tmp_path / "job.log").read_text()
    with pytest.raises(OutputNotWritable):
        write_store(xr.Dataset({"v": ("stimulus", np.arange(3))}), target)
    # a folder that exists but refuses new files (simulated: the tests may run as root, who writes anyway)
    folder = tmp_path / "ro"
    folder.mkdir()
    real_touch = type(folder).touch

    def refuse(self, *args, **kwargs):
        if self.parent == folder:
            raise PermissionError(13, "Permission denied", str(self))
        return real_touch(self, *args, **kwargs)

    monkeypatch.setattr(type(folder), "touch", refuse)
    with pytest.raises(OutputNotWritable, match=r"ro is not writable \(Permission denied\)"):
        check_writable(folder / "table.csv")
    monkeypatch.undo()
    if os.geteuid() != 0:  # a real read-only folder where permissions apply
        folder.chmod(0o555)
        try:
            with pytest.raises(OutputNotWritable, match="Permission denied"):
                check_writable([folder / "table.csv"])
        finally:
            folder.chmod(0o755)
    check_writable(tmp_path / "fine" / "table.csv")
    assert [p.name for p in (tmp_path / "fine").iterdir()] == []  # the probe leaves nothing behind
