"""Variant expansion: nested budgets, resolved settings, shared trainings, paths."""

from __future__ import annotations

import subprocess
import sys

import pytest

from mirkd.errors import ConfigError
from mirkd.variants import (
    budget_order,
    budget_size,
    deep_merge,
    expand_variants,
    model_owners,
    reference_of,
)
from mirkd.workflow_plan import check_students

IDS = [f"song_{i:02d}-{i:08x}" for i in range(20)]


def _config(variants: dict | None) -> dict:
    return {
        "teacher": {"kind": "lvchordia"},
        "student": {"arch": "btc", "hparams": {"hidden_size": 16, "num_layers": 1}},
        "stage1": {"epochs": 3, "batch_size": 8, "lr": 1e-3},
        "stage2": {"epochs": 2, "batch_size": 8, "lr": 3e-5, "use_kd": True},
        "baseline": {"epochs": 2, "batch_size": 8, "lr": 1e-3},
        "variants": variants,
    }


def test_without_variants_only_the_base_run_with_every_song() -> None:
    (base,) = expand_variants(_config(None), IDS)
    assert base.name == "" and base.prefix == "" and base.label == "base"
    assert sorted(base.labeled_train) == sorted(IDS)


def test_budgets_are_nested_hash_ordered_subsets() -> None:
    variants = expand_variants(
        _config(
            {
                "b3": {"labeled_budget": 3},
                "b8": {"labeled_budget": 8},
                "half": {"labeled_budget": 0.5},
            }
        ),
        IDS,
    )
    by_name = {v.name: v for v in variants}
    assert len(by_name["b3"].labeled_train) == 3
    assert len(by_name["half"].labeled_train) == 10
    assert set(by_name["b3"].labeled_train) < set(by_name["b8"].labeled_train)
    assert set(by_name["b8"].labeled_train) < set(by_name["half"].labeled_train)
    # the order depends on the ids only: another song changes no budget's membership order
    assert budget_order(IDS[:10])[:3] == [t for t in budget_order(IDS) if t in IDS[:10]][:3]
    assert by_name["b3"].prefix == "variants/b3/"


def test_budget_size_rules() -> None:
    assert budget_size(None, 7, "x") == 7
    assert budget_size(1.0, 7, "x") == 7
    assert budget_size(0.01, 7, "x") == 1
    assert budget_size(4, 7, "x") == 4
    with pytest.raises(ConfigError, match="exceeds the 7"):
        budget_size(9, 7, "variants.big")
    with pytest.raises(ConfigError, match="variants.neg"):
        budget_size(-1, 7, "variants.neg")


def test_overrides_merge_into_the_base_settings() -> None:
    (_, v) = expand_variants(
        _config({"wide": {"student": {"hparams": {"hidden_size": 32}}, "stage2": {"lr": 1e-4}}}),
        IDS,
    )
    assert v.student["hparams"] == {"hidden_size": 32, "num_layers": 1}
    assert v.stages["stage2"]["lr"] == 1e-4 and v.stages["stage2"]["use_kd"] is True
    assert v.stages["stage1"] == _config(None)["stage1"]
    assert deep_merge({"a": {"b": 1}}, {"a": {"c": 2}}) == {"a": {"b": 1, "c": 2}}


def test_unknown_key_and_bad_name_are_named() -> None:
    with pytest.raises(ConfigError, match="variants.x: unknown keys"):
        expand_variants(_config({"x": {"stage3": {}}}), IDS)
    with pytest.raises(ConfigError, match="variants.a/b"):
        expand_variants(_config({"a/b": {}}), IDS)


def test_trainings_are_shared_where_settings_agree() -> None:
    variants = expand_variants(
        _config(
            {
                "b5": {"labeled_budget": 5},
                "b5_lr": {"labeled_budget": 5, "stage2": {"lr": 1e-4}},
                "all_lr": {"stage2": {"lr": 1e-4}},
                "wide": {"student": {"hparams": {"hidden_size": 32}}},
            }
        ),
        IDS,
    )
    owners = model_owners(variants)
    # one stage 1 for every variant with the base student and stage-1 settings
    assert {owners[(v, "stage1")] for v in ("", "b5", "b5_lr", "all_lr")} == {""}
    assert owners[("wide", "stage1")] == "wide"
    # the baseline depends on the budget, not on stage-2 settings
    assert owners[("b5_lr", "baseline")] == "b5"
    assert owners[("all_lr", "baseline")] == ""
    # stage 2 depends on everything
    assert owners[("b5_lr", "stage2")] == "b5_lr"
    assert owners[("b5", "stage2")] == "b5"


ENSEMBLE = {
    "kind": "ensemble",
    "members": [{"kind": "lvchordia"}, {"kind": "mirkd", "checkpoint": "results/models/stage2.pt"}],
}


def test_a_variant_teacher_changes_stage1_and_stage2_not_the_baseline() -> None:
    base, ens = expand_variants(_config({"ens": {"teacher": ENSEMBLE}}), IDS)
    assert ens.teacher.is_ensemble and not base.teacher.is_ensemble
    assert ens.teacher.tag.startswith("ensemble-") and base.teacher.tag.startswith("lvchordia-")
    owners = model_owners([base, ens])
    assert owners[("ens", "stage1")] == "ens" and owners[("ens", "stage2")] == "ens"
    assert owners[("ens", "baseline")] == ""  # the baseline never sees a teacher


def test_self_training_rounds_read_the_round_before() -> None:
    """Round k+1's teacher averages the teacher with round k's stage-2 student (the file of
    the variant that trained it); later-round overrides apply from round 2 on."""
    rounds = {"count": 3, "teacher": "ensemble", "stage1": {"epochs": 5}}
    variants = expand_variants(
        _config({"b5": {"labeled_budget": 5}, "st": {"labeled_budget": 5, "rounds": rounds}}),
        IDS,
        results="out",
    )
    names = [v.name for v in variants]
    assert names == ["", "b5", "st", "st.r2", "st.r3"]
    by_name = {v.name: v for v in variants}
    r2, r3 = by_name["st.r2"], by_name["st.r3"]
    # round 1 is b5 itself, so round 2 reads b5's stage 2
    assert [m.to_dict() for m in r2.teacher.members] == [
        {"kind": "lvchordia", "checkpoint": None, "precision": "fp32"},
        {"kind": "mirkd", "checkpoint": "out/variants/b5/models/stage2.pt", "precision": "fp32"},
    ]
    assert r3.teacher.members[-1].checkpoint == "out/variants/st.r2/models/stage2.pt"
    assert len(r3.teacher.members) == 2  # the base teacher and the latest student
    assert r2.stages["stage1"]["epochs"] == 5 and by_name["st"].stages["stage1"]["epochs"] == 3
    assert r2.labeled_train == by_name["b5"].labeled_train
    owners = model_owners(variants)
    assert owners[("st", "stage2")] == "b5" and owners[("st.r2", "stage1")] == "st.r2"
    assert owners[("st.r2", "baseline")] == "b5"  # the baseline never sees a teacher


def test_a_round_of_the_student_alone_and_an_existing_ensemble_round_are_shared() -> None:
    alone = expand_variants(
        _config({"st": {"rounds": {"count": 2, "teacher": "student"}}}), IDS, results="results"
    )[-1]
    assert alone.teacher.to_dict() == {
        "kind": "mirkd",
        "checkpoint": "results/models/stage2.pt",
        "precision": "fp32",
    }
    # a hand-written ensemble of the same members is the same teacher: its models are shared
    variants = expand_variants(
        _config(
            {"ens": {"teacher": ENSEMBLE}, "st": {"rounds": {"count": 2, "teacher": "ensemble"}}}
        ),
        IDS,
    )
    assert variants[-1].teacher.tag == variants[1].teacher.tag
    assert model_owners(variants)[("st.r2", "stage2")] == "ens"


def test_bad_rounds_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="rounds"):
        expand_variants(_config({"st": {"rounds": {"count": 1, "teacher": "ensemble"}}}), IDS)
    with pytest.raises(ConfigError, match="rounds"):
        expand_variants(_config({"st": {"rounds": {"count": 2, "teacher": "teacher"}}}), IDS)


def test_options_are_measured_against_the_same_songs_with_base_settings() -> None:
    variants = expand_variants(
        _config(
            {
                "b5": {"labeled_budget": 5},
                "b5_thr": {"labeled_budget": 5, "stage1": {"pseudo_threshold": 0.5}},
                "all_thr": {"stage1": {"pseudo_threshold": 0.5}},
                "b7_thr": {"labeled_budget": 7, "stage1": {"pseudo_threshold": 0.5}},
            }
        ),
        IDS,
    )
    refs = {v.name: (r.name if (r := reference_of(v, variants)) else None) for v in variants}
    assert refs == {"": None, "b5": None, "b5_thr": "b5", "all_thr": "", "b7_thr": None}


def test_a_variant_of_another_architecture_does_not_inherit_the_base_hparams() -> None:
    base, same, other = expand_variants(
        _config(
            {
                "wide": {"student": {"hparams": {"hidden_size": 32}}},
                "cnet": {"student": {"arch": "chordnet", "hparams": {"t_layer": 1}}},
            }
        ),
        IDS,
    )
    assert same.student == {"arch": "btc", "hparams": {"hidden_size": 32, "num_layers": 1}}
    assert other.student == {"arch": "chordnet", "hparams": {"t_layer": 1}}


def _with_strides(config: dict, stride: int = 54) -> dict:
    for stage in ("stage1", "stage2", "baseline"):
        config[stage]["stride"] = stride
    return config


def test_planning_refuses_a_student_hparams_typo_naming_the_setting() -> None:
    config = _with_strides(_config({"cnet": {"student": {"arch": "chordnet"}}}))
    check_students(expand_variants(config, IDS))  # the valid settings pass
    config["student"]["hparams"]["hiden_size"] = 16
    with pytest.raises(
        ConfigError, match=r"^student: btc: unknown hyper-parameter\(s\) hiden_size"
    ):
        check_students(expand_variants(config, IDS))
    config = _with_strides(
        _config({"cnet": {"student": {"arch": "chordnet", "hparams": {"t_head": 5}}}})
    )
    with pytest.raises(ConfigError, match=r"^variants\.cnet\.student: chordnet: t_head=5"):
        check_students(expand_variants(config, IDS))


def test_planning_refuses_a_stride_longer_than_the_student_window() -> None:
    config = _with_strides(_config({"wide": {"baseline": {"stride": 500}}}))
    with pytest.raises(ConfigError, match=r"^variants\.wide\.baseline\.stride 500 exceeds the btc"):
        check_students(expand_variants(config, IDS))
    config = _with_strides(_config(None), stride=109)
    with pytest.raises(ConfigError, match=r"^stage1\.stride 109 exceeds .* window of 108 frames"):
        check_students(expand_variants(config, IDS))


def test_checking_the_students_imports_no_torch() -> None:
    code = (
        "import sys; from mirkd.model_configs import model_window; model_window('btc', {}); "
        "import mirkd.workflow_plan; print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
