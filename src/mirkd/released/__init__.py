"""The released model shipped inside the package: where its files are, and whether they are.

`make release CONFIG=... RUN=...` runs the workflow's `release` target and copies its four
files here (see README, "Released model"):

    model.pt          the stage-2 student (float16 weights, mirkd checkpoint format)
    stage1.pt         the stage-1 student it was fine-tuned from (stage2.init: released)
    model_card.json   data, teacher, config, commit and test scores (mirkd.release)
    MODEL_CARD.md     the same card for people

They are the only weights allowed in the repository (float16, at most 8 MB each). Every
caller that uses the released model (`mirkd transcribe` and `mirkd info` without a
checkpoint, `teacher.kind: mirkd` without a checkpoint, `stage2.init: released`) finds the
files through this module. Planning imports it: it stays free of torch.
"""

from __future__ import annotations

import hashlib
import json
from functools import lru_cache
from pathlib import Path

from mirkd.errors import ConfigError

FOLDER = Path(__file__).resolve().parent  # tests point this elsewhere
MODEL = "model.pt"
STAGE1 = "stage1.pt"
CARD_JSON = "model_card.json"
CARD_MD = "MODEL_CARD.md"
FILES = (MODEL, STAGE1, CARD_JSON, CARD_MD)
RELEASED = "released"  # the value of stage2.init that names the released stage-1 student
NAME = "mirkd released model"  # how annotations, lead sheets and pages name it


class NoReleasedModel(ConfigError):
    """The package holds no released model (or not the file asked for), and a setting or
    command asked for it."""


def path_of(name: str) -> Path:
    """Where the released file `name` (one of FILES) lives, present or not."""
    if name not in FILES:
        raise ValueError(f"{name!r} is not one of the released files {FILES}")
    return FOLDER / name


def model_path() -> Path:
    """The released stage-2 model (may be absent: see `require`)."""
    return path_of(MODEL)


def stage1_path() -> Path:
    """The released stage-1 student (may be absent: see `require`)."""
    return path_of(STAGE1)


def card_path() -> Path:
    """The released model's card as JSON (may be absent: see `require`)."""
    return path_of(CARD_JSON)


def require(name: str, instead: str) -> Path:
    """The released file `name`, or NoReleasedModel in one line saying that this package holds
    no released model and what to pass `instead`."""
    path = path_of(name)
    if not path.is_file():
        raise NoReleasedModel(
            f"this mirkd package holds no released model ({path} is missing); {instead}"
        )
    return path


def student() -> dict[str, object]:
    """The released student's architecture and hyper-parameters, from its card (no torch)."""
    card = json.loads(require(CARD_JSON, "release a model first (make release)").read_text())
    return {"arch": card["model"]["arch"], "hparams": card["model"]["hparams"]}


def file_sha256(path: str | Path) -> str:
    """sha256 of a file, cached by its size and mtime (planning asks for it often)."""
    st = Path(path).stat()
    return _sha256(str(path), st.st_size, st.st_mtime_ns)


@lru_cache(maxsize=8)
def _sha256(path: str, size: int, mtime_ns: int) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()
