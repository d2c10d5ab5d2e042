"""The plan of one pipeline run: which tracks, in which split and shard, made into which files.

The Snakefile builds one RunPlan from the validated config and wires rules from it; the
plan itself knows nothing about Snakemake. Every decision is a function of a track's id,
so adding files only adds entries.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mirkd.demo import song_name
from mirkd.errors import ConfigError
from mirkd.manifest import (
    Track,
    TrackFiles,
    content_fingerprints,
    ensure_split,
    scan_audio,
    shard_of,
    split_of,
    track_id,
)
from mirkd.variants import Variant, budget_only, expand_variants, model_owners

SETS = ("unlabeled", "labeled", "test")
MODELS = ("stage1", "stage2", "baseline")


@dataclass
class RunPlan:
    """Tracks per set, their splits and shards, and the paths of every per-track file."""

    results: str
    tracks: dict[str, dict[str, Track]]
    splits: dict[str, dict[str, str]]
    n_shards: int
    fingerprints: dict[str, str] = field(default_factory=dict)
    demo: bool = False
    variants: list[Variant] = field(default_factory=list)
    owners: dict[tuple[str, str], str] = field(default_factory=dict)

    @property
    def base(self) -> Variant:
        return self.variants[0]

    def variant(self, prefix: str) -> Variant:
        """The variant whose files live under `prefix` ("" for the base run)."""
        for variant in self.variants:
            if variant.prefix == prefix:
                return variant
        raise ConfigError(f"no variant has the path prefix {prefix!r}")

    def owner(self, variant: Variant, model: str) -> Variant:
        """The variant that trains (and evaluates) the `model` this variant uses."""
        name = self.owners[(variant.name, model)]
        return next(v for v in self.variants if v.name == name)

    # Paths of per-model files under a variant's path prefix. Rules pass the wildcard
    # "{vdir}" (and "{model}") as prefix and model to get their patterns from here too.
    def model_file(self, prefix: str, model: str) -> str:
        return f"{self.results}/{prefix}models/{model}.pt"

    def history_file(self, prefix: str, model: str) -> str:
        return f"{self.results}/{prefix}models/{model}_history.json"

    def metrics_file(self, prefix: str, model: str) -> str:
        return f"{self.results}/{prefix}metrics/{model}.json"

    def predictions_dir(self, prefix: str, model: str) -> str:
        return f"{self.results}/{prefix}predictions/{model}"

    def work_dir(self, prefix: str, model: str) -> str:
        """Resumable training state (not a rule output: kept when a killed job reruns)."""
        return f"{self.results}/{prefix}work/{model}"

    def model_path(self, variant: Variant, model: str) -> str:
        """Checkpoint of `model` as used by `variant` (the owner's file if it is shared)."""
        return self.model_file(self.owner(variant, model).prefix, model)

    def history_path(self, variant: Variant, model: str) -> str | None:
        """Training history of `model` as used by `variant` (None for the teacher)."""
        if model == "teacher":
            return None
        return self.history_file(self.owner(variant, model).prefix, model)

    def metrics_path(self, variant: Variant, model: str) -> str:
        """Test metrics of `model` as used by `variant` (one teacher file for all)."""
        if model == "teacher":
            return self.metrics_file("", "teacher")
        return self.metrics_file(self.owner(variant, model).prefix, model)

    def owned_models(self) -> list[tuple[Variant, str]]:
        """(variant, model) pairs that are trained, each once."""
        return [(v, m) for v in self.variants for m in MODELS if self.owner(v, m) is v]

    def result_rows(self) -> list[dict[str, Any]]:
        """One row per (variant, model) for the summary: names, budget, metrics and history."""
        return [
            {
                "variant": v.label,
                "budget": len(v.labeled_train),
                "budget_only": v is self.base or budget_only(v, self.base),
                "model": m,
                "metrics": self.metrics_path(v, m),
                "history": self.history_path(v, m),
                "trained_by": "" if m == "teacher" else self.owner(v, m).label,
            }
            for v in self.variants
            for m in ("teacher", *MODELS)
        ]

    def labeled_train(self, variant: Variant) -> list[Track]:
        """The labeled training songs of a variant's budget."""
        return [self.tracks["labeled"][tid] for tid in variant.labeled_train]

    def track(self, set_name: str, tid: str) -> Track:
        try:
            return self.tracks[set_name][tid]
        except KeyError as exc:
            raise ConfigError(f"unknown track {set_name}/{tid}") from exc

    def features_path(self, set_name: str, tid: str) -> str:
        return f"{self.results}/features/{set_name}/{tid}.h5"

    def teacher_path(self, set_name: str, tid: str) -> str:
        return f"{self.results}/teacher/{set_name}/{tid}.h5"

    def shard_path(self, shard: int | str) -> str:
        """Pseudo-label shard `shard` (a number, or the rule's wildcard "{shard}")."""
        name = f"{shard:03d}" if isinstance(shard, int) else shard
        return f"{self.results}/pseudo/shard_{name}.h5"

    def in_split(self, set_name: str, split: str) -> list[Track]:
        return [
            t for tid, t in self.tracks[set_name].items() if self.splits[set_name][tid] == split
        ]

    def shard_of(self, tid: str) -> int:
        return shard_of(tid, self.n_shards)

    def shard_tracks(self, shard: int) -> list[Track]:
        return [t for tid, t in self.tracks["unlabeled"].items() if self.shard_of(tid) == shard]

    @property
    def shards(self) -> list[int]:
        """Shards that hold at least one track (empty buckets make no file)."""
        return sorted({self.shard_of(tid) for tid in self.tracks["unlabeled"]})

    @property
    def test_tracks(self) -> list[Track]:
        if self.tracks["test"]:
            return list(self.tracks["test"].values())
        return self.in_split("labeled", "test")

    def fingerprint(self, track: Track) -> str:
        return self.fingerprints[track.audio]

    def track_files(self, tracks: Iterable[Track]) -> list[TrackFiles]:
        """Each track with its features path and content fingerprint, for the steps."""
        return [
            TrackFiles(
                t.track_id,
                t.audio,
                self.features_path(t.set_name, t.track_id),
                t.lab,
                self.fingerprint(t),
            )
            for t in tracks
        ]

    def split_rows(self) -> list[tuple[str, str, str, str]]:
        """(set, track id, split, audio path) for every track, for results/splits.tsv."""
        return [
            (s, tid, self.splits[s][tid], t.audio)
            for s in SETS
            for tid, t in sorted(self.tracks[s].items())
        ]


def demo_tracks(root: str, demo: dict[str, Any]) -> dict[str, list[Track]]:
    """The tracks the demo rule will write under `root` (known before they exist)."""
    found: dict[str, list[Track]] = {}
    for part in SETS:
        names = [song_name(part, i) for i in range(demo[f"n_{part}"])]
        found[part] = [
            Track(
                part,
                track_id(f"{name}.flac"),
                f"{root}/{part}/{name}.flac",
                None if part == "unlabeled" else f"{root}/{part}/{name}.lab",
            )
            for name in names
        ]
    return found


def _folder_tracks(data: dict[str, Any]) -> dict[str, list[Track]]:
    if not data.get("unlabeled"):
        raise ConfigError("data.unlabeled: give at least one folder of unlabeled audio")
    if not data.get("labeled"):
        raise ConfigError("data.labeled: give the folder of labeled audio + .lab/.jams files")
    unlabeled = [t for folder in data["unlabeled"] for t in scan_audio(folder, "unlabeled", False)]
    ids = [t.track_id for t in unlabeled]
    if len(set(ids)) != len(ids):
        raise ConfigError("data.unlabeled: two folders hold files with the same relative path")
    return {
        "unlabeled": unlabeled,
        "labeled": scan_audio(data["labeled"], "labeled", True),
        "test": scan_audio(data["test"], "test", True) if data.get("test") else [],
    }


def plan_run(config: dict[str, Any], results: str = "results") -> RunPlan:
    """Build the run plan from a config validated with its defaults filled in."""
    data = config["data"]
    split_cfg = config["split"]
    demo = data.get("demo")
    if demo:
        found = demo_tracks(f"{results}/demo", demo)
        fingerprints = {
            t.audio: f"demo:{demo['seed']}:{t.audio}" for ts in found.values() for t in ts
        }
    else:
        found = _folder_tracks(data)
        fingerprints = content_fingerprints(
            [t.audio for ts in found.values() for t in ts], Path(results) / ".fingerprints.json"
        )
    has_test = bool(found["test"])
    val_l = split_cfg["labeled_val_fraction"]
    test_l = 0.0 if has_test else split_cfg["labeled_test_fraction"]
    val_u = split_cfg["unlabeled_val_fraction"]
    fractions = {"unlabeled": (val_u, 0.0), "labeled": (val_l, test_l), "test": (0.0, 1.0)}
    splits = {s: {t.track_id: split_of(t.track_id, *fractions[s]) for t in found[s]} for s in SETS}
    ensure_split(splits["unlabeled"], "val")
    ensure_split(splits["labeled"], "val")
    if not has_test:
        ensure_split(splits["labeled"], "test")
    plan = RunPlan(
        results=results,
        tracks={s: {t.track_id: t for t in found[s]} for s in SETS},
        splits=splits,
        n_shards=config["teacher"]["n_shards"],
        fingerprints=fingerprints,
        demo=bool(demo),
    )
    _check_splits(plan)
    plan.variants = expand_variants(config, [t.track_id for t in plan.in_split("labeled", "train")])
    plan.owners = model_owners(plan.variants)
    return plan


def _check_splits(plan: RunPlan) -> None:
    needs = [("unlabeled", "train"), ("unlabeled", "val"), ("labeled", "train"), ("labeled", "val")]
    for set_name, split in needs:
        if not plan.in_split(set_name, split):
            raise ConfigError(
                f"the {set_name} set has no '{split}' track: add tracks or raise "
                f"split.{set_name}_val_fraction (splits are decided by a hash of each track's id)"
            )
    if not plan.test_tracks:
        raise ConfigError("no test tracks: set data.test or raise split.labeled_test_fraction")
