"""Experiment variants: named overrides of the base run that share its features and teacher.

A config's `variants:` section maps a name to overrides of `student`, `stage1`, `stage2`,
`baseline`, a `teacher` (replaced whole, not merged: kinds take different settings) and a
`labeled_budget` (number of labeled training songs, or a fraction of them).
The base run is the variant with the empty name: its files keep the paths of a run without
variants (`results/models/...`); a variant's go under `results/variants/<name>/...`.

Budgets are nested: the labeled training songs are ordered by a hash of their ids and a
budget takes a prefix of that order, so a smaller budget is a subset of a larger one and
adding a song never reshuffles a budget.

Trainings are shared, not repeated: a variant trains a model only if no earlier variant (the
base run first, then the config's order) has the same settings for it. Stage 1 depends on
(teacher, student, stage1) and, when it matches the labeled songs' chord distribution, the
budget songs; the baseline on (student, baseline, budget songs); stage 2 on all
of stage 1's settings plus (stage2, budget songs). A sweep over the stage-2 LR therefore trains
one stage 1 and one baseline; a budget series trains one stage 1.

Self-training rounds: a variant with `rounds: {count: N, teacher: student|ensemble}` is followed
by variants `<name>.r2` ... `<name>.rN`. Round k+1 trains a fresh stage 1 and stage 2 on the
pseudo-labels of round k's selected stage-2 student (alone, or averaged with the variant's
teacher); `rounds.student` and `rounds.stage1` override the later rounds' settings (noise, a
larger model). Its teacher is an ordinary teacher of the run (kind mirkd or ensemble), so its
bucket files are cached DAG outputs and adding a round reruns only that round.

A shared model lives under the variant that trained it, so the files depend on the order of
the variants: add new variants at the end. Removing or reordering a variant that trained a
model others share moves that model to the next variant that uses it, which retrains it.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from mirkd.errors import ConfigError
from mirkd.manifest import hash_unit
from mirkd.stages import STAGES, decode_metric, distils, job_settings, selection_metric
from mirkd.teacher_spec import TeacherSpec

ROUND_TEACHERS = ("student", "ensemble")
OVERRIDABLE = ("student", *STAGES)
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


@dataclass(frozen=True)
class Variant:
    """One experiment: resolved settings per stage and the labeled songs it trains on."""

    name: str  # "" for the base run
    teacher: TeacherSpec
    student: dict[str, Any]
    stages: dict[str, dict[str, Any]]  # stage name -> resolved training settings
    labeled_train: tuple[str, ...]  # track ids of the labeled songs it trains on

    @property
    def prefix(self) -> str:
        """Path prefix under the results folder: "" or "variants/<name>/"."""
        return f"variants/{self.name}/" if self.name else ""

    @property
    def label(self) -> str:
        return self.name or "base"

    def setting(self, key: str) -> str:
        """Where `key` (e.g. "stage2.init") is set for this variant, as errors name it."""
        return f"variants.{self.name}.{key}" if self.name else key

    @property
    def stage2_init(self) -> str | None:
        """What stage 2 starts from: None = this variant's stage 1, "released" = the packaged
        stage-1 student, or a checkpoint path."""
        return self.stages["stage2"].get("init")

    @property
    def models(self) -> tuple[str, ...]:
        """The models this variant has: no stage 1 when stage 2 starts from another model."""
        return STAGES if self.stage2_init is None else ("stage2", "baseline")

    def settings(self, model: str) -> dict[str, Any]:
        """`model`'s training settings as its job receives them (`stages.job_settings`)."""
        return job_settings(self.stages[model])

    def decode_metric(self, model: str) -> str:
        """Validation metric that tunes the Viterbi prior of `model`'s predictions."""
        return decode_metric(model, self.stages)

    def distils(self, model: str) -> bool:
        """Whether this variant's `model` distils from the teacher's outputs."""
        return distils(model, self.stages[model])

    def selection_metrics(self) -> dict[str, str]:
        """{model: what selects its checkpoint} for the trained models."""
        return {m: selection_metric(m, self.stages[m]) for m in STAGES}

    def model_key(self, model: str) -> str:
        """Fingerprint of everything that decides `model`'s training in this variant."""
        parts: dict[str, Any] = {
            "teacher": self.teacher.to_dict(),
            "student": self.student,
            "stage1": self.stages["stage1"],
        }
        if model == "baseline":
            parts = {"student": self.student, "baseline": self.stages["baseline"]}
        if model in ("stage2", "baseline") or self.stages["stage1"].get("distribution_match"):
            parts["labeled_train"] = sorted(self.labeled_train)
        if model == "stage2":
            parts["stage2"] = self.stages["stage2"]
            if self.stage2_init is not None:  # starts from a given model: stage 1 is moot
                del parts["stage1"]
        text = json.dumps({"model": model, **parts}, sort_keys=True, default=str)
        return hashlib.sha1(text.encode()).hexdigest()


def model_file(results: str, prefix: str, model: str) -> str:
    """The checkpoint file of `model` trained by the variant with path prefix `prefix`."""
    return f"{results}/{prefix}models/{model}.pt"


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """`base` with `override`'s keys replaced; nested mappings are merged key by key."""
    merged = copy.deepcopy(dict(base))
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def variant_student(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """A variant's student: the base run's with `override` merged in, except that a variant
    that names another architecture starts from that architecture's defaults (the base run's
    hparams belong to its own architecture)."""
    if override.get("arch", base["arch"]) != base["arch"]:
        return copy.deepcopy(dict(override))
    return deep_merge(base, override)


def budget_order(track_ids: Sequence[str]) -> list[str]:
    """Labeled training songs in the order budgets take them (hash of the id only)."""
    return sorted(track_ids, key=lambda tid: (hash_unit("budget:" + tid), tid))


def budget_size(budget: int | float | None, n_songs: int, where: str) -> int:
    """Number of songs a budget means: an integer count, or a fraction in (0, 1]."""
    if budget is None:
        return n_songs
    if isinstance(budget, bool) or budget <= 0:
        raise ConfigError(f"{where}: labeled_budget must be a positive count or fraction")
    if isinstance(budget, float) and budget <= 1:
        return max(1, round(budget * n_songs))
    if float(budget) != int(budget):
        raise ConfigError(f"{where}: labeled_budget {budget} is neither a count nor a fraction")
    if int(budget) > n_songs:
        raise ConfigError(
            f"{where}: labeled_budget {budget} exceeds the {n_songs} labeled training songs"
        )
    return int(budget)


def _later_rounds(
    first: Variant, rounds: Mapping[str, Any], variants: list[Variant], results: str, where: str
) -> list[Variant]:
    """Rounds 2..count of self-training after `first` (already in `variants`, which are the
    variants before it): each round's teacher reads the stage-2 checkpoint of the one before."""
    count, kind = int(rounds["count"]), rounds["teacher"]
    if count < 2 or kind not in ROUND_TEACHERS:
        raise ConfigError(f"{where}: count must be >= 2 and teacher one of {ROUND_TEACHERS}")
    student = deep_merge(first.student, rounds.get("student") or {})
    stages = {
        **first.stages,
        "stage1": deep_merge(first.stages["stage1"], rounds.get("stage1") or {}),
    }
    later: list[Variant] = []
    previous = first
    for k in range(2, count + 1):
        owner = model_owners([*variants, *later])[(previous.name, "stage2")]
        owner_prefix = next(v.prefix for v in [*variants, *later] if v.name == owner)
        checkpoint = model_file(results, owner_prefix, "stage2")
        previous = Variant(
            name=f"{first.name}.r{k}",
            teacher=first.teacher.with_student(checkpoint, alone=kind == "student"),
            student=student,
            stages=stages,
            labeled_train=first.labeled_train,
        )
        later.append(previous)
    return later


def expand_variants(
    config: Mapping[str, Any], labeled_train: Sequence[str], results: str = "results"
) -> list[Variant]:
    """The base run followed by every configured variant (and its self-training rounds),
    each fully resolved; `results` is the results folder (round teachers name checkpoints)."""
    order = budget_order(labeled_train)
    base_stages = {s: dict(config[s]) for s in STAGES}
    base_teacher = TeacherSpec.from_config(config["teacher"])
    variants = [Variant("", base_teacher, dict(config["student"]), base_stages, tuple(order))]
    for name, spec in (config.get("variants") or {}).items():
        where = f"variants.{name}"
        if not NAME_PATTERN.match(str(name)):
            raise ConfigError(f"{where}: a variant name may hold letters, digits, _ . - only")
        spec = spec or {}
        unknown = set(spec) - {*OVERRIDABLE, "teacher", "labeled_budget", "rounds"}
        if unknown:
            raise ConfigError(f"{where}: unknown keys {sorted(unknown)}")
        budget = spec.get("labeled_budget")
        n = budget_size(budget, len(order), where)
        variants.append(
            Variant(
                name=str(name),
                teacher=(
                    TeacherSpec.from_config(spec["teacher"], f"{where}.teacher")
                    if spec.get("teacher")
                    else base_teacher
                ),
                student=variant_student(config["student"], spec.get("student") or {}),
                stages={s: deep_merge(base_stages[s], spec.get(s) or {}) for s in STAGES},
                labeled_train=tuple(order[:n]),
            )
        )
        if spec.get("rounds"):
            variants.extend(
                _later_rounds(variants[-1], spec["rounds"], variants, results, f"{where}.rounds")
            )
    for v in variants:
        for stage in ("stage1", "baseline"):
            if v.stages[stage].get("init") is not None:
                where = f"variants.{v.name}.{stage}" if v.name else stage
                raise ConfigError(f"{where}.init: only stage 2 starts from another model")
    return variants


def model_owners(variants: Sequence[Variant]) -> dict[tuple[str, str], str]:
    """(variant name, model) -> name of the variant whose run of that model it shares."""
    first: dict[str, str] = {}
    owners = {}
    for variant in variants:
        for model in variant.models:
            owners[(variant.name, model)] = first.setdefault(variant.model_key(model), variant.name)
    return owners


def budget_only(variant: Variant, base: Variant) -> bool:
    """True if `variant` differs from the base run in its labeled budget alone."""
    return (
        variant.teacher == base.teacher
        and variant.student == base.student
        and variant.stages == base.stages
    )


def reference_of(variant: Variant, variants: Sequence[Variant]) -> Variant | None:
    """The run `variant`'s options are measured against: the first variant (base run first)
    with the same labeled songs that differs from the base run in its budget alone. None for
    such a variant itself, or when no such variant exists."""
    base = variants[0]
    if variant is base or budget_only(variant, base):
        return None
    for other in variants:
        if other.labeled_train == variant.labeled_train and (
            other is base or budget_only(other, base)
        ):
            return other
    return None
