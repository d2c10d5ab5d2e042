"""The models of a run and the decisions about them, made in mirkd.stages once."""

from __future__ import annotations

from mirkd.plots import MODEL_COLORS, MODEL_LABELS
from mirkd.stages import (
    MODELS,
    STAGES,
    decode_metric,
    distils,
    selection_metric,
)


def test_the_models_are_named_once() -> None:
    assert MODELS == ("teacher", "stage1", "stage2", "baseline") and STAGES == MODELS[1:]
    assert set(MODEL_COLORS) == set(MODEL_LABELS) == set(MODELS)


def test_only_stage2_with_use_kd_distils() -> None:
    assert distils("stage2", {"use_kd": True})
    assert not distils("stage2", {"use_kd": False})
    assert not distils("baseline", {"use_kd": True}) and not distils("stage1", {"use_kd": True})


def test_selection_and_decoding_metrics() -> None:
    stages = {"stage1": {"val_metric": "root"}, "stage2": {"val_metric": "mean7"}}
    stages["baseline"] = {"val_metric": "majmin"}
    assert selection_metric("stage1", stages["stage1"]) == "agreement with teacher"
    assert [selection_metric(s, stages[s]) for s in ("stage2", "baseline")] == ["mean7", "majmin"]
    assert (
        decode_metric("stage1", stages) == "mean7" and decode_metric("baseline", stages) == "majmin"
    )
