"""The metrics file as a record: one writer's layout, one reader, clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mirkd.errors import MetricsFileError
from mirkd.evaluation import evaluate_songs
from mirkd.labels import ChordSegment as S
from mirkd.scores import ModelScores, ViterbiScores, read_scores

SONGS = {
    "a": ([S(0.0, 2.0, "C:maj"), S(2.0, 4.0, "A:min")], [S(0.0, 4.0, "C:maj")]),
    "b": ([S(0.0, 3.0, "G:7")], [S(0.0, 3.0, "G:7")]),
}


def _model_file() -> dict:
    """A metrics file as the evaluation step writes it (argmax, Viterbi, source)."""
    viterbi = {**evaluate_songs(SONGS), "stay": 0.9, "val_metric": "majmin", "val_scores": {}}
    return {**evaluate_songs(SONGS), "viterbi": viterbi, "source": {"checkpoint": "m.pt"}}


def test_a_metrics_file_reads_into_the_record_and_writes_back_unchanged(tmp_path: Path) -> None:
    content = json.loads(json.dumps(_model_file()))
    path = tmp_path / "stage2.json"
    path.write_text(json.dumps(content))
    scores = read_scores(path)
    assert isinstance(scores.viterbi, ViterbiScores) and scores.viterbi.stay == 0.9
    assert scores.n_songs == 2 and scores.mean7 == content["mean7"]
    assert scores.interval("mean7") == content["ci95"]["mean7"]
    assert scores.groups == content["quality"]["groups"]
    assert set(scores.decodings()) == {"argmax", "viterbi"}
    assert scores.to_json() == content
    teacher = {**evaluate_songs(SONGS), "source": {"teacher_outputs": []}}
    teacher = json.loads(json.dumps(teacher))
    assert ModelScores.from_json(teacher).to_json() == teacher  # no "viterbi" key


def test_an_older_file_without_intervals_or_decoding_still_reads() -> None:
    old = evaluate_songs(SONGS)
    del old["mean7"], old["ci95"]
    scores = ModelScores.from_json(old)
    assert scores.mean7 is None and scores.interval("mean7") is None and scores.viterbi is None
    assert set(scores.decodings()) == {"argmax"}


@pytest.mark.parametrize("key", ["per_song", "mean", "n_songs", "quality"])
def test_a_missing_key_is_an_error_naming_the_file(tmp_path: Path, key: str) -> None:
    content = json.loads(json.dumps(_model_file()))
    del content[key]
    path = tmp_path / "baseline.json"
    path.write_text(json.dumps(content))
    with pytest.raises(MetricsFileError, match=f"baseline.json: no '{key}'"):
        read_scores(path)


def test_a_missing_viterbi_key_or_file_names_the_file(tmp_path: Path) -> None:
    content = json.loads(json.dumps(_model_file()))
    del content["viterbi"]["per_song"]
    path = tmp_path / "stage1.json"
    path.write_text(json.dumps(content))
    with pytest.raises(MetricsFileError, match="stage1.json: viterbi: no 'per_song'"):
        read_scores(path)
    with pytest.raises(MetricsFileError, match="absent.json: cannot read"):
        read_scores(tmp_path / "absent.json")
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(MetricsFileError, match="bad.json: not JSON"):
        read_scores(tmp_path / "bad.json")
