"""Pipeline steps: one function per rule, files in and files out.

The workflow scripts call these and nothing else. Each submodule imports only what its
steps need, so a feature job does not pay for importing torch. Tracks arrive as
mirkd.manifest.TrackFiles.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from types import TracebackType

from mirkd.errors import MirkdError, os_cause
from mirkd.jit_cache import warm_numba_cache

log = logging.getLogger("mirkd")
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


def start_job(log_path: str | Path, threads: int = 1) -> None:
    """Log to the rule's log file and stderr; limit numeric libraries to the job's threads.

    An uncaught exception is logged there too (Snakemake sends users to the log). The numba
    cache is made safe for parallel jobs (mirkd.jit_cache). Call before importing a step
    module, so the thread limits apply to torch and BLAS and numba sees its cache directory.
    """
    Path(log_path).parent.mkdir(parents=True, exist_ok=True)
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(message)s",
        handlers=[logging.FileHandler(log_path, mode="w"), logging.StreamHandler(sys.stderr)],
        force=True,
    )
    sys.excepthook = _log_uncaught
    threads = max(1, int(threads))
    for name in THREAD_VARIABLES:
        os.environ[name] = str(threads)
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(threads)
    warm_numba_cache()


def _log_uncaught(
    exc_type: type[BaseException], exc: BaseException, tb: TracebackType | None
) -> None:
    """Log a step's failure: mirkd's own errors as their one line (file: cause), and so an
    operating-system error that names its file (a full disk, a file size limit, no
    permission); anything unexpected with its traceback. Interrupts keep Python's default
    report."""
    if issubclass(exc_type, KeyboardInterrupt):
        sys.__excepthook__(exc_type, exc, tb)
    elif isinstance(exc, MirkdError):
        log.error("%s", exc)
    elif isinstance(exc, OSError) and exc.filename:
        log.error("%s: cannot write or read: %s", exc.filename, os_cause(exc))
    else:
        log.error("%s: %s", exc_type.__name__, exc, exc_info=(exc_type, exc, tb))
