"""The summary's variant tables and the label-efficiency figure, from real evaluations."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from mirkd.evaluation import evaluate_songs
from mirkd.history import EpochRecord
from mirkd.labels import ChordSegment
from mirkd.plots import label_efficiency_figure, label_efficiency_points, save_figure
from mirkd.scores import ModelScores, read_scores
from mirkd.summary import summary_markdown, write_summary

REFERENCE = [ChordSegment(0, 4, "C:maj7"), ChordSegment(4, 8, "A:min7"), ChordSegment(8, 10, "G")]


def _metrics(accuracy: float, seed: int) -> dict:
    """Evaluation of 6 songs whose estimate is right on the first `accuracy` of each song."""
    rng = np.random.default_rng(seed)
    songs = {}
    for i in range(6):
        cut = 10 * min(1.0, max(0.0, accuracy + rng.normal(0, 0.05)))
        estimate = (
            [ChordSegment(0, cut, "C:maj7"), ChordSegment(cut, 10, "F#")]
            if cut < 10
            else [ChordSegment(0, 10, "C:maj7")]
        )
        songs[f"song{i}"] = (REFERENCE, estimate)
    result = evaluate_songs(songs)
    result["viterbi"] = {**evaluate_songs(songs), "stay": 0.9}
    return result


def _write(tmp_path: Path, name: str, content: dict) -> str:
    path = tmp_path / name
    path.write_text(json.dumps(content))
    return str(path)


def test_variant_tables_and_label_efficiency(tmp_path: Path) -> None:
    rows = []
    runs = (("base", 20, 0.6, "lv-1"), ("b5", 5, 0.3, "lv-1"), ("b5_lr", 5, 0.35, "ens-1"))
    for variant, budget, acc, teacher in runs:
        for model, bonus in (("teacher", 0.3), ("stage1", 0.2), ("stage2", 0.1), ("baseline", 0.0)):
            name = f"teacher_{teacher}.json" if model == "teacher" else f"{variant}_{model}.json"
            metrics = _write(tmp_path, name, _metrics(acc + bonus, seed=len(rows)))
            history = (
                None
                if model == "teacher"
                else _write(
                    tmp_path,
                    f"{variant}_{model}_h.json",
                    {
                        "history": [
                            EpochRecord(1, 2.0, 0.5, 1e-3, 10.0).to_dict(),
                            EpochRecord(2, 1.5, 0.625, 1e-3, 20.0).to_dict(),
                        ]
                    },
                )
            )
            rows.append(
                {
                    "variant": variant,
                    "budget": budget,
                    "model": model,
                    "budget_only": variant != "b5_lr",
                    "reference": "b5" if variant == "b5_lr" else None,
                    "metrics": metrics,
                    "history": history,
                    "trained_by": "base" if model == "stage1" else variant,
                    "teacher": teacher,
                }
            )
    out = tmp_path / "summary.md"
    write_summary(rows, "results/splits.tsv", out)
    text = out.read_text()
    assert "## Variants" in text and "| b5_lr | 5 | stage2 | 62.5 |" in text
    assert "| b5 | 5 | stage1 (= base) |" in text
    # a teacher is listed once, with the first variant that uses it
    assert "| base | 20 | teacher lv-1 |" in text and "| b5 | 5 | teacher" not in text
    assert "| b5_lr | 5 | teacher ens-1 |" in text
    assert "Stage 2 minus baseline, and minus the variant's teacher" in text
    diff_row = next(line for line in text.splitlines() if line.startswith("| b5 | 5 | +"))
    assert diff_row.count("[") == 3  # paired intervals: vs baseline (argmax, Viterbi), teacher
    assert "maj7" in text and "min7" in text
    rare_header = next(line for line in text.splitlines() if line.startswith("| variant | model |"))
    assert "maj7 (40.0) R / P" in rare_header and "min7 (40.0) R / P" in rare_header
    # b5_lr is measured against b5 (same songs, base settings): paired, with epoch seconds
    option = next(line for line in text.splitlines() if line.startswith("| b5_lr | b5 |"))
    assert option.count("[") == 2 and option.endswith("| +0.0 | 15.0 | 15.0 |")
    rare_row = next(line for line in text.splitlines() if line.startswith("| b5 | stage2 |"))
    assert rare_row.endswith(" / – |")  # min7 is never called: precision "–"
    scores = {r["metrics"]: read_scores(r["metrics"]) for r in rows}
    points = label_efficiency_points(rows, scores)
    assert {p["budget"] for p in points} == {5, 20}  # b5_lr is not a budget-only variant
    assert {p["decoding"] for p in points} == {"argmax", "viterbi"}
    png = tmp_path / "label_efficiency.png"
    save_figure(label_efficiency_figure(points), png)
    assert png.stat().st_size > 10_000


def test_without_variants_the_summary_has_one_table(tmp_path: Path) -> None:
    rows = [
        {
            "variant": "base",
            "budget": 3,
            "model": m,
            "budget_only": True,
            "history": None,
            "metrics": _write(tmp_path, f"{m}.json", _metrics(0.5, seed=1)),
        }
        for m in ("teacher", "stage1", "stage2", "baseline")
    ]
    out = tmp_path / "summary.md"
    write_summary(rows, "splits.tsv", out)
    text = out.read_text()
    assert "## Variants" not in text and "| stage2 |" in text and "mean7 Viterbi" in text
    assert "also in the unlabeled set" not in text
    write_summary(rows, "splits.tsv", out, labeled_in_unlabeled=[["l/a.flac", "u/a.flac"]])
    assert out.read_text().endswith(
        "Labeled songs also in the unlabeled set (data.allow_labeled_in_unlabeled; stage 1 "
        "trained on their audio with teacher labels): 1\n\n| labeled | unlabeled |\n|---|---|\n"
        "| `l/a.flac` | `u/a.flac` |\n"
    )


def test_a_difference_without_interval_is_printed_without_one() -> None:
    from mirkd.summary import _signed

    assert _signed({"mean7": 0.012, "ci95": None}) == "+1.2"
    assert _signed({"mean7": 0.012, "ci95": [0.001, 0.02]}) == "+1.2 [+0.1, +2.0]"
    assert _signed(None) == "–"


def test_per_quality_table_shows_recall_and_precision_and_reads_old_metrics() -> None:
    reference = [ChordSegment(0, 2, "C:maj"), ChordSegment(2, 4, "C:maj7")]
    estimate = [
        ChordSegment(0, 1, "C:maj"),
        ChordSegment(1, 3, "C:maj7"),
        ChordSegment(3, 4, "C:sus4"),
    ]
    new = evaluate_songs({"s": (reference, estimate)})
    old = json.loads(json.dumps(new))  # a metrics file written before precision existed
    for group in old["quality"]["groups"].values():
        del group["precision"], group["est_seconds"]
    text = summary_markdown({"new": ModelScores.from_json(new), "old": ModelScores.from_json(old)})
    assert "Per-quality recall / precision (%)" in text
    assert "| quality | share | new R / P | old R / P |" in text
    assert "| maj | 50.0 | 50.0 / 100.0 | 50.0 / – |" in text
    assert "| maj7 | 50.0 | 50.0 / 50.0 | 50.0 / – |" in text
    # sus4 is not in the reference, but over-calling it shows as a precision of 0
    assert "| sus4 | 0.0 | – / 0.0 | – / – |" in text


def test_per_beat_table_only_when_a_model_has_beat_scores() -> None:
    frames, better = _metrics(0.5, seed=1), _metrics(0.9, seed=1)
    assert "Chords per beat" not in summary_markdown({"stage2": ModelScores.from_json(frames)})
    beats = {**better["viterbi"], "fallback": "viterbi", "no_beats": []}
    with_beats = ModelScores.from_json({**frames, "beats": beats})
    text = summary_markdown({"teacher": ModelScores.from_json(frames), "stage2": with_beats})
    assert "| model | majmin per beat | mean7 per beat | Δ vs frames [95 % CI] | no beat |" in text
    row = next(
        line for line in text.splitlines() if line.startswith("| stage2 | ") and "of 6" in line
    )
    assert row.endswith("| 0 of 6 |") and "| +" in row  # per beat better than its Viterbi frames
    assert not any(line.startswith("| teacher |") and "of 6" in line for line in text.splitlines())
