"""What a torch checkpoint file looks like, told without torch (planning checks the
checkpoints a run reads with it; loading names the cause of a file torch cannot read)."""

from __future__ import annotations

import zipfile
from pathlib import Path

from mirkd.errors import os_cause


def checkpoint_file_problem(path: str | Path) -> str | None:
    """Why the file at `path` cannot be a torch checkpoint, seen from its first bytes and its
    end (no torch): None for a complete zip archive (what torch.save writes) or a pickle (older
    torch files), and for a missing file (made by this run, or a missing input Snakemake
    names)."""
    path = Path(path)
    if not path.is_file():
        return None
    try:
        with path.open("rb") as f:
            head = f.read(2)
        if head[:1] == b"\x80" or zipfile.is_zipfile(path):
            return None
    except OSError as exc:
        return f"cannot read: {os_cause(exc)}"
    if head == b"PK":
        return "not a complete torch checkpoint: its zip archive is cut short or damaged"
    return "not a torch checkpoint (neither the zip archive torch.save writes nor a pickle)"
