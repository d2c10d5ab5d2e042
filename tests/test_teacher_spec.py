"""Teacher specs: validation, tags, ensembles."""

from __future__ import annotations

import pytest

from mirkd.errors import ConfigError
from mirkd.teacher_spec import TeacherSpec

MEMBERS = [{"kind": "lvchordia", "precision": "bf16"}, {"kind": "mirkd", "checkpoint": "s2.pt"}]


def test_tags_name_the_kind_and_change_with_every_setting() -> None:
    fp32 = TeacherSpec.from_config({"kind": "lvchordia"})
    bf16 = TeacherSpec.from_config({"kind": "lvchordia", "precision": "bf16"})
    assert fp32.tag.startswith("lvchordia-") and fp32.tag != bf16.tag
    assert fp32.tag == TeacherSpec.from_config({"kind": "lvchordia", "checkpoint": None}).tag
    a = TeacherSpec.from_config({"kind": "mirkd", "checkpoint": "a.pt"})
    b = TeacherSpec.from_config({"kind": "mirkd", "checkpoint": "b.pt"})
    assert a.tag != b.tag and a.checkpoints() == ["a.pt"]


def test_an_ensemble_has_its_own_tag_members_and_weights() -> None:
    ens = TeacherSpec.from_config({"kind": "ensemble", "members": MEMBERS})
    assert ens.is_ensemble and ens.tag.startswith("ensemble-")
    assert [m.kind for m in ens.members] == ["lvchordia", "mirkd"]
    assert ens.weights == (1.0, 1.0) and ens.checkpoints() == ["s2.pt"]
    weighted = [{**MEMBERS[0], "weight": 2.0}, MEMBERS[1]]
    other = TeacherSpec.from_config({"kind": "ensemble", "members": weighted})
    assert other.weights == (2.0, 1.0) and other.tag != ens.tag


@pytest.mark.parametrize(
    ("cfg", "message"),
    [
        ({"kind": "ensemble", "members": MEMBERS[:1]}, "at least two members"),
        ({"kind": "ensemble", "members": [MEMBERS[0], MEMBERS[0]]}, "listed twice"),
        ({"kind": "ensemble", "members": [MEMBERS[0], {"kind": "ensemble"}]}, "cannot be a member"),
        ({"kind": "btc"}, "needs a checkpoint"),
        ({"kind": "lvchordia", "checkpoint": "x.pt"}, "takes no checkpoint"),
        ({"kind": "mirkd", "checkpoint": "x.pt", "precision": "bf16"}, "lvchordia only"),
        ({"kind": "lvchordia", "members": MEMBERS}, "for kind ensemble only"),
        ({"kind": "crema"}, "not one of"),
    ],
)
def test_bad_teachers_are_config_errors_naming_the_key(cfg, message) -> None:
    with pytest.raises(ConfigError, match=message) as err:
        TeacherSpec.from_config(cfg, "variants.x.teacher")
    assert "variants.x.teacher" in str(err.value)
