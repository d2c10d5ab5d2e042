"""mir_eval protocol and per-quality tables on hand-made segment lists."""

from __future__ import annotations

import json

import mir_eval
import numpy as np
import pytest

from mirkd.evaluation import (
    CONFUSION_LABELS,
    METRICS,
    evaluate_songs,
    quality_table,
    score_song,
)
from mirkd.labels import ChordSegment as S

REF = [S(0.0, 2.0, "C:maj"), S(2.0, 4.0, "A:min7/b7"), S(4.0, 6.0, "G:7")]


def test_perfect_estimate_scores_one():
    scores = score_song(REF, REF)
    assert set(scores) == set(METRICS)
    assert all(v == pytest.approx(1.0) for v in scores.values())


def test_half_wrong_scores_half():
    est = [S(0.0, 3.0, "C:maj"), S(3.0, 6.0, "F#:maj")]
    ref = [S(0.0, 6.0, "C:maj")]
    assert score_song(ref, est)["root"] == pytest.approx(0.5)
    assert score_song(ref, est)["majmin"] == pytest.approx(0.5)


def test_x_reference_excluded_and_estimate_padded_with_n():
    ref = [S(0.0, 2.0, "X"), S(2.0, 4.0, "D:min")]
    est = [S(2.0, 3.0, "D:min")]  # pads [0,2) and [3,4) with N
    scores = score_song(ref, est)
    assert scores["majmin"] == pytest.approx(0.5)  # X time excluded, 1 of 2 s correct
    all_x = score_song([S(0.0, 1.0, "X")], est)
    assert all(v is None for v in all_x.values())


def test_matches_mir_eval_evaluate():
    est = [S(0.0, 1.5, "C:maj"), S(1.5, 3.5, "A:min"), S(3.5, 5.0, "G:maj"), S(5.0, 7.0, "N")]
    ref_i = np.array([[s.start, s.end] for s in REF])
    est_i = np.array([[s.start, s.end] for s in est])
    expected = mir_eval.chord.evaluate(ref_i, [s.label for s in REF], est_i, [s.label for s in est])
    scores = score_song(REF, est)
    for metric in METRICS:
        assert scores[metric] == pytest.approx(expected[metric])


def test_evaluate_songs_duration_weighted_and_json():
    short = [S(0.0, 1.0, "C:maj")]
    long = [S(0.0, 3.0, "D:maj")]
    result = evaluate_songs(
        {
            "a": (short, short),  # 1.0 over 1 s
            "b": (long, [S(0.0, 3.0, "E:maj")]),  # 0.0 over 3 s
        }
    )
    assert result["mean"]["root"] == pytest.approx(0.25)
    assert result["per_song"]["b"]["duration"] == pytest.approx(3.0)
    assert result["n_songs"] == 2
    json.dumps(result)


def test_quality_recall_requires_root_and_reports_quality_only():
    ref = [S(0.0, 2.0, "C:min"), S(2.0, 4.0, "D:maj/3"), S(4.0, 5.0, "X"), S(5.0, 6.0, "N")]
    est = [S(0.0, 1.0, "C:min"), S(1.0, 2.0, "A:min"), S(2.0, 4.0, "D"), S(4.0, 6.0, "N")]
    table = quality_table([(ref, est)])
    groups = table["groups"]
    assert groups["min"]["recall"] == pytest.approx(0.5)
    assert groups["min"]["quality_recall"] == pytest.approx(1.0)
    assert groups["maj"]["recall"] == pytest.approx(1.0)
    assert groups["N"]["recall"] == pytest.approx(1.0)
    assert groups["7"]["recall"] is None
    assert groups["min"]["share"] == pytest.approx(2 / 5)
    assert table["excluded_seconds"] == pytest.approx(1.0)
    assert table["mean_recall"] == pytest.approx((0.5 + 1.0 + 1.0) / 3)
    conf = np.array(table["confusion"]["seconds"])
    pos = {q: i for i, q in enumerate(CONFUSION_LABELS)}
    assert conf[pos["min"], pos["min"]] == pytest.approx(2.0)
    assert conf[pos["X"], pos["N"]] == pytest.approx(1.0)
    assert conf.sum() == pytest.approx(6.0)
    json.dumps(table)


def test_precision_counts_estimate_time_of_each_quality():
    ref = [S(0.0, 2.0, "C:maj"), S(2.0, 4.0, "C:maj7"), S(4.0, 5.0, "A:min")]
    est = [S(0.0, 1.0, "C:maj"), S(1.0, 4.0, "C:maj7"), S(4.0, 5.0, "N")]
    table = quality_table([(ref, est)])
    groups = table["groups"]
    # maj7: all 2 s of reference found, but 1 of the 3 s it is called are C:maj reference
    assert groups["maj7"]["recall"] == pytest.approx(1.0)
    assert groups["maj7"]["est_seconds"] == pytest.approx(3.0)
    assert groups["maj7"]["precision"] == pytest.approx(2 / 3)
    assert groups["maj"]["recall"] == pytest.approx(0.5)
    assert groups["maj"]["precision"] == pytest.approx(1.0)
    # min is in the reference but never called: recall 0, precision undefined
    assert groups["min"]["recall"] == pytest.approx(0.0)
    assert groups["min"]["est_seconds"] == 0.0 and groups["min"]["precision"] is None
    # N is called (1 s) but never in the reference: precision 0, recall undefined
    assert groups["N"]["precision"] == pytest.approx(0.0) and groups["N"]["recall"] is None
    assert groups["7"]["precision"] is None and groups["7"]["est_seconds"] == 0.0
    assert table["mean_precision"] == pytest.approx((2 / 3 + 1.0 + 0.0) / 3)
    assert table["mean_recall"] == pytest.approx((1.0 + 0.5 + 0.0) / 3)  # unchanged
    json.dumps(table)


def test_precision_ignores_x_reference_and_requires_the_root():
    ref = [S(0.0, 2.0, "C:maj7"), S(2.0, 3.0, "X"), S(3.0, 4.0, "D:maj7")]
    est = [S(0.0, 3.0, "C:maj7"), S(3.0, 4.0, "E:maj7")]
    groups = quality_table([(ref, est)])["groups"]
    assert groups["maj7"]["est_seconds"] == pytest.approx(3.0)  # the 1 s on X is not counted
    assert groups["maj7"]["precision"] == pytest.approx(2 / 3)  # E for D is wrong
    assert groups["maj7"]["recall"] == pytest.approx(2 / 3)
