"""Evaluation steps: mir_eval scores of each model (and the teacher) on the test split."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from mirkd.atomic import atomic_write_json
from mirkd.beats import BEAT_STAY, TrackedBeats, beat_segments, decode_beats, read_track_beats
from mirkd.checkpoints import ModelBundle, load_checkpoint, model_identity
from mirkd.decoding import decoding_identity, log_softmax, tune_stay, viterbi
from mirkd.devices import select_device
from mirkd.errors import MirkdError
from mirkd.evaluation import evaluate_songs
from mirkd.inference import predict_logits
from mirkd.labels import ChordSegment, frames_to_segments, write_annotation
from mirkd.manifest import TrackFiles
from mirkd.references import ReferenceTrack, reference_tracks, song_pairs, wcsr
from mirkd.scores import BeatScores, ModelScores, ViterbiScores
from mirkd.steps import log
from mirkd.store import open_buckets, read_teacher_output
from mirkd.vocab import LARGE, Vocabulary


def _score_tracks(
    songs: Sequence[ReferenceTrack],
    predictions_dir: str | Path,
    frame_indices: dict[str, np.ndarray],
    prediction_format: str,
    annotator: dict[str, Any],
) -> dict[str, Any]:
    """Scores of the decoded frames; writes <track id>.<prediction_format> per song."""
    pairs = song_pairs(songs, frame_indices)
    for song in songs:
        path = Path(predictions_dir) / f"{song.name}.{prediction_format}"
        write_annotation(path, pairs[song.name][1], song.grid.duration, annotator)
    return evaluate_songs(pairs)


def _log_posteriors(
    bundle: ModelBundle, songs: Sequence[ReferenceTrack], device: Any, desc: str
) -> dict[str, np.ndarray]:
    return {
        s.name: log_softmax(
            predict_logits(bundle, np.asarray(s.features, dtype=np.float32), device)
        ).astype(np.float32)
        for s in tqdm(songs, desc=desc)
    }


def _songs(tracks: Sequence[TrackFiles]) -> list[ReferenceTrack]:
    """Test or validation songs, each read once (annotation labels as written)."""
    return reference_tracks(tracks, vocab=None)


def evaluate_checkpoint(
    checkpoint: str,
    tracks: Sequence[TrackFiles],
    device: str,
    out_metrics: str,
    predictions_dir: str,
    val_tracks: Sequence[TrackFiles] = (),
    val_metric: str = "majmin",
    prediction_format: str = "lab",
    beats: Mapping[str, str] | None = None,
    beat_stay: float = BEAT_STAY,
) -> None:
    """Predict every test track with a checkpoint and score it with mir_eval, twice:
    per-frame argmax (the top level of the metrics) and Viterbi decoding (key "viterbi",
    predictions in `predictions_dir`/viterbi), whose self-transition prior is chosen on the
    labeled validation songs `val_tracks` by `val_metric`, never on the test songs.
    Predictions are written as .lab or .jams (`prediction_format`; JAMS name the model).
    With `beats` (track id -> beats bucket file, `evaluation.beats`) a third time: chords decided
    per beat (key "beats", `score_beats`), songs without beats falling back to the Viterbi
    frames (the argmax without validation songs)."""
    bundle = load_checkpoint(checkpoint)
    dev = select_device(device)
    name = Path(checkpoint).stem
    identity = model_identity(bundle, checkpoint)
    songs = _songs(tracks)
    test = _log_posteriors(bundle, songs, dev, f"predict {name}")
    frames = {tid: lp.argmax(axis=1) for tid, lp in test.items()}
    argmax = _score_tracks(
        songs, predictions_dir, frames, prediction_format, {**identity, **decoding_identity(None)}
    )
    source = {"checkpoint": checkpoint, "provenance": bundle.provenance}
    decoded = None
    if val_tracks:
        val_songs = _songs(val_tracks)
        val = _log_posteriors(bundle, val_songs, dev, f"validation {name}")
        stay, val_scores = tune_stay(val, lambda frames: wcsr(val_songs, frames, val_metric))
        log.info(
            "viterbi: self-transition %.3f chosen on %d validation songs (%s %s)",
            stay,
            len(val_tracks),
            val_metric,
            val_scores,
        )
        vit_dir = Path(predictions_dir) / "viterbi"
        vit_dir.mkdir(parents=True, exist_ok=True)
        decoded = ViterbiScores(
            **_score_tracks(
                songs,
                vit_dir,
                {t: viterbi(lp, stay) for t, lp in test.items()},
                prediction_format,
                {**identity, **decoding_identity(stay)},
            ),
            stay=stay,
            val_metric=val_metric,
            val_scores={str(k): v for k, v in val_scores.items()},
        )
    beat_scores = None
    if beats:
        fallback = {t: viterbi(lp, decoded.stay) for t, lp in test.items()} if decoded else frames
        beat_scores = score_beats(
            songs,
            test,
            read_beats(beats, songs),
            BeatDecoding(beat_stay, "viterbi" if decoded else "argmax", fallback),
            Path(predictions_dir) / "beats",
            prediction_format,
            identity,
        )
    record = ModelScores(**argmax, viterbi=decoded, beats=beat_scores, source=source)
    _write_metrics(out_metrics, record)


def evaluate_teacher(
    tracks: Sequence[TrackFiles],
    out_metrics: str,
    predictions_dir: str,
    prediction_format: str = "lab",
    beats: Mapping[str, str] | None = None,
    beat_stay: float = BEAT_STAY,
) -> None:
    """Score the teacher's stored argmax on the test tracks (and with `beats`, its stored
    probabilities decided per beat, as `evaluate_checkpoint`; fallback: the argmax)."""
    teachers = open_buckets(t.teacher for t in tracks)
    outputs = {t.track_id: read_teacher_output(teachers[t.teacher], t.track_id) for t in tracks}
    frames = {tid: out.labels for tid, out in outputs.items()}
    teacher_outputs = sorted({t.teacher for t in tracks})
    annotator = {"name": "teacher", "teacher_outputs": teacher_outputs}
    songs = _songs(tracks)
    scores = _score_tracks(
        songs, predictions_dir, frames, prediction_format, {**annotator, **decoding_identity(None)}
    )
    beat_scores = None
    if beats:
        log_probs = {
            tid: np.log(np.maximum(out.probs.astype(np.float64), np.finfo(np.float16).tiny))
            for tid, out in outputs.items()
        }
        beat_scores = score_beats(
            songs,
            log_probs,
            read_beats(beats, songs),
            BeatDecoding(beat_stay, "argmax", frames),
            Path(predictions_dir) / "beats",
            prediction_format,
            annotator,
        )
    source = {"teacher_outputs": teacher_outputs}
    _write_metrics(out_metrics, ModelScores(**scores, beats=beat_scores, source=source))


@dataclass(frozen=True)
class BeatDecoding:
    """How `score_beats` decides chords: per-beat probability `stay` of keeping the chord (the
    CLI's --beat-stay), and for songs with no beat grid the frame classes `fallback` (decoded
    as `fallback_name`: "viterbi" or "argmax")."""

    stay: float
    fallback_name: str
    fallback: Mapping[str, np.ndarray]


def read_beats(
    files: Mapping[str, str], songs: Sequence[ReferenceTrack]
) -> dict[str, TrackedBeats]:
    """The tracked beats of each song from its beats bucket file (track id -> file)."""
    missing = [s.name for s in songs if s.name not in files]
    if missing:
        raise MirkdError(f"no beats file given for test songs {missing[:5]}")
    return {s.name: read_track_beats(files[s.name], s.name) for s in songs}


def beat_song_segments(
    song: ReferenceTrack,
    log_probs: np.ndarray,
    beats: TrackedBeats,
    decoding: BeatDecoding,
    vocab: Vocabulary = LARGE,
) -> list[ChordSegment]:
    """A song's chords decided per beat (mirkd.beats.decode_beats on its frame log-posteriors,
    merged into segments), or its fallback frames' segments when it has no beat grid."""
    period, duration = song.grid.frame_period, song.grid.duration
    if beats.grid is None:
        return frames_to_segments(decoding.fallback[song.name], period, vocab, duration=duration)
    chords = decode_beats(log_probs, period, beats.grid, duration, vocab, decoding.stay)
    return beat_segments(chords)


def score_beats(
    songs: Sequence[ReferenceTrack],
    log_probs: Mapping[str, np.ndarray],
    beats: Mapping[str, TrackedBeats],
    decoding: BeatDecoding,
    predictions_dir: str | Path | None = None,
    prediction_format: str = "lab",
    annotator: Mapping[str, Any] | None = None,
    vocab: Vocabulary = LARGE,
) -> BeatScores:
    """mir_eval scores of the chords decided per beat (`beat_song_segments`): the same seven
    metrics, song-level bootstrap intervals and per-quality table as the frame-level scores
    (`evaluate_songs`), on the same songs, so the two are paired. A song with no beat grid is
    scored on its fallback frames (listed under "no_beats"; audio that could not be decoded
    under "skipped", with the cause). Writes <track id>.<prediction_format> per song to
    `predictions_dir` when given."""
    pairs = {
        s.name: (
            s.reference,
            beat_song_segments(s, log_probs[s.name], beats[s.name], decoding, vocab),
        )
        for s in songs
    }
    if predictions_dir is not None:
        Path(predictions_dir).mkdir(parents=True, exist_ok=True)
        meta = {**(annotator or {}), "decoding": "beats", "beat_stay": decoding.stay}
        for song in songs:
            path = Path(predictions_dir) / f"{song.name}.{prediction_format}"
            write_annotation(path, pairs[song.name][1], song.grid.duration, meta)
    no_beats = sorted(s.name for s in songs if beats[s.name].grid is None)
    if no_beats:
        log.warning(
            "per beat: %d of %d songs without beats, scored on their %s frames: %s",
            len(no_beats),
            len(songs),
            decoding.fallback_name,
            ", ".join(no_beats),
        )
    return BeatScores(
        **evaluate_songs(pairs),
        stay=decoding.stay,
        fallback=decoding.fallback_name,
        no_beats=no_beats,
        skipped={s.name: beats[s.name].skipped for s in songs if beats[s.name].skipped},
    )


def _write_metrics(out: str, scores: ModelScores) -> None:
    """The metrics file (the one writer of `scores.ModelScores`)."""
    atomic_write_json(out, scores.to_json())
    log.info("%s: %s", out, json.dumps(scores.mean))
