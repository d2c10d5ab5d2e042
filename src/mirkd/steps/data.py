"""Data steps: the demo corpus, per-track features, the split table."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mirkd.atomic import atomic_write_text
from mirkd.audio import load_audio
from mirkd.demo import write_demo_corpus
from mirkd.errors import AudioError
from mirkd.features import CQTParams, log_cqt
from mirkd.steps import log
from mirkd.store import write_features, write_skipped_features


def make_demo(out_dir: str | Path, demo: dict[str, Any]) -> None:
    corpus = write_demo_corpus(out_dir, **demo)
    log.info("demo corpus: %d songs under %s", len(corpus["songs"]), out_dir)


def extract_features(
    audio: str,
    out: str,
    track_id: str,
    fingerprint: str,
    params: CQTParams = CQTParams(),
    skip_undecodable: bool = False,
) -> None:
    """Decode, log-CQT and store one track.

    With `skip_undecodable` (unlabeled tracks) a file that cannot be decoded becomes a skipped
    marker (store.write_skipped_features) naming the cause, instead of failing the job.
    """
    meta = {"track_id": track_id, "source": str(audio), "fingerprint": fingerprint}
    try:
        y = load_audio(audio, sr=params.sr)
    except AudioError as exc:
        if not skip_undecodable:
            raise
        write_skipped_features(out, params, meta, exc.cause)
        log.warning("%s: skipped, %s", track_id, exc)
        return
    cqt = log_cqt(y, params)
    write_features(out, cqt, params, {**meta, "duration": len(y) / params.sr})
    log.info("%s: %d frames from %s", track_id, len(cqt), audio)


def write_splits(out: str, rows: Sequence[Sequence[str]]) -> None:
    """results/splits.tsv: (set, track id, split, audio) rows."""
    lines = ["set\ttrack_id\tsplit\taudio"] + ["\t".join(map(str, r)) for r in rows]
    atomic_write_text(out, "\n".join(lines) + "\n")
