"""Config errors are caught before any job runs, with a message naming the key or folder."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from mirkd.cli import main
from mirkd.config_check import check_config_file, read_config_file, with_schema_defaults
from mirkd.demo import write_demo_corpus
from mirkd.errors import ConfigError
from mirkd.labels import ChordSegment, read_annotation, write_jams, write_lab
from mirkd.manifest import scan_audio
from mirkd.vocab import LARGE

from workflow_helpers import REPO, snakemake, tiny_config, write_config


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
    assert code != 0 and "no annotation file labeled_0001.lab or labeled_0001.jams" in out


def test_jams_annotations_are_found_and_a_lab_beside_one_wins(tmp_path: Path, caplog) -> None:
    """Labeled audio may come with a .jams instead of a .lab; with both, the .lab is read and
    the run says so. Unlabeled folders may hold either without a warning about them."""
    for name in ("a", "b", "c"):
        (tmp_path / f"{name}.flac").write_bytes(b"")
    jams_segments = [ChordSegment(0.0, 1.0, "C:min"), ChordSegment(1.0, 2.0, "G:7")]
    lab_segments = [ChordSegment(0.0, 2.0, "N")]
    for name in ("a.jams", "c.jams"):
        write_jams(tmp_path / name, jams_segments, 2.0, {"name": "test"})
    for name in ("b.lab", "c.lab"):
        write_lab(tmp_path / name, lab_segments)
    with caplog.at_level(logging.WARNING, logger="mirkd.manifest"):
        tracks = scan_audio(tmp_path, "labeled", need_labels=True)
    assert [Path(t.lab).name for t in tracks] == ["a.jams", "b.lab", "c.lab"]
    assert [read_annotation(t.lab, LARGE, duration=2.0) for t in tracks] == [
        jams_segments,
        lab_segments,
        lab_segments,
    ]
    assert "1 audio file(s) have both a .lab and a .jams" in caplog.text and "c.jams" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="mirkd.manifest"):
        assert [t.lab for t in scan_audio(tmp_path, "unlabeled", need_labels=False)] == [None] * 3
    assert not caplog.text


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


def test_a_key_given_twice_is_an_error_naming_both_lines(tmp_path: Path) -> None:
    path = tmp_path / "dup.yaml"
    path.write_text("split:\n  labeled_val_fraction: 0.1\n  labeled_val_fraction: 0.2\n")
    with pytest.raises(ConfigError, match=r"dup.yaml:3: key 'labeled_val_fraction' is given twice"):
        read_config_file(path)


def test_a_yaml_syntax_error_names_its_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("split:\n  labeled_val_fraction: 0.1\n   bad: [\n")
    with pytest.raises(ConfigError, match=r"bad.yaml:3: YAML syntax error: mapping values"):
        read_config_file(path)


def test_schema_errors_are_one_short_line_each(tmp_path: Path) -> None:
    path = tmp_path / "typo.yaml"
    path.write_text("split:\n  labeled_val_fractoin: 0.1\nstage1:\n  epochs: ten\n")
    with pytest.raises(ConfigError) as info:
        check_config_file(path, REPO / "config.schema.yaml")
    lines = str(info.value).splitlines()
    assert lines[0] == f"{path}: the config does not fit config.schema.yaml (2 error(s)):"
    assert lines[1].startswith("  split.labeled_val_fractoin: unknown key (known here: ")
    assert lines[2] == "  stage1.epochs: 'ten' is not of type 'integer'"
    assert len(lines) == 3  # a missing key is no error in one of several files


def test_mirkd_check_config_names_the_line(tmp_path: Path, capsys) -> None:
    bad, good = tmp_path / "bad.yaml", tmp_path / "good.yaml"
    bad.write_text("split:\n  labeled_val_fraction: 0.1\n   bad: [\n")
    good.write_text((REPO / "config.yaml").read_text())
    assert main(["check-config", str(good)]) == 0
    assert main(["check-config", str(good), str(bad)]) == 1
    assert f"mirkd: error: {bad}:3: YAML syntax error" in capsys.readouterr().err


def test_a_dry_run_says_a_config_error_in_short(tmp_path: Path) -> None:
    """What `snakemake -n` prints for an unknown key or a key given twice: the cause in a line,
    no dump of the schema."""
    write_demo_corpus(tmp_path / "data", 1, 2, 1, seed=0, min_seconds=5, max_seconds=6)
    config = tiny_config(tmp_path / "data")
    config["split"]["labeled_val_fractoin"] = 0.1
    code, out = _dry_run_output(tmp_path, config)
    assert code != 0
    assert "split.labeled_val_fractoin: unknown key" in out
    assert "Failed validating" not in out and "$schema" not in out and len(out) < 1500
    del config["split"]["labeled_val_fractoin"]
    text = write_config(tmp_path, config).read_text()
    (tmp_path / "config.yaml").write_text(text + "device: cpu\n")
    result = snakemake(tmp_path, "-n", timeout=120)
    out = result.stdout + result.stderr
    assert result.returncode != 0 and "key 'device' is given twice" in out and len(out) < 1500


@pytest.mark.parametrize("config_file", ["config.yaml", "configs/release.yaml"])
def test_schema_defaults_match_snakemake(config_file: str) -> None:
    """with_schema_defaults fills in exactly what Snakemake's validate(set_default=True) does,
    for the default config and for a partial one (a --configfile)."""
    import copy

    import yaml
    from snakemake.utils import validate

    schema_file = REPO / "config.schema.yaml"
    config = yaml.safe_load((REPO / config_file).read_text())
    expected = copy.deepcopy(config)
    validate(expected, str(schema_file), set_default=True)
    filled = with_schema_defaults(config, yaml.safe_load(schema_file.read_text()))
    assert filled == expected
    assert filled is not config and "stage1" in filled
