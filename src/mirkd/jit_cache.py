"""Safe first use of librosa's numba-compiled functions by many jobs at once.

librosa compiles several functions with ``numba`` and ``cache=True`` (its ``guvectorize`` ones at
import). Processes that compile the same function at the same moment write the paired
``.nbi``/``.nbc`` cache files over each other, and a process that loads a mismatched pair can die
with SIGSEGV: on a fresh environment, parallel jobs crash at their first librosa use.

Every job therefore uses one cache directory per user and machine (``NUMBA_CACHE_DIR``, default
``<tmp>/mirkd-numba-<uid>``; node-local on clusters, so nodes with other CPUs never share
entries, and a shared read-only environment is never written to), and the first job to find it
cold compiles the functions the pipeline uses while holding a lock; the others wait, then only
read. A stamp per environment marks a warm cache, so later jobs take no lock. A private cache
per job would be safe too, but would recompile (seconds each) in every one of thousands of
feature jobs. A ``NUMBA_CACHE_DIR`` set by the user is respected.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import sys
import tempfile
import warnings
from importlib.metadata import version
from pathlib import Path

log = logging.getLogger(__name__)


def numba_cache_dir() -> Path:
    """The cache directory jobs share: $NUMBA_CACHE_DIR, else one per user under the temp dir."""
    default = Path(tempfile.gettempdir()) / f"mirkd-numba-{os.getuid()}"
    return Path(os.environ.get("NUMBA_CACHE_DIR") or default)


def _stamp_name() -> str:
    """Identifies the environment whose compiled functions a stamp vouches for."""
    identity = f"{sys.prefix}|{sys.version}|{version('numba')}|{version('librosa')}"
    return f".mirkd-warm-{hashlib.sha1(identity.encode()).hexdigest()[:16]}"


def _compile_librosa() -> None:
    """Use the numba functions of the pipeline's librosa calls once, so they are cached."""
    import librosa
    import numpy as np

    from mirkd.features import log_cqt

    y = np.sin(2 * np.pi * 440.0 * np.arange(2 * 22050) / 22050).astype(np.float32)
    with warnings.catch_warnings():  # librosa warns about the short signal's low octaves
        warnings.simplefilter("ignore")
        librosa.util.localmax(y)
        librosa.estimate_tuning(y=y, sr=22050)
        log_cqt(y)


def warm_numba_cache() -> Path:
    """Point numba at the shared cache and fill it once, under a lock; returns the directory.

    Must run before numba is imported (numba reads NUMBA_CACHE_DIR at import).
    """
    cache = numba_cache_dir()
    os.environ["NUMBA_CACHE_DIR"] = str(cache)
    stamp = cache / _stamp_name()
    if stamp.exists():
        return cache
    cache.mkdir(parents=True, exist_ok=True)
    with open(cache / ".mirkd.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not stamp.exists():
            log.info("numba cache: compiling librosa's functions once into %s", cache)
            _compile_librosa()
            stamp.touch()
    return cache
