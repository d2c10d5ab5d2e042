"""The plan of one pipeline run: which tracks, in which split and bucket, made into which files.

The Snakefile builds one RunPlan from the validated config and wires rules from it; the
plan itself knows nothing about Snakemake. Splits are a function of a track's id, buckets of
the ids and durations of its split (mirkd.buckets), so adding files only adds entries or
splits the bucket they land in.

Planning walks the data folders and reads each new file once (content hash and duration,
cached). The head process writes what it found to a manifest file; Snakemake re-parses the
workflow inside every cluster job, and those jobs read the manifest instead of walking the
data again (`plan_run(..., reuse_manifest=True)`).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from mirkd import released
from mirkd.atomic import atomic_write_text
from mirkd.audio import audio_duration
from mirkd.buckets import assign_buckets
from mirkd.errors import AudioError, ConfigError
from mirkd.leakage import SharedAudio, shared_audio
from mirkd.manifest import (
    AudioFacts,
    BucketFiles,
    Track,
    TrackFiles,
    audio_facts,
    check_annotations,
    data_root,
    ensure_split,
    scan_audio,
    split_of,
    track_id,
)
from mirkd.model_configs import check_init_is_student, model_window
from mirkd.released import RELEASED
from mirkd.teacher_spec import TeacherSpec
from mirkd.torch_files import checkpoint_file_problem
from mirkd.variants import (
    Variant,
    budget_only,
    expand_variants,
    model_file,
    model_owners,
    reference_of,
)

SETS = ("unlabeled", "labeled", "test")
UNLABELED_GROUPS = ("unlabeled-train", "unlabeled-val")
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BucketRef:
    """A bucket of a group of tracks: group "<set>-<split>", name "b" + hash bits."""

    group: str
    name: str

    @property
    def set_name(self) -> str:
        return self.group.split("-")[0]


@dataclass(frozen=True)
class RunPlan:
    """Tracks per set, their splits and buckets, and the paths of every file made from them.

    Built whole by `plan_run` (frozen: what is derived from it once, such as the bucket index,
    stays true)."""

    results: str
    tracks: dict[str, dict[str, Track]]
    splits: dict[str, dict[str, str]]
    facts: dict[str, AudioFacts] = field(default_factory=dict)
    buckets: dict[str, dict[str, list[str]]] = field(default_factory=dict)
    demo: bool = False
    variants: list[Variant] = field(default_factory=list)
    owners: dict[tuple[str, str], str] = field(default_factory=dict)
    shared: SharedAudio = field(default_factory=SharedAudio)

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
        return model_file(self.results, prefix, model)

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
        """Test metrics of `model` as used by `variant` (the teacher's: one file per teacher)."""
        if model == "teacher":
            return self.teacher_metrics_file(variant.teacher.tag)
        return self.metrics_file(self.owner(variant, model).prefix, model)

    def predictions_path(self, variant: Variant, model: str) -> str:
        """Test predictions of `model` as used by `variant` (the teacher's: one per teacher)."""
        if model == "teacher":
            return self.teacher_predictions_dir(variant.teacher.tag)
        return self.predictions_dir(self.owner(variant, model).prefix, model)

    def teacher_metrics_file(self, tag: str) -> str:
        """Test metrics of the teacher filed under `tag` (or the rules' "{teacher}" pattern)."""
        return f"{self.results}/metrics/teacher/{tag}.json"

    def teacher_predictions_dir(self, tag: str) -> str:
        return f"{self.results}/predictions/teacher/{tag}"

    @cached_property
    def teachers(self) -> dict[str, TeacherSpec]:
        """Tag -> spec of every teacher the run needs: each variant's, and ensemble members."""
        found: dict[str, TeacherSpec] = {}
        for spec in (v.teacher for v in self.variants):
            for one in (spec, *spec.members):
                found.setdefault(one.tag, one)
        return found

    def teacher_spec(self, tag: str) -> TeacherSpec:
        try:
            return self.teachers[tag]
        except KeyError as exc:
            raise ConfigError(f"no teacher {tag!r} in this run") from exc

    def used_teachers(self) -> list[TeacherSpec]:
        """The teachers variants train from, each once (ensemble members not listed)."""
        return list({v.teacher.tag: v.teacher for v in self.variants}.values())

    def owned_models(self) -> list[tuple[Variant, str]]:
        """(variant, model) pairs that are trained, each once."""
        return [(v, m) for v in self.variants for m in v.models if self.owner(v, m) is v]

    @property
    def trains_stage1(self) -> bool:
        """Whether any variant trains a stage 1 (none does when every stage 2 starts from a
        given model, stage2.init)."""
        return any(m == "stage1" for _, m in self.owned_models())

    def stage2_init(self, variant: Variant) -> str:
        """The checkpoint `variant`'s stage 2 starts from (stage2.init): its stage 1, the
        released stage-1 student (which must be in the package) or the given path."""
        init = variant.stage2_init
        if init is None:
            return self.model_path(variant, "stage1")
        if init == RELEASED:
            return str(released_stage1(variant))
        return init

    def variant_named(self, name: str | None) -> Variant:
        """The variant called `name` (None: the base run)."""
        for variant in self.variants:
            if variant.name == (name or ""):
                return variant
        known = ", ".join(v.name for v in self.variants[1:]) or "none"
        raise ConfigError(f"no variant named {name!r} (variants: {known})")

    def data_summary(self, variant: Variant) -> dict[str, dict[str, Any]]:
        """Songs and hours of each set and split `variant` used (its labeled budget), for the
        model card: durations from the planning manifest."""
        groups = {
            "unlabeled-train": self.in_split("unlabeled", "train"),
            "unlabeled-val": self.in_split("unlabeled", "val"),
            "labeled-train": self.labeled_train(variant),
            "labeled-val": self.in_split("labeled", "val"),
            "test": self.test_tracks,
        }
        return {
            group: {
                "songs": len(tracks),
                "hours": round(sum(self.facts[t.audio].seconds for t in tracks) / 3600.0, 3),
            }
            for group, tracks in groups.items()
        }

    def result_metrics(self) -> list[str]:
        """Every metrics file the summary and the figures read: each used teacher's (variants
        may name their own) and each trained model's."""
        return [self.teacher_metrics_file(t.tag) for t in self.used_teachers()] + [
            self.metrics_path(v, m) for v, m in self.owned_models()
        ]

    def result_rows(self) -> list[dict[str, Any]]:
        """One row per (variant, model) for the summary: names, budget, metrics and history,
        and the reference run its options are measured against (`variants.reference_of`)."""
        references = {}
        for v in self.variants:
            ref = reference_of(v, self.variants)
            references[v.name] = ref.label if ref else None
        return [
            {
                "variant": v.label,
                "reference": references[v.name],
                "budget": len(v.labeled_train),
                "budget_only": v is self.base or budget_only(v, self.base),
                "model": m,
                "metrics": self.metrics_path(v, m),
                "history": self.history_path(v, m),
                "trained_by": "" if m == "teacher" else self.owner(v, m).label,
                "teacher": v.teacher.tag,
            }
            for v in self.variants
            for m in ("teacher", *v.models)
        ]

    def labeled_train(self, variant: Variant) -> list[Track]:
        """The labeled training songs of a variant's budget."""
        return [self.tracks["labeled"][tid] for tid in variant.labeled_train]

    def track(self, set_name: str, tid: str) -> Track:
        try:
            return self.tracks[set_name][tid]
        except KeyError as exc:
            raise ConfigError(f"unknown track {set_name}/{tid}") from exc

    def features_path(self, group: str, bucket: str) -> str:
        """Features bucket file (or the rules' pattern, with "{group}" and "{bucket}")."""
        return f"{self.results}/features/{group}/{bucket}.h5"

    def teacher_path(self, teacher: str, group: str, bucket: str) -> str:
        """Bucket file of the teacher tagged `teacher` (or the rules' pattern, with
        "{teacher}", "{group}" and "{bucket}")."""
        return f"{self.results}/teacher/{teacher}/{group}/{bucket}.h5"

    def beats_path(self, group: str, bucket: str) -> str:
        """Beats bucket file of test songs (or the rules' pattern, with "{group}", "{bucket}")."""
        return f"{self.results}/beats/{group}/{bucket}.h5"

    def beats_files(self, tracks: Iterable[Track]) -> dict[str, str]:
        """Track id -> the beats bucket file holding its beats (`evaluation.beats`)."""
        refs = {t.track_id: self.bucket_of(t) for t in tracks}
        return {tid: self.beats_path(ref.group, ref.name) for tid, ref in refs.items()}

    def bucket_work(self, kind: str, group: str, bucket: str) -> str:
        """Finished tracks of a running bucket job (not a rule output: a killed job resumes)."""
        return f"{self.results}/work/{kind}/{group}/{bucket}"

    def group_of(self, track: Track) -> str:
        return f"{track.set_name}-{self.splits[track.set_name][track.track_id]}"

    @cached_property
    def _bucket_index(self) -> dict[tuple[str, str], BucketRef]:
        """(set, track id) -> its bucket, derived once from `buckets` (a lookup per track;
        scanning the buckets for each of 15,000 tracks would be quadratic)."""
        refs = (BucketRef(g, name) for g, named in self.buckets.items() for name in named)
        return {(r.set_name, tid): r for r in refs for tid in self.buckets[r.group][r.name]}

    def bucket_of(self, track: Track) -> BucketRef:
        try:
            return self._bucket_index[(track.set_name, track.track_id)]
        except KeyError as exc:
            raise ConfigError(f"track {track.set_name}/{track.track_id} is in no bucket") from exc

    def group_buckets(self, groups: Iterable[str]) -> list[BucketRef]:
        """Every bucket of the given groups."""
        return [BucketRef(g, b) for g in groups for b in self.buckets.get(g, {})]

    def buckets_of(self, tracks: Iterable[Track]) -> list[BucketRef]:
        """The buckets holding `tracks`, each once, sorted."""
        refs = {self.bucket_of(t) for t in tracks}
        return sorted(refs, key=lambda r: (r.group, r.name))

    def bucket_tracks(self, group: str, bucket: str) -> list[Track]:
        try:
            ids = self.buckets[group][bucket]
        except KeyError as exc:
            raise ConfigError(f"no bucket {group}/{bucket} in this run") from exc
        return [self.tracks[BucketRef(group, bucket).set_name][tid] for tid in ids]

    def bucket_files(self, groups: Iterable[str], teacher: str) -> list[BucketFiles]:
        """The features and `teacher`'s files of every bucket of the given groups."""
        return [
            BucketFiles(
                self.features_path(r.group, r.name), self.teacher_path(teacher, r.group, r.name)
            )
            for r in self.group_buckets(groups)
        ]

    def feature_files(self, tracks: Iterable[Track]) -> list[str]:
        return [self.features_path(r.group, r.name) for r in self.buckets_of(tracks)]

    def teacher_files(self, tracks: Iterable[Track], teacher: str) -> list[str]:
        return [self.teacher_path(teacher, r.group, r.name) for r in self.buckets_of(tracks)]

    def in_split(self, set_name: str, split: str) -> list[Track]:
        return [
            t for tid, t in self.tracks[set_name].items() if self.splits[set_name][tid] == split
        ]

    @property
    def test_tracks(self) -> list[Track]:
        if self.tracks["test"]:
            return list(self.tracks["test"].values())
        return self.in_split("labeled", "test")

    def track_files(self, tracks: Iterable[Track], teacher: str | None = None) -> list[TrackFiles]:
        """Each track with its bucket files and content fingerprint, for the steps. The teacher
        file is that of the teacher tagged `teacher`, and "" without one: a job that reads no
        teacher output (features, baseline) must not rerun when the teacher changes."""
        files = []
        for t in tracks:
            ref = self.bucket_of(t)
            files.append(
                TrackFiles(
                    t.track_id,
                    t.audio,
                    self.features_path(ref.group, ref.name),
                    self.teacher_path(teacher, ref.group, ref.name) if teacher else "",
                    t.lab,
                    self.facts[t.audio].fingerprint,
                )
            )
        return files

    def labeled_in_unlabeled_rows(self) -> list[list[str]]:
        """(labeled audio, unlabeled audio) of the songs in both sets, for the summary."""
        return [[p.first.audio, p.second.audio] for p in self.shared.labeled_in_unlabeled]

    def split_rows(self) -> list[tuple[str, str, str, str]]:
        """(set, track id, split, audio path) for every track, for results/splits.tsv."""
        return [
            (s, tid, self.splits[s][tid], t.audio)
            for s in SETS
            for tid, t in sorted(self.tracks[s].items())
        ]


def demo_tracks(root: str, demo: dict[str, Any]) -> dict[str, list[Track]]:
    """The tracks the demo rule will write under `root` (known before they exist)."""
    from mirkd.demo import song_name  # only here: the corpus generator is heavy to import

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
    if (
        data.get("test")
        and data_root(data["test"]).resolve() == data_root(data["labeled"]).resolve()
    ):
        raise ConfigError(
            f"data.test and data.labeled are the same folder ({data_root(data['test'])}): give "
            "the test songs a folder of their own, or set data.test: null to split test songs "
            "off the labeled set"
        )
    unlabeled = [t for folder in data["unlabeled"] for t in scan_audio(folder, "unlabeled", False)]
    ids = [t.track_id for t in unlabeled]
    if len(set(ids)) != len(ids):
        raise ConfigError("data.unlabeled: two folders hold files with the same relative path")
    return {
        "unlabeled": unlabeled,
        "labeled": scan_audio(data["labeled"], "labeled", True),
        "test": scan_audio(data["test"], "test", True) if data.get("test") else [],
    }


def manifest_file(results: str) -> str:
    """Where the head process leaves the tracks it found for the jobs to read."""
    return f"{results}/.plan/tracks.json"


def _found_tracks(
    config: dict[str, Any], results: str
) -> tuple[dict[str, list[Track]], dict[str, AudioFacts]]:
    """The tracks of every set and their facts: walked and read (new files only) here."""
    demo = config["data"].get("demo")
    if demo:
        found = demo_tracks(f"{results}/demo", demo)
        # not rendered yet: no duration to read, so each demo group is one bucket
        made = {t.audio: f"demo:{demo['seed']}:{t.audio}" for ts in found.values() for t in ts}
        facts = {audio: AudioFacts(key, key, 0.0) for audio, key in made.items()}
        return found, facts
    found = _folder_tracks(config["data"])
    paths = [t.audio for ts in found.values() for t in ts]
    facts = audio_facts(paths, Path(results) / ".fingerprints.json")
    check_annotations(
        (t for s in ("labeled", "test") for t in found[s]),
        {p: f.seconds for p, f in facts.items()},
        Path(results) / ".annotations.json",
    )
    return found, facts


def _write_manifest(path: str, found: dict[str, list[Track]], facts: dict[str, AudioFacts]) -> None:
    """The tracks and facts as JSON, rewritten only when they changed."""
    text = json.dumps(
        {
            "tracks": {s: [vars(t) for t in ts] for s, ts in found.items()},
            "facts": {p: vars(f) for p, f in facts.items()},
        },
        sort_keys=True,
    )
    old = Path(path).read_text() if Path(path).is_file() else None
    if text != old:
        atomic_write_text(path, text)


def _read_manifest(path: str) -> tuple[dict[str, list[Track]], dict[str, AudioFacts]] | None:
    try:
        data = json.loads(Path(path).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    found = {s: [Track(**t) for t in ts] for s, ts in data["tracks"].items()}
    return found, {p: AudioFacts(**f) for p, f in data["facts"].items()}


def released_stage1(variant: Variant) -> Path:
    """The packaged stage-1 student a variant's stage 2 starts from (stage2.init: released).

    Its student settings must describe the released model (same arch; every hparam it sets
    equal to the released one's): its baseline is built from them and compared with a
    stage 2 that takes the released architecture. A planning error otherwise."""
    where = variant.setting("stage2.init")
    path = released.require(
        released.STAGE1, f"{where}: released needs one; set it to null or a checkpoint path"
    )
    theirs = released.student()
    hparams = theirs["hparams"]
    assert isinstance(hparams, dict)
    check_init_is_student(where, RELEASED, variant.student, str(theirs["arch"]), hparams)
    return path


def plan_run(
    config: dict[str, Any], results: str = "results", reuse_manifest: bool = False
) -> RunPlan:
    """Build the run plan from a config validated with its defaults filled in.

    The head process (`reuse_manifest` False) walks the data and writes the manifest; a job
    (`reuse_manifest` True) reads it, and walks only if it is missing.
    """
    manifest = manifest_file(results)
    read = _read_manifest(manifest) if reuse_manifest else None
    walked = read is None
    if read is None:
        if reuse_manifest:
            log.warning("%s missing: walking the data folders again in this job", manifest)
        read = _found_tracks(config, results)
        _write_manifest(manifest, *read)
    found, facts = read
    split_cfg = config["split"]
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
    tracks = {s: {t.track_id: t for t in found[s]} for s in SETS}
    # the tracks and their splits alone: what sharing, buckets and variants are decided from
    sets = RunPlan(results=results, tracks=tracks, splits=splits, facts=facts)
    shared = _shared_audio(sets, config["data"].get("allow_labeled_in_unlabeled", False))
    if walked:  # the head process: said once, not again in every job
        shared.report()
    demo = bool(config["data"].get("demo"))
    if not demo:  # demo songs are rendered by a job: no header to read yet
        check_unreadable_unlabeled(sets, config["data"]["max_skipped_fraction"])
    _check_splits(sets)
    labeled_train = [t.track_id for t in sets.in_split("labeled", "train")]
    variants = expand_variants(config, labeled_train, results)
    check_students(variants)
    plan = RunPlan(
        results=results,
        tracks=tracks,
        splits=splits,
        facts=facts,
        buckets=_assign(sets, config["data"]["bucket_hours"] * 3600.0),
        demo=demo,
        variants=variants,
        owners=model_owners(variants),
        shared=shared,
    )
    check_checkpoint_files(plan)
    if not reuse_manifest:  # the head process; jobs re-plan without loading checkpoints
        check_stage2_inits(plan)
    return plan


def check_unreadable_unlabeled(plan: RunPlan, max_fraction: float) -> None:
    """The unlabeled tracks whose audio header cannot be read (planned as 0 s) are skipped by
    the features step, and more than `max_fraction` of them skipped fails the run (skipped.tsv,
    after the features and the teacher ran): when the headers alone are too many, a
    ConfigError says so at planning, with examples."""
    tracks = list(plan.tracks["unlabeled"].values())
    unreadable = sorted(t.audio for t in tracks if not plan.facts[t.audio].seconds)
    if len(unreadable) > max_fraction * len(tracks):
        raise ConfigError(
            f"{len(unreadable)} of {len(tracks)} unlabeled audio files have a header that cannot "
            f"be read (e.g. {'; '.join(_header_cause(a) for a in unreadable[:3])}), more than "
            f"data.max_skipped_fraction = {max_fraction:g} allows: the run would fail after the "
            "features and the teacher ran; fix or remove those files, or raise "
            "data.max_skipped_fraction"
        )


def _header_cause(audio: str) -> str:
    """Why the header of `audio` cannot be read, read again (the fingerprint cache keeps only
    the duration)."""
    try:
        audio_duration(audio)
    except AudioError as exc:
        return str(exc)
    return audio


def check_students(variants: Iterable[Variant]) -> None:
    """Every variant's student can be built and trained: a known architecture, hparams it
    knows and accepts, and a stride per stage within the model's window. A ConfigError naming
    the setting, at planning (a dry run) rather than in a training job after the features and
    the teacher ran (mirkd.model_configs: no torch)."""
    for v in variants:
        arch, hparams = v.student["arch"], v.student.get("hparams") or {}
        try:
            window = model_window(arch, hparams)
        except ConfigError as exc:
            raise ConfigError(f"{v.setting('student')}: {exc}") from None
        for stage in v.models:
            if stage == "stage2" and v.stage2_init is not None:
                continue  # the model it starts from decides its window (checked at training)
            stride = v.stages[stage]["stride"]
            if stride > window:
                raise ConfigError(
                    f"{v.setting(stage)}.stride {stride} exceeds the {arch} student's window of "
                    f"{window} frames: frames between windows would never train"
                )


def check_checkpoint_files(plan: RunPlan) -> None:
    """The checkpoints the run reads that exist already (teachers', stage2.init) are torch
    files: a text file or a cut download given as a checkpoint is a planning error, not a
    teacher or stage-2 job failing after the features ran."""
    given = {spec.checkpoint_file: "teacher checkpoint" for spec in plan.teachers.values()}
    for v in plan.variants:
        if v.stage2_init not in (None, RELEASED):
            where = v.setting("stage2.init")
            given[v.stage2_init] = where
    for path, what in given.items():
        problem = checkpoint_file_problem(path) if path else None
        if problem:
            raise ConfigError(f"{path} ({what}): {problem}")


def check_stage2_inits(plan: RunPlan) -> None:
    """A stage2.init checkpoint path that exists must hold the model the variant's student
    describes (arch, and each hparam it sets), as `init: released` must: the baseline is built
    from the student. Loads those checkpoints (torch), so only a run that names one pays."""
    for v in plan.variants:
        init = v.stage2_init
        if init in (None, RELEASED) or not Path(init).is_file():
            continue  # none, checked by released_stage1, or made by the run (the job checks)
        from mirkd.checkpoints import load_checkpoint

        bundle = load_checkpoint(init)
        where = v.setting("stage2.init")
        check_init_is_student(where, init, v.student, bundle.arch, bundle.hparams)


def _shared_audio(plan: RunPlan, allow_labeled_in_unlabeled: bool) -> SharedAudio:
    """Songs whose audio is in two sets (or twice in one), checked: a test song anywhere else
    is an error, a labeled one in the unlabeled set unless that is allowed."""
    test = {(t.set_name, t.track_id) for t in plan.test_tracks}
    shared = shared_audio(
        (t for s in SETS for t in plan.tracks[s].values()),
        {path: f.digest for path, f in plan.facts.items()},
        lambda t: (t.set_name, t.track_id) in test,
    )
    shared.check(allow_labeled_in_unlabeled)
    return shared


def _assign(plan: RunPlan, max_seconds: float) -> dict[str, dict[str, list[str]]]:
    """Buckets of every group of tracks (one set, one split)."""
    groups: dict[str, dict[str, float]] = {}
    for set_name in SETS:
        for t in plan.tracks[set_name].values():
            groups.setdefault(plan.group_of(t), {})[t.track_id] = plan.facts[t.audio].seconds
    return {g: assign_buckets(durations, max_seconds) for g, durations in sorted(groups.items())}


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
