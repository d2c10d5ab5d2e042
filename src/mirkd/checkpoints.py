"""Model checkpoints: the mirkd format, and the public BTC files.

A mirkd checkpoint is a dict of plain Python values and tensors only, so it loads with
``torch.load(weights_only=True)`` and no allow-list:

    format ("mirkd-checkpoint"), format_version, arch, hparams (all config fields), vocab (name),
    feature_params (CQTParams.to_dict()), mean, std (floats), provenance (dict), state_dict,
    plus any extra top-level entries the caller passes (e.g. the trainer's "training_state").
    The state dict is float32, or float16 for the released model (save_checkpoint(float16=True));
    loading casts it to float32.

The public BTC files (``btc_model_large_voca.pt``, ``btc_model.pt``) are
``{'model': state_dict, 'mean': numpy scalar, 'std': numpy scalar}``; they are read with
``weights_only=True`` and an allow-list of exactly the numpy globals a float scalar needs.
Loading never executes pickled code, and refuses non-finite weights and normalisation
statistics (mean, std; std must be positive), naming the first bad one.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import pickle
import re
import subprocess
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any, overload

import numpy as np
import torch

from mirkd import __version__
from mirkd.atomic import atomic_path
from mirkd.errors import CheckpointError, MirkdError
from mirkd.features import CQTParams
from mirkd.models.btc import BTCConfig
from mirkd.models.common import ChordModel
from mirkd.models.registry import build_config, build_model
from mirkd.torch_files import checkpoint_file_problem
from mirkd.vocab import LARGE, MAJMIN, Vocabulary, get_vocabulary

FORMAT = "mirkd-checkpoint"
FORMAT_VERSION = 1
RESERVED_KEYS = frozenset(
    {
        "format",
        "format_version",
        "arch",
        "hparams",
        "vocab",
        "feature_params",
        "mean",
        "std",
        "provenance",
        "state_dict",
    }
)

try:
    from numpy._core.multiarray import scalar as _numpy_scalar
except ImportError:  # numpy < 2
    from numpy.core.multiarray import scalar as _numpy_scalar  # type: ignore[no-redef]

# What torch.load(weights_only=True) needs to rebuild a numpy float32/float64 scalar, found by
# experiment with numpy 2.4: the scalar constructor (under its numpy>=2 name and the numpy 1.x
# name that files written in 2019 carry), numpy.dtype, and the two dtype classes it BUILDs.
PUBLIC_BTC_SAFE_GLOBALS: list[Any] = [
    (_numpy_scalar, "numpy._core.multiarray.scalar"),
    (_numpy_scalar, "numpy.core.multiarray.scalar"),
    np.dtype,
    np.dtypes.Float32DType,
    np.dtypes.Float64DType,
]
_PUBLIC_VOCABS = {v.size: v for v in (LARGE, MAJMIN)}
# Exact types: numpy.float64 subclasses float but weights_only loading refuses it.
_PLAIN_SCALARS = (str, int, float, bool, type(None))


@dataclass
class ModelBundle:
    """A model with everything needed to use it on new audio."""

    model: ChordModel
    arch: str
    hparams: dict[str, Any]
    vocab: Vocabulary
    feature_params: CQTParams
    mean: float
    std: float
    provenance: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def student(
        cls,
        model: ChordModel,
        arch: str,
        hparams: dict[str, Any],
        mean: float,
        std: float,
        provenance: dict[str, Any] | None = None,
    ) -> ModelBundle:
        """`model` as the training steps make their students: over the LARGE vocabulary, on
        the pipeline's features (default CQTParams), normalised by `mean`/`std`."""
        return cls(
            model=model,
            arch=arch,
            hparams=hparams,
            vocab=LARGE,
            feature_params=CQTParams(),
            mean=float(mean),
            std=float(std),
            provenance={} if provenance is None else provenance,
        )

    @overload
    def normalise(self, features: np.ndarray) -> np.ndarray: ...

    @overload
    def normalise(self, features: torch.Tensor) -> torch.Tensor: ...

    def normalise(self, features: np.ndarray | torch.Tensor) -> np.ndarray | torch.Tensor:
        """Raw log-CQT standardised as the model takes it: ``(features - mean) / std``.

        The one home of the formula: inference applies it to numpy frames
        (`mirkd.inference.predict_logits_many`), the trainer to its torch batches (float32;
        it then zeroes the padding frames). The dtype follows numpy's and torch's promotion
        of the input with a Python float (float32 stays float32)."""
        return (features - self.mean) / self.std


@lru_cache(maxsize=1)
def _git_commit() -> str | None:
    """Commit of the source tree mirkd is imported from, or None outside a git checkout."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(__file__).parent,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def _check_plain(value: Any, where: str, path: Path) -> None:
    """Refuse anything weights_only loading would reject (numpy values, custom objects)."""
    if isinstance(value, torch.Tensor):
        return
    if type(value) in (dict, OrderedDict):
        for key, item in value.items():
            if type(key) not in (str, int):
                raise CheckpointError(path, f"{where}: key {key!r} is not a str or int")
            _check_plain(item, f"{where}.{key}", path)
    elif type(value) in (list, tuple):
        for i, item in enumerate(value):
            _check_plain(item, f"{where}[{i}]", path)
    elif type(value) not in _PLAIN_SCALARS:
        raise CheckpointError(
            path,
            f"{where} is a {type(value).__name__}; only plain Python values and tensors "
            "can be stored",
        )


def save_checkpoint(
    path: str | Path,
    bundle: ModelBundle,
    extra_state: dict[str, Any] | None = None,
    float16: bool = False,
) -> None:
    """Write `bundle` atomically in the mirkd format.

    With `float16` the floating-point weights are stored as float16 (half the size: the
    released model); loading casts them back to float32. A weight too large for float16 is
    refused (CheckpointError) rather than stored as infinity.

    `extra_state` entries become additional top-level entries (e.g. "training_state" with
    optimizer, scheduler, epoch and RNG states) that read_checkpoint_state returns; they must be
    plain values and tensors. The saved provenance is the bundle's plus mirkd_version,
    git_commit and created (UTC time of this save).
    """
    path = Path(path)
    extra_state = extra_state or {}
    clash = sorted(RESERVED_KEYS & set(extra_state))
    if clash:
        raise CheckpointError(path, f"extra_state uses reserved key(s) {', '.join(clash)}")
    try:
        hparams = dataclasses.asdict(build_config(bundle.arch, bundle.hparams))
    except MirkdError as exc:
        raise CheckpointError(path, f"invalid model description: {exc}") from exc
    model_config = getattr(bundle.model, "config", None)
    if model_config is None or dataclasses.asdict(model_config) != hparams:
        raise CheckpointError(path, f"bundle hparams {hparams} differ from the model's config")
    if bundle.model.num_classes != bundle.vocab.size:
        raise CheckpointError(
            path,
            f"model has {bundle.model.num_classes} classes but vocabulary "
            f"{bundle.vocab.name} has {bundle.vocab.size}",
        )
    provenance = {
        **bundle.provenance,
        "mirkd_version": __version__,
        "git_commit": _git_commit(),
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    payload = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "arch": bundle.arch,
        "hparams": hparams,
        "vocab": bundle.vocab.name,
        "feature_params": bundle.feature_params.to_dict(),
        "mean": float(bundle.mean),
        "std": float(bundle.std),
        "provenance": provenance,
        "state_dict": _stored_state(bundle.model, float16, path),
        **extra_state,
    }
    _check_plain(payload, "checkpoint", path)
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def _stored_state(model: ChordModel, float16: bool, path: Path) -> dict[str, torch.Tensor]:
    """The model's state dict on the CPU, floating-point tensors in float16 if asked."""
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    if float16:
        state = {k: v.half() if v.is_floating_point() else v for k, v in state.items()}
        _check_finite(state, path)  # a weight beyond float16's range became infinite
    return state


def _float32_state(state_dict: Any) -> Any:
    """A stored state dict with its float16 (or other floating) tensors cast to float32."""
    if not isinstance(state_dict, dict):
        return state_dict
    return {
        k: v.float() if isinstance(v, torch.Tensor) and v.is_floating_point() else v
        for k, v in state_dict.items()
    }


def _torch_load(path: Path, map_location: Any, safe_globals: list[Any] | None = None) -> Any:
    if not path.is_file():
        raise CheckpointError(path, "not a file")
    try:
        with torch.serialization.safe_globals(safe_globals or []):
            return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        raise CheckpointError(path, checkpoint_file_problem(path) or _refusal(exc)) from exc
    except Exception as exc:  # torch.load raises many types for a file that is no checkpoint
        cause = checkpoint_file_problem(path) or f"not a torch checkpoint: {_short(exc)}"
        raise CheckpointError(path, cause) from exc


_REFUSED_GLOBAL = re.compile(r"GLOBAL ([\w.]+)")


def _refusal(exc: pickle.UnpicklingError) -> str:
    """What weights_only loading refused: the pickled global it names, if any.

    torch's message advises retrying with weights_only=False; that would run the file's code,
    so the advice is dropped and only the cause is kept.
    """
    found = _REFUSED_GLOBAL.search(str(exc))
    if found:
        return (
            f"refused: the file asks to run pickled code (GLOBAL {found.group(1)}); mirkd "
            "loads checkpoints as weights only and never loads pickled code"
        )
    return f"unreadable pickle: {_short(exc)}"


def _short(exc: Exception) -> str:
    """The informative line of torch's long weights_only error messages (never its advice)."""
    lines = str(exc).replace("WeightsUnpickler error:", "\n").splitlines()
    causes = [
        line.strip()
        for line in lines
        if line.strip()
        and not re.search(r"weights.only|check the documentation", line, flags=re.IGNORECASE)
    ]
    return causes[0] if causes else type(exc).__name__


def _as_float(value: Any, name: str, path: Path) -> float:
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, float | int | np.floating):
        raise CheckpointError(path, f"{name} is a {type(value).__name__}, not a number")
    number = float(value)
    if not math.isfinite(number):
        raise CheckpointError(path, f"{name} is {number}")
    return number


def _load_state(model: ChordModel, state_dict: Any, path: Path) -> None:
    """Strict load_state_dict with an error listing missing, unexpected and misshapen keys,
    or naming the first tensor with a non-finite value."""
    if not isinstance(state_dict, dict):
        raise CheckpointError(path, f"state dict is a {type(state_dict).__name__}, not a dict")
    expected = model.state_dict()
    missing = [k for k in expected if k not in state_dict]
    unexpected = [k for k in state_dict if k not in expected]
    misshapen = [
        f"{k} {tuple(state_dict[k].shape)} != {tuple(v.shape)}"
        for k, v in expected.items()
        if k in state_dict
        and (not isinstance(state_dict[k], torch.Tensor) or state_dict[k].shape != v.shape)
    ]
    problems = [
        f"{label} ({len(keys)}): {', '.join(keys[:5])}{' ...' if len(keys) > 5 else ''}"
        for label, keys in (
            ("missing keys", missing),
            ("unexpected keys", unexpected),
            ("shape mismatch", misshapen),
        )
        if keys
    ]
    if problems:
        raise CheckpointError(path, "state dict does not fit the model: " + "; ".join(problems))
    _check_finite(state_dict, path)
    model.load_state_dict(state_dict, strict=True)


def _check_finite(state_dict: dict[str, torch.Tensor], path: Path) -> None:
    """Refuse NaN or infinite weights: a model with them predicts one chord everywhere and
    says nothing. The first bad tensor is named."""
    for name, tensor in state_dict.items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            bad = int((~torch.isfinite(tensor)).sum())
            raise CheckpointError(
                path, f"tensor {name} has {bad} non-finite value(s) of {tensor.numel()}"
            )


def _finish(model: ChordModel, map_location: str | torch.device) -> ChordModel:
    return model.to(torch.device(map_location)).eval()


def _bundle_from_mirkd(raw: dict[str, Any], path: Path, map_location: Any) -> ModelBundle:
    if raw.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(
            path,
            f"unsupported format_version {raw.get('format_version')!r} "
            f"(this mirkd reads {FORMAT_VERSION})",
        )
    missing = sorted(RESERVED_KEYS - set(raw))
    if missing:
        raise CheckpointError(path, f"missing entries: {', '.join(missing)}")
    try:
        model = build_model(raw["arch"], raw["hparams"])
        vocab = get_vocabulary(raw["vocab"])
        feature_params = CQTParams.from_dict(raw["feature_params"])
    except (MirkdError, TypeError) as exc:
        raise CheckpointError(path, f"invalid model description: {exc}") from exc
    if model.num_classes != vocab.size:
        raise CheckpointError(
            path,
            f"model has {model.num_classes} classes but vocabulary {vocab.name} has {vocab.size}",
        )
    mean = _as_float(raw["mean"], "mean", path)
    std = _as_float(raw["std"], "std", path)
    if std <= 0:
        raise CheckpointError(path, f"std must be positive, got {std}")
    _load_state(model, _float32_state(raw["state_dict"]), path)
    return ModelBundle(
        model=_finish(model, map_location),
        arch=raw["arch"],
        hparams=dataclasses.asdict(model.config),
        vocab=vocab,
        feature_params=feature_params,
        mean=mean,
        std=std,
        provenance=dict(raw["provenance"]),
    )


def load_public_btc(path: str | Path, map_location: str | torch.device = "cpu") -> ModelBundle:
    """Load a public BTC checkpoint {'model', 'mean', 'std'} (numpy scalar mean/std).

    The class count (170 -> LARGE, 25 -> MAJMIN) is read from the output projection; the
    other hyper-parameters are the reference defaults; features are the default CQTParams.
    """
    path = Path(path)
    raw = _torch_load(path, map_location, PUBLIC_BTC_SAFE_GLOBALS)
    return _bundle_from_public(raw, path, map_location)


def _bundle_from_public(raw: Any, path: Path, map_location: Any) -> ModelBundle:
    if not isinstance(raw, dict) or not {"model", "mean", "std"} <= set(raw):
        found = sorted(raw) if isinstance(raw, dict) else type(raw).__name__
        raise CheckpointError(
            path, f"not a mirkd or public BTC checkpoint (needs model/mean/std, found {found})"
        )
    weight = (
        raw["model"].get("output_layer.output_projection.weight")
        if isinstance(raw["model"], dict)
        else None
    )
    if not isinstance(weight, torch.Tensor) or weight.dim() != 2:
        raise CheckpointError(path, "missing key output_layer.output_projection.weight")
    n_classes = weight.shape[0]
    if n_classes not in _PUBLIC_VOCABS:
        raise CheckpointError(
            path, f"output projection has {n_classes} classes; expected 170 or 25"
        )
    hparams = dataclasses.asdict(BTCConfig(num_chords=n_classes))
    model = build_model("btc", hparams)
    std = _as_float(raw["std"], "std", path)
    if std <= 0:
        raise CheckpointError(path, f"std must be positive, got {std}")
    mean = _as_float(raw["mean"], "mean", path)
    _load_state(model, raw["model"], path)
    return ModelBundle(
        model=_finish(model, map_location),
        arch="btc",
        hparams=hparams,
        vocab=_PUBLIC_VOCABS[n_classes],
        feature_params=CQTParams(),
        mean=mean,
        std=std,
        provenance={"source": "public-btc", "path": str(path)},
    )


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> ModelBundle:
    """Load a mirkd checkpoint or a public BTC checkpoint (detected from the content).

    The file is first read without any allow-list; only if that is refused is it read again
    as a public BTC file with the numpy-scalar allow-list. Raises CheckpointError naming path.
    """
    path = Path(path)
    try:
        raw = _torch_load(path, map_location)
    except CheckpointError:
        raw = _torch_load(path, map_location, PUBLIC_BTC_SAFE_GLOBALS)
    if isinstance(raw, dict) and raw.get("format") == FORMAT:
        return _bundle_from_mirkd(raw, path, map_location)
    return _bundle_from_public(raw, path, map_location)


def model_identity(bundle: ModelBundle, path: str | Path) -> dict[str, Any]:
    """Which model made a prediction, for the metadata of the annotations it writes.

    The checkpoint's file name and sha256 (the exact weights; the name alone may be reused),
    the architecture and vocabulary, and those provenance entries the checkpoint has: the
    training stage, the mirkd version, commit and time that saved it (a public BTC file has
    only its source).
    """
    path = Path(path)
    try:
        with path.open("rb") as f:
            sha256 = hashlib.file_digest(f, "sha256").hexdigest()
    except OSError as exc:
        raise CheckpointError(path, f"cannot read: {exc}") from exc
    kept = ("stage", "source", "mirkd_version", "git_commit", "created")
    return {
        "name": path.stem,
        "checkpoint": path.name,
        "checkpoint_sha256": sha256,
        "arch": bundle.arch,
        "vocab": bundle.vocab.name,
        **{k: bundle.provenance[k] for k in kept if bundle.provenance.get(k) is not None},
    }


def read_checkpoint_state(path: str | Path) -> dict[str, Any]:
    """The raw dict of a mirkd checkpoint (CPU tensors), including extra entries such as
    "training_state", for resuming training."""
    path = Path(path)
    raw = _torch_load(path, "cpu")
    if not isinstance(raw, dict) or raw.get("format") != FORMAT:
        raise CheckpointError(path, "not a mirkd checkpoint")
    return raw
