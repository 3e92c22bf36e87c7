"""The workflow's script helpers: a failing job's traceback lands in its log, and the console says where."""
import sys

import pytest

from convergence.runtime import logged


def failing_step():
    raise ValueError("layer 'block_07' of model 'cnn_a' is broken")


def test_traceback_of_a_failing_block_lands_in_the_log(tmp_path, capsys):
    log = tmp_path / "logs" / "kernel" / "emo" / "cnn_a.log"
    with pytest.raises(ValueError, match="block_07"):
        with logged(log):
            print("started")
            failing_step()
    text = log.read_text()
    assert "started" in text
    assert "Traceback" in text and "ValueError" in text and "failing_step" in text and "block_07" in text
    assert str(log) in capsys.readouterr().err
    assert type(sys.stderr).__name__ != "_Tee"  # the console stream is restored


def test_a_successful_block_writes_no_traceback(tmp_path):
    log = tmp_path / "ok.log"
    with logged(log):
        print("fine")
    assert log.read_text() == "fine\n"
