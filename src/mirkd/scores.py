"""The test scores of one model, as the evaluation step writes them to results/**/metrics/*.json.

One record, one writer (`steps.evaluate`), one reader (`read_scores`): the summary, the figures
and anything else that reads a metrics file go through `ModelScores`, never through string keys.
The file's layout is the record's (`to_json` / `from_json`): the argmax scores at the top level,
the Viterbi scores under "viterbi" with the prior that was chosen, the per-beat scores under
"beats" (with `evaluation.beats`), and the "source" of the predictions. Keys that files written
before a feature lack are optional here (mean7 and ci95 before the bootstrap intervals, viterbi
before decoding, beats, source); the others are required, and a file without one is a
MetricsFileError naming the file and the key.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path
from typing import Any, Self

from mirkd.errors import MetricsFileError

SongScores = dict[str, Any]  # {"duration": seconds, "scores": {metric: WCSR or None}}


@dataclass(frozen=True, kw_only=True)
class Scores:
    """One decoding's scores on the test songs (`evaluation.evaluate_songs`): per song, the
    song-duration weighted means, their 7-metric mean and 95 % bootstrap intervals, and the
    per-quality table (`evaluation.quality_table`; older files lack its precision)."""

    per_song: dict[str, SongScores]
    mean: dict[str, float | None]
    n_songs: int
    total_duration: float
    quality: dict[str, Any]
    mean7: float | None = None
    ci95: dict[str, list[float] | None] = field(default_factory=dict)

    @property
    def groups(self) -> dict[str, dict[str, float | None]]:
        """Per-quality recall, precision and share (`evaluation.quality_table`'s groups)."""
        groups: dict[str, dict[str, float | None]] = self.quality["groups"]
        return groups

    @property
    def confusion(self) -> dict[str, Any]:
        """Quality confusion: {"labels", "seconds"} (rows reference, columns estimate)."""
        confusion: dict[str, Any] = self.quality["confusion"]
        return confusion

    def interval(self, metric: str) -> list[float] | None:
        """The 95 % interval of a metric (or "mean7"); None where absent."""
        return self.ci95.get(metric)

    def to_json(self) -> dict[str, Any]:
        """The record as written to the metrics file."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def _values(cls, data: Mapping[str, Any], where: str) -> dict[str, Any]:
        """The constructor's arguments from `data`; MetricsFileError naming `where` and the
        first missing required key (unknown keys are left out)."""
        values = {}
        for f in fields(cls):
            if f.name in data:
                values[f.name] = data[f.name]
            elif f.default is MISSING and f.default_factory is MISSING:
                raise MetricsFileError(where, f"no {f.name!r} in the metrics")
        if not isinstance(values["quality"], Mapping) or not {"groups", "confusion"} <= set(
            values["quality"]
        ):
            raise MetricsFileError(where, "'quality' lacks 'groups' or 'confusion'")
        return values

    @classmethod
    def from_json(cls, data: Mapping[str, Any], where: str = "metrics") -> Self:
        """The record of a metrics file's content (`where` names the file in errors)."""
        return cls(**cls._values(data, where))


@dataclass(frozen=True, kw_only=True)
class ViterbiScores(Scores):
    """Scores of the Viterbi-decoded predictions, with the self-transition prior `stay` chosen
    on the labeled validation songs by `val_metric` (`val_scores`: each prior tried)."""

    stay: float
    val_metric: str | None = None
    val_scores: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class BeatScores(Scores):
    """Scores of the chords decided per beat (`evaluation.beats`), on the same songs as the
    frame-level ones: per-beat probability `stay` of keeping the chord; the songs without a
    beat grid (`no_beats`) are scored on their `fallback` frames ("viterbi" or "argmax");
    `skipped`: songs whose audio the beat tracker could not decode, with the cause."""

    stay: float
    fallback: str
    no_beats: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class ModelScores(Scores):
    """A model's metrics file: its argmax scores, the Viterbi scores (None for the teacher, and
    in files written before decoding) and the source of its predictions (checkpoint and
    provenance, or the teacher's output files)."""

    viterbi: ViterbiScores | None = None
    beats: BeatScores | None = None
    source: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_json(cls, data: Mapping[str, Any], where: str = "metrics") -> Self:
        values = cls._values(data, where)
        if values.get("viterbi") is not None:
            values["viterbi"] = ViterbiScores.from_json(values["viterbi"], f"{where}: viterbi")
        if values.get("beats") is not None:
            values["beats"] = BeatScores.from_json(values["beats"], f"{where}: beats")
        return cls(**values)

    def to_json(self) -> dict[str, Any]:
        """The metrics file's content ("viterbi" and "beats" only when there are such scores)."""
        out = super().to_json()
        for name in ("viterbi", "beats"):
            part = getattr(self, name)
            out[name] = part.to_json() if part else None
        return {k: v for k, v in out.items() if k not in ("viterbi", "beats") or v is not None}

    def decodings(self) -> dict[str, Scores]:
        """{"argmax": self, "viterbi": the Viterbi scores} (without "viterbi" when absent)."""
        return {"argmax": self, **({"viterbi": self.viterbi} if self.viterbi else {})}


def read_results_json(path: str | Path, what: str) -> Mapping[str, Any]:
    """The JSON object of the results file at `path` (`what`: "metrics", "history");
    MetricsFileError naming it when it is missing, not JSON or not an object."""
    try:
        data = json.loads(Path(path).read_text())
    except OSError as exc:
        raise MetricsFileError(path, f"cannot read the {what} file ({exc.strerror})") from exc
    except json.JSONDecodeError as exc:
        raise MetricsFileError(path, f"not JSON ({exc})") from exc
    if not isinstance(data, Mapping):
        raise MetricsFileError(path, "not a JSON object")
    return data


def read_scores(path: str | Path) -> ModelScores:
    """The metrics file at `path`; MetricsFileError naming it when it is missing, not JSON or
    lacks a required key."""
    return ModelScores.from_json(read_results_json(path, "metrics"), str(path))
