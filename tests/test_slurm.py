"""The SLURM profile end to end: a real single-node SLURM (with accounting and two fake GPUs) runs the tiny
workflow with `--profile profiles/slurm`, and slurmdbd's records prove every job went through sbatch with the
resources Snakemake planned. Needs root and the Debian SLURM packages (tests/slurm_cluster.py)."""
import importlib.util
import re
import subprocess
import sys
import time

import pytest
import xarray as xr
import yaml

from conftest import ROOT, TINY_BERT, TINY_CNN
from slurm_cluster import SlurmCluster, unavailable_reason

pytestmark = [pytest.mark.slurm, pytest.mark.workflow]

PROFILE = ROOT / "profiles" / "slurm"
TINY_CONFIG = {
    "device": "cpu",  # the GPUs are stand-ins (gres on /dev/null): schedule on them, compute on the CPU
    "progress": False,
    "embed_threads": 1,
    "embed_gpus": 1,
    "datasets": {
        "emo": {"source": "emoji", "limit": 24, "seed": 1, "image_size": 32},
        # sharded extraction: 32 stimuli in shards of 16, one embed_shard job per shard, then embed_join
        "emo_sh": {"source": "emoji", "limit": 32, "seed": 2, "image_size": 32, "shard_size": 16,
                   "models": ["cnn_a"]},
    },
    "models": {"cnn_a": dict(TINY_CNN), "text_a": dict(TINY_BERT)},
    "kernels": {"k": 5},
    "alignment": {"n_permutations": 5, "n_bootstrap": 5},
}
# The chain stimuli -> embed (GPU) -> figure exercises every resource the profile maps; each SLURM job
# costs ~10 s of Snakemake start-up plus status polling, so the alignment part of the DAG (covered by
# test_workflow.py on the local executor) is left out to keep this test near a minute and a half.
# The sharded dataset's joined store adds its stimuli, two shard jobs and the join (about half a minute).
TARGETS = ["results/figures/overview/emo.png", "results/figures/overview/emo.pdf",
           "results/embeddings/emo_sh/cnn_a.zarr"]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    if importlib.util.find_spec("snakemake_executor_plugin_slurm") is None:
        pytest.skip("snakemake-executor-plugin-slurm is not installed (pip install -e '.[slurm]')")
    reason = unavailable_reason()
    if reason:
        pytest.skip(reason)
    # two fake GPUs, so the GPU-bound embed jobs run side by side as on a real GPU node
    cluster = SlurmCluster(tmp_path_factory.mktemp("slurm"), gpus=2)
    with cluster:
        yield cluster
    leftovers = cluster.stray_pids()
    assert not leftovers, f"processes of the test cluster outlived it: {leftovers}"


def snakemake(cluster, workdir, *args):
    env = {**cluster.env, "HF_HUB_OFFLINE": "1", "CONVERGENCE_CACHE": str(workdir / "cache")}
    cmd = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "--configfile", "config.yaml",
           "--profile", str(PROFILE), *args]
    proc = subprocess.run(cmd, cwd=workdir, env=env, capture_output=True, text=True, timeout=240)
    if proc.returncode != 0:
        job_logs = "".join(f"--- {p}\n{p.read_text(errors='replace')[-3000:]}\n"
                           for p in sorted((workdir / ".snakemake/slurm_logs").rglob("*.log")))
        pytest.fail(f"snakemake {' '.join(args)} failed:\n{proc.stderr[-8000:]}\n{job_logs}"
                    f"--- slurmctld\n{cluster.logs('slurmctld', tail=2000)}", pytrace=False)
    return proc.stdout + proc.stderr


def settled_records(cluster, n, timeout=20):
    """Accounting rows, once slurmdbd holds at least n finished jobs (job records reach it asynchronously)."""
    deadline = time.monotonic() + timeout
    while True:
        rows = cluster.accounting_records()
        if len(rows) >= n and all(r["State"] not in {"PENDING", "RUNNING"} for r in rows):
            return rows
        if time.monotonic() > deadline:
            return rows
        time.sleep(0.5)


def parse_comment(comment):
    """(rule, wildcard values joined by _): the plugin's --comment is rule_<rule>[_wildcards_<v1_v2>]."""
    rule, _, values = comment.removeprefix("rule_").partition("_wildcards_")
    return rule, values


def planned_jobs(dry_run_output):
    """{(rule, wildcard values joined by _): (threads, mem_mb, gpu)} of every job a dry run plans that makes
    files (a target rule such as `all` makes none and runs in the Snakemake process itself)."""
    jobs = {}
    for block in re.split(r"\n(?=\S*\s*(?:local)?rule \w+:)", dry_run_output):
        m = re.search(r"^\S*\s*(?:local)?rule (\w+):", block, re.M)
        if not (m and re.search(r"^\s+output: ", block, re.M)):
            continue
        w = re.search(r"^\s+wildcards: ([^\n]*)", block, re.M)
        values = [kv.split("=", 1)[1] for kv in w.group(1).split(", ")] if w else []
        t = re.search(r"^\s+threads: (\d+)", block, re.M)
        r = re.search(r"^\s+resources: ([^\n]*)", block, re.M)
        res = dict(kv.split("=", 1) for kv in r.group(1).split(", ")) if r else {}
        threads = int(t.group(1)) if t else 1
        jobs[(m.group(1), "_".join(values))] = (threads, res.get("mem_mb"), int(res.get("gpu", 0)))
    return jobs


def test_profile_runs_the_workflow_through_sbatch(cluster, tmp_path):
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(TINY_CONFIG, sort_keys=False))
    planned = planned_jobs(snakemake(cluster, tmp_path, "-n", *TARGETS))
    assert {"stimuli", "embed", "embed_shard", "embed_join", "figure_overview"} <= {rule for rule, _ in planned}, \
        planned
    # test-only overrides, on top of the profile: poll sooner and keep the per-job SLURM logs to inspect
    log = snakemake(cluster, tmp_path, "--slurm-init-seconds-before-status-checks", "2",
                    "--slurm-keep-successful-logs", *TARGETS)
    submitted = re.findall(r"has been submitted with SLURM jobid (\d+)", log)
    assert len(submitted) == len(planned), log[-4000:]

    # the results a local run would make
    stim = xr.open_zarr(tmp_path / "results/stimuli/emo.zarr", consolidated=False)
    ids = stim["stimulus"].values.tolist()
    assert len(ids) == 24
    for model in TINY_CONFIG["models"]:
        ds = xr.open_zarr(tmp_path / f"results/embeddings/emo/{model}.zarr", consolidated=False)
        assert ds["stimulus"].values.tolist() == ids and ds.attrs["model"] == model
    assert (tmp_path / "results/figures/overview/emo.png").stat().st_size > 10_000
    assert (tmp_path / "results/figures/overview/emo.pdf").exists()

    # ...made by SLURM jobs: slurmdbd recorded one allocation per job, each labelled with its rule
    rows = settled_records(cluster, len(planned))
    jobs = {parse_comment(r["Comment"]): r for r in rows}
    assert set(jobs) == set(planned), rows
    assert len({r["JobName"] for r in rows}) == 1  # one Snakemake run (its run id is every job's name)
    for key, r in jobs.items():
        assert r["State"] == "COMPLETED" and r["ExitCode"] == "0:0", r
        assert r["Partition"] == cluster.partition
        # every allocation is what Snakemake planned: threads -> --cpus-per-task, mem_mb -> --mem, gpu -> --gpus
        threads, mem_mb, gpu = planned[key]
        tres = dict(item.split("=", 1) for item in r["AllocTRES"].split(","))
        assert (int(tres["cpu"]), tres["mem"], int(tres.get("gres/gpu", 0))) == (threads, f"{mem_mb}M", gpu), r
    embeds = [key for key in jobs if key[0] in ("embed", "embed_shard")]
    assert embeds and all(planned[key][2] == 1 for key in embeds)  # embed_gpus: 1 -> one GPU per embed job
    assert all(gpu == 0 for key, (_, _, gpu) in planned.items() if key[0] not in ("embed", "embed_shard"))
    # each shard of the sharded extraction was a cluster job of its own, and the join one more
    shard_jobs = {key: jobs[key]["JobID"] for key in jobs if key[0] == "embed_shard"}
    assert sorted(shard_jobs) == [("embed_shard", "emo_sh_cnn_a_00000"), ("embed_shard", "emo_sh_cnn_a_00001")], \
        sorted(shard_jobs)
    assert len(set(shard_jobs.values())) == 2
    assert [key for key in jobs if key[0] == "embed_join"] == [("embed_join", "emo_sh_cnn_a")]
    joined = xr.open_zarr(tmp_path / "results/embeddings/emo_sh/cnn_a.zarr", consolidated=False)
    assert joined.sizes["stimulus"] == 32 and joined.attrs["shards"] == [[0, 16], [16, 32]]
    stimuli = [key for key in jobs if key[0] == "stimuli"]
    assert stimuli and all(planned[key][1] == "4000" for key in stimuli)  # the profile's default-resources

    # the plugin's per-job logs, one per SLURM job id
    logs = sorted((tmp_path / ".snakemake/slurm_logs").rglob("*.log"))
    assert {p.stem for p in logs} == {r["JobID"] for r in rows} == set(submitted), logs

    # the profile keeps the workflow profile's rerun policy: nothing left to do
    dry = snakemake(cluster, tmp_path, "-n", *TARGETS)
    assert "Nothing to be done" in dry, dry[-3000:]


def test_gpu_resource_maps_to_gpus_flag_only_when_nonzero():
    """The plugin turns the embed rule's gpu=config["embed_gpus"] into --gpus=N, and gpu=0 into nothing."""
    set_gres_string = pytest.importorskip("snakemake_executor_plugin_slurm.utils").set_gres_string

    class Job:
        def __init__(self, gpu):
            self.resources = _Resources(gpu=gpu, mem_mb=8000, runtime=120)

    assert set_gres_string(Job(0)) == ""
    assert set_gres_string(Job(1)).strip() == "--gpus=1"


class _Resources(dict):
    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None
