"""Command line: `mirkd transcribe` (audio -> .lab or .jams files; with --beats a lead sheet,
beat JAMS and MIDI; with --html a page that plays along), `mirkd info` (checkpoint
metadata; without a checkpoint both use the model released with mirkd, mirkd.released),
`mirkd add-checksums` (bucket files of an older mirkd) and `mirkd check-config` (config files
read strictly)."""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

from tqdm import tqdm

from mirkd import __version__, released
from mirkd.beats import BEAT_STAY
from mirkd.checkpoints import load_checkpoint, model_identity
from mirkd.decoding import decoding_identity
from mirkd.devices import select_device
from mirkd.errors import MirkdError, os_cause
from mirkd.inference import transcribe_song
from mirkd.leadsheet import write_outputs
from mirkd.store import add_checksums


def _error(message: str) -> None:
    tqdm.write(f"mirkd: error: {message}", file=sys.stderr)


def _naming(path: str | Path, exc: Exception) -> str:
    """The error's message, with the file's name in front unless it names it already."""
    message = str(exc)
    return message if str(path) in message else f"{path}: {message}"


def _warning(message: str) -> None:
    tqdm.write(f"mirkd: warning: {message}", file=sys.stderr)


def _unwritable(out_dir: Path) -> str | None:
    """Why the outputs cannot go into `out_dir` (None when they can): the folder is made if
    missing and a file is created and removed in it, so a file in the way of a parent folder,
    a folder the user may not write or a read-only disk fail before any song is transcribed
    (`out_dir` itself being a file is refused before the model loads)."""
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=out_dir, prefix=".mirkd-write-test-"):
            pass
    except OSError as exc:
        where = f" ({exc.filename})" if exc.filename and str(exc.filename) != str(out_dir) else ""
        return f"cannot write into this folder: {os_cause(exc)}{where}"
    return None


def _write_failure(audio: Path, exc: OSError) -> str:
    """An output that could not be written, named with the cause (a full disk, a file size
    limit), for the song it belongs to."""
    where = f"cannot write {exc.filename}: " if exc.filename else ""
    return f"skipped {audio}: {where}{os_cause(exc)}"


def _transcribe(args: argparse.Namespace) -> int:
    out_dir = Path(args.out)
    if out_dir.exists() and not out_dir.is_dir():
        _error(f"--out {out_dir}: is a file, not a folder (nothing was transcribed)")
        return 1
    try:
        checkpoint = args.checkpoint or released.require(
            released.MODEL, "pass a model with --checkpoint PATH"
        )
        device = select_device(args.device)
        bundle = load_checkpoint(checkpoint, map_location=device)
        annotator = {**model_identity(bundle, checkpoint), **decoding_identity(args.viterbi)}
        if args.checkpoint is None:
            annotator["name"] = released.NAME  # not the file's stem, "model"
    except MirkdError as exc:
        _error(str(exc))
        return 1
    problem = _unwritable(out_dir)
    if problem:
        _error(f"--out {out_dir}: {problem} (nothing was transcribed)")
        return 1
    failed = 0
    claimed: dict[str, Path] = {}
    for audio in tqdm(args.audio, desc="transcribe", unit="file", file=sys.stderr, disable=None):
        audio = Path(audio)
        out = out_dir / f"{audio.stem}.{args.format}"
        if out.name in claimed:
            _error(f"{audio}: skipped, output {out} is already written for {claimed[out.name]}")
            failed += 1
            continue
        claimed[out.name] = audio
        try:
            song = transcribe_song(
                bundle, audio, device, args.viterbi, beats=args.beats, beat_stay=args.beat_stay
            )
            _, warnings = write_outputs(out_dir, audio, song, annotator, args.format, args.html)
            for warning in warnings:
                _warning(warning)
        except MirkdError as exc:
            _error(f"skipped {_naming(audio, exc)}")
            failed += 1
        except OSError as exc:
            _error(_write_failure(audio, exc))
            failed += 1
    if failed:
        _error(f"{failed} of {len(args.audio)} file(s) failed")
    return 1 if failed else 0


SCHEMA = Path(__file__).resolve().parents[2] / "config.schema.yaml"  # in the repository


def _check_config(args: argparse.Namespace) -> int:
    from mirkd.config_check import check_config_file, read_config_file

    failed = 0
    for path in args.config:
        try:
            if args.schema.is_file():
                check_config_file(path, args.schema)
            else:
                read_config_file(path)
                _warning(f"{args.schema} not found: {path} read, its keys not checked")
        except MirkdError as exc:
            _error(str(exc))
            failed = 1
    return failed


def _info(args: argparse.Namespace) -> int:
    if args.checkpoint is None:
        return _released_info()
    try:
        bundle = load_checkpoint(args.checkpoint)
    except MirkdError as exc:
        _error(str(exc))
        return 1
    info = {
        "path": str(args.checkpoint),
        "arch": bundle.arch,
        "hparams": bundle.hparams,
        "vocab": bundle.vocab.name,
        "n_classes": bundle.vocab.size,
        "n_parameters": sum(p.numel() for p in bundle.model.parameters()),
        "feature_params": bundle.feature_params.to_dict(),
        "mean": bundle.mean,
        "std": bundle.std,
        "provenance": bundle.provenance,
    }
    print(json.dumps(info, indent=2, default=str))
    return 0


def _add_checksums(args: argparse.Namespace) -> int:
    failed = 0
    for path in args.buckets:
        try:
            added = add_checksums(path)
            print(f"{path}: {'checksums added' if added else 'already has checksums'}")
        except (MirkdError, OSError) as exc:
            _error(_naming(path, exc))
            failed += 1
    return 1 if failed else 0


def _released_info() -> int:
    """The released model's card (model_card.json) with the path of its weights."""
    try:
        card = json.loads(
            released.require(released.CARD_JSON, "pass a checkpoint: mirkd info PATH").read_text()
        )
    except (MirkdError, OSError, ValueError) as exc:
        _error(str(exc))
        return 1
    print(json.dumps({"path": str(released.model_path()), **card}, indent=2, default=str))
    return 0


def _probability(text: str) -> float:
    """A probability in (0, 1) from the command line; argparse puts the option's name before
    the error."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0.0 < value < 1.0:
        raise argparse.ArgumentTypeError(f"{text} is not a probability in (0, 1)")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mirkd", description="Chord recognition with mirkd.")
    parser.add_argument("--version", action="version", version=f"mirkd {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    tr = sub.add_parser("transcribe", help="write one .lab (or .jams) chord file per audio file")
    tr.add_argument("audio", nargs="+", help="audio files (wav, flac, ogg, opus, mp3)")
    tr.add_argument(
        "--checkpoint",
        default=None,
        help="mirkd or public BTC checkpoint (default: the model released with mirkd)",
    )
    tr.add_argument("--out", required=True, help="output directory (<stem>.lab or .jams per input)")
    tr.add_argument(
        "--format",
        choices=("lab", "jams"),
        default="lab",
        help="lab: 'start end label' lines; jams: JAMS, namespace chord, with the model's "
        "identity (checkpoint name and sha256, arch, stage, mirkd version, decoding) and the "
        "audio's duration in the metadata (default lab)",
    )
    tr.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default auto)")
    tr.add_argument(
        "--viterbi",
        type=_probability,
        default=None,
        metavar="STAY",
        help="decode with Viterbi, self-transition probability STAY in (0, 1) (the pipeline's "
        "validation choice is in results/metrics/<model>.json, viterbi.stay); default: "
        "per-frame argmax",
    )
    tr.add_argument(
        "--beats",
        action="store_true",
        help="also track beats and downbeats (madmom) and decide chords per beat (Viterbi over "
        "beats); writes <stem>.leadsheet.txt (4 bars a line, with the meter), <stem>.beats.jams "
        "(beat and chord annotations) and <stem>.chords.mid (a chord track). A song with no "
        "detectable beat gets its frame-level chords and a warning",
    )
    tr.add_argument(
        "--beat-stay",
        type=_probability,
        default=BEAT_STAY,
        metavar="P",
        help=f"with --beats: probability of keeping the chord from one beat to the next "
        f"(default {BEAT_STAY})",
    )
    tr.add_argument(
        "--html",
        action="store_true",
        help="also write <stem>.html: the audio embedded, the bar grid of chords (bars with "
        "--beats, else chord segments) following playback, click a bar to seek; works offline",
    )
    tr.set_defaults(func=_transcribe)

    check = sub.add_parser(
        "check-config",
        help="read config files strictly: a YAML syntax error with its line, a key given "
        "twice, unknown keys and wrong types (Snakemake reports a --configfile it cannot parse "
        "without the line)",
    )
    check.add_argument("config", nargs="+", help="config files (YAML)")
    check.add_argument(
        "--schema", type=Path, default=SCHEMA, help=f"the config schema (default {SCHEMA})"
    )
    check.set_defaults(func=_check_config)

    info = sub.add_parser(
        "info", help="print a checkpoint's metadata (default: the released model's card) as JSON"
    )
    info.add_argument(
        "checkpoint",
        nargs="?",
        default=None,
        help="mirkd or public BTC checkpoint (default: the model released with mirkd)",
    )
    info.set_defaults(func=_info)

    crc = sub.add_parser(
        "add-checksums",
        help="give bucket files packed by an older mirkd (without checksums) their checksums, "
        "after checking every value, instead of computing them again",
    )
    crc.add_argument("buckets", nargs="+", help="features or teacher bucket files (.h5)")
    crc.set_defaults(func=_add_checksums)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `mirkd` command; returns the exit code."""
    args = _parser().parse_args(argv)
    try:
        return args.func(args)
    except BrokenPipeError:  # `mirkd info | head`: the reader left; no traceback
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
