"""The README's generated numbers: read from a Snakemake run log and the results, never typed by hand."""
import pytest

from convergence.report import _replace_block, run_timing

LOG = """\
  Snakemake version: 9.27.1
Provided cores: 2
[Sat Nov 28 03:44:05 2026]
localrule stimuli:
    output: results/stimuli/emoji.zarr
    jobid: 2
    wildcards: dataset=emoji
[Sat Nov 28 03:44:06 2026]
rule embed:
    jobid: 12
    wildcards: dataset=emoji, model=cnn
[Sat Nov 28 03:44:09 2026]
Finished jobid: 2 (Rule: stimuli)
1 of 2 steps (50%) done
[Sat Nov 28 03:45:16 2026]
Finished jobid: 12 (Rule: embed)
2 of 2 steps (100%) done
"""


def test_run_timing_reads_each_jobs_start_and_end(tmp_path):
    path = tmp_path / "run.snakemake.log"
    path.write_text(LOG)
    table, info = run_timing(path)
    seconds = dict(zip(table["rule"], table["seconds"]))
    assert seconds == {"stimuli": 4.0, "embed": 70.0}
    assert dict(zip(table["rule"], table["wildcards"]))["embed"] == "dataset=emoji, model=cnn"
    assert info["elapsed"] == 71.0 and info["cores"] == 2 and info["snakemake"] == "9.27.1" and info["complete"]


def test_a_log_without_finished_jobs_is_refused(tmp_path):
    path = tmp_path / "dry.log"
    path.write_text("Building DAG of jobs...\nNothing to be done.\n")
    with pytest.raises(ValueError, match="no finished job"):
        run_timing(path)


def test_generated_blocks_replace_only_their_own_text():
    text = "intro\n<!-- x -->\nold\n<!-- end of x -->\noutro\n"
    assert _replace_block(text, "x", "new\n") == "intro\n<!-- x -->\nnew\n<!-- end of x -->\noutro\n"
    with pytest.raises(ValueError, match="no '<!-- y -->'"):
        _replace_block(text, "y", "")
