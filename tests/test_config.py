"""Config errors are caught before any job runs, with a message naming the key or folder."""

from __future__ import annotations

from pathlib import Path

from mirkd.demo import write_demo_corpus
from mirkd.manifest import scan_audio

from workflow_helpers import snakemake, tiny_config, write_config


def _dry_run_output(workdir: Path, config: dict) -> tuple[int, str]:
    write_config(workdir, config)
    result = snakemake(workdir, "-n", timeout=120)
    return result.returncode, result.stdout + result.stderr


def test_wrong_type_is_named(tmp_path: Path) -> None:
    config = tiny_config(tmp_path / "data")
    config["stage1"]["epochs"] = "ten"
    code, out = _dry_run_output(tmp_path, config)
    assert code != 0
    assert "epochs" in out and "'ten' is not of type 'integer'" in out


def test_unknown_key_is_named(tmp_path: Path) -> None:
    config = tiny_config(tmp_path / "data")
    config["teacher"]["knd"] = "btc"
    code, out = _dry_run_output(tmp_path, config)
    assert code != 0 and "knd" in out


def test_missing_folder_is_named(tmp_path: Path) -> None:
    write_demo_corpus(tmp_path / "data", 1, 2, 1, seed=0, min_seconds=5, max_seconds=6)
    config = tiny_config(tmp_path / "data")
    config["data"]["labeled"] = str(tmp_path / "no_such_folder")
    code, out = _dry_run_output(tmp_path, config)
    assert code != 0
    assert "no_such_folder" in out and "does not exist" in out


def test_missing_annotation_is_named(tmp_path: Path) -> None:
    write_demo_corpus(tmp_path / "data", 2, 4, 1, seed=0, min_seconds=5, max_seconds=6)
    (tmp_path / "data/labeled/labeled_0001.lab").unlink()
    code, out = _dry_run_output(tmp_path, tiny_config(tmp_path / "data"))
    assert code != 0 and "labeled_0001.lab" in out


def test_environment_variables_in_folders_are_expanded(tmp_path: Path, monkeypatch) -> None:
    write_demo_corpus(tmp_path / "data", 1, 2, 1, seed=0, min_seconds=5, max_seconds=6)
    monkeypatch.setenv("MIRKD_TEST_DATA", str(tmp_path / "data"))
    tracks = scan_audio("$MIRKD_TEST_DATA/labeled", "labeled", need_labels=True)
    assert [Path(t.audio).name for t in tracks] == ["labeled_0000.flac", "labeled_0001.flac"]


def test_symlinked_folders_are_followed(tmp_path: Path) -> None:
    write_demo_corpus(tmp_path / "data", 1, 2, 1, seed=0, min_seconds=5, max_seconds=6)
    (tmp_path / "linked").mkdir()
    (tmp_path / "linked" / "part").symlink_to(tmp_path / "data" / "labeled")
    tracks = scan_audio(tmp_path / "linked", "labeled", need_labels=True)
    assert [t.track_id.split("-")[0] for t in tracks] == ["part_labeled_0000", "part_labeled_0001"]
