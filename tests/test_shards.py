"""Sharded extraction: shards of consecutive stimuli, each its own job, joined into the unsharded store bit for bit."""
import copy

import pytest

from conftest import TINY_CNN


def test_joined_shards_equal_the_unsharded_store_bit_for_bit(tmp_path, emoji_stimuli, tiny_specs):
    from convergence.embed import extract_to_store, join_shards
    from convergence.models import load_encoder
    from convergence.stimuli import shard_rows
    from convergence.store import open_store, write_store

    stimuli = write_store(emoji_stimuli, tmp_path / "emoji.zarr", chunk=10)
    spec = {**tiny_specs["cnn"], "batch_size": 4, "layers": ["layer1", "layer4"]}
    whole = extract_to_store(load_encoder("cnn", spec, "cpu"), stimuli, tmp_path / "whole.zarr", params=spec,
                             batch_size=4, chunk=8, progress=False).load()
    ranges = shard_rows(24, 12)
    assert ranges == [(0, 12), (12, 24)]
    shards = [extract_to_store(load_encoder("cnn", spec, "cpu"), stimuli, tmp_path / f"s{i}.zarr", params=spec,
                               batch_size=4, chunk=8, start=a, stop=b, progress=False)
              for i, (a, b) in enumerate(ranges)]
    assert [s.sizes["stimulus"] for s in shards] == [12, 12] and shards[1].attrs["rows"] == [12, 24]
    joined = join_shards([tmp_path / f"s{i}.zarr" for i in range(2)], tmp_path / "joined.zarr", chunk=8).load()
    assert joined["stimulus"].values.tolist() == whole["stimulus"].values.tolist()
    for layer in ("layer1", "layer4"):
        assert joined[layer].values.tobytes() == whole[layer].values.tobytes()
        assert joined[layer].encoding["chunks"] == whole[layer].encoding["chunks"]
    drop = ("seconds", "shards")
    assert {k: v for k, v in joined.attrs.items() if k not in drop} == {k: v for k, v in whole.attrs.items() if k not in drop}
    assert joined.attrs["shards"] == [[0, 12], [12, 24]]
    with pytest.raises(Exception, match="starts at row"):
        join_shards([tmp_path / "s1.zarr", tmp_path / "s0.zarr"], tmp_path / "bad.zarr")
    assert not (tmp_path / "bad.zarr").exists()
    assert open_store(tmp_path / "s0.zarr").attrs["n_stimuli"] == 12


def test_shard_size_must_be_a_multiple_of_every_batch_size():
    from convergence.config import ConfigError, validate_config

    cfg = {"datasets": {"e": {"source": "emoji", "limit": 40, "shard_size": 24}},
           "models": {"cnn": dict(TINY_CNN)}}
    with pytest.raises(ConfigError, match=r"shard_size: 24 is not a multiple of model 'cnn'.s batch_size 16"):
        validate_config(copy.deepcopy(cfg))
    cfg["datasets"]["e"]["shard_size"] = 32
    assert validate_config(cfg)["datasets"]["e"]["shard_size"] == 32


@pytest.mark.workflow
def test_workflow_runs_shards_as_jobs_and_adding_a_model_adds_only_its_shards(tmp_path):
    """40 emoji in shards of 16: one embed_shard job per (model, shard), one embed_join per model; the joined
    store equals the one-job extraction; nothing reruns unchanged; a new model schedules its 3 shards and join."""
    from test_workflow import snakemake, write_config

    from convergence.embed import extract
    from convergence.models import load_encoder
    from convergence.store import open_store

    cfg = {"progress": False, "embed_threads": 1,
           "datasets": {"emo": {"source": "emoji", "limit": 40, "seed": 1, "image_size": 32, "shard_size": 16},
                        "dig": {"source": "digits", "per_class": 2, "seed": 0}},  # unsharded: rule embed
           "models": {"cnn_a": dict(TINY_CNN)},
           "kernels": {"k": 5}, "alignment": {"metrics": ["mutual_knn"], "n_permutations": 5, "n_bootstrap": 5},
           "prh": {"enabled": False}, "crossmodal": {"enabled": False}, "competence": {"enabled": False},
           "sample_size": {"datasets": []}, "dispersion": {"enabled": False}}
    write_config(tmp_path, cfg)
    targets = ["results/embeddings/emo/cnn_a.zarr", "results/embeddings/dig/cnn_a.zarr"]
    planned = scheduled_targets(tmp_path, targets)
    assert [j for j in planned if j[0] == "embed"] == [("embed", "dataset=dig, model=cnn_a")]
    assert sorted(j for j in planned if j[0] == "embed_shard") == sorted(
        ("embed_shard", f"dataset=emo, model=cnn_a, shard={s:05d}") for s in range(3))
    assert {j for j in planned if j[0] == "embed_join"} == {("embed_join", "dataset=emo, model=cnn_a")}
    snakemake(tmp_path, "--cores", "2", *targets)
    joined = open_store(tmp_path / targets[0], load=True)
    assert joined.attrs["shards"] == [[0, 16], [16, 32], [32, 40]]
    one_job = extract(load_encoder("cnn_a", dict(TINY_CNN), "cpu"), open_store(tmp_path / "results/stimuli/emo.zarr"),
                      batch_size=16, progress=False)
    for layer in one_job.attrs["layers"]:
        assert joined[layer].values.tobytes() == one_job[layer].values.tobytes()
    assert scheduled_targets(tmp_path, targets) == set()
    cfg["models"]["cnn_b"] = {**TINY_CNN, "seed": 5}
    write_config(tmp_path, cfg)
    added = scheduled_targets(tmp_path, [*targets, "results/embeddings/emo/cnn_b.zarr"])
    assert open_store(tmp_path / targets[1]).sizes["stimulus"] == 20
    assert added == {*(("embed_shard", f"dataset=emo, model=cnn_b, shard={s:05d}") for s in range(3)),
                     ("embed_join", "dataset=emo, model=cnn_b")}


def scheduled_targets(workdir, targets):
    """(rule, wildcards) of every job a dry run of ``targets`` would execute."""
    import re

    from test_workflow import snakemake

    out = snakemake(workdir, "-n", *targets)
    text = out.stdout + out.stderr
    if "Nothing to be done" in text:
        return set()
    jobs = set()
    for block in re.split(r"\n(?=\S*\s*rule \w+:|localrule \w+:)", text):
        m = re.search(r"(?:local)?rule (\w+):", block)
        if m:
            w = re.search(r"wildcards: ([^\n]*)", block)
            jobs.add((m.group(1), w.group(1).strip() if w else ""))
    return jobs
