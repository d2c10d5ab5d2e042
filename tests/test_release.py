"""The released model: float16 export, the size limit, the card, and its users (the CLI
without --checkpoint, teacher kind mirkd without a checkpoint, stage2.init)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
import yaml

from mirkd import released
from mirkd.checkpoints import load_checkpoint, read_checkpoint_state, save_checkpoint
from mirkd.cli import main
from mirkd.demo import write_demo_corpus
from mirkd.errors import ConfigError
from mirkd.inference import predict_logits_many
from mirkd.release import ReleaseError, export_checkpoint, unlabeled_sources
from mirkd.teacher_spec import TeacherSpec
from mirkd.variants import expand_variants

from conftest import copy_of_run
from model_helpers import resolved_config, tiny_bundle
from workflow_helpers import planned_jobs, snakemake, tiny_config, write_config

SR = 22050


@pytest.fixture()
def trained(tmp_path: Path) -> Path:
    """A tiny float32 BTC checkpoint with a training provenance."""
    path = tmp_path / "trained.pt"
    save_checkpoint(path, tiny_bundle(seed=1, stage="stage2"))
    return path


@pytest.fixture()
def no_release(tmp_path: Path, monkeypatch) -> Path:
    """The package's released folder pointed at an empty folder."""
    folder = tmp_path / "empty_release"
    folder.mkdir()
    monkeypatch.setattr(released, "FOLDER", folder)
    return folder


@pytest.fixture()
def a_release(tmp_path: Path, trained: Path, monkeypatch) -> Path:
    """The released folder pointed at one holding an exported tiny model and a card."""
    folder = tmp_path / "release"
    export_checkpoint(trained, folder / released.MODEL)
    export_checkpoint(trained, folder / released.STAGE1)
    bundle = load_checkpoint(folder / released.MODEL)
    card = {"model": {"arch": bundle.arch, "hparams": bundle.hparams}, "variant": "base"}
    (folder / released.CARD_JSON).write_text(json.dumps(card))
    monkeypatch.setattr(released, "FOLDER", folder)
    return folder


def test_export_is_float16_and_predicts_like_the_original(tmp_path: Path, trained: Path):
    out = tmp_path / "model.pt"
    info = export_checkpoint(trained, out)
    assert info["bytes"] == out.stat().st_size and len(info["sha256"]) == 64
    stored = read_checkpoint_state(out)["state_dict"]
    floats = [v for v in stored.values() if v.is_floating_point()]
    assert floats and all(v.dtype == torch.float16 for v in floats)
    assert out.stat().st_size < 0.7 * trained.stat().st_size
    original, exported = load_checkpoint(trained), load_checkpoint(out)
    assert all(p.dtype == torch.float32 for p in exported.model.parameters())
    assert exported.provenance["weights"] == "float16"
    assert exported.provenance["trained"]["git_commit"] == original.provenance["git_commit"]
    features = np.random.default_rng(0).normal(-3.5, 2.0, (300, 144)).astype(np.float32)
    cpu = torch.device("cpu")
    a, b = (predict_logits_many(m, [features], cpu)[0] for m in (original, exported))
    np.testing.assert_allclose(a, b, atol=2e-2, rtol=1e-2)
    assert (a.argmax(-1) == b.argmax(-1)).mean() > 0.99


def test_export_over_the_size_limit_is_refused_and_leaves_no_file(tmp_path, trained):
    out = tmp_path / "model.pt"
    with pytest.raises(ReleaseError, match=r"over the 0.01 MB allowed"):
        export_checkpoint(trained, out, max_bytes=10_000)
    assert not out.exists() and list(tmp_path.iterdir()) == [trained]


def test_without_a_released_model_the_cli_says_so_in_one_line(no_release, tmp_path, capsys):
    song = tmp_path / "song.wav"
    sf.write(song, np.zeros(SR, dtype=np.float32), SR)
    assert main(["transcribe", str(song), "--out", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err.strip()
    assert "holds no released model" in err and "--checkpoint" in err
    assert len(err.splitlines()) == 1
    assert main(["info"]) == 1
    err = capsys.readouterr().err.strip()
    assert "holds no released model" in err and len(err.splitlines()) == 1


def test_cli_uses_the_released_model_by_default(a_release, tmp_path, capsys):
    t = np.arange(int(2.5 * SR)) / SR
    song = tmp_path / "song.wav"
    sf.write(song, (np.sin(2 * np.pi * 261.63 * t) / 2).astype(np.float32), SR)
    out = tmp_path / "out"
    assert main(["transcribe", str(song), "--out", str(out), "--format", "jams"]) == 0
    meta = json.loads((out / "song.jams").read_text())["annotations"][0]["annotation_metadata"]
    assert released.file_sha256(a_release / released.MODEL) in json.dumps(meta)
    assert meta["annotator"]["name"] == released.NAME
    capsys.readouterr()
    assert main(["info"]) == 0
    card = json.loads(capsys.readouterr().out)
    assert card["path"] == str(a_release / released.MODEL) and card["variant"] == "base"
    assert main(["info", str(a_release / released.STAGE1)]) == 0  # a path still works
    assert json.loads(capsys.readouterr().out)["arch"] == "btc"


def test_teacher_kind_mirkd_without_checkpoint_is_the_released_model(a_release):
    spec = TeacherSpec.from_config({"kind": "mirkd"})
    assert spec.checkpoints() == [str(a_release / released.MODEL)]
    assert spec.to_dict()["released"] == released.file_sha256(a_release / released.MODEL)
    other = TeacherSpec.from_config({"kind": "mirkd", "checkpoint": "x.pt"})
    assert "released" not in other.to_dict()
    tag = spec.tag
    save_checkpoint(a_release / released.MODEL, tiny_bundle(seed=7))  # a new release
    assert TeacherSpec.from_config({"kind": "mirkd"}).tag != tag


def test_teacher_kind_mirkd_without_checkpoint_or_release_is_a_config_error(no_release):
    with pytest.raises(ConfigError, match=r"holds no released model.*variants.x.teacher"):
        TeacherSpec.from_config({"kind": "mirkd"}, "variants.x.teacher")


def _config(**stage2) -> dict:
    required = {"epochs": 1, "batch_size": 8, "lr": 1e-3}
    return resolved_config(
        {
            "data": {"demo": None},
            "teacher": {"kind": "lvchordia"},
            "student": {"arch": "btc"},
            "stage1": dict(required),
            "stage2": {**required, **stage2},
            "baseline": dict(required),
        }
    )


def test_stage2_init_leaves_stage1_out_of_the_variant():
    (base,) = expand_variants(_config(), ["a", "b"])
    assert base.models == ("stage1", "stage2", "baseline") and base.stage2_init is None
    assert "init" not in base.settings("stage2")
    (given,) = expand_variants(_config(init="s1.pt"), ["a", "b"])
    assert given.models == ("stage2", "baseline") and given.stage2_init == "s1.pt"
    bad = _config()
    bad["baseline"]["init"] = "x.pt"
    with pytest.raises(ConfigError, match="baseline.init: only stage 2"):
        expand_variants(bad, ["a"])


@pytest.fixture()
def tiny_data(tmp_path: Path) -> Path:
    workdir = tmp_path / "run"
    write_demo_corpus(workdir / "data", 2, 4, 1, seed=5, min_seconds=8, max_seconds=9)
    return workdir


def test_stage2_init_plans_no_stage1(tiny_data: Path, trained: Path):
    """A run whose stage 2 starts from a given student trains no stage 1 and runs no teacher
    on the unlabeled audio (the whole DAG, planned)."""
    config = tiny_config(Path("data"))
    write_config(tiny_data, config)
    before = planned_jobs(tiny_data)
    assert before["stage1"] == 1
    config["stage2"]["init"] = str(trained)
    write_config(tiny_data, config)
    jobs = planned_jobs(tiny_data)
    assert "stage1" not in jobs and "skipped" not in jobs
    assert jobs["stage2"] == 1 and jobs["baseline"] == 1
    assert jobs["teacher"] < before["teacher"]  # labeled train (KD) and test buckets only


def test_stage2_init_released_needs_the_released_student_to_match(
    tiny_data: Path, a_release: Path, monkeypatch
):
    from workflow_helpers import run_plan

    config = tiny_config(Path("data"))
    config["stage2"]["init"] = "released"
    write_config(tiny_data, config)
    plan = run_plan(tiny_data, monkeypatch)
    assert plan.stage2_init(plan.base) == str(a_release / released.STAGE1)
    config["student"]["hparams"]["hidden_size"] = 32
    write_config(tiny_data, config)
    plan = run_plan(tiny_data, monkeypatch)
    message = r"^stage2\.init: released holds a model .*hidden_size 32 \(the model: 16\)"
    with pytest.raises(ConfigError, match=message) as caught:
        plan.stage2_init(plan.base)
    assert str(caught.value).endswith("(see `mirkd info`)")


def test_sources_read_the_manifest_of_a_folder_given_with_an_environment_variable(
    tmp_path, monkeypatch
):
    """Configs name data folders as $MIRKD_DATA/...: the card must find their manifest.tsv."""
    folder = tmp_path / "real"
    folder.mkdir()
    rows = [
        "package\tsource\tflac\tsource_s\tkept_s\tlicense",
        "pkg\ts\ta.flac\t7200\t3600\tGPL-2+",
    ]
    (folder / "manifest.tsv").write_text("\n".join(rows) + "\n")
    monkeypatch.setenv("MIRKD_TEST_DATA", str(tmp_path))
    (row,) = unlabeled_sources(["$MIRKD_TEST_DATA/real"])
    assert (row["package"], row["license"], row["files"], row["hours"]) == ("pkg", "GPL-2+", 1, 1.0)


@pytest.mark.slow
def test_release_target_exports_the_run_with_its_card(finished_tiny_run, tmp_path):
    run = copy_of_run(finished_tiny_run, tmp_path)
    config = yaml.safe_load((run / "config.yaml").read_text())
    unlabeled = Path(run / config["data"]["unlabeled"][0])
    rows = ["package\tsource\tflac\tsource_s\tkept_s\tlicense"]
    rows += [f"demo\tsrc\t{p.name}\t20.0\t18.0\tCC0-1.0" for p in sorted(unlabeled.glob("*.flac"))]
    (unlabeled / "manifest.tsv").write_text("\n".join(rows) + "\n")
    config["release"] = {"sources": ["demo corpus (synthetic, CC0)"]}
    write_config(run, config)
    result = snakemake(run, "release")
    assert result.returncode == 0, result.stderr[-4000:]
    out = run / "results" / "release"
    card = json.loads((out / "model_card.json").read_text())
    assert {"stage1", "stage2", "baseline"} <= set(card["test_scores"])
    assert any(name.startswith("teacher ") for name in card["test_scores"])
    stage2 = json.loads((run / "results" / "metrics" / "stage2.json").read_text())
    assert card["test_scores"]["stage2"]["mean7"] == stage2["mean7"]
    assert card["test_scores"]["stage2"]["mean7_ci95"] == stage2["ci95"]["mean7"]
    assert card["data"]["test"]["songs"] == stage2["n_songs"]
    assert card["data"]["unlabeled-train"]["hours"] > 0
    package = [s for s in card["sources"] if s.get("package") == "demo"]
    assert package and package[0]["license"] == "CC0-1.0"
    assert package[0]["files"] == len(rows) - 1
    assert card["source_notes"] == ["demo corpus (synthetic, CC0)"]
    assert card["teacher"]["tag"].startswith("lvchordia-")
    assert card["stages"]["stage2"]["epochs"] == 2 and card["model"]["arch"] == "btc"
    assert card["model"]["bytes"] <= 8_000_000
    text = (out / "MODEL_CARD.md").read_text()
    assert "| stage2 |" in text and "CC0-1.0" in text
    for name in ("model.pt", "stage1.pt"):
        bundle = load_checkpoint(out / name)
        assert bundle.provenance["weights"] == "float16"
    assert planned_jobs(run) == Counter()  # `all` does not include the release
