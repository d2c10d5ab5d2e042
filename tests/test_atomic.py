"""Atomic writes: the final file appears whole or not at all."""

from __future__ import annotations

import json

import pytest

from mirkd.atomic import atomic_path, atomic_write_json, atomic_write_text


def test_temp_path_keeps_suffix_and_is_renamed(tmp_path):
    final = tmp_path / "deep" / "out.h5"
    with atomic_path(final) as tmp:
        assert tmp.parent == final.parent and tmp.suffix == ".h5" and tmp != final
        tmp.write_bytes(b"data")
        assert not final.exists()
    assert final.read_bytes() == b"data"
    assert not tmp.exists()
    assert final.stat().st_mode & 0o777 == 0o644


def test_explicit_suffix(tmp_path):
    with atomic_path(tmp_path / "model", suffix=".pt") as tmp:
        assert tmp.suffix == ".pt"
        tmp.write_text("x")
    assert (tmp_path / "model").read_text() == "x"


def test_exception_removes_temp_and_keeps_old_file(tmp_path):
    final = tmp_path / "out.txt"
    final.write_text("old")
    with pytest.raises(RuntimeError), atomic_path(final) as tmp:
        tmp.write_text("half")
        raise RuntimeError("boom")
    assert final.read_text() == "old"
    assert list(tmp_path.iterdir()) == [final]


def test_write_text_and_json(tmp_path):
    atomic_write_text(tmp_path / "a.txt", "héllo\n")
    assert (tmp_path / "a.txt").read_text(encoding="utf-8") == "héllo\n"
    atomic_write_json(tmp_path / "b.json", {"b": 1, "a": [1, 2]})
    assert json.loads((tmp_path / "b.json").read_text()) == {"a": [1, 2], "b": 1}
