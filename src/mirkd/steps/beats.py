"""Beats step: beats and downbeats of a bucket of test songs (`evaluation.beats`), tracked once
and read by the evaluation of every model."""

from __future__ import annotations

from collections.abc import Sequence

from tqdm import tqdm

from mirkd.audio import load_audio
from mirkd.beats import beats_attrs, beats_part, track_beats
from mirkd.errors import AudioError
from mirkd.features import CQTParams
from mirkd.manifest import TrackFiles
from mirkd.steps import log
from mirkd.steps.buckets import BucketWork
from mirkd.store import TrackPart


def song_beats(track: TrackFiles, sr: int = CQTParams().sr) -> TrackPart:
    """One song's beats, as `mirkd transcribe --beats` tracks them (the audio decoded at the
    features' rate, then madmom). No beat found is recorded as such (zero beats); audio that
    cannot be decoded makes a skipped part with the cause, reported in the log."""
    try:
        y = load_audio(track.audio, sr=sr)
    except AudioError as exc:
        log.warning("%s: skipped (%s): %s", track.track_id, track.audio, exc.cause)
        return beats_part(track.track_id, track.fingerprint, track.audio, None, 0.0, exc.cause)
    grid = track_beats(y, sr)
    if grid is None:
        log.warning("%s: no beat found (%s)", track.track_id, track.audio)
    return beats_part(track.track_id, track.fingerprint, track.audio, grid, len(y) / sr)


def track_bucket_beats(out: str, work: str, tracks: Sequence[TrackFiles]) -> None:
    """Beats of every song of a bucket, one resumable part per song, packed into `out`; songs
    of the previous file tracked by the same tracker from the same audio are carried over."""
    attrs = beats_attrs()
    job = BucketWork.open(work, {"beats": attrs})
    job.reuse(out, tracks, attrs)
    for track in tqdm(job.todo(tracks), desc=f"beats {out}"):
        job.save(song_beats(track))
    job.finish(out, tracks, attrs)
    log.info("%s: %d songs (%s)", out, len(tracks), attrs["tracker_version"])
