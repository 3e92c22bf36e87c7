"""Small helpers the workflow's scripts share: logging to the rule's log file, thread limits."""

from __future__ import annotations

import contextlib
import logging
import sys
import traceback
from pathlib import Path


class _Tee:
    def __init__(self, *streams):
        self.streams = streams

    def write(self, data):
        for s in self.streams:
            s.write(data)
            s.flush()
        return len(data)

    def flush(self):
        for s in self.streams:
            s.flush()

    def isatty(self):
        return False


@contextlib.contextmanager
def logged(log_path: str | Path | None, *, threads: int | None = None, outputs=None):
    """Copy stdout/stderr (progress bars included) into ``log_path`` while the block runs, keeping the console;
    limit torch and the BLAS/OpenMP pools to the job's ``threads`` (Snakemake's ``threads``), since
    oversubscribed LAPACK calls run many times slower when jobs share cores. ``outputs`` (the job's
    ``snakemake.output``) are checked to be writable first (:func:`convergence.store.check_writable`), so
    an unwritable output folder fails the job before its work, in one message naming the folder.

    An exception leaving the block is written to ``log_path`` with its full traceback, the console is told
    where (``full traceback in <log_path>``), and the exception is re-raised so the job still fails."""
    with contextlib.ExitStack() as stack:
        if threads:
            from threadpoolctl import threadpool_limits

            stack.enter_context(threadpool_limits(limits=int(threads)))
            if "torch" in sys.modules:
                sys.modules["torch"].set_num_threads(int(threads))
        stack.enter_context(_tee_to(log_path))
        if outputs is not None:
            from .store import check_writable

            check_writable(list(outputs) if not isinstance(outputs, (str, Path)) else outputs)
        yield


@contextlib.contextmanager
def _tee_to(log_path: str | Path | None):
    if not log_path:
        yield
        return
    path = Path(log_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as fh:
        out, err = sys.stdout, sys.stderr
        sys.stdout, sys.stderr = _Tee(out, fh), _Tee(err, fh)
        handler = logging.StreamHandler(sys.stderr)
        logging.getLogger().addHandler(handler)
        logging.getLogger().setLevel(logging.INFO)
        try:
            yield
        except BaseException as exc:
            if not (isinstance(exc, SystemExit) and exc.code in (0, None)):
                # The traceback goes into the log here, while the log is still open: once the exception
                # leaves this block only the console (Snakemake's own report) would see it.
                fh.write("".join(traceback.format_exception(exc)))
                fh.flush()
                print(f"{type(exc).__name__}: {exc}\nfull traceback in {path}", file=err, flush=True)
            raise
        finally:
            logging.getLogger().removeHandler(handler)
            sys.stdout, sys.stderr = out, err
