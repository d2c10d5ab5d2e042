"""Errors that mirkd raises on purpose.

Every message names the offending file (or label) and the cause, so a failing pipeline
step tells the user what to fix without a traceback hunt.
"""

from __future__ import annotations

from pathlib import Path


def os_cause(exc: OSError) -> str:
    """The cause of an operating-system error in words: "permission denied" for a file or
    folder the user may not read, else the system's message."""
    if isinstance(exc, PermissionError):
        return "permission denied"
    return exc.strerror or str(exc)


class MirkdError(Exception):
    """Base class of every error mirkd raises deliberately."""


class AudioError(MirkdError):
    """An audio file cannot be decoded or is unusable (corrupt, empty, unsupported, too short)."""

    def __init__(self, path: str | Path, cause: str) -> None:
        self.path = str(path)
        self.cause = cause
        super().__init__(f"{self.path}: {cause}")


class LabFormatError(MirkdError):
    """A chord annotation file (.lab, .jams) is malformed or unreadable; line_no for a .lab line."""

    def __init__(self, path: str | Path, line_no: int | None, cause: str) -> None:
        self.path = str(path)
        self.line_no = line_no
        self.cause = cause
        where = self.path if line_no is None else f"{self.path}:{line_no}"
        super().__init__(f"{where}: {cause}")


class ChordLabelError(MirkdError):
    """A chord label cannot be parsed as Harte syntax."""

    def __init__(self, label: str, cause: str) -> None:
        self.label = label
        self.cause = cause
        super().__init__(f"chord label {label!r}: {cause}")


class CheckpointError(MirkdError):
    """A model checkpoint is missing, unreadable or inconsistent."""

    def __init__(self, path: str | Path, cause: str) -> None:
        self.path = str(path)
        self.cause = cause
        super().__init__(f"{self.path}: {cause}")


class ConfigError(MirkdError):
    """A configuration value is invalid."""


class DamagedBucketError(MirkdError):
    """A bucket file's contents are not what was packed (checksum mismatch, impossible values,
    truncation): never used; the message says how to remake it."""

    def __init__(self, path: str | Path, array: str, cause: str) -> None:
        self.path = str(path)
        self.array = array
        self.cause = cause
        super().__init__(
            f"{self.path}: {array}: {cause}; the bucket file is damaged: delete it and rerun "
            "snakemake to remake it"
        )


class MetricsFileError(MirkdError):
    """A results file (results/**/metrics/*.json, a training history) is missing, unreadable
    or lacks a key."""

    def __init__(self, path: str | Path, cause: str) -> None:
        self.path = str(path)
        self.cause = cause
        super().__init__(f"{self.path}: {cause}")
