"""Beat-level chords (`mirkd transcribe --beats`) against frame-level ones on labeled songs.

    PYTHONPATH=src .venv/bin/python benchmarks/score_beat_chords.py \
        --checkpoint results/models/stage2.pt --viterbi 0.98 --songs 10 /work/data/study/test

For the first `--songs` `<stem>.wav` files of the folder with a `<stem>.lab` beside them: the
frame-level decoding (argmax, or Viterbi with `--viterbi`) and the per-beat decoding
(mirkd.beats, `--beat-stay`) of the same frame posteriors, scored with mir_eval.chord
(majmin, mirex, sevenths; duration-weighted over the songs). Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import mir_eval
import numpy as np

from mirkd.beats import BEAT_STAY, beat_segments
from mirkd.checkpoints import load_checkpoint
from mirkd.inference import transcribe_song

METRICS = ("majmin", "mirex", "sevenths")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--viterbi", type=float, default=None)
    parser.add_argument("--beat-stay", type=float, default=BEAT_STAY)
    parser.add_argument("--songs", type=int, default=10)
    args = parser.parse_args()
    bundle = load_checkpoint(args.checkpoint, map_location="cpu")
    wavs = [w for w in sorted(args.folder.glob("*.wav")) if w.with_suffix(".lab").exists()]
    totals = {kind: dict.fromkeys(METRICS, 0.0) for kind in ("frames", "beats")}
    weight, no_beat = 0.0, []
    for wav in wavs[: args.songs]:
        ref_i, ref_l = mir_eval.io.load_labeled_intervals(str(wav.with_suffix(".lab")))
        song = transcribe_song(bundle, wav, stay=args.viterbi, beats=True, beat_stay=args.beat_stay)
        beat = beat_segments(song.beat_chords) if song.beat_chords else song.segments
        if not song.beat_chords:
            no_beat.append(wav.name)
        length = float(ref_i[-1, 1] - ref_i[0, 0])
        for kind, segments in (("frames", song.segments), ("beats", beat)):
            est_i = np.array([[s.start, s.end] for s in segments])
            scores = mir_eval.chord.evaluate(ref_i, ref_l, est_i, [s.label for s in segments])
            for m in METRICS:
                totals[kind][m] += scores[m] * length
        weight += length
        print(f"{wav.name}: done", file=sys.stderr)
    n = min(len(wavs), args.songs)
    decoding = "argmax" if args.viterbi is None else f"Viterbi stay {args.viterbi}"
    print(
        f"{n} songs of {args.folder}, {weight / 60:.1f} min; no beat found: {no_beat or 'none'}\n"
    )
    print("| chords | " + " | ".join(METRICS) + " |")
    print("|---|" + "---|" * len(METRICS))
    names = {"frames": f"per frame ({decoding})", "beats": f"per beat (stay {args.beat_stay})"}
    for kind, sums in totals.items():
        print(f"| {names[kind]} | " + " | ".join(f"{sums[m] / weight:.3f}" for m in METRICS) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
