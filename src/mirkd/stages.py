"""The models of a run and the decisions about them, each made here once.

Every run has a teacher and trains three students: stage 1 (pseudo-labels only), stage 2 (fine-
tuned from stage 1 on the labeled songs, distilling from the teacher) and the baseline (labeled
songs only). The rules, the run plan, the training and evaluation steps, the summary and the
figures take the names, which stage distils and which metric selects each model from here.
Planning imports this module: no torch.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

TEACHER = "teacher"
STAGE1, STAGE2, BASELINE = "stage1", "stage2", "baseline"
STAGES = (STAGE1, STAGE2, BASELINE)  # the trained models, in training order
MODELS = (TEACHER, *STAGES)  # every model a run evaluates
STAGE1_SELECTION = "agreement with teacher"  # stage 1 is selected on unlabeled audio
# Training settings added after runs existed, at their default: a job's params leave them out
# while they hold it (`job_settings`), so upgrading mirkd does not retrain finished models;
# `TrainConfig.from_settings` puts them back. `precision: auto` is the device's choice (how
# the step computes, like the thread count), not part of what the job is.
UNSTATED_SETTINGS: Mapping[str, Any] = {"precision": "auto"}


def job_settings(settings: Mapping[str, Any]) -> dict[str, Any]:
    """A stage's settings as its training job's params: without stage 2's `init` (the job's
    input file, not a parameter) and without the UNSTATED_SETTINGS that hold their value."""
    return {
        k: v
        for k, v in settings.items()
        if k != "init" and not (k in UNSTATED_SETTINGS and v == UNSTATED_SETTINGS[k])
    }


def distils(stage: str, settings: Mapping[str, Any]) -> bool:
    """Whether `stage`, trained with `settings`, distils from the teacher's outputs of the
    labeled training songs (stage 2 with `use_kd`; stage 1's KD option reads its own buckets)."""
    return stage == STAGE2 and bool(settings["use_kd"])


def selection_metric(stage: str, settings: Mapping[str, Any]) -> str:
    """What selects `stage`'s checkpoint: agreement with the teacher for stage 1, the stage's
    `val_metric` on the labeled validation songs otherwise."""
    return STAGE1_SELECTION if stage == STAGE1 else str(settings["val_metric"])


def decode_metric(model: str, stages: Mapping[str, Mapping[str, Any]]) -> str:
    """The validation metric that tunes the Viterbi prior of `model`'s predictions (stage 1 has
    none of its own: it takes stage 2's)."""
    return str(stages[STAGE2 if model == STAGE1 else model]["val_metric"])
