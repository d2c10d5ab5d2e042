"""Demo step: the synthesized corpus of the embedded default run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mirkd.demo import write_demo_corpus
from mirkd.steps import log


def make_demo(out_dir: str | Path, demo: dict[str, Any]) -> None:
    corpus = write_demo_corpus(out_dir, **demo)
    log.info("demo corpus: %d songs under %s", len(corpus["songs"]), out_dir)
